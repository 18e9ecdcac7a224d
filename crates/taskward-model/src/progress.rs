//! Typed progress: what a producer reports in `additional_data.progress`, and the `progress`
//! object every task response derives from it (percent, rate, ETA, stalled).
//!
//! The rate is an exponentially weighted moving average of the task's progress events, with
//! weights decaying in time (not per event): each report moves the estimate towards the rate
//! since the previous report by `1 - exp(-Δt / τ)`, τ = [`RATE_TIME_CONSTANT`]. So reports
//! at irregular intervals count by the time they span, a change of pace settles within a few τ
//! whatever the reporting frequency, and the estimate never goes negative (a count that goes
//! backwards restarts it). Only the estimate and the time of the last movement are stored with
//! the task ([`ProgressTrack`]): a write needs no read of past events.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::task::TaskStatus;
use crate::time::serde_rfc3339;
use crate::Invalid;

/// Time constant of the rate estimate, in seconds: the weight of a rate observed `t` seconds
/// ago has decayed by `exp(-t / τ)` (after 3τ, to 5 %).
pub const RATE_TIME_CONSTANT: f64 = 20.0;

/// `events.stall_after_seconds`, read when a response is rendered.
static STALL_AFTER_SECONDS: AtomicU64 = AtomicU64::new(300);

/// Sets how long a non-terminal task may go without progress before it is `stalled`
/// (process-wide; the server sets it once from its settings).
pub fn set_stall_after_seconds(seconds: u64) {
    STALL_AFTER_SECONDS.store(seconds, Ordering::Relaxed);
}

fn stall_after_seconds() -> u64 {
    STALL_AFTER_SECONDS.load(Ordering::Relaxed)
}

/// What a producer reports in `additional_data.progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    pub completed: u64,
    pub total: u64,
    pub failed: u64,
}

impl Reported {
    fn done(&self) -> u64 {
        self.completed + self.failed
    }
}

/// Validates `additional_data.progress` (absent or null is fine) and returns it.
pub fn reported(additional_data: Option<&Map<String, Value>>) -> Result<Option<Reported>, Invalid> {
    const FIELD: &str = "additional_data.progress";
    let Some(p) = additional_data.and_then(|d| d.get("progress")) else {
        return Ok(None);
    };
    let p = match p {
        Value::Null => return Ok(None),
        Value::Object(p) => p,
        _ => {
            return Err(Invalid::new(
                FIELD,
                "must be an object {completed, total, failed?, stage?, message?}",
            ))
        }
    };
    // Runs on every rendering of a task with progress: the field's name is spelled out only
    // for an error.
    let count = |name: &str, required: bool| -> Result<u64, Invalid> {
        let invalid = |why: &str| Invalid::new(format!("{FIELD}.{name}"), why);
        match p.get(name) {
            None | Some(Value::Null) if !required => Ok(0),
            None | Some(Value::Null) => Err(invalid("is required")),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
                (Some(v), _) => Ok(v),
                (None, Some(_)) => Err(invalid("must not be negative")),
                _ => Err(invalid("must be a whole number")),
            },
            Some(_) => Err(invalid("must be a whole number")),
        }
    };
    let r = Reported {
        completed: count("completed", true)?,
        total: count("total", true)?,
        failed: count("failed", false)?,
    };
    for name in ["stage", "message"] {
        if !matches!(p.get(name), None | Some(Value::Null | Value::String(_))) {
            return Err(Invalid::new(format!("{FIELD}.{name}"), "must be a string"));
        }
    }
    if r.completed
        .checked_add(r.failed)
        .is_none_or(|d| d > r.total)
    {
        return Err(Invalid::new(
            FIELD,
            "completed + failed must not exceed total",
        ));
    }
    Ok(Some(r))
}

/// What a task keeps between progress reports: the rate estimate and when the count last moved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProgressTrack {
    /// Items (completed + failed) per second; null until two reports exist.
    pub rate_per_second: Option<f64>,
    /// When the count last moved (or was first reported).
    #[serde(with = "serde_rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl ProgressTrack {
    /// The track after a write that reports `now_reported` (previously `before`) at `now`.
    pub fn next(
        track: Option<ProgressTrack>,
        before: Option<Reported>,
        now_reported: Option<Reported>,
        now: DateTime<Utc>,
    ) -> Option<ProgressTrack> {
        let new = now_reported?;
        let fresh = ProgressTrack {
            rate_per_second: None,
            updated_at: now,
        };
        let (Some(track), Some(before)) = (track, before) else {
            return Some(fresh);
        };
        if new.done() == before.done() {
            return Some(track);
        }
        // Counting backwards means the producer started over: so does the estimate.
        let Some(moved) = new.done().checked_sub(before.done()) else {
            return Some(fresh);
        };
        let elapsed = (now - track.updated_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        if elapsed <= 0.0 {
            return Some(track);
        }
        let observed = moved as f64 / elapsed;
        let rate = match track.rate_per_second {
            None => observed,
            Some(r) => r + (1.0 - (-elapsed / RATE_TIME_CONSTANT).exp()) * (observed - r),
        };
        Some(ProgressTrack {
            rate_per_second: Some(rate.max(0.0)),
            updated_at: now,
        })
    }
}

