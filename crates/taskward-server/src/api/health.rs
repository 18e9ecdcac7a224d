//! Liveness, readiness and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// Alive: answers as long as the process serves HTTP. Also the benchmarks' HTTP floor.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"})))
)]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready: every tier answers. 503 names the tier that does not.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Every tier reachable", body = Object,
            example = json!({"status": "ready", "tiers": {"hot": {"backend": "memory", "ok": true}, "durable": {"backend": "sqlite", "ok": true}}})),
        (status = 503, description = "A tier is unreachable; `error` says why", body = Object,
            example = json!({"status": "unavailable", "tiers": {"hot": {"backend": "redis", "ok": false, "error": "connection refused"}, "durable": {"backend": "postgres", "ok": true}}})),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let r = state.store.readiness().await;
    let tier = |(backend, res): (&str, Result<(), String>)| match res {
        Ok(()) => json!({ "backend": backend, "ok": true }),
        Err(e) => json!({ "backend": backend, "ok": false, "error": e }),
    };
    let ok = r.hot.1.is_ok() && r.durable.1.is_ok();
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "tiers": { "hot": tier(r.hot), "durable": tier(r.durable) },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
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
