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

use taskward_model::{TaskId, Tenant};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

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
    }

    /// [`Changes::publish_key`] for a task.
    pub fn publish(&self, tenant: &Tenant, id: &TaskId, version: u64) {
        self.publish_key(&change_key(tenant, id), version);
    }

    /// Wakes every watch, e.g. after the cross-process feed reconnected and may have missed
    /// messages: each waiter re-reads its task.
    pub fn wake_all(&self) {
        for slot in self.slots().values() {
            slot.notify.notify_waiters();
        }
    }

    /// Ends every wait, now and later (the server is shutting down).
    pub fn close(&self) {
        self.closed.cancel();
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

    #[test]
    fn change_messages_round_trip() {
        let id = TaskId::parse("a.b:c-d_e").unwrap();
        let msg = format!("{} {}", change_key(&tenant(), &id), 42);
        assert_eq!(parse_change(&msg), Some(("acme test a.b:c-d_e", 42)));
        assert_eq!(parse_change("no-version"), None);
        assert_eq!(parse_change("acme test x notanumber"), None);
    }
}
