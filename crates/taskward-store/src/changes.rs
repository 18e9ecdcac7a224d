//! Change notifications for long-polling readers: who waits on which task, and waking them.
//!
//! A waiter holds a [`Watch`] on one task; every committed write of that task — made through
//! this process, or announced by the durable tier's cross-process feed (PostgreSQL
//! `LISTEN/NOTIFY`) — wakes every watch on it. A wake says only "version `v` exists now"; the
//! waiter re-reads the task itself, so a lost or duplicated wake costs a read, never a wrong
//! answer.
//!
//! Idle waiters cost a map entry per watched task and a registered [`Notify`] waker each: no
//! timers beyond the caller's own deadline, no polling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use taskward_model::{TaskId, Tenant};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::feeds::Feeds;

/// The key of a watched task, also the prefix of a cross-process change message:
/// `"<org> <mode> <task_id>"` (none of the three can contain a space).
pub fn change_key(tenant: &Tenant, id: &TaskId) -> String {
    format!(
        "{} {} {}",
        tenant.org.as_str(),
        tenant.mode.as_str(),
        id.as_str()
    )
}

/// Splits a cross-process change message `"<org> <mode> <task_id> <version>"`.
pub fn parse_change(message: &str) -> Option<(&str, u64)> {
    let (key, version) = message.rsplit_once(' ')?;
    Some((key, version.parse().ok()?))
}

#[derive(Debug, Default)]
struct Slot {
    notify: Notify,
    /// Highest version announced for the task since the first watch on it began.
    announced: AtomicU64,
}

/// Every task some request is waiting on, in this process.
#[derive(Debug, Default)]
pub struct Changes {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// The tenants' event followers, woken by the same announcements.
    pub(crate) feeds: Arc<Feeds>,
    /// Cancelled when the server stops: waits end at once instead of holding up the drain.
    closed: CancellationToken,
}

impl Changes {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        // The map is never left half-updated, so a panic elsewhere does not poison its data.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching a task. Create the [`Watch::changed`] future before reading the task,
    /// so that a write landing between the read and the wait still wakes it.
    pub fn watch(self: &Arc<Self>, tenant: &Tenant, id: &TaskId) -> Watch {
        let key = change_key(tenant, id);
        let slot = self.slots().entry(key.clone()).or_default().clone();
        Watch {
            changes: Arc::clone(self),
            key,
            slot,
        }
    }

    /// Announces that `version` of the task under `key` is committed: wakes its watches.
    pub fn publish_key(&self, key: &str, version: u64) {
        // Waking under the lock keeps `Watch::drop`'s "last one out removes the slot" exact:
        // no slot is ever referenced outside the map except by its watches.
        if let Some(slot) = self.slots().get(key) {
            slot.announced.fetch_max(version, Ordering::AcqRel);
            slot.notify.notify_waiters();
        }
        self.feeds.wake_key(key);
    }

    /// [`Changes::publish_key`] for a task.
    pub fn publish(&self, tenant: &Tenant, id: &TaskId, version: u64) {
        self.publish_key(&change_key(tenant, id), version);
    }

    /// Every watch to be woken once, over `over`, in batches: after the cross-process feed
    /// reconnected (and may have missed messages) each waiter re-reads its task, but not all at
    /// the same instant.
    pub fn rewake(&self, over: Duration) -> Rewake {
        self.feeds.wake_all();
        let slots: Vec<Arc<Slot>> = self.slots().values().cloned().collect();
        let batches = (over.as_millis() / REWAKE_EVERY.as_millis()).max(1) as usize;
        Rewake {
            per_batch: slots.len().div_ceil(batches).max(1),
            slots,
            next: tokio::time::Instant::now(),
        }
    }

    /// Ends every wait, now and later (the server is shutting down).
    pub fn close(&self) {
        self.closed.cancel();
        self.feeds.end_streams();
    }

    /// Resolves once [`Changes::close`] has been called.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }

    /// How many tasks are being watched.
    pub fn watched_tasks(&self) -> usize {
        self.slots().len()
    }
}

/// How often a [`Rewake`] wakes its next batch.
const REWAKE_EVERY: Duration = Duration::from_millis(20);

/// Watches still to be woken after a reconnect of the cross-process feed (see
/// [`Changes::rewake`]).
#[derive(Debug)]
pub struct Rewake {
    slots: Vec<Arc<Slot>>,
    per_batch: usize,
    next: tokio::time::Instant,
}

