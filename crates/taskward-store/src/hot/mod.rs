//! The hot tier: a short-lived cache of whole task documents, read before the durable tier.
//!
//! It is never the source of truth. Writes to it are best effort and guarded by version (an
//! older document never replaces a newer one); if one fails, [`crate::TieredStore`] makes sure
//! the entry is invalidated before it can be read stale.

pub mod memory;
pub mod none;
pub mod redis;

use async_trait::async_trait;
use bytes::Bytes;
use taskward_model::{Task, TaskId, TaskResponse, Tenant};

/// A failure of the hot tier. Never shown to clients: reads fall back to the durable tier.
#[derive(Debug, thiserror::Error)]
#[error("hot tier: {0}")]
pub struct HotError(pub String);

/// A task as `GET /v1/tasks/{task_id}` sends it: its version (the ETag) and its JSON body.
/// The hot tier keeps tasks in this form, so a hot read is answered without parsing or
/// serialising anything.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedTask {
    pub version: u64,
    pub body: Bytes,
}

impl RenderedTask {
    /// A task as it was written, or as the hot tier holds it: no annotation.
    pub fn new(task: &Task) -> Result<Self, serde_json::Error> {
        Self::of(task.clone())
    }

    /// [`RenderedTask::new`] of a task the caller no longer needs.
    pub fn of(task: Task) -> Result<Self, serde_json::Error> {
        Self::render(task, false)
    }

    /// A task read from the durable tier because the hot tier could not answer: annotated
    /// `additional_data.from_mongodb` (SPEC).
    pub fn from_durable(task: Task) -> Result<Self, serde_json::Error> {
        Self::render(task, true)
    }

    fn render(task: Task, from_durable: bool) -> Result<Self, serde_json::Error> {
        let version = task.version;
        let body = serde_json::to_vec(&TaskResponse::new(task, from_durable))?;
        Ok(RenderedTask {
            version,
            body: body.into(),
        })
    }
}

/// A cache of task documents keyed by tenant and task id, each entry expiring after a TTL
/// counted from its last write.
#[async_trait]
pub trait HotTier: Send + Sync + std::fmt::Debug + 'static {
    /// Short name for logs and /readyz (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Whether the tier answers.
    async fn ping(&self) -> Result<(), HotError>;

    /// The cached document, if present and not expired.
    async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, HotError>;

    /// The cached document as a GET answers it, if present and not expired.
    async fn get_rendered(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Option<RenderedTask>, HotError>;

    /// [`HotTier::get_rendered`] for a caller with nothing to fall back to (the durable tier is
    /// down): waits longer than the usual timeout for an answer.
    async fn get_rendered_patiently(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Option<RenderedTask>, HotError> {
        self.get_rendered(tenant, id).await
    }

    /// Stores `task` unless a newer version is cached; (re)starts its TTL either way when the
    /// version is not older.
    async fn put(&self, tenant: &Tenant, task: &Task) -> Result<(), HotError>;

    /// Drops the entry, so the next read goes to the durable tier, and refuses any later
    /// `put` of a version older than `version` (the last acknowledged one).
    async fn invalidate(&self, tenant: &Tenant, id: &TaskId, version: u64) -> Result<(), HotError>;
}
