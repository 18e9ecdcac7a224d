//! The store's background work, owned in one place: started together by
//! [`TieredStore::start_background`], stopped and joined together by [`Background::stop`]
//! (which also stops the durable tier's own workers). Dropped without `stop`, it still tells
//! every task to end.
//!
//! - the replay: polls the pending invalidations every quarter of the lease (renewing it) and
//!   heals the hot tier (`outage.rs`);
//! - retention: deletes terminal tasks past their retention, in bounded batches;
//! - other instances' changes, relayed to this process's waiters
//!   ([`crate::DurableTier::forward_changes`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use taskward_model::time;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{bump, TieredStore};
use crate::durable::DurableTier;
use crate::feeds::Feeds;

/// How often retention runs and how much it deletes at once.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// Terminal tasks that finished longer ago than this are deleted.
    pub retention: Duration,
    /// How often the retention sweep runs.
    pub sweep_every: Duration,
    /// Tasks deleted per statement (bounded, so a sweep never holds long locks).
    pub sweep_batch: u32,
}

/// The running background work of a store.
#[derive(Debug)]
pub struct Background {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    durable: Arc<dyn DurableTier>,
    feeds: Arc<Feeds>,
}

impl TieredStore {
    /// Starts the store's background work; [`Background::stop`] ends it.
    pub fn start_background(&self, m: Maintenance) -> Background {
        let stop = CancellationToken::new();
        let changes = (self.0.durable.clone(), self.0.changes.clone(), stop.clone());
        let tasks = vec![
            tokio::spawn(self.clone().replay_loop(stop.clone())),
            tokio::spawn(self.clone().retention_loop(m, stop.clone())),
            tokio::spawn(async move {
                let (durable, changes, stop) = changes;
                durable.forward_changes(changes, stop).await;
            }),
        ];
        Background {
            stop,
            tasks,
            durable: self.0.durable.clone(),
            feeds: self.0.changes.feeds.clone(),
        }
    }

    async fn replay_loop(self, stop: CancellationToken) {
        // Four polls per lease: a poll that fails or runs late does not lapse it at once.
        let mut tick = tokio::time::interval(self.0.trust.lease() / 4);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.replay_pending().await {
                        tracing::debug!(error = %e, "pending invalidations not replayed yet");
                    }
                }
            }
        }
    }

    async fn retention_loop(self, m: Maintenance, stop: CancellationToken) {
        let mut tick = tokio::time::interval(m.sweep_every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let retention =
                chrono::Duration::from_std(m.retention).unwrap_or(chrono::Duration::MAX);
            let cutoff = time::now()
                .checked_sub_signed(retention)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            match crate::retention::sweep(self.0.durable.as_ref(), cutoff, m.sweep_batch, &stop)
                .await
            {
                Ok(n) => {
                    self.0
                        .stats
                        .retention_deleted
                        .fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    bump(&self.0.stats.durable_errors);
                    tracing::warn!(error = %e, "retention sweep failed; retrying next round");
                }
            }
        }
    }
}

impl Background {
    /// Stops every task (event followers included), waits for each, then stops the durable
    /// tier's workers. A task that panicked is reported.
    pub async fn stop(mut self) -> Result<(), tokio::task::JoinError> {
        self.stop.cancel();
        self.feeds.close().await;
        let mut result = Ok(());
        for task in std::mem::take(&mut self.tasks) {
            if let Err(e) = task.await {
                result = result.and(Err(e));
            }
        }
        self.durable.close().await;
        result
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
