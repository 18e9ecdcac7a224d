//! Whether the hot tier may be read: the outage protocol, deployment-wide.
//!
//! The hot tier can hold an entry older than the last acknowledged write of its task only
//! after a hot write failed or timed out. The writer then records a *pending invalidation* in
//! the durable tier, which every instance shares, before it acknowledges. Every instance polls
//! that table (`TieredStore::replay_pending`, every quarter of the lease) and holds a *lease*:
//! it reads the hot tier only while its last successful poll started less than the lease ago,
//! and never for a task that poll found pending. The writer acknowledges only once every other
//! instance must have polled since its record committed — the lease (plus a margin for clock
//! rates) after the commit returned — or once it invalidated the hot entry itself, whichever
//! comes first. So a read sent after the acknowledgement, on any instance, either comes from
//! a poll that saw the record (and goes to the durable tier) or finds the hot entry
//! invalidated. See ARCHITECTURE.md for the argument and its one caveat (both tiers failing
//! together).
//!
//! Locally, a failed hot write also opens a *circuit*: this instance stops using the hot tier
//! until a replay round finds it answering and nothing left pending. Every instance replays the
//! shared table (invalidates each entry in the hot tier, then forgets it), so one instance cut
//! off from Redis is healed by the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use taskward_model::{TaskId, Tenant};

use crate::changes::change_key;
use crate::durable::PendingInvalidation;

/// Slack on the writer's wait over the readers' lease, for clocks that tick at slightly
/// different rates on different machines.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_millis(25);

/// How a read may use the hot tier for one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read it first.
    Trusted,
    /// Do not read it first (the lease lapsed, or this instance's circuit is open); its copy is
    /// still the best answer when the durable tier cannot give one.
    Bypass,
    /// Its copy of this task may be stale: the durable tier only.
    Suspect,
}

/// A task this instance failed to write to the hot tier.
#[derive(Debug)]
struct Mark {
    pending: PendingInvalidation,
    /// When its pending invalidation was committed to the durable tier; `None` while it is not
    /// (or could not be: then it is replayed from memory).
    recorded_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Suspects {
    /// Pending invalidations found by the last poll, by task key, with their versions.
    pending: HashMap<String, u64>,
    /// The last poll found more than it reads: every task is suspect.
    overflow: bool,
    local: HashMap<String, Mark>,
}

impl Suspects {
    fn any(&self) -> bool {
        self.overflow || !self.pending.is_empty() || !self.local.is_empty()
    }
}

/// This instance's view of the hot tier's trustworthiness.
#[derive(Debug)]
pub(crate) struct HotTrust {
    lease: Duration,
    origin: Instant,
    /// Nanoseconds after `origin` until which the hot tier may be read (0: not yet).
    trusted_until: AtomicU64,
    /// Whether any task is suspect (the fast path reads only this).
    any_suspect: AtomicBool,
    circuit_open: AtomicBool,
    suspects: Mutex<Suspects>,
}

impl HotTrust {
    pub(crate) fn new(lease: Duration) -> Self {
        HotTrust {
            lease,
            origin: Instant::now(),
            trusted_until: AtomicU64::new(0),
            any_suspect: AtomicBool::new(false),
            circuit_open: AtomicBool::new(false),
            suspects: Mutex::default(),
        }
    }