/// The `progress` object of a task response (SPEC: Events, Progress).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub completed: u64,
    pub total: u64,
    /// 0 when the producer reports none.
    pub failed: u64,
    /// 100 × (completed + failed) / total; 100 for an empty total.
    pub percent: f64,
    /// Items per second, estimated from recent progress reports; null until two exist.
    pub rate_per_second: Option<f64>,
    /// Seconds left at the estimated rate, as of `updated_at` (so a response is the same for
    /// a version until the task stalls; count down from `updated_at` for a live display); null
    /// when unknowable (no rate, stalled, ended).
    pub eta_seconds: Option<f64>,
    /// A task that has not ended made no progress for `events.stall_after_seconds`.
    pub stalled: bool,
    /// When the count last moved (or was first reported).
    #[serde(with = "serde_rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl Progress {
    /// The progress of a task with this status, report and track, as of `now`.
    pub fn derive(
        status: TaskStatus,
        reported: Reported,
        track: ProgressTrack,
        now: DateTime<Utc>,
    ) -> Progress {
        let done = reported.done();
        let percent = if reported.total == 0 {
            100.0
        } else {
            (done as f64 * 100.0 / reported.total as f64).min(100.0)
        };
        let idle = (now - track.updated_at).num_milliseconds().max(0) as f64 / 1000.0;
        let stalled = !status.is_terminal() && idle >= stall_after_seconds() as f64;
        let remaining = reported.total.saturating_sub(done);
        let eta_seconds = if remaining == 0 {
            Some(0.0)
        } else if status.is_terminal() || stalled {
            None
        } else {
            track
                .rate_per_second
                .filter(|r| *r > 0.0)
                .map(|r| round_ms(remaining as f64 / r))
        };
        Progress {
            completed: reported.completed,
            total: reported.total,
            failed: reported.failed,
            percent: round_ms(percent),
            rate_per_second: track.rate_per_second.map(round_ms),
            eta_seconds,
            stalled,
            updated_at: track.updated_at,
        }
    }

    /// The progress of `task` as of `now`; `None` when it reports none.
    pub fn of(task: &crate::Task, now: DateTime<Utc>) -> Option<Progress> {
        let reported = reported(task.additional_data.as_ref()).ok()??;
        let track = task.progress.unwrap_or(ProgressTrack {
            rate_per_second: None,
            updated_at: task.updated_at,
        });
        Some(Progress::derive(task.status, reported, track, now))
    }

    /// This progress as of `now` (`stalled` may have turned true).
    pub fn refreshed(&self, status: TaskStatus, now: DateTime<Utc>) -> Progress {
        Progress::derive(
            status,
            Reported {
                completed: self.completed,
                total: self.total,
                failed: self.failed,
            },
            ProgressTrack {
                rate_per_second: self.rate_per_second,
                updated_at: self.updated_at,
            },
            now,
        )
    }
}

