//! The only code that knows there are two tiers: SPEC's read and write flows, in one place.
//!
//! - Write: durable first (compare-and-set on `version`); acknowledged means committed there.
//!   Then the hot tier, write-through, before the response; a failed hot write does not fail
//!   the request.
//! - Read: hot first; on a miss or a hot error, durable (the caller annotates the response),
//!   then the hot tier is re-warmed. The hot tier's version guard keeps a slow re-warm from
//!   replacing a newer document.
//! - List: durable only (it has the indexes).
//!
//! Hot-tier outages: when a hot write fails, the task is recorded in the durable tier as a
//! pending invalidation and the hot tier becomes *suspect*: reads and writes skip it (every
//! write meanwhile is recorded too) until [`TieredStore::run_maintenance`] has replayed every
//! pending invalidation against it. So after recovery no read returns a version older than the
//! last acknowledged write, even if Redis kept its old data through a partition.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use taskward_model::list::{ListPage, ListQuery};
use taskward_model::{time, CreateTask, Task, TaskId, Tenant, UpdateTask};
use tokio_util::sync::CancellationToken;

use crate::changes::Changes;
use crate::durable::{DurableTier, Inserted, PendingInvalidation};
use crate::hot::{HotError, HotTier, RenderedTask};
use crate::StoreError;

/// How often a write retries its compare-and-set after losing a race before giving up with
/// 503. Each retry means another writer succeeded, so this is only reached under a storm of
/// writes to one task.
const MAX_CAS_ATTEMPTS: usize = 64;

/// Pending invalidations replayed per round trip to the durable tier.
const REPLAY_BATCH: u32 = 500;

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

/// Counters of what the store did, for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Reads answered by the hot tier.
    pub hot_hits: AtomicU64,
    /// Reads the hot tier did not have.
    pub hot_misses: AtomicU64,
    /// Reads served by the durable tier because the hot tier failed or was suspect.
    pub hot_fallbacks: AtomicU64,
    /// Failed hot-tier calls.
    pub hot_errors: AtomicU64,
    /// Failed durable-tier calls (the causes of 5xx).
    pub durable_errors: AtomicU64,
    /// Pending invalidations at the last maintenance round.
    pub pending_invalidations: AtomicU64,
    /// Tasks removed by retention.
    pub retention_deleted: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The store's background work and how often it runs.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// How often pending hot-tier invalidations are looked for and replayed.
    pub replay_every: Duration,
    /// Terminal tasks that finished longer ago than this are deleted.
    pub retention: Duration,
    /// How often the retention sweep runs.
    pub sweep_every: Duration,
    /// Tasks deleted per statement (bounded, so a sweep never holds long locks).
    pub sweep_batch: u32,
}

/// Tasks and keys over a hot and a durable tier.
#[derive(Debug, Clone)]
pub struct TieredStore {
    hot: Arc<dyn HotTier>,
    pub(crate) durable: Arc<dyn DurableTier>,
    /// The hot tier may hold stale entries: skip it until the pending invalidations replay.
    suspect: Arc<AtomicBool>,
    /// Shared by writes from "is the hot tier suspect?" until their invalidation is recorded;
    /// taken exclusively by the replay's last pass before it trusts the hot tier again, so no
    /// write can skip the hot tier and record its invalidation after that pass.
    gate: Arc<tokio::sync::RwLock<()>>,
    /// Invalidations the durable tier failed to record (both tiers failing at once); replayed
    /// from memory with the recorded ones.
    unrecorded: Arc<Mutex<Vec<PendingInvalidation>>>,
    stats: Arc<StoreStats>,
    /// Long-poll waiters of this process.
    changes: Arc<Changes>,
}

impl TieredStore {
    /// Combines two tiers. The hot tier starts suspect if invalidations are pending from an
    /// earlier outage (of this or another instance).
    pub async fn new(
        hot: Arc<dyn HotTier>,
        durable: Arc<dyn DurableTier>,
    ) -> Result<Self, StoreError> {
        let pending = durable.count_pending_invalidations().await?;
        Ok(TieredStore {
            hot,
            durable,
            suspect: Arc::new(AtomicBool::new(pending > 0)),
            gate: Arc::default(),
            unrecorded: Arc::default(),
            stats: Arc::new(StoreStats::default()),
            changes: Arc::new(Changes::default()),
        })
    }

    /// The counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// The long-poll registry (for metrics).
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Answers every current and future long-poll at once with the task as it is, so a
    /// shutting-down server drains in-flight requests without waiting out their timeouts.
    pub fn end_waits(&self) {
        self.changes.close();
    }

