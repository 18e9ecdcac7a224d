//! Liveness, readiness and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::sync::atomic::Ordering;

use crate::state::AppState;

/// Alive: answers as long as the process serves HTTP. Also the benchmarks' HTTP floor.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"})))
)]
pub async fn healthz() -> impl IntoResponse {
    // Constant bytes: nothing to build or serialise on the route probes call most.
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ok"}"#,
    )
}

/// Ready while this instance can serve: the durable tier answers and it is not draining. A hot
/// tier that is down makes it `degraded` but still 200 (reads and writes go on through the
/// durable tier), so a Redis outage or failover does not take every instance out of a load
/// balancer at once.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Serving: `ready`, or `degraded` when the hot tier is unreachable (`error` says why)", body = Object,
            example = json!({"status": "degraded", "tiers": {"hot": {"backend": "redis", "ok": false, "error": "connection refused"}, "durable": {"backend": "postgres", "ok": true}}})),
        (status = 503, description = "`draining` (stopping: send elsewhere) or `unavailable` (the durable tier is unreachable)", body = Object,
            example = json!({"status": "draining", "tiers": {"hot": {"backend": "redis", "ok": true}, "durable": {"backend": "postgres", "ok": true}}})),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let r = state.store.readiness().await;
    let tier = |(backend, res): (&str, Result<(), String>)| match res {
        Ok(()) => json!({ "backend": backend, "ok": true }),
        Err(e) => json!({ "backend": backend, "ok": false, "error": e }),
    };
    let (status, word) = if state.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if r.durable.1.is_err() {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else if r.hot.1.is_err() {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ready")
    };
    let body = json!({
        "status": word,
        "tiers": { "hot": tier(r.hot), "durable": tier(r.durable) },
    });
    (status, Json(body))
}

/// The OpenAPI 3.1 document, generated at start from the handlers, the types and this
/// server's configuration (its task types).
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object, example = json!({"openapi": "3.1.0", "info": {"title": "taskward"}})))
)]
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi.clone(),
    )
}