    pub(crate) fn lease(&self) -> Duration {
        self.lease
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn suspects(&self) -> MutexGuard<'_, Suspects> {
        // Every update leaves the sets whole, so a panic elsewhere does not poison their data.
        self.suspects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle(&self, s: &Suspects) {
        self.any_suspect.store(s.any(), Ordering::Release);
    }

    /// How a read of this task may use the hot tier now.
    pub(crate) fn access(&self, tenant: &Tenant, id: &TaskId) -> Access {
        if self.any_suspect.load(Ordering::Acquire) {
            let key = change_key(tenant, id);
            let s = self.suspects();
            if s.overflow || s.pending.contains_key(&key) || s.local.contains_key(&key) {
                return Access::Suspect;
            }
        }
        if self.circuit_open.load(Ordering::Acquire) || !self.lease_valid() {
            return Access::Bypass;
        }
        Access::Trusted
    }

    /// Whether the last successful poll started less than a lease ago.
    pub(crate) fn lease_valid(&self) -> bool {
        self.nanos(Instant::now()) < self.trusted_until.load(Ordering::Acquire)
    }

    /// Whether writes go to the hot tier (the circuit is closed).
    pub(crate) fn writable(&self) -> bool {
        !self.circuit_open.load(Ordering::Acquire)
    }

    /// Whether anything keeps the hot tier from being read as usual.
    pub(crate) fn suspect(&self) -> bool {
        self.circuit_open.load(Ordering::Acquire) || self.any_suspect.load(Ordering::Acquire)
    }

    /// A hot write failed: stop using the hot tier here. `true` if it was in use.
    pub(crate) fn open_circuit(&self) -> bool {
        !self.circuit_open.swap(true, Ordering::AcqRel)
    }

    /// The hot tier answers and nothing is pending: use it again. `true` if it was not in use.
    pub(crate) fn close_circuit(&self) -> bool {
        self.circuit_open.swap(false, Ordering::AcqRel)
    }

    /// This task's hot write failed (before its invalidation is recorded).
    pub(crate) fn mark(&self, p: &PendingInvalidation) {
        let mut s = self.suspects();
        let key = change_key(&p.tenant, &p.task_id);
        let newer = s
            .local
            .get(&key)
            .is_none_or(|m| m.pending.version <= p.version);
        if newer {
            s.local.insert(
                key,
                Mark {
                    pending: p.clone(),
                    recorded_at: None,
                },
            );
        }
        self.settle(&s);
    }

    /// Its pending invalidation is committed (the commit returned at `at`).
    pub(crate) fn recorded(&self, p: &PendingInvalidation, at: Instant) {
        let mut s = self.suspects();
        if let Some(m) = s.local.get_mut(&change_key(&p.tenant, &p.task_id)) {
            if m.pending.version == p.version {
                m.recorded_at = Some(at);
            }
        }
    }

    /// The hot entry of `p`'s task was invalidated at `p.version` (or a newer version is
    /// there): no older copy can be read from it any more.
    pub(crate) fn invalidated(&self, p: &PendingInvalidation) {
        let key = change_key(&p.tenant, &p.task_id);
        let mut s = self.suspects();
        if s.pending.get(&key).is_some_and(|v| *v <= p.version) {
            s.pending.remove(&key);
        }
        if s.local
            .get(&key)
            .is_some_and(|m| m.pending.version <= p.version)
        {
            s.local.remove(&key);
        }
        self.settle(&s);
    }

    /// The marks whose invalidation could not be recorded: replayed from memory.
    pub(crate) fn unrecorded(&self) -> Vec<PendingInvalidation> {
        self.suspects()
            .local
            .values()
            .filter(|m| m.recorded_at.is_none())
            .map(|m| m.pending.clone())
            .collect()
    }

    /// What a poll that started at `started` found; renews the lease.
    pub(crate) fn polled(&self, started: Instant, found: &[PendingInvalidation], overflow: bool) {
        let mut s = self.suspects();
        s.pending = found
            .iter()
            .map(|p| (change_key(&p.tenant, &p.task_id), p.version))
            .collect();
        s.overflow = overflow;
        if !overflow {
            // Recorded before this poll began and no longer there: someone replayed it.
            let Suspects { pending, local, .. } = &mut *s;
            local.retain(|key, m| match m.recorded_at {
                Some(at) if at < started => pending.contains_key(key),
                _ => true,
            });
        }
        self.settle(&s);
        let until = self.nanos(started + self.lease);
        self.trusted_until.fetch_max(until, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use taskward_model::{Mode, OrgId};

    use super::*;

    fn pending(id: &str, version: u64) -> PendingInvalidation {
        PendingInvalidation {
            tenant: Tenant {
                org: OrgId::parse("acme").unwrap(),
                mode: Mode::Test,
            },
            task_id: TaskId::parse(id).unwrap(),
            version,
        }
    }

    fn access(t: &HotTrust, p: &PendingInvalidation) -> Access {
        t.access(&p.tenant, &p.task_id)
    }

    #[test]
    fn the_hot_tier_is_read_only_under_a_lease() {
        let t = HotTrust::new(Duration::from_millis(50));
        let a = pending("a", 1);
        assert_eq!(access(&t, &a), Access::Bypass, "no poll yet");
        t.polled(Instant::now() - Duration::from_millis(60), &[], false);
        assert_eq!(
            access(&t, &a),
            Access::Bypass,
            "a poll that began a lease ago"
        );
        t.polled(Instant::now(), &[], false);
        assert_eq!(access(&t, &a), Access::Trusted);
    }

    #[test]
    fn a_polled_pending_task_is_suspect_until_invalidated_at_its_version() {
        let t = HotTrust::new(Duration::from_secs(60));
        let (a, b) = (pending("a", 3), pending("b", 1));
        t.polled(Instant::now(), std::slice::from_ref(&a), false);
        assert_eq!(access(&t, &a), Access::Suspect);
        assert_eq!(access(&t, &b), Access::Trusted, "other tasks are not");
        t.invalidated(&pending("a", 2));
        assert_eq!(
            access(&t, &a),
            Access::Suspect,
            "an older invalidation is not enough"
        );
        t.invalidated(&a);
        assert_eq!(access(&t, &a), Access::Trusted);
        t.polled(Instant::now(), std::slice::from_ref(&b), true);
        assert_eq!(access(&t, &a), Access::Suspect, "overflow: everything is");
    }

    #[test]
    fn a_local_mark_outlives_polls_that_began_before_it_was_recorded() {
        let t = HotTrust::new(Duration::from_secs(60));
        let a = pending("a", 2);
        let before = Instant::now();
        t.mark(&a);
        t.polled(before, &[], false);
        assert_eq!(access(&t, &a), Access::Suspect, "not recorded yet");
        let recorded = Instant::now();
        t.recorded(&a, recorded);
        t.polled(before, &[], false);
        assert_eq!(
            access(&t, &a),
            Access::Suspect,
            "that poll began before the record"
        );
        assert!(t.unrecorded().is_empty());
        t.polled(recorded + Duration::from_millis(1), &[], false);
        assert_eq!(access(&t, &a), Access::Trusted, "replayed by someone since");
    }

    #[test]
    fn an_unrecorded_mark_stays_until_invalidated() {
        let t = HotTrust::new(Duration::from_secs(60));
        let a = pending("a", 2);
        t.mark(&a);
        t.polled(Instant::now() + Duration::from_secs(1), &[], false);
        assert_eq!(t.unrecorded(), vec![a.clone()]);
        assert_eq!(access(&t, &a), Access::Suspect);
        t.invalidated(&a);
        assert!(t.unrecorded().is_empty());
        assert_eq!(access(&t, &a), Access::Trusted);
    }

    #[test]
    fn the_circuit_bypasses_without_making_tasks_suspect() {
        let t = HotTrust::new(Duration::from_secs(60));
        t.polled(Instant::now(), &[], false);
        assert!(t.open_circuit());
        assert!(!t.open_circuit(), "already open");
        assert!(!t.writable() && t.suspect());
        assert_eq!(access(&t, &pending("a", 1)), Access::Bypass);
        assert!(t.close_circuit());
        assert_eq!(access(&t, &pending("a", 1)), Access::Trusted);
    }
}