    /// Whether reads and writes currently bypass the hot tier.
    pub fn hot_suspect(&self) -> bool {
        self.suspect.load(Ordering::Acquire)
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

    /// Counts durable failures that will become 5xx.
    fn durable_err(&self, e: StoreError) -> StoreError {
        if matches!(e, StoreError::Unavailable { .. } | StoreError::Internal(_)) {
            bump(&self.stats.durable_errors);
        }
        e
    }

    async fn durable_get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError> {
        self.durable
            .get(tenant, id)
            .await
            .map_err(|e| self.durable_err(e))
    }

    /// A task, hot tier first.
    pub async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<(Task, Source), StoreError> {
        if let Some(task) = self.hot_read(self.hot.get(tenant, id)).await {
            return Ok((task, Source::Hot));
        }
        self.durable_read(tenant, id).await
    }

    /// A task as `GET /v1/tasks/{task_id}` sends it, hot tier first: a hot hit is answered
    /// with the stored bytes.
    pub async fn get_rendered(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<RenderedTask, StoreError> {
        if let Some(rendered) = self.hot_read(self.hot.get_rendered(tenant, id)).await {
            return Ok(rendered);
        }
        let (task, source) = self.durable_read(tenant, id).await?;
        RenderedTask::new(&task, source == Source::Durable).map_err(StoreError::internal)
    }

    /// A read from the hot tier, counted; `None` on a miss, a failure, or while the hot tier
    /// is suspect (then `read` is never polled).
    async fn hot_read<T>(
        &self,
        read: impl std::future::Future<Output = Result<Option<T>, HotError>>,
    ) -> Option<T> {
        if self.hot_suspect() {
            bump(&self.stats.hot_fallbacks);
            return None;
        }
        match read.await {
            Ok(Some(found)) => {
                bump(&self.stats.hot_hits);
                Some(found)
            }
            Ok(None) => {
                bump(&self.stats.hot_misses);
                None
            }
            Err(e) => {
                bump(&self.stats.hot_errors);
                bump(&self.stats.hot_fallbacks);
                tracing::warn!(error = %e, "hot tier read failed; reading durable tier");
                None
            }
        }
    }

    /// A read from the durable tier after the hot tier could not answer, re-warming it.
    async fn durable_read(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<(Task, Source), StoreError> {
        let task = self
            .durable_get(tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !self.hot_suspect() {
            if let Err(e) = self.hot.put(tenant, &task).await {
                // This read acknowledged nothing, so a failed re-warm only costs a later miss.
                bump(&self.stats.hot_errors);
                tracing::warn!(error = %e, "hot tier re-warm failed");
            }
        }
        Ok((task, Source::Durable))
    }

    /// Like [`TieredStore::get`], but never older than `min_version`: a change announced by
    /// another instance may reach us before that instance has written its hot entry.
    async fn get_at_least(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        min_version: u64,
    ) -> Result<(Task, Source), StoreError> {
        let (task, source) = self.get(tenant, id).await?;
        if task.version >= min_version || source == Source::Durable {
            return Ok((task, source));
        }
        let task = self
            .durable_get(tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((task, Source::Durable))
    }

    /// Long-poll: the task as soon as its version is no longer `unchanged` or it is terminal
    /// (at once if that is already so), else as it is at `deadline`. Writes through any
    /// instance sharing the durable tier wake the wait (see [`DurableTier::forward_changes`]).
    pub async fn wait_for_change(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        unchanged: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(Task, Source), StoreError> {
        let watch = self.changes.watch(tenant, id);
        // Never older than what the client holds: a hot entry behind it (its writer has not
        // written the hot tier yet) sends the read to the durable tier instead.
        let at_least = || watch.announced().max(unchanged);
        loop {
            // Registered before the read, so a write committed after the read still wakes us.
            let changed = watch.changed();
            let (task, source) = self.get_at_least(tenant, id, at_least()).await?;
            if task.version != unchanged || task.status.is_terminal() {
                return Ok((task, source));
            }
            tokio::select! {
                biased;
                _ = changed => {}
                // The answer at the end is read then, not remembered from before the wait.
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.changes.closed() => break,
            }
        }
        self.get_at_least(tenant, id, at_least()).await
    }

    /// Records a new task; the same id with the same content again is an idempotent retry.
    pub async fn create(&self, tenant: &Tenant, req: CreateTask) -> Result<Created, StoreError> {
        let digest = req.content_digest();
        let id = req.task_id.clone().unwrap_or_else(TaskId::generate);
        let task = Task::create(id, req, time::now());
        match self
            .durable
            .insert(tenant, &task, &digest)
            .await
            .map_err(|e| self.durable_err(e))?
        {
            Inserted::Created => {
                self.write_hot(tenant, &task).await;
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
        let mut lost = false;
        if let Some(current) = self.hot_base(tenant, id).await {
            // Only a write is taken from the hot copy: a refusal (412, terminal) or a no-op is
            // judged on the durable state below, which the hot copy may lag behind.
            if if_match.is_none_or(|v| v == current.version) {
                if let Ok(Some(next)) = current.apply(update, time::now()) {
                    if self.replace(tenant, &next, current.version).await? {
                        return Ok(next);
                    }
                    lost = true;
                }
            }
        }
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self
                .durable_get(tenant, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            let answer = match if_match {
                Some(expected) if expected != current.version => Err(StoreError::VersionMismatch {
                    expected,
                    current: current.version,
                }),
                _ => match current.apply(update, time::now()) {
                    Ok(Some(next)) => {
                        if self.replace(tenant, &next, current.version).await? {
                            return Ok(next);
                        }
                        lost = true;
                        continue;
                    }
                    Ok(None) => Ok(current.clone()),
                    Err(e) => Err(StoreError::Conflict(e.to_string())),
                },
            };
            self.after_lost_race(tenant, &current, lost).await;
            return answer;
        }
        Err(contention())
    }

    /// Cancels an active task; terminal and unknown tasks are left as they are.
    pub async fn kill(&self, tenant: &Tenant, id: &TaskId) -> Result<Killed, StoreError> {
        // As in `update`: only a write is taken from the hot copy.
        let mut lost = false;
        if let Some(current) = self.hot_base(tenant, id).await {
            if let Some(next) = current.cancel(time::now()) {
                if self.replace(tenant, &next, current.version).await? {
                    return Ok(Killed::Canceled);
                }
                lost = true;
            }
        }
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(current) = self.durable_get(tenant, id).await? else {
                return Ok(Killed::Unchanged);
            };
            let Some(next) = current.cancel(time::now()) else {
                self.after_lost_race(tenant, &current, lost).await;
                return Ok(Killed::Unchanged);
            };
            if self.replace(tenant, &next, current.version).await? {
                return Ok(Killed::Canceled);
            }
            lost = true;
        }
        Err(contention())
    }

    /// Before a write answers from a durable read that followed a lost race: the race may have
    /// been lost to this very request. A commit whose acknowledgement died with its connection
    /// is run again (see `retry_stale`) and loses to itself, and its hot write never happened,
    /// so the hot tier is brought up to the durable state (the version guard keeps it from
    /// going backwards).
    async fn after_lost_race(&self, tenant: &Tenant, current: &Task, lost: bool) {
        if lost {
            self.write_hot(tenant, current).await;
        }
    }

    /// Where a write's first attempt starts: the hot tier's copy when the hot tier is trusted,
    /// which spares a durable round trip. The compare-and-set checks version and incarnation in
    /// the durable tier, so a stale copy costs only a lost race, and the caller then reads the
    /// durable tier as it would have anyway. Not counted as a hit or miss: those count what
    /// reads were served from.
    async fn hot_base(&self, tenant: &Tenant, id: &TaskId) -> Option<Task> {
        if self.hot_suspect() {
            return None;
        }
        self.hot.get(tenant, id).await.unwrap_or_else(|e| {
            bump(&self.stats.hot_errors);
            tracing::debug!(error = %e, "hot tier read for a write failed; reading durable tier");
            None
        })
    }

    /// Compare-and-set in the durable tier, then write-through; `false` on a lost race.
    async fn replace(
        &self,
        tenant: &Tenant,
        next: &Task,
        expected: u64,
    ) -> Result<bool, StoreError> {
        // On a task of its own: once the durable write is under way it must be followed by the
        // hot write (or its pending invalidation) even if the client hangs up and drops this
        // request, or the hot tier would keep serving the version before it.
        let (store, tenant, next) = (self.clone(), tenant.clone(), next.clone());
        tokio::spawn(async move {
            let stored = store
                .durable
                .replace(&tenant, &next, expected)
                .await
                .map_err(|e| store.durable_err(e))?;
            if stored {
                store.write_hot(&tenant, &next).await;
                // After the hot write, so a woken reader finds the new version there.
                store.changes.publish(&tenant, &next.task_id, next.version);
            }
            Ok(stored)
        })
        .await
        .map_err(StoreError::internal)?
    }

    /// A page of a validated listing, from the durable tier.
    pub async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.durable
            .list(tenant, query)
            .await
            .map_err(|e| self.durable_err(e))
    }

    /// After a durable commit: write the task through to the hot tier, or, if that fails or the
    /// hot tier is suspect, record it for invalidation so no stale entry outlives this write.
    async fn write_hot(&self, tenant: &Tenant, task: &Task) {
        let _gate = self.gate.read().await;
        if !self.hot_suspect() {
            match self.hot.put(tenant, task).await {
                Ok(()) => return,
                Err(e) => {
                    bump(&self.stats.hot_errors);
                    tracing::warn!(error = %e, "hot tier write failed; recording a pending invalidation");
                }
            }
        }
        let pending = PendingInvalidation {
            tenant: tenant.clone(),
            task_id: task.task_id.clone(),
            version: task.version,
        };
        if let Err(e) = self.durable.add_pending_invalidation(&pending).await {
            bump(&self.stats.durable_errors);
            tracing::error!(error = %e, task_id = %task.task_id, "could not record a pending hot-tier invalidation; keeping it in memory");
            self.unrecorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(pending);
        }
        if !self.suspect.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "hot tier suspect: reads go to the durable tier until pending invalidations replay"
            );
        }
    }

    /// Until `shutdown`: replays pending invalidations (then trusts the hot tier again), sweeps
    /// expired terminal tasks, and relays other instances' writes to this one's waiters.
    pub async fn run_maintenance(&self, m: Maintenance, shutdown: CancellationToken) {
        tokio::join!(
            self.durable
                .forward_changes(self.changes.clone(), shutdown.clone()),
            self.housekeeping(m, shutdown.clone()),
        );
    }

    async fn housekeeping(&self, m: Maintenance, shutdown: CancellationToken) {
        let mut replay = tokio::time::interval(m.replay_every);
        let mut sweep = tokio::time::interval(m.sweep_every);
        replay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = replay.tick() => {
                    if let Err(e) = self.replay_pending().await {
                        tracing::debug!(error = %e, "pending invalidations not replayed yet");
                    }
                }
                _ = sweep.tick() => {
                    let retention = chrono::Duration::from_std(m.retention).unwrap_or(chrono::Duration::MAX);
                    let cutoff = time::now().checked_sub_signed(retention).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
                    match crate::retention::sweep(self.durable.as_ref(), cutoff, m.sweep_batch, &shutdown).await {
                        Ok(n) => {
                            self.stats.retention_deleted.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            bump(&self.stats.durable_errors);
                            tracing::warn!(error = %e, "retention sweep failed; retrying next round");
                        }
                    }
                }
            }
        }
    }

    /// One replay round: invalidates every pending task in the hot tier, then trusts it again.
    /// Fails (and changes nothing) while the hot tier is unreachable.
    pub async fn replay_pending(&self) -> Result<(), StoreError> {
        let n = self.durable.count_pending_invalidations().await?;
        self.stats.pending_invalidations.store(n, Ordering::Relaxed);
        if n == 0 && !self.hot_suspect() {
            return Ok(());
        }
        self.hot.ping().await.map_err(hot_down)?;
        // The bulk without the gate (writes go on meanwhile), then whatever writes recorded
        // since, with the gate held, so nothing is recorded between the last pass and trusting
        // the hot tier again.
        self.replay_recorded().await?;
        let _gate = self.gate.write().await;
        self.replay_recorded().await?;
        let unrecorded = std::mem::take(
            &mut *self
                .unrecorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (i, p) in unrecorded.iter().enumerate() {
            if let Err(e) = self.hot.invalidate(&p.tenant, &p.task_id, p.version).await {
                self.unrecorded
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&unrecorded[i..]);
                return Err(hot_down(e));
            }
        }
        self.stats.pending_invalidations.store(0, Ordering::Relaxed);
        if self.suspect.swap(false, Ordering::AcqRel) {
            tracing::info!("hot tier trusted again: pending invalidations replayed");
        }
        Ok(())
    }

    /// Invalidates (then forgets) every recorded pending invalidation.
    async fn replay_recorded(&self) -> Result<(), StoreError> {
        loop {
            let batch = self.durable.pending_invalidations(REPLAY_BATCH).await?;
            if batch.is_empty() {
                return Ok(());
            }
            for p in &batch {
                self.hot
                    .invalidate(&p.tenant, &p.task_id, p.version)
                    .await
                    .map_err(hot_down)?;
                self.durable.clear_pending_invalidation(p).await?;
                // A waiter that read the stale entry re-reads now.
                self.changes.publish(&p.tenant, &p.task_id, p.version);
            }
        }
    }
}

fn hot_down(e: HotError) -> StoreError {
    StoreError::Unavailable {
        tier: "hot",
        source: e.0.into(),
    }
}

fn contention() -> StoreError {
    StoreError::Unavailable {
        tier: "durable",
        source: "too many concurrent writes to this task; retry".into(),
    }
}