impl Rewake {
    /// Whether every watch has been woken.
    pub fn is_done(&self) -> bool {
        self.slots.is_empty()
    }

    /// Waits for the next batch's turn and wakes it (cancel-safe: nothing is woken before the
    /// wait is over).
    pub async fn next_batch(&mut self) {
        tokio::time::sleep_until(self.next).await;
        let keep = self.slots.len().saturating_sub(self.per_batch);
        for slot in self.slots.drain(keep..) {
            slot.notify.notify_waiters();
        }
        self.next += REWAKE_EVERY;
    }
}

/// A registration for changes of one task; dropping it unregisters.
#[derive(Debug)]
pub struct Watch {
    changes: Arc<Changes>,
    key: String,
    slot: Arc<Slot>,
}

impl Watch {
    /// Resolves at the next announced change of the task (registered as soon as it is created,
    /// even before it is first polled).
    pub fn changed(&self) -> Notified<'_> {
        self.slot.notify.notified()
    }

    /// The highest version announced while this task has been watched (0 if none).
    pub fn announced(&self) -> u64 {
        self.slot.announced.load(Ordering::Acquire)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut slots = self.changes.slots();
        // The map's reference and ours: we are the last watch.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use taskward_model::{Mode, OrgId};

    fn tenant() -> Tenant {
        Tenant {
            org: OrgId::parse("acme").unwrap(),
            mode: Mode::Test,
        }
    }

    #[tokio::test]
    async fn a_publish_wakes_a_watch_created_before_it_and_records_the_version() {
        let changes = Arc::new(Changes::default());
        let id = TaskId::parse("t-1").unwrap();
        let watch = changes.watch(&tenant(), &id);
        let changed = watch.changed();
        changes.publish(&tenant(), &id, 7);
        tokio::time::timeout(std::time::Duration::from_secs(5), changed)
            .await
            .expect("woken");
        assert_eq!(watch.announced(), 7);
        // Older announcements never lower it.
        changes.publish(&tenant(), &id, 3);
        assert_eq!(watch.announced(), 7);
    }

    #[tokio::test]
    async fn the_last_watch_dropped_removes_the_entry() {
        let changes = Arc::new(Changes::default());
        let id = TaskId::parse("t-1").unwrap();
        let a = changes.watch(&tenant(), &id);
        let b = changes.watch(&tenant(), &id);
        assert_eq!(changes.watched_tasks(), 1);
        drop(a);
        assert_eq!(changes.watched_tasks(), 1);
        drop(b);
        assert_eq!(changes.watched_tasks(), 0);
        // Publishing for an unwatched task is a no-op.
        changes.publish(&tenant(), &id, 1);
        assert_eq!(changes.watched_tasks(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rewake_wakes_every_watch_once_spread_over_its_time() {
        let changes = Arc::new(Changes::default());
        let watches: Vec<Watch> = (0..100)
            .map(|i| changes.watch(&tenant(), &TaskId::parse(&format!("t{i}")).unwrap()))
            .collect();
        let started = tokio::time::Instant::now();
        let mut rewake = changes.rewake(Duration::from_millis(200));
        let mut woken_at = Vec::new();
        let mut pending: Vec<_> = watches.iter().map(|w| Box::pin(w.changed())).collect();
        for p in &mut pending {
            p.as_mut().enable();
        }
        while !rewake.is_done() {
            rewake.next_batch().await;
            let before = pending.len();
            pending.retain_mut(|p| {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                p.as_mut().poll(&mut cx).is_pending()
            });
            woken_at.push((before - pending.len(), started.elapsed()));
        }
        assert!(pending.is_empty(), "every watch woken");
        assert!(woken_at.len() >= 10, "in batches: {woken_at:?}");
        assert!(woken_at.iter().all(|(n, _)| *n <= 10), "{woken_at:?}");
        let last = woken_at.last().unwrap().1;
        assert!(
            last <= Duration::from_millis(200),
            "within the spread: {last:?}"
        );
    }

    #[test]
    fn change_messages_round_trip() {
        let id = TaskId::parse("a.b:c-d_e").unwrap();
        let msg = format!("{} {}", change_key(&tenant(), &id), 42);
        assert_eq!(parse_change(&msg), Some(("acme test a.b:c-d_e", 42)));
        assert_eq!(parse_change("no-version"), None);
        assert_eq!(parse_change("acme test x notanumber"), None);
    }
}
