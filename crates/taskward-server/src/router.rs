//! The whole HTTP surface on one screen.

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::routing::{get, post};

use crate::webhooks::api as webhooks;
use axum::Router;

use taskward_model::{Invalid, TaskId};

use crate::api::{events, health, keys, tasks};
use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;
use crate::telemetry;

/// Task ids that are literal path segments of the API under `/v1/tasks/`: a task with such an
/// id could be created but never read, updated or killed, since the literal route shadows
/// it (SPEC: refused with 422 at create). A test
/// below fails when a route adds a literal segment that is not listed here.
pub const RESERVED_TASK_IDS: [&str; 2] = ["list", "counts"];

/// 422 for a create that names a reserved id.
pub fn refuse_reserved_task_id(id: &TaskId) -> Result<(), Invalid> {
    if RESERVED_TASK_IDS.contains(&id.as_str()) {
        return Err(Invalid::new(
            "task_id",
            format!(
                "`{id}` is reserved: /v1/tasks/{id} is another endpoint of the API (reserved ids: {}); choose another id",
                RESERVED_TASK_IDS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The router over `state`. Pure: tests can drive it with `oneshot`, no socket needed.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.limits.max_body_bytes;
    Router::new()
        .route(
            "/v1/tasks",
            get(tasks::list_active_tasks).post(tasks::create_task),
        )
        .route("/v1/tasks/", get(tasks::list_active_tasks))
        .route("/v1/tasks/list", post(tasks::list_tasks))
        .route("/v1/tasks/counts", get(events::counts))
        .route(
            "/v1/tasks/{task_id}",
            get(tasks::get_task)
                .patch(tasks::update_task)
                .delete(tasks::kill_task),
        )
        .route("/v1/tasks/{task_id}/kill", post(tasks::kill_task_post))
        .route("/v1/tasks/{task_id}/history", get(events::history))
        .route("/v1/tasks/{task_id}/events", get(events::task_events))
        .route("/v1/events", get(events::tenant_events))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{webhook_id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route(
            "/v1/webhooks/{webhook_id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/v1/webhooks/{webhook_id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/v1/keys/self", get(keys::key_self))
        .merge(crate::dashboard::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(health::openapi_json))
        .route("/metrics", get(metrics::render))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One layer call, so each route is wrapped (and its service cloned and its future boxed
        // per request) once, not once per layer.
        .layer(
            tower::ServiceBuilder::new()
                .layer(telemetry::ObserveLayer::new(state.clone()))
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

/// The 404 of a path no route serves (the path cut to 200 characters in the message).
pub(crate) async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route("…")` path of this file.
    fn route_paths() -> Vec<&'static str> {
        let src = include_str!("router.rs");
        src.split(".route(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    #[test]
    fn every_literal_segment_under_tasks_is_a_reserved_task_id() {
        let paths = route_paths();
        assert!(paths.contains(&"/v1/tasks/list"), "{paths:?}");
        for path in paths {
            let Some(rest) = path.strip_prefix("/v1/tasks/") else {
                continue;
            };
            let segment = rest.split('/').next().unwrap_or("");
            if segment.is_empty() || segment.starts_with('{') {
                continue;
            }
            assert!(
                RESERVED_TASK_IDS.contains(&segment),
                "route {path} shadows the task id `{segment}`: add it to RESERVED_TASK_IDS"
            );
        }
    }

    #[test]
    fn reserved_ids_are_refused_and_others_pass() {
        for id in RESERVED_TASK_IDS {
            let err = refuse_reserved_task_id(&TaskId::parse(id).unwrap()).unwrap_err();
            assert_eq!(err.field, "task_id");
        }
        for id in ["lists", "List", "counts2", "task_list"] {
            assert!(
                refuse_reserved_task_id(&TaskId::parse(id).unwrap()).is_ok(),
                "{id}"
            );
        }
    }
}
