//! The durable tier: the source of truth for tasks and keys.
//!
//! A write is acknowledged only once a back-end has committed it. Back-ends store whole tasks
//! and compare-and-set on `version`; they do not decide transitions (that is
//! [`taskward_model::Task::apply`]) nor talk to the hot tier (that is [`crate::TieredStore`]).

pub mod postgres;
mod query;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use taskward_model::list::{ListPage, ListQuery};
use taskward_model::{KeyRecord, Task, TaskId, Tenant};

use tokio_util::sync::CancellationToken;

use crate::changes::Changes;
use crate::StoreError;

/// The outcome of inserting a new task.
#[derive(Debug)]
pub enum Inserted {
    /// The task is stored.
    Created,
    /// A task with this id already exists for the tenant; here it is with its create digest.
    Exists { task: Box<Task>, digest: String },
}

/// A task whose hot-tier entry may be stale: it was written (at `version`) while the hot tier
/// could not be. Replayed as an invalidation once the hot tier answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInvalidation {
    pub tenant: Tenant,
    pub task_id: TaskId,
    pub version: u64,
}

/// A store of task documents and API keys that survives restarts.
#[async_trait]
pub trait DurableTier: Send + Sync + std::fmt::Debug + 'static {
    /// Short name for logs and /readyz (`sqlite`, `postgres`).
    fn name(&self) -> &'static str;

    /// Whether the tier answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The task, if it exists for this tenant.
    async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError>;

    /// Inserts a new task unless its id is taken; `digest` identifies the create request.
    async fn insert(
        &self,
        tenant: &Tenant,
        task: &Task,
        digest: &str,
    ) -> Result<Inserted, StoreError>;

    /// Replaces the task if its stored version is still `expected_version` and it is the same
    /// incarnation (its `created_at` equals `task.created_at`); `false` when another write got
    /// there first, or the task is gone or was deleted and created again.
    async fn replace(
        &self,
        tenant: &Tenant,
        task: &Task,
        expected_version: u64,
    ) -> Result<bool, StoreError>;

    /// One page of a validated listing.
    async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<ListPage, StoreError>;

    /// Stores a new key under its hash.
    async fn insert_key(&self, key: &KeyRecord, hash: &str) -> Result<(), StoreError>;

    /// Stores `key` only if no first-start key was ever issued by this store; `true` if it was
    /// stored now. Atomic, so two processes starting together issue one key.
    async fn insert_first_key(&self, key: &KeyRecord, hash: &str) -> Result<bool, StoreError>;

    /// The key with this hash, revoked or not.
    async fn find_key(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// Every key, newest first.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Marks a key revoked; `false` if there is no such live key.
    async fn revoke_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Records that the hot entry of this task must be invalidated (keeps the highest version).
    async fn add_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError>;

    /// Up to `limit` recorded invalidations.
    async fn pending_invalidations(
        &self,
        limit: u32,
    ) -> Result<Vec<PendingInvalidation>, StoreError>;

    /// Forgets a replayed invalidation, unless a newer version was recorded meanwhile.
    async fn clear_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError>;

    /// How many invalidations wait (for metrics).
    async fn count_pending_invalidations(&self) -> Result<u64, StoreError>;

    /// Deletes up to `limit` terminal tasks that finished before `cutoff`; returns how many.
    async fn delete_finished_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Announces to `changes` every task write committed to this tier by any process (other
    /// instances included), until `stop`. A back-end that only one process writes to (the
    /// embedded file) has nothing to add to the process's own announcements and returns at once.
    async fn forward_changes(&self, changes: Arc<Changes>, stop: CancellationToken) {
        let _ = (changes, stop);
    }
}
