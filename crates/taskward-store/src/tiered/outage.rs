//! Hot-tier outages: what a write does when its hot write fails, and the replay that heals
//! the hot tier afterwards. The rules (who may read the hot tier, and when a write may be
//! acknowledged) are `trust.rs`; this file carries them out against the tiers.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use taskward_model::{Task, Tenant};

use super::trust::LEASE_MARGIN;
use super::{bump, TieredStore, POLL_LIMIT};
use crate::durable::PendingInvalidation;
use crate::hot::HotError;
use crate::StoreError;

impl TieredStore {
    /// After a durable commit: write the task through to the hot tier. If that fails (or the
    /// hot tier is out of use here), record a pending invalidation and return only once no
    /// instance can read an older copy from the hot tier (see `trust.rs`). Then wake this
    /// process's waiters.
    pub(super) async fn write_through(&self, tenant: &Tenant, task: &Task) {
        if self.0.trust.writable() {
            match self.0.hot.put(tenant, task).await {
                Ok(()) => {
                    self.0.changes.publish(tenant, &task.task_id, task.version);
                    return;
                }
                Err(e) => {
                    bump(&self.0.stats.hot_errors);
                    tracing::warn!(error = %e, "hot tier write failed; recording a pending invalidation");
                    if self.0.trust.open_circuit() {
                        tracing::warn!(
                            "hot tier out of use here until pending invalidations replay"
                        );
                    }
                }
            }
        }
        let p = PendingInvalidation {
            tenant: tenant.clone(),
            task_id: task.task_id.clone(),
            version: task.version,
        };
        self.0.trust.mark(&p);
        // This process's reads of the task now skip the hot tier (the mark).
        self.0.changes.publish(tenant, &task.task_id, task.version);
        match self.record_pending(&p).await {
            Ok(recorded_at) => {
                self.0.trust.recorded(&p, recorded_at);
                self.outwait_leases(&p, recorded_at).await;
            }
            Err(e) => {
                bump(&self.0.stats.durable_errors);
                tracing::error!(error = %e, task_id = %p.task_id, "could not record a pending hot-tier invalidation; keeping it in memory");
            }
        }
    }

    /// Records `p` durably (a few tries: the durable tier just committed, so a failure here
    /// is most likely brief); when the commit returned.
    async fn record_pending(&self, p: &PendingInvalidation) -> Result<Instant, StoreError> {
        let mut tries = 0;
        loop {
            match self.0.durable.add_pending_invalidation(p).await {
                Ok(()) => return Ok(Instant::now()),
                Err(e) if tries >= 2 => return Err(e),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
            }
        }
    }

    /// Waits until every instance's lease has been renewed by a poll that saw `p` (a lease
    /// after its record committed), or until the hot entry is invalidated, whichever is first.
    async fn outwait_leases(&self, p: &PendingInvalidation, recorded_at: Instant) {
        let deadline = recorded_at + self.0.trust.lease() + LEASE_MARGIN;
        let invalidate = async {
            loop {
                if self
                    .0
                    .hot
                    .invalidate(&p.tenant, &p.task_id, p.version)
                    .await
                    .is_ok()
                {
                    self.0.trust.invalidated(p);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        };
        let _ = tokio::time::timeout_at(deadline.into(), invalidate).await;
    }

    /// One poll of the pending invalidations: which tasks are suspect, and a renewed lease.
    pub(super) async fn poll_pending(&self) -> Result<Vec<PendingInvalidation>, StoreError> {
        let _one = self.0.polling.lock().await;
        self.poll_locked().await
    }

    /// [`TieredStore::poll_pending`], unless a poll is under way (`None`).
    pub(super) async fn try_poll_pending(
        &self,
    ) -> Option<Result<Vec<PendingInvalidation>, StoreError>> {
        let _one = self.0.polling.try_lock().ok()?;
        Some(self.poll_locked().await)
    }

    async fn poll_locked(&self) -> Result<Vec<PendingInvalidation>, StoreError> {
        let started = Instant::now();
        let found = self.0.durable.pending_invalidations(POLL_LIMIT + 1).await;
        let mut found = self.durable_result(found)?;
        let overflow = found.len() > POLL_LIMIT as usize;
        found.truncate(POLL_LIMIT as usize);
        self.0.trust.polled(started, &found, overflow);
        self.0
            .stats
            .pending_invalidations
            .store(found.len() as u64, Ordering::Relaxed);
        Ok(found)
    }

    /// One replay round: polls, invalidates every pending task in the hot tier (then forgets
    /// it), and uses the hot tier again once nothing is left. Fails while the hot tier is
    /// unreachable (the poll's findings still apply).
    pub async fn replay_pending(&self) -> Result<(), StoreError> {
        let mut found = self.poll_pending().await?;
        if found.is_empty() && self.0.trust.unrecorded().is_empty() && self.0.trust.writable() {
            return Ok(());
        }
        self.0.hot.ping().await.map_err(hot_down)?;
        loop {
            for p in &found {
                self.0
                    .hot
                    .invalidate(&p.tenant, &p.task_id, p.version)
                    .await
                    .map_err(hot_down)?;
                self.0.durable.clear_pending_invalidation(p).await?;
                self.0.trust.invalidated(p);
                // A waiter that read the stale entry re-reads now.
                self.0.changes.publish(&p.tenant, &p.task_id, p.version);
            }
            for p in self.0.trust.unrecorded() {
                self.0
                    .hot
                    .invalidate(&p.tenant, &p.task_id, p.version)
                    .await
                    .map_err(hot_down)?;
                self.0.trust.invalidated(&p);
            }
            found = self.poll_pending().await?;
            if found.is_empty() {
                break;
            }
        }
        if self.0.trust.close_circuit() {
            tracing::info!("hot tier in use again: pending invalidations replayed");
        }
        Ok(())
    }
}

fn hot_down(e: HotError) -> StoreError {
    StoreError::Unavailable {
        tier: "hot",
        source: e.0.into(),
    }
}
