//! Per-request limits applied in the router: a rate limit per API key (429 with
//! `Retry-After`) and a deadline per request (503).
//!
//! A request still running at its deadline answers 503, unless its body had not fully
//! arrived by then: that is a client too slow to send (a slow-body attack), answered 408.
//!
//! The rate limit is governor's keyed GCRA (`rate_per_sec` sustained, `burst` at once), keyed
//! by the SHA-256 of the presented key, before the key is looked up: a client cycling through
//! made-up keys gets a state per key, and no state ever holds a key itself. Requests without a
//! well-formed key are refused by `Caller` without touching the store, so they are not
//! counted. Connection-level limits (idle and header-read timeouts, connection cap) live in
//! `serve.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::Quota;
use http_body::{Frame, SizeHint};
use taskward_model::ApiKey;

use crate::auth::bearer_token;
use crate::error::ApiError;
use crate::settings::LimitSettings;

/// How often keys whose state is back to a fresh one are dropped (such a key is the same as
/// an unseen one), so memory is bounded by the keys seen within a refill period.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

type Keyed<C> = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// A GCRA rate limit per key: `burst` requests at once, then `rate` per second.
pub struct RateLimiter<C: Clock = DefaultClock> {
    limiter: Keyed<C>,
    next_prune: Mutex<C::Instant>,
}

