//! The only code that knows there are two tiers: SPEC's read and write flows, in one place.
//!
//! - Write: durable first (compare-and-set on `version`); acknowledged means committed there.
//!   Then the hot tier, write-through, before the response; a failed hot write does not fail
//!   the request, but the write is not acknowledged before no instance can read an older hot
//!   copy (`trust.rs`).
//! - Read: hot first while it is trusted for the task; on a miss or a hot error, durable (the
//!   caller annotates the response), then the hot tier is re-warmed. The hot tier's version
//!   guard keeps a slow re-warm from replacing a newer document. When the durable tier cannot
//!   answer either, the hot copy is waited for longer, since there is nothing else.
//! - List: durable only (it has the indexes).
//!
//! Background work (replay of pending invalidations, retention, other instances' changes) is
//! started and joined by [`Background`] (`background.rs`).

mod background;
mod outage;
mod read;
mod trust;
mod write;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use taskward_model::list::{ListPage, ListQuery};
use taskward_model::{Counts, EventId, StoredEvent, Task, TaskId, Tenant};

pub use background::{Background, Maintenance};

use crate::changes::Changes;
use crate::durable::DurableTier;
use crate::feeds::Listener;
use crate::hot::HotTier;
use crate::StoreError;
use trust::HotTrust;

/// How often a write retries its compare-and-set after losing a race before giving up. Each
/// retry means another writer succeeded, so this is only reached under a storm of writes to
/// one task.
const MAX_CAS_ATTEMPTS: usize = 64;

/// Pending invalidations read per poll; more than this and every task is suspect until the
/// replay has worked through them.
const POLL_LIMIT: u32 = 1000;

/// The default of [`TieredStore::with_lease`].
pub const DEFAULT_LEASE: Duration = Duration::from_millis(400);

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
    /// Reads served by the durable tier because the hot tier failed or was not trusted.
    pub hot_fallbacks: AtomicU64,
    /// Failed hot-tier calls.
    pub hot_errors: AtomicU64,
    /// Failed durable-tier calls (the causes of 5xx).
    pub durable_errors: AtomicU64,
    /// Pending invalidations at the last poll.
    pub pending_invalidations: AtomicU64,
    /// Tasks removed by retention.
    pub retention_deleted: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Tasks over a hot and a durable tier.
#[derive(Debug, Clone)]
pub struct TieredStore(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    hot: Arc<dyn HotTier>,
    durable: Arc<dyn DurableTier>,
    trust: HotTrust,
    /// One poll of the pending invalidations at a time (a poll replaces what the last found).
    polling: tokio::sync::Mutex<()>,
    /// The last durable call failed as unavailable (and none has succeeded since).
    durable_down: AtomicBool,
    stats: StoreStats,
    /// Long-poll waiters of this process.
    changes: Arc<Changes>,
}

impl TieredStore {
    /// Combines two tiers, with the [`DEFAULT_LEASE`].
    pub async fn new(
        hot: Arc<dyn HotTier>,
        durable: Arc<dyn DurableTier>,
    ) -> Result<Self, StoreError> {
        Self::with_lease(hot, durable, DEFAULT_LEASE).await
    }

    /// Combines two tiers. `lease` is how long this instance trusts the hot tier after a poll
    /// of the pending invalidations; it must be the same on every instance of a deployment
    /// (a writer waits its own lease for the others). Polls once, so the hot tier is trusted
    /// from the start unless invalidations are pending from an earlier outage.
    pub async fn with_lease(
        hot: Arc<dyn HotTier>,
        durable: Arc<dyn DurableTier>,
        lease: Duration,
    ) -> Result<Self, StoreError> {
        let store = TieredStore(Arc::new(Inner {
            hot,
            durable,
            trust: HotTrust::new(lease),
            polling: tokio::sync::Mutex::new(()),
            durable_down: AtomicBool::new(false),
            stats: StoreStats::default(),
            changes: Arc::new(Changes::default()),
        }));
        store.poll_pending().await?;
        Ok(store)
    }

    /// The counters.
    pub fn stats(&self) -> &StoreStats {
        &self.0.stats
    }

