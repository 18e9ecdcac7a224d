//! The only code that knows there are two tiers: SPEC's read and write flows, in one place.
//!
//! - Write: durable first (compare-and-set on `version`); acknowledged means committed there.
//!   Then the hot tier, write-through, before the response; a failed hot write does not fail
//!   the request.
//! - Read: hot first; on a miss or a hot error, durable (the caller annotates the response),
//!   then the hot tier is re-warmed. The hot tier's version guard keeps a slow re-warm from
//!   replacing a newer document.
//! - List: durable only (it has the indexes).

use std::sync::Arc;

use taskward_model::list::{ListPage, ListQuery};
use taskward_model::{time, CreateTask, Task, TaskId, Tenant, UpdateTask};

use crate::durable::{DurableTier, Inserted};
use crate::hot::HotTier;
use crate::StoreError;

/// How often a write retries its compare-and-set after losing a race before giving up with
/// 503. Each retry means another writer succeeded, so this is only reached under a storm of
/// writes to one task.
const MAX_CAS_ATTEMPTS: usize = 64;

/// Where a read was served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Hot,
    /// The durable fallback: responses carry `additional_data.from_mongodb`.
    Durable,
}

/// The outcome of a create.
#[derive(Debug)]
pub struct Created {
    pub task: Task,
    /// `false` when this was an idempotent retry of an earlier create.
    pub new: bool,
}

/// The outcome of a kill.
#[derive(Debug)]
pub enum Killed {
    /// The task was active and is now CANCELED.
    Canceled,
    /// The task was already terminal, or does not exist for this tenant.
    Unchanged,
}

/// Readiness of each tier, for `/readyz`.
#[derive(Debug)]
pub struct Readiness {
    pub hot: (&'static str, Result<(), String>),
    pub durable: (&'static str, Result<(), String>),
}

/// Tasks and keys over a hot and a durable tier.
#[derive(Debug, Clone)]
pub struct TieredStore {
    hot: Arc<dyn HotTier>,
    pub(crate) durable: Arc<dyn DurableTier>,
}

impl TieredStore {
    /// Combines two tiers.
    pub fn new(hot: Arc<dyn HotTier>, durable: Arc<dyn DurableTier>) -> Self {
        TieredStore { hot, durable }
    }

    /// Pings both tiers.
    pub async fn readiness(&self) -> Readiness {
        Readiness {
            hot: (
                self.hot.name(),
                self.hot.ping().await.map_err(|e| e.to_string()),
            ),
            durable: (
                self.durable.name(),
                self.durable.ping().await.map_err(|e| e.to_string()),
            ),
        }
    }

    /// A task, hot tier first.
    pub async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<(Task, Source), StoreError> {
        match self.hot.get(tenant, id).await {
            Ok(Some(task)) => return Ok((task, Source::Hot)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "hot tier read failed; reading durable tier"),
        }
        let task = self
            .durable
            .get(tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.warm(tenant, &task).await;
        Ok((task, Source::Durable))
    }

    /// Records a new task; the same id with the same content again is an idempotent retry.
    pub async fn create(&self, tenant: &Tenant, req: CreateTask) -> Result<Created, StoreError> {
        let digest = req.content_digest();
        let id = req.task_id.clone().unwrap_or_else(TaskId::generate);
        let task = Task::create(id, req, time::now());
        match self.durable.insert(tenant, &task, &digest).await? {
            Inserted::Created => {
                self.warm(tenant, &task).await;
                Ok(Created { task, new: true })
            }
            Inserted::Exists {
                task,
                digest: stored,
            } if stored == digest => Ok(Created {
                task: *task,
                new: false,
            }),
            Inserted::Exists { .. } => Err(StoreError::Conflict(
                "a task with this task_id already exists with different content".into(),
            )),
        }
    }

    /// Applies a producer's update with compare-and-set; `if_match` pins the version it must
    /// apply to.
    pub async fn update(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        update: &UpdateTask,
        if_match: Option<u64>,
    ) -> Result<Task, StoreError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self
                .durable
                .get(tenant, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            if let Some(expected) = if_match {
                if expected != current.version {
                    return Err(StoreError::VersionMismatch {
                        expected,
                        current: current.version,
                    });
                }
            }
            let next = match current.apply(update, time::now()) {
                Ok(Some(next)) => next,
                Ok(None) => return Ok(current),
                Err(e) => return Err(StoreError::Conflict(e.to_string())),
            };
            if self.durable.replace(tenant, &next, current.version).await? {
                self.warm(tenant, &next).await;
                return Ok(next);
            }
        }
        Err(contention())
    }

    /// Cancels an active task; terminal and unknown tasks are left as they are.
    pub async fn kill(&self, tenant: &Tenant, id: &TaskId) -> Result<Killed, StoreError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(current) = self.durable.get(tenant, id).await? else {
                return Ok(Killed::Unchanged);
            };
            let Some(next) = current.cancel(time::now()) else {
                return Ok(Killed::Unchanged);
            };
            if self.durable.replace(tenant, &next, current.version).await? {
                self.warm(tenant, &next).await;
                return Ok(Killed::Canceled);
            }
        }
        Err(contention())
    }

    /// A page of a validated listing, from the durable tier.
    pub async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.durable.list(tenant, query).await
    }

    /// Writes `task` to the hot tier, best effort: a failure leaves the entry to expire or be
    /// replaced; reads then come from the durable tier.
    async fn warm(&self, tenant: &Tenant, task: &Task) {
        if let Err(e) = self.hot.put(tenant, task).await {
            tracing::warn!(error = %e, "hot tier write failed; invalidating");
            // If the put failed half-way, the old entry must not outlive this write.
            if let Err(e) = self.hot.invalidate(tenant, &task.task_id).await {
                tracing::warn!(error = %e, "hot tier invalidation failed");
            }
        }
    }
}

fn contention() -> StoreError {
    StoreError::Unavailable {
        tier: "durable",
        source: "too many concurrent writes to this task; retry".into(),
    }
}
