//! The durable tier: the source of truth for tasks and keys.
//!
//! A write is acknowledged only once a back-end has committed it. Back-ends store whole tasks
//! and compare-and-set on `version`; they do not decide transitions (that is
//! [`taskward_model::Task::apply`]) nor talk to the hot tier (that is [`crate::TieredStore`]).
//! Both back-ends are the one SQL core ([`SqlDurable`]) over a database of their own.

pub mod postgres;
pub(crate) mod sql;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use taskward_model::list::{ListPage, ListQuery};
use taskward_model::{Counts, EventId, KeyRecord, StoredEvent, Task, TaskId, TaskStatus, Tenant};
use tokio_util::sync::CancellationToken;

pub use postgres::{PostgresDurable, PostgresOptions};
pub use sql::SqlDurable;
pub use sqlite::SqliteDurable;

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

/// Identifies one write (a create, or one compare-and-set attempt), stored with the row it
/// wrote: a statement run again after its connection died before answering finds its own
/// write there and knows it won, instead of taking it for another writer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteId(pub(crate) i64);

impl WriteId {
    /// A fresh random id.
    pub fn new() -> Self {
        WriteId(rand::random())
    }
}

impl Default for WriteId {
    fn default() -> Self {
        Self::new()
    }
}

/// A task whose hot-tier entry may be stale: it was written (at `version`) while the hot tier
/// could not be. Replayed as an invalidation once the hot tier answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInvalidation {
    pub tenant: Tenant,
    pub task_id: TaskId,
    pub version: u64,
}

/// A store of task documents that survives restarts.
#[async_trait]
pub trait DurableTier: Send + Sync + std::fmt::Debug + 'static {
    /// Short name for logs and /readyz (`sqlite`, `postgres`).
    fn name(&self) -> &'static str;

    /// Whether the tier answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The task, if it exists for this tenant.
    async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError>;

    /// Inserts a new task unless its id is taken, with its `task.created` event in the same
    /// transaction; `digest` identifies the create request.
    async fn insert(
        &self,
        tenant: &Tenant,
        task: &Task,
        digest: &str,
        write: WriteId,
    ) -> Result<Inserted, StoreError>;

    /// Replaces the task if its stored version is still `expected_version` and it is the same
    /// incarnation (its `created_at` equals `task.created_at`), or if `write` already did;
    /// `false` when another write got there first, or the task is gone or was deleted and
    /// created again. The change's event (from `previous`, the status of the version it was
    /// computed from) is appended in the same transaction.
    async fn replace(
        &self,
        tenant: &Tenant,
        task: &Task,
        expected_version: u64,
        write: WriteId,
        previous: TaskStatus,
    ) -> Result<bool, StoreError>;

    /// One page of a validated listing.
    async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<ListPage, StoreError>;

    /// Records that the hot entry of this task must be invalidated (keeps the highest version).
    async fn add_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError>;

    /// Up to `limit` recorded invalidations.
    async fn pending_invalidations(
        &self,
        limit: u32,
    ) -> Result<Vec<PendingInvalidation>, StoreError>;

    /// Forgets a replayed invalidation, unless a newer version was recorded meanwhile.
    async fn clear_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError>;

    /// Deletes up to `limit` terminal tasks that finished before `cutoff`, with their events;
    /// returns how many tasks.
    async fn delete_finished_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Every event of a task, oldest first (none for an unknown task).
    async fn history(&self, tenant: &Tenant, id: &TaskId) -> Result<Vec<StoredEvent>, StoreError>;

    /// The newest event of a task (none for an unknown task).
    async fn last_event(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Option<StoredEvent>, StoreError>;

    /// Up to `limit` events of the tenant (or of one of its tasks) after `after`, in order. Ids
    /// become visible in the order they were given, so a reader that saw id n missed none
    /// before it.
    async fn events_after(
        &self,
        tenant: &Tenant,
        task: Option<&TaskId>,
        after: EventId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The last event id given out in the tenant (0 when none).
    async fn last_event_id(&self, tenant: &Tenant) -> Result<EventId, StoreError>;

    /// The tenant's tasks counted by status and by type, optionally of one type.
    async fn counts(&self, tenant: &Tenant, task_type: Option<&str>) -> Result<Counts, StoreError>;

    /// Announces to `changes` every task write committed to this tier by any process (other
    /// instances included), until `stop`. A back-end that only one process writes to (the
    /// embedded file) has nothing to add to the process's own announcements and returns at once.
    async fn forward_changes(&self, changes: Arc<Changes>, stop: CancellationToken);

    /// Stops the tier's own background work (PostgreSQL's group workers) and waits for it;
    /// requests made afterwards fail.
    async fn close(&self);
}

/// API keys, stored by hash.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug + 'static {
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
}
