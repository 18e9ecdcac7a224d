//! Per-request limits applied in the router: a token bucket per API key (429 with
//! `Retry-After`) and a deadline per request (503).
//!
//! A request still running at its deadline answers 503, unless its body had not fully
//! arrived by then: that is a client too slow to send (a slow-body attack), answered 408.
//!
//! The bucket is keyed by the SHA-256 of the presented key, before the key is looked up: a
//! client cycling through made-up keys gets a bucket per key, and no bucket ever holds a key
//! itself. Requests without a well-formed key are refused by `Caller` without touching the
//! store, so they are not counted. Connection-level limits (header-read timeout, connection
//! cap) live in `serve.rs`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use taskward_model::ApiKey;
use tokio::time::Instant;

use crate::auth::bearer_token;
use crate::error::ApiError;
use crate::settings::LimitSettings;

const SHARDS: usize = 16;

/// How often a shard drops its full buckets (a full bucket is the same as none).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A token bucket per key: `burst` tokens, refilled at `rate` per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
    next_prune: Mutex<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `None` when `rate_per_sec` is 0 (no limit).
    pub fn new(rate_per_sec: u32, burst: u32) -> Option<RateLimiter> {
        (rate_per_sec > 0).then(|| RateLimiter {
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst.max(1)),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_prune: Mutex::new(Instant::now() + PRUNE_EVERY),
        })
    }

    /// Takes a token from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        self.prune_if_due(now);
        let shard_ix = key
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31) ^ usize::from(b));
        let mut shard = lock(&self.shards[shard_ix % SHARDS]);
        let bucket = shard.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = (bucket.tokens + (now - bucket.at).as_secs_f64() * self.rate).min(self.burst);
        bucket.at = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    /// Once per `PRUNE_EVERY`, the request that notices drops every full bucket.
    fn prune_if_due(&self, now: Instant) {
        let Ok(mut next) = self.next_prune.try_lock() else {
            return; // another request is pruning
        };
        if now < *next {
            return;
        }
        *next = now + PRUNE_EVERY;
        let (rate, burst) = (self.rate, self.burst);
        for shard in &self.shards {
            lock(shard).retain(|_, b| b.tokens + (now - b.at).as_secs_f64() * rate < burst);
        }
    }
}

/// Buckets are updated whole, so a poisoned lock still guards consistent data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

/// What [`guard`] needs: the limits and the buckets.
#[derive(Debug, Clone)]
pub struct Limits {
    settings: Arc<LimitSettings>,
    rate_limiter: Option<Arc<RateLimiter>>,
}

impl Limits {
    /// Fresh buckets for `settings`.
    pub fn new(settings: &LimitSettings) -> Limits {
        Limits {
            rate_limiter: RateLimiter::new(settings.rate_per_sec, settings.burst).map(Arc::new),
            settings: Arc::new(settings.clone()),
        }
    }
}

/// Middleware: the rate limit, then the request deadline.
pub async fn guard(State(state): State<Limits>, req: Request, next: Next) -> Response {
    if let Some(limiter) = &state.rate_limiter {
        let key = bearer_token(req.headers()).ok().and_then(ApiKey::parse);
        if let Some(key) = key {
            if let Err(wait) = limiter.check(&key.hash()) {
                let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return ApiError::RateLimited {
                    retry_after_secs: retry_after_secs.max(1),
                }
                .into_response();
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
    let (parts, body) = req.into_parts();
    // Only a body still to come can be what is slow; most requests (GETs) have none, and skip
    // the tracking allocations.
    let received =
        (!http_body::Body::is_end_stream(&body)).then(|| Arc::new(AtomicBool::new(false)));
    let body = match &received {
        Some(done) => Body::new(Tracked {
            inner: body,
            done: done.clone(),
        }),
        None => body,
    };
    let ms = deadline.as_millis() as u64;
    match tokio::time::timeout(deadline, next.run(Request::from_parts(parts, body))).await {
        Ok(res) => res,
        Err(_) if received.is_some_and(|r| !r.load(Ordering::Relaxed)) => {
            tracing::debug!(timeout_ms = ms, "request body too slow");
            ApiError::BodyTimeout(ms).into_response()
        }
        Err(_) => {
            tracing::warn!(timeout_ms = ms, "request timed out");
            ApiError::RequestTimeout(ms).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_the_rate() {
        let rl = RateLimiter::new(2, 3).expect("on");
        for _ in 0..3 {
            assert!(rl.check("a").is_ok());
        }
        let wait = rl.check("a").expect_err("burst spent");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(rl.check("b").is_ok(), "buckets are per key");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(rl.check("a").is_ok());
        assert!(rl.check("a").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn full_buckets_are_pruned_and_pruning_changes_nothing() {
        let rl = RateLimiter::new(1, 2).expect("on");
        assert!(rl.check("idle").is_ok());
        for _ in 0..2 {
            assert!(rl.check("busy").is_ok());
        }
        tokio::time::advance(PRUNE_EVERY).await;
        let _ = rl.check("x");
        let held: usize = rl.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(held, 1, "only the bucket just used is kept");
        assert!(rl.check("idle").is_ok() && rl.check("idle").is_ok());
    }

    #[test]
    fn zero_rate_is_off() {
        assert!(RateLimiter::new(0, 10).is_none());
    }
}
