//! Live events for streams: one follower per tenant with listeners in this process reads the
//! tenant's event log in order and hands each event to every listener.
//!
//! A follower is woken by the same announcements that wake long-polls (this process's commits
//! and, on PostgreSQL, other instances' through `LISTEN`), and polls every
//! [`FALLBACK_POLL`] besides, so a lost notification costs latency, never an event. It reads the
//! durable log, never the announcement itself: event ids become visible in the order they were
//! given (see the migrations), so reading "after the last one seen" misses none and repeats none.
//!
//! Listeners get events through a bounded broadcast ring ([`FEED_CAPACITY`] events): a stream
//! whose client stops reading falls behind, finds it has lagged, and is ended (its client
//! resumes from the last id it got), so a slow reader never makes the server buffer without
//! bound. Each event is rendered for the wire once, by whichever stream sends it first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use taskward_model::{EventId, StoredEvent, Tenant};
use tokio::sync::{broadcast, watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::durable::DurableTier;
use crate::StoreError;

/// How many events a listener may fall behind before its stream is ended, unless set otherwise
/// ([`Feeds::set_lag_limit`]).
pub const FEED_CAPACITY: usize = 1024;

/// A follower reads the log at least this often even without a notification.
pub const FALLBACK_POLL: Duration = Duration::from_secs(5);

/// Events read per statement.
const PAGE: u32 = 500;

/// How long an idle follower (no listeners) lingers before it stops.
const LINGER: Duration = Duration::from_secs(10);

/// One event as listeners receive it.
#[derive(Debug)]
pub struct FeedEvent {
    pub event: StoredEvent,
    /// The event as the server sends it, rendered once for every stream.
    pub rendered: OnceLock<Bytes>,
}

impl FeedEvent {
    pub fn new(event: StoredEvent) -> Arc<Self> {
        Arc::new(FeedEvent {
            event,
            rendered: OnceLock::new(),
        })
    }
}

#[derive(Debug)]
struct Feed {
    sender: broadcast::Sender<Arc<FeedEvent>>,
    /// The position the follower started from, once it has read it: listeners wait for it, so
    /// that what they replay from the log and what the follower sends meet without a gap.
    started: watch::Receiver<Option<EventId>>,
    /// Woken when the tenant has a new commit.
    wake: Notify,
}

/// Every tenant feed of this process.
#[derive(Debug, Default)]
pub struct Feeds {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    /// The ring's size for feeds started from now on (0: [`FEED_CAPACITY`]).
    lag_limit: AtomicUsize,
    followers: TaskTracker,
    closed: CancellationToken,
}

/// The key of a tenant's feed: `"<org> <mode>"`, the prefix of its change messages.
fn tenant_key(tenant: &Tenant) -> String {
    format!("{} {}", tenant.org.as_str(), tenant.mode.as_str())
}

impl Feeds {
    /// How many events a stream may fall behind before it is ended (feeds started later).
    pub fn set_lag_limit(&self, events: usize) {
        self.lag_limit.store(events.max(1), Ordering::Relaxed);
    }

    fn feeds(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Feed>>> {
        self.feeds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A commit of a task under change key `"<org> <mode> <task_id>"`: wakes its tenant's
    /// follower, if there is one. On every write's path: the tenant's key is the change key's
    /// prefix, looked up without allocating.
    pub fn wake_key(&self, change_key: &str) {
        let Some(tenant_end) = change_key.match_indices(' ').nth(1).map(|(i, _)| i) else {
            return;
        };
        if let Some(feed) = self.feeds().get(&change_key[..tenant_end]) {
            feed.wake.notify_one();
        }
    }

    /// Wakes every follower (the cross-process feed reconnected and may have missed messages).
    pub fn wake_all(&self) {
        for feed in self.feeds().values() {
            feed.wake.notify_one();
        }
    }

    /// Starts listening to a tenant's events: the returned listener receives every event after
    /// [`Listener::start`] and those after it that commit later.
    pub async fn listen(
        self: &Arc<Self>,
        durable: &Arc<dyn DurableTier>,
        tenant: &Tenant,
    ) -> Result<Listener, StoreError> {
        let key = tenant_key(tenant);
        let (receiver, mut started) = {
            let mut feeds = self.feeds();
            let feed = feeds
                .entry(key.clone())
                .or_insert_with(|| self.spawn_follower(durable.clone(), tenant.clone(), key));
            (feed.sender.subscribe(), feed.started.clone())
        };
        let start = loop {
            if let Some(start) = *started.borrow_and_update() {
                break start;
            }
            tokio::select! {
                changed = started.changed() => if changed.is_err() {
                    return Err(StoreError::Unavailable {
                        tier: "durable",
                        source: "the event feed could not read the log".into(),
                    });
                },
                () = self.closed.cancelled() => return Err(StoreError::Unavailable {
                    tier: "durable",
                    source: "the server is shutting down".into(),
                }),
            }
        };
        Ok(Listener {
            receiver,
            start,
            closed: self.closed.clone(),
        })
    }

    fn spawn_follower(
        self: &Arc<Self>,
        durable: Arc<dyn DurableTier>,
        tenant: Tenant,
        key: String,
    ) -> Arc<Feed> {
        let capacity = match self.lag_limit.load(Ordering::Relaxed) {
            0 => FEED_CAPACITY,
            n => n,
        };
        let (sender, _) = broadcast::channel(capacity);
        let (started_tx, started) = watch::channel(None);
        let feed = Arc::new(Feed {
            sender,
            started,
            wake: Notify::new(),
        });
        let feeds = Arc::clone(self);
        let me = Arc::clone(&feed);
        self.followers.spawn(async move {
            follow(&feeds, &me, &key, &*durable, &tenant, started_tx).await;
        });
        feed
    }

    /// Ends every stream now (the server is draining); followers stop too.
    pub fn end_streams(&self) {
        self.closed.cancel();
    }

    /// Ends every follower (and so every stream) and waits for them.
    pub async fn close(&self) {
        self.closed.cancel();
        self.followers.close();
        self.followers.wait().await;
    }
}

async fn follow(
    feeds: &Feeds,
    feed: &Arc<Feed>,
    key: &str,
    durable: &dyn DurableTier,
    tenant: &Tenant,
    started: watch::Sender<Option<EventId>>,
) {
    let mut position = loop {
        match durable.last_event_id(tenant).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::warn!(error = %e, "event feed cannot read the log; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = feeds.closed.cancelled() => return,
                }
            }
        }
    };
    started.send_replace(Some(position));
    let mut idle_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = feed.wake.notified() => {}
            () = tokio::time::sleep(FALLBACK_POLL) => {}
            () = feeds.closed.cancelled() => return,
        }
        loop {
            match durable.events_after(tenant, None, position, PAGE).await {
                Ok(events) => {
                    let n = events.len();
                    for event in events {
                        position = event.event_id;
                        // No listener right now is fine: the next one replays from the log.
                        let _ = feed.sender.send(FeedEvent::new(event));
                    }
                    if n < PAGE as usize {
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "event feed read failed; retrying at the next wake");
                    break;
                }
            }
        }
        // Stop once nobody has listened for a while; decided under the map's lock, so a
        // listener subscribing now either finds this feed still registered (and keeps it
        // going) or starts a new one.
        if feed.sender.receiver_count() > 0 {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() >= LINGER {
            let mut map = feeds.feeds();
            if feed.sender.receiver_count() == 0 {
                map.remove(key);
                return;
            }
        }
    }
}

/// A listener of one tenant's live events.
#[derive(Debug)]
pub struct Listener {
    receiver: broadcast::Receiver<Arc<FeedEvent>>,
    start: EventId,
    closed: CancellationToken,
}

/// Why a listener gets no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    /// It fell more events behind than the lag limit.
    #[error("the listener fell too far behind")]
    Lagged,
    /// The server is shutting down.
    #[error("the event feed closed")]
    Closed,
}

impl Listener {
    /// Events up to this id are in the log already: read them from there; the listener
    /// delivers events after it (and possibly some before it: skip what was seen).
    pub fn start(&self) -> EventId {
        self.start
    }

    /// The next live event.
    pub async fn next(&mut self) -> Result<Arc<FeedEvent>, ListenError> {
        let received = tokio::select! {
            r = self.receiver.recv() => r,
            () = self.closed.cancelled() => return Err(ListenError::Closed),
        };
        match received {
            Ok(e) => Ok(e),
            Err(broadcast::error::RecvError::Lagged(_)) => Err(ListenError::Lagged),
            Err(broadcast::error::RecvError::Closed) => Err(ListenError::Closed),
        }
    }
}
