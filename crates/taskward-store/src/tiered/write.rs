//! The write flows: create, update and kill, each a durable write followed by the hot write
//! (`outage.rs`), on a task of its own so a client hanging up cannot split them.

use taskward_model::{time, CreateTask, Task, TaskId, Tenant, TransitionError, UpdateTask};

use super::{bump, Created, Killed, TieredStore, MAX_CAS_ATTEMPTS};
use crate::durable::{Inserted, WriteId};
use crate::StoreError;

impl TieredStore {
    /// Records a new task; the same id with the same content again is an idempotent retry.
    pub async fn create(&self, tenant: &Tenant, req: CreateTask) -> Result<Created, StoreError> {
        req.validate().map_err(StoreError::Invalid)?;
        let digest = req.content_digest();
        let id = req.task_id.clone().unwrap_or_else(TaskId::generate);
        let task = Task::create(id, req, time::now());
        let inserted = self
            .uncancellable(tenant, move |store, tenant| async move {
                let inserted = store
                    .0
                    .durable
                    .insert(&tenant, &task, &digest, WriteId::new())
                    .await;
                let inserted = store.durable_result(inserted)?;
                match inserted {
                    Inserted::Created => {
                        store.write_through(&tenant, &task).await;
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
            })
            .await?;
        Ok(inserted)
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
        let outcome = self
            .compare_and_set(tenant, id, |current| match if_match {
                Some(expected) if expected != current.version => {
                    Next::Answer(Err(StoreError::VersionMismatch {
                        expected,
                        current: current.version,
                    }))
                }
                _ => match current.apply(update, time::now()) {
                    Ok(Some(next)) => Next::Write(next),
                    Ok(None) => Next::Answer(Ok(current.clone())),
                    Err(TransitionError::Invalid(e)) => Next::Answer(Err(StoreError::Invalid(e))),
                    Err(e) => Next::Answer(Err(StoreError::Conflict(e.to_string()))),
                },
            })
            .await?;
        match outcome {
            Some(Outcome::Written(task) | Outcome::Answered(task)) => Ok(task),
            None => Err(StoreError::NotFound),
        }
    }

    /// Cancels an active task; terminal and unknown tasks are left as they are.
    pub async fn kill(&self, tenant: &Tenant, id: &TaskId) -> Result<Killed, StoreError> {
        let outcome = self
            .compare_and_set(tenant, id, |current| match current.cancel(time::now()) {
                Some(next) => Next::Write(next),
                None => Next::Answer(Ok(())),
            })
            .await?;
        Ok(match outcome {
            Some(Outcome::Written(_)) => Killed::Canceled,
            Some(Outcome::Answered(())) | None => Killed::Unchanged,
        })
    }

    /// The compare-and-set loop of every change to an existing task: `decide` says, for the
    /// task as it is, what to write, or the answer without writing. `None` if there is no such
    /// task.
    ///
    /// The first attempt starts from the hot tier's copy when the hot tier is trusted, which
    /// spares a durable round trip; the durable tier checks version and incarnation, so a stale
    /// copy costs only a lost race. Only a write is taken from the hot copy: an answer without
    /// writing (a 412, a 409, a no-op) is decided on the durable state, which the hot copy may
    /// lag behind.
    async fn compare_and_set<T>(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        decide: impl Fn(&Task) -> Next<T>,
    ) -> Result<Option<Outcome<T>>, StoreError> {
        let mut lost = false;
        if let Some(current) = self.hot_base(tenant, id).await {
            if let Next::Write(next) = decide(&current) {
                if self.replace(tenant, &next, &current).await? {
                    return Ok(Some(Outcome::Written(next)));
                }
                lost = true;
            }
        }
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(current) = self.durable_get(tenant, id).await? else {
                return Ok(None);
            };
            match decide(&current) {
                Next::Write(next) => {
                    if self.replace(tenant, &next, &current).await? {
                        return Ok(Some(Outcome::Written(next)));
                    }
                    lost = true;
                }
                Next::Answer(answer) => {
                    if lost {
                        // A stale hot copy cost a lost race: bring it up to the durable state.
                        self.rewarm(tenant, &current).await;
                    }
                    return answer.map(|a| Some(Outcome::Answered(a)));
                }
            }
        }
        Err(StoreError::Contention)
    }

    /// Where a write's first attempt starts: the hot tier's copy, if it is in use. Not counted
    /// as a hit or miss: those count what reads were served from.
    async fn hot_base(&self, tenant: &Tenant, id: &TaskId) -> Option<Task> {
        if !self.0.trust.writable() {
            return None;
        }
        self.0.hot.get(tenant, id).await.unwrap_or_else(|e| {
            bump(&self.0.stats.hot_errors);
            tracing::debug!(error = %e, "hot tier read for a write failed; reading durable tier");
            None
        })
    }

    /// Compare-and-set in the durable tier (from `base`), then write-through; `false` on a
    /// lost race.
    async fn replace(&self, tenant: &Tenant, next: &Task, base: &Task) -> Result<bool, StoreError> {
        let next = next.clone();
        let (expected, previous) = (base.version, base.status);
        self.uncancellable(tenant, move |store, tenant| async move {
            let stored = store
                .0
                .durable
                .replace(&tenant, &next, expected, WriteId::new(), previous)
                .await;
            let stored = store.durable_result(stored)?;
            if stored {
                store.write_through(&tenant, &next).await;
            }
            Ok(stored)
        })
        .await
    }

    /// Runs a write on a task of its own that the request awaits: once the durable write is
    /// under way it must be followed by the hot write (or its pending invalidation) even if the
    /// client hangs up and drops the request, or the hot tier would keep serving the version
    /// before it.
    async fn uncancellable<T, F, Fut>(&self, tenant: &Tenant, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(TieredStore, Tenant) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        tokio::spawn(write(self.clone(), tenant.clone()))
            .await
            .map_err(StoreError::internal)?
    }
}

/// What a compare-and-set does with the task as it is.
enum Next<T> {
    Write(Task),
    Answer(Result<T, StoreError>),
}

/// How a compare-and-set ended.
// Lives only until the caller unpacks it: boxing the task would cost an allocation per read.
#[allow(clippy::large_enum_variant)]
enum Outcome<T> {
    Written(Task),
    Answered(T),
}
