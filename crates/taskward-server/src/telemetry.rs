//! What every request passes through first: its request id, its span, its metrics.
//!
//! Every request gets an `x-request-id` (the client's, or a new UUID), echoed in the response.
//! Log lines written while it is served carry it: error and warning lines name it through
//! [`request_id`] (a task-local, set for the request's whole future), and at DEBUG every line
//! sits in a `request` span with method, route and id. The span is DEBUG, not INFO, because an
//! enabled span costs the formatting of its fields on every request (measured at ~6 µs of a
//! 36 µs `/healthz`), while a disabled one costs nothing; per-request lines are DEBUG for the
//! same reason. Headers are never logged (they carry keys).
//!
//! One middleware instead of tower-http's request-id, propagate, trace and catch-panic layers,
//! a metrics one and a limits one: each layer cloned its state and boxed its future, or
//! re-inserted headers or extensions, or wrapped the body, on every request (see
//! ARCHITECTURE.md for what each cost).

use std::any::Any;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use futures_util::FutureExt;
use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: HeaderValue;
}

/// The id of the request being served by this task, for log lines (empty outside a request).
pub fn request_id() -> String {
    CURRENT
        .try_with(|id| id.to_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

/// A new request id: a random (v4) UUID.
fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

/// The layer that puts [`Observe`] around every route (the router wraps each route's service
/// in it, which is how it learns the matched route).
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    state: AppState,
}

impl ObserveLayer {
    pub fn new(state: AppState) -> ObserveLayer {
        ObserveLayer { state }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The one middleware (the body limit aside): request id, span, the limits of
/// [`crate::limits`], a panic turned into a 500, metrics.
///
/// A hand-written service rather than `axum::middleware::from_fn`, which on every request
/// clones the inner service and boxes it again behind `Next`, runs its extractors, and boxes
/// its own future: here the route's future is awaited in the one boxed future this returns.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let id = match req.headers().get(REQUEST_ID) {
            Some(id) => id.clone(),
            None => new_request_id(),
        };
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let span = tracing::debug_span!(
            "request",
            method = method.as_str(),
            route = route_of(&route),
            request_id = id.to_str().unwrap_or("")
        );
        // Admission (the rate limit) and the route's service are called here, synchronously:
        // neither runs handler code, which starts when the route's future is first polled.
        let admitted = crate::limits::admit(&self.state.limits, &mut req)
            .map(|admitted| (admitted, self.inner.call(req)));
        let served = match admitted {
            Err(refused) => Either::Left(std::future::ready(refused)),
            Ok((admitted, served)) => {
                Either::Right(crate::limits::Within::new(admitted, started, served))
            }
        };
        // The panic is answered inside the scope, so its log line names the request.
        let served = AssertUnwindSafe(served)
            .catch_unwind()
            .map(|served| served.unwrap_or_else(panic_response));
        let state = self.state.clone();
        // Combinators, not an `async` block: a block awaiting `scoped` would hold it twice
        // (captured, and being awaited), and this future is boxed and moved on every request.
        let scoped = CURRENT.scope(id.clone(), served.instrument(span.clone()));
        Box::pin(scoped.map(move |mut res| {
            let status = res.status().as_u16();
            span.in_scope(|| {
                tracing::debug!(
                    status,
                    latency_us = started.elapsed().as_micros() as u64,
                    "answered"
                )
            });
            state
                .metrics
                .record(&method, route_of(&route), status, started.elapsed());
            res.headers_mut().insert(REQUEST_ID, id);
            Ok(res)
        }))
    }
}

/// The route template of a request, as metrics and the span name it.
fn route_of(route: &Option<MatchedPath>) -> &str {
    route.as_ref().map_or("unmatched", MatchedPath::as_str)
}

/// A last resort: a handler panicked. The client gets SPEC's shape, the log gets the message.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic)");
    tracing::error!(panic = msg, request_id = request_id(), "handler panicked");
    ApiError::Internal.into_response()
}
