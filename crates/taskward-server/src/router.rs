//! The whole HTTP surface on one screen.

use std::any::Any;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::api::{health, tasks};
use crate::error::ApiError;
use crate::limits::{self, Limits};
use crate::metrics;
use crate::state::AppState;
use crate::telemetry;

/// The router over `state`. Pure: tests can drive it with `oneshot`, no socket needed.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.limits.max_body_bytes;
    let (set_id, propagate_id) = telemetry::request_id_layers();
    Router::new()
        .route(
            "/v1/tasks",
            get(tasks::list_active_tasks).post(tasks::create_task),
        )
        .route("/v1/tasks/", get(tasks::list_active_tasks))
        .route("/v1/tasks/list", post(tasks::list_tasks))
        .route(
            "/v1/tasks/{task_id}",
            get(tasks::get_task)
                .patch(tasks::update_task)
                .delete(tasks::kill_task),
        )
        .route("/v1/tasks/{task_id}/kill", post(tasks::kill_task_post))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(health::openapi_json))
        .route("/metrics", get(metrics::render))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Limits::new(&state.settings.limits),
            limits::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(telemetry::trace_layer())
        .layer(propagate_id)
        .layer(set_id)
        .with_state(state)
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A last resort: a handler panicked. The client gets SPEC's shape, the log gets the message.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic)");
    tracing::error!(panic = msg, "handler panicked");
    ApiError::Internal.into_response()
}