impl<C: Clock> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("keys", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `None` when `rate_per_sec` is 0 (no limit).
    pub fn new(rate_per_sec: u32, burst: u32) -> Option<RateLimiter> {
        RateLimiter::with_clock(rate_per_sec, burst, DefaultClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    fn with_clock(rate_per_sec: u32, burst: u32, clock: C) -> Option<RateLimiter<C>> {
        let rate = NonZeroU32::new(rate_per_sec)?;
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let next_prune = Mutex::new(clock.now() + Nanos::from(PRUNE_EVERY));
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(RateLimiter {
            limiter: governor::RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock),
            next_prune,
        })
    }

    /// Admits one request presenting `key`, or says how long until one would be admitted.
    /// The state is found by the key's hash, so no key is ever held here.
    pub fn check(&self, key: &ApiKey) -> Result<(), Duration> {
        self.prune_if_due();
        self.limiter
            .check_key(&key.hash())
            .map_err(|refused| refused.wait_time_from(self.limiter.clock().now()))
    }

    /// Once per `PRUNE_EVERY`, the request that notices drops the fresh states and gives
    /// back the memory they held.
    fn prune_if_due(&self) {
        let Ok(mut next) = self.next_prune.try_lock() else {
            return; // another request is pruning
        };
        let now = self.limiter.clock().now();
        if now < *next {
            return;
        }
        *next = now + Nanos::from(PRUNE_EVERY);
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// A request body that records when it has been received to the end.
struct Tracked {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.done.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The route whose `?wait=` long-poll may outlast the request timeout.
const LONG_POLL_ROUTE: &str = "/v1/tasks/{task_id}";

/// What [`admit`] and [`Within`] need: the limits and the rate limiter.
#[derive(Debug, Clone)]
pub struct Limits {
    settings: Arc<LimitSettings>,
    rate_limiter: Option<Arc<RateLimiter>>,
}

impl Limits {
    /// A fresh rate limiter for `settings`.
    pub fn new(settings: &LimitSettings) -> Limits {
        Limits {
            rate_limiter: RateLimiter::new(settings.rate_per_sec, settings.burst).map(Arc::new),
            settings: Arc::new(settings.clone()),
        }
    }
}

/// A request let through by [`admit`]: what its deadline needs.
#[derive(Debug)]
pub struct Admitted {
    deadline: Duration,
    /// Set when the request's body has fully arrived; `None` for a request without one.
    received: Option<Arc<AtomicBool>>,
}

/// The rate limit (429), then what the deadline needs: its length, and the request's body
/// wrapped so that a deadline missed while it is still arriving can be told apart.
/// Synchronous: called before the router's service is (see [`crate::telemetry::Observe`]).
#[allow(clippy::result_large_err)] // the error is the response, built once, on refusal
pub fn admit(state: &Limits, req: &mut Request) -> Result<Admitted, Response> {
    if let Some(limiter) = &state.rate_limiter {
        let key = bearer_token(req.headers()).ok().and_then(ApiKey::parse);
        if let Some(key) = key {
            if let Err(wait) = limiter.check(&key) {
                let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Err(ApiError::RateLimited {
                    retry_after_secs: retry_after_secs.max(1),
                }
                .into_response());
            }
        }
    }
    let limits = &state.settings;
    let mut deadline = Duration::from_millis(limits.request_timeout_ms);
    // A long-poll legitimately takes up to `max_wait_secs` (the handler cuts `wait` to it)
    // before its own work starts, so it gets that on top of the usual budget.
    let long_poll = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str() == LONG_POLL_ROUTE)
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some("wait")));
    if long_poll {
        deadline += Duration::from_secs(limits.max_wait_secs);
    }
    // Only a body still to come can be what is slow; most requests (GETs) have none, and skip
    // the tracking allocations.
    let received =
        (!http_body::Body::is_end_stream(req.body())).then(|| Arc::new(AtomicBool::new(false)));
    if let Some(done) = &received {
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = Body::new(Tracked {
            inner: body,
            done: done.clone(),
        });
    }
    Ok(Admitted { deadline, received })
}

pin_project_lite::pin_project! {
    /// The route's future `served`, answered 503 (or 408, its body still arriving) if it runs
    /// past the deadline counted from `started`.
    ///
    /// The timer is created and registered only if the first poll does not finish the
    /// request: a health check, or a read from the in-process cache, answers at once and
    /// never touches the timer wheel (whose lock a registration and its removal take). Written
    /// out rather than as an `async fn`, which would hold the route's future twice (its
    /// argument, and the pinned local it polls), in every request's boxed future.
    pub struct Within<F> {
        #[pin]
        served: F,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        until: tokio::time::Instant,
        admitted: Admitted,
    }
}

impl<F> Within<F> {
    pub fn new(admitted: Admitted, started: tokio::time::Instant, served: F) -> Within<F> {
        Within {
            served,
            timer: None,
            until: started + admitted.deadline,
            admitted,
        }
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Within<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut this = self.project();
        if let Poll::Ready(res) = this.served.poll(cx) {
            return Poll::Ready(res.unwrap_or_else(|never| match never {}));
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep_until(*this.until)));
        }
        let Some(timer) = this.timer.as_pin_mut() else {
            return Poll::Pending;
        };
        if timer.poll(cx).is_pending() {
            return Poll::Pending;
        }
        let ms = this.admitted.deadline.as_millis() as u64;
        let slow_body = this
            .admitted
            .received
            .as_ref()
            .is_some_and(|r| !r.load(Ordering::Relaxed));
        Poll::Ready(if slow_body {
            tracing::debug!(timeout_ms = ms, "request body too slow");
            ApiError::BodyTimeout(ms).into_response()
        } else {
            tracing::warn!(
                timeout_ms = ms,
                request_id = crate::telemetry::request_id(),
                "request timed out"
            );
            ApiError::RequestTimeout(ms).into_response()
        })
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limiter(rate: u32, burst: u32) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(rate, burst, clock.clone()).expect("on");
        (rl, clock)
    }

    fn key(k: &str) -> ApiKey {
        ApiKey::parse(&format!("sk_test_{k}{}", "0".repeat(24))).expect("a key")
    }

    #[test]
    fn a_key_gets_its_burst_then_the_rate() {
        let (rl, clock) = limiter(2, 3);
        for _ in 0..3 {
            assert!(rl.check(&key("a")).is_ok());
        }
        let wait = rl.check(&key("a")).expect_err("burst spent");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(rl.check(&key("b")).is_ok(), "limits are per key");
        clock.advance(Duration::from_millis(500));
        assert!(rl.check(&key("a")).is_ok());
        assert!(rl.check(&key("a")).is_err());
    }

    #[test]
    fn fresh_states_are_pruned_and_pruning_changes_nothing() {
        let (rl, clock) = limiter(1, 2);
        assert!(rl.check(&key("idle")).is_ok());
        for _ in 0..2 {
            assert!(rl.check(&key("busy")).is_ok());
        }
        assert_eq!(rl.limiter.len(), 2);
        clock.advance(PRUNE_EVERY);
        let _ = rl.check(&key("x"));
        assert_eq!(rl.limiter.len(), 1, "only the key just used is kept");
        assert!(rl.check(&key("idle")).is_ok() && rl.check(&key("idle")).is_ok());
    }

    #[test]
    fn zero_rate_is_off() {
        assert!(RateLimiter::new(0, 10).is_none());
    }
}
