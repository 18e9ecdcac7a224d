//! Liveness, readiness and the OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// Alive: answers as long as the process serves HTTP. Also the benchmarks' HTTP floor.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready: every tier answers. 503 names the tier that does not.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Every tier reachable"), (status = 503, description = "A tier is unreachable"))
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

/// The OpenAPI 3.1 document, generated from the handlers and types.
pub async fn openapi_json() -> impl IntoResponse {
    Json(crate::openapi::document())
}