/// Three decimals are plenty for people and keep responses short.
fn round_ms(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Map<String, Value> {
        match json!({ "progress": v }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn reports_are_validated_naming_the_field() {
        let ok = reported(Some(&data(
            json!({"completed": 3, "total": 10, "failed": 1, "stage": "x", "message": null}),
        )))
        .unwrap()
        .unwrap();
        assert_eq!(ok.done(), 4);
        assert_eq!(reported(None).unwrap(), None);
        assert_eq!(reported(Some(&data(Value::Null))).unwrap(), None);
        for (bad, field) in [
            (json!(5), "additional_data.progress"),
            (json!({"total": 1}), "additional_data.progress.completed"),
            (json!({"completed": 1}), "additional_data.progress.total"),
            (
                json!({"completed": -1, "total": 1}),
                "additional_data.progress.completed",
            ),
            (
                json!({"completed": 1.5, "total": 2}),
                "additional_data.progress.completed",
            ),
            (
                json!({"completed": "1", "total": 2}),
                "additional_data.progress.completed",
            ),
            (
                json!({"completed": 1, "total": 2, "failed": -2}),
                "additional_data.progress.failed",
            ),
            (
                json!({"completed": 1, "total": 2, "stage": 3}),
                "additional_data.progress.stage",
            ),
            (
                json!({"completed": 2, "total": 2, "failed": 1}),
                "additional_data.progress",
            ),
            (
                json!({"completed": u64::MAX, "total": 2, "failed": 1}),
                "additional_data.progress",
            ),
        ] {
            let e = reported(Some(&data(bad.clone()))).unwrap_err();
            assert_eq!(e.field, field, "{bad}");
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn rep(done: u64) -> Reported {
        Reported {
            completed: done,
            total: 10_000,
            failed: 0,
        }
    }

    /// Reports every `every` seconds at `rate` items/s from `track`; the final track.
    fn run(
        mut track: ProgressTrack,
        from: (i64, u64),
        rate: u64,
        every: i64,
        n: i64,
    ) -> (ProgressTrack, i64, u64) {
        let (mut t, mut done) = from;
        for _ in 0..n {
            let before = rep(done);
            t += every;
            done += rate * every as u64;
            track = ProgressTrack::next(Some(track), Some(before), Some(rep(done)), at(t)).unwrap();
        }
        (track, t, done)
    }

    #[test]
    fn the_rate_is_null_until_two_reports_then_settles_after_a_change_of_pace() {
        let first = ProgressTrack::next(None, None, Some(rep(0)), at(0)).unwrap();
        assert_eq!(first.rate_per_second, None);
        let (track, t, done) = run(first, (0, 0), 10, 1, 60);
        assert!((track.rate_per_second.unwrap() - 10.0).abs() < 1e-9);
        // The pace halves: within 3τ the estimate is within 5 % of the new rate, and it never
        // overshoots below it.
        let (slow, _, _) = run(track, (t, done), 5, 1, (3.0 * RATE_TIME_CONSTANT) as i64);
        let r = slow.rate_per_second.unwrap();
        assert!((5.0..=5.0 * 1.05).contains(&r), "{r}");
        // The same change reported every 10 s settles in the same time.
        let (slow, _, _) = run(track, (t, done), 5, 10, (0.3 * RATE_TIME_CONSTANT) as i64);
        let r = slow.rate_per_second.unwrap();
        assert!((5.0..=5.0 * 1.05).contains(&r), "{r}");
    }

    #[test]
    fn the_estimate_never_goes_negative_and_restarts_when_counting_backwards() {
        let first = ProgressTrack::next(None, None, Some(rep(100)), at(0)).unwrap();
        let (track, t, _) = run(first, (0, 100), 10, 1, 5);
        let back =
            ProgressTrack::next(Some(track), Some(rep(150)), Some(rep(20)), at(t + 1)).unwrap();
        assert_eq!(back.rate_per_second, None);
        assert_eq!(back.updated_at, at(t + 1));
        // No movement keeps the track (and its time, for `stalled`).
        let same =
            ProgressTrack::next(Some(track), Some(rep(150)), Some(rep(150)), at(t + 9)).unwrap();
        assert_eq!(same, track);
        // Progress removed: no track.
        assert_eq!(
            ProgressTrack::next(Some(track), Some(rep(1)), None, at(t)),
            None
        );
    }

    #[test]
    fn eta_holds_for_a_version_and_stalled_follows_the_threshold() {
        let track = ProgressTrack {
            rate_per_second: Some(10.0),
            updated_at: at(0),
        };
        let p = Progress::derive(TaskStatus::Processing, rep(5_000), track, at(0));
        assert_eq!(p.percent, 50.0);
        assert_eq!(p.eta_seconds, Some(500.0));
        assert!(!p.stalled);
        let later = p.refreshed(TaskStatus::Processing, at(100));
        assert_eq!(
            later, p,
            "the same version renders the same until it stalls"
        );
        let stalled = p.refreshed(TaskStatus::Processing, at(300));
        assert!(stalled.stalled);
        assert_eq!(stalled.eta_seconds, None);
        // Ended tasks never stall; a finished count has nothing left.
        assert!(!p.refreshed(TaskStatus::Failed, at(10_000)).stalled);
        let full = Progress::derive(TaskStatus::Processing, rep(10_000), track, at(1));
        assert_eq!((full.percent, full.eta_seconds), (100.0, Some(0.0)));
        // No rate (yet, or a stopped one) is no ETA; never a negative one.
        let still = ProgressTrack {
            rate_per_second: Some(0.0),
            updated_at: at(0),
        };
        let p = Progress::derive(TaskStatus::Processing, rep(9_990), still, at(1));
        assert_eq!(p.eta_seconds, None);
    }
}