    /// The long-poll registry (for metrics).
    pub fn changes(&self) -> &Changes {
        &self.0.changes
    }

    /// Answers every current and future long-poll at once with the task as it is, so a
    /// shutting-down server drains in-flight requests without waiting out their timeouts.
    pub fn end_waits(&self) {
        self.0.changes.close();
    }

    /// Whether some reads currently bypass the hot tier (an outage is being healed).
    pub fn hot_suspect(&self) -> bool {
        self.0.trust.suspect()
    }

    /// Pings both tiers.
    pub async fn readiness(&self) -> Readiness {
        Readiness {
            hot: (
                self.0.hot.name(),
                self.0.hot.ping().await.map_err(|e| e.to_string()),
            ),
            durable: (
                self.0.durable.name(),
                self.0.durable.ping().await.map_err(|e| e.to_string()),
            ),
        }
    }

    /// Counts durable failures that will become 5xx, and notes whether the tier answers.
    fn durable_result<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        let down = matches!(r, Err(StoreError::Unavailable { .. }));
        if down || matches!(r, Err(StoreError::Internal(_))) {
            bump(&self.0.stats.durable_errors);
        }
        // Written only on a change: every read passes here, and a store would bounce the cache
        // line between cores.
        if self.0.durable_down.load(Ordering::Relaxed) != down {
            self.0.durable_down.store(down, Ordering::Relaxed);
        }
        r
    }

    /// Whether the durable tier's last answer was that it is unavailable.
    fn durable_down(&self) -> bool {
        self.0.durable_down.load(Ordering::Relaxed)
    }

    async fn durable_get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError> {
        self.durable_result(self.0.durable.get(tenant, id).await)
    }

    /// A page of a validated listing, from the durable tier.
    pub async fn list(&self, tenant: &Tenant, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.durable_result(self.0.durable.list(tenant, query).await)
    }

    /// The tenant's tasks counted by status and by type, optionally of one type.
    pub async fn counts(
        &self,
        tenant: &Tenant,
        task_type: Option<&str>,
    ) -> Result<Counts, StoreError> {
        self.durable_result(self.0.durable.counts(tenant, task_type).await)
    }

    /// Every event of a task, oldest first; [`StoreError::NotFound`] for an unknown task.
    pub async fn history(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let events = self.durable_result(self.0.durable.history(tenant, id).await)?;
        if events.is_empty() {
            self.require_task(tenant, id).await?;
        }
        Ok(events)
    }

    /// The newest event of a task (`None`: one written before the log existed);
    /// [`StoreError::NotFound`] for an unknown task.
    pub async fn last_event(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let event = self.durable_result(self.0.durable.last_event(tenant, id).await)?;
        if event.is_none() {
            self.require_task(tenant, id).await?;
        }
        Ok(event)
    }

    /// A task without events is unknown, unless it was written before the log existed.
    async fn require_task(&self, tenant: &Tenant, id: &TaskId) -> Result<(), StoreError> {
        match self.durable_get(tenant, id).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound),
        }
    }

    /// Up to `limit` events of the tenant (or of one task) after `after`, oldest first.
    pub async fn events_after(
        &self,
        tenant: &Tenant,
        task: Option<&TaskId>,
        after: EventId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.durable_result(
            self.0
                .durable
                .events_after(tenant, task, after, limit)
                .await,
        )
    }

    /// The id of the tenant's newest committed event (the default id if it has none).
    pub async fn last_event_id(&self, tenant: &Tenant) -> Result<EventId, StoreError> {
        self.durable_result(self.0.durable.last_event_id(tenant).await)
    }

    /// How many events a stream may fall behind before it is ended (default
    /// [`crate::FEED_CAPACITY`]).
    pub fn set_stream_lag_limit(&self, events: usize) {
        self.0.changes.feeds.set_lag_limit(events);
    }

    /// Starts listening to the tenant's live events (see [`crate::feeds::Feeds`]).
    pub async fn listen(&self, tenant: &Tenant) -> Result<Listener, StoreError> {
        self.0.changes.feeds.listen(&self.0.durable, tenant).await
    }
}
