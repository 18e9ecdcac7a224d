//! The Tasks API: public endpoints (get, list, kill) and producer endpoints (create, update).
//!
//! Handlers check the caller's scope, validate what the extractors could not (registered task
//! types, reserved ids, listing queries), call the store and render. They never see a tier.
//!
//! The `#[utoipa::path]` annotations give each operation its responses; the parameters and
//! request schemas, with the constraints utoipa cannot state, are added in `openapi.rs`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskward_model::list::{ListQuery, ListResponse, ListTasksBody, Paging, PagingParams, Sort};
use taskward_model::Invalid;
use taskward_model::{CreateTask, ErrorBody, Scope, Task, TaskResponse, UpdateTask};
use taskward_store::{Killed, RenderedTask, Source};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiJsonOrEmpty, ApiQuery, IfMatch, IfNoneMatch, TaskIdPath};
use crate::state::AppState;

/// A task as just written, with its `ETag: "<version>"` (and `Location` when it was just
/// created).
fn written_response(status: StatusCode, task: Task) -> Response {
    let location = HeaderValue::try_from(format!("/v1/tasks/{}", task.task_id)).ok();
    let Ok(rendered) = RenderedTask::of(task) else {
        return ApiError::Internal.into_response();
    };
    let mut res = rendered_response(status, rendered);
    if status == StatusCode::CREATED {
        if let Some(location) = location {
            res.headers_mut().insert(header::LOCATION, location);
        }
    }
    res
}

/// Every task response: the rendered body, as JSON, with its ETag.
fn rendered_response(status: StatusCode, task: RenderedTask) -> Response {
    let mut res = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        task.body,
    )
        .into_response();
    res.headers_mut().insert(header::ETAG, etag(task.version));
    res
}

/// The body of kill responses.
#[derive(Debug, Serialize, ToSchema)]
pub struct KillResponse {
    /// Always `true`: kill is idempotent.
    pub success: bool,
    pub message: String,
}

/// Query of `GET /v1/tasks/{task_id}`.
#[derive(Debug, Default, Deserialize)]
pub struct GetParams {
    /// Long-poll: wait up to this many seconds (capped by the server's `max_wait_secs`,
    /// default 60) for the task to change from the version in `If-None-Match` (or, without
    /// it, from its current version). Answers at once when the task is terminal or differs.
    pub wait: Option<String>,
}

impl GetParams {
    /// The wait asked for, cut to `max`; `None` for no wait.
    fn wait(&self, max: Duration) -> Result<Option<Duration>, ApiError> {
        let Some(raw) = self.wait.as_deref() else {
            return Ok(None);
        };
        let secs: f64 = raw
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                ApiError::Invalid(Invalid::new(
                    "wait",
                    "must be a number of seconds, 0 or more",
                ))
            })?;
        let wait = Duration::from_secs_f64(secs.min(max.as_secs_f64()));
        Ok((!wait.is_zero()).then_some(wait))
    }
}

/// Get one task; with `?wait=` and `If-None-Match`, wait for it to change (long-poll).
#[utoipa::path(
    get, path = "/v1/tasks/{task_id}", tag = "tasks",
    responses(
        (status = 200, description = "The task; `ETag` carries its version", body = TaskResponse),
        (status = 304, description = "The task's version is one in If-None-Match (after any wait)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown (or another tenant's) task", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    if_none_match: IfNoneMatch,
    ApiQuery(params): ApiQuery<GetParams>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let max_wait = Duration::from_secs(state.settings.limits.max_wait_secs);
    let store = &state.store;
    // `*` holds every version: nothing can change that, so there is nothing to wait for.
    let wait = params
        .wait(max_wait)?
        .filter(|_| if_none_match != IfNoneMatch::Any);
    let (task, source) = match wait {
        None => {
            let rendered = store.get_rendered(&caller.tenant, &id).await?;
            return Ok(respond_rendered(&if_none_match, rendered));
        }
        Some(wait) => {
            let deadline = tokio::time::Instant::now() + wait;
            let unchanged = match if_none_match.single() {
                Some(version) => version,
                // No single version to compare with: wait for a change from the current one.
                None => {
                    // Boxed: inline, it would size this handler's future (held for the
                    // whole wait) for a read done once before it.
                    let (task, source) = Box::pin(store.get(&caller.tenant, &id)).await?;
                    let stale = if_none_match != IfNoneMatch::Absent
                        && !if_none_match.matches(task.version);
                    if task.status.is_terminal() || stale {
                        return Ok(respond(&if_none_match, task, source));
                    }
                    task.version
                }
            };
            store
                .wait_for_change(&caller.tenant, &id, unchanged, deadline)
                .await?
        }
    };
    Ok(respond(&if_none_match, task, source))
}

/// 304 when the client already holds this version, else the task as read (annotated when it
/// came from the durable fallback).
fn respond(if_none_match: &IfNoneMatch, task: Task, source: Source) -> Response {
    if if_none_match.matches(task.version) {
        return not_modified(task.version);
    }
    let rendered = match source {
        Source::Hot => RenderedTask::of(task),
        Source::Durable => RenderedTask::from_durable(task),
    };
    match rendered {
        Ok(rendered) => rendered_response(StatusCode::OK, rendered),
        Err(_) => ApiError::Internal.into_response(),
    }
}

/// [`respond`] for a task already rendered (a plain GET). A body with progress is brought up
/// to now (`stalled` changes with time; the hot tier keeps the body as it was written).
fn respond_rendered(if_none_match: &IfNoneMatch, mut task: RenderedTask) -> Response {
    if if_none_match.matches(task.version) {
        return not_modified(task.version);
    }
    if let Some(fresh) = TaskResponse::refreshed(&task.body, taskward_model::time::now) {
        task.body = fresh.into();
    }
    rendered_response(StatusCode::OK, task)
}

fn not_modified(version: u64) -> Response {
    let mut res = StatusCode::NOT_MODIFIED.into_response();
    res.headers_mut().insert(header::ETAG, etag(version));
    res
}

/// `"<version>"`: digits and quotes only, always a valid header value.
fn etag(version: u64) -> HeaderValue {
    HeaderValue::try_from(format!("\"{version}\"")).expect("digits and quotes are valid")
}

/// List active (non-terminal) tasks, newest first.
#[utoipa::path(
    get, path = "/v1/tasks", tag = "tasks",
    responses(
        (status = 200, body = ListResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_active_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PagingParams>,
) -> Result<Json<ListResponse>, ApiError> {
    caller.require(Scope::Read)?;
    let sort = Sort::default();
    let paging = Paging::parse(&params, sort)?;
    let page = state
        .store
        .list(&caller.tenant, &ListQuery::active(&paging))
        .await?;
    Ok(Json(ListResponse::new(page, &paging, sort, "/v1/tasks")))
}

/// List tasks with status, type, filters, search and sort.
#[utoipa::path(
    post, path = "/v1/tasks/list", tag = "tasks",
    request_body(content = ListTasksBody, description = "All keys optional; an empty body lists everything"),
    responses(
        (status = 200, body = ListResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PagingParams>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<ListTasksBody>,
) -> Result<Json<ListResponse>, ApiError> {
    caller.require(Scope::Read)?;
    let (query, paging) = ListQuery::from_body(body, &params)?;
    let page = state.store.list(&caller.tenant, &query).await?;
    Ok(Json(ListResponse::new(
        page,
        &paging,
        query.sort,
        "/v1/tasks/list",
    )))
}

/// Kill (cancel) a task. Idempotent: terminal and unknown tasks are left as they are.
#[utoipa::path(
    delete, path = "/v1/tasks/{task_id}", tag = "tasks",
    responses(
        (status = 200, body = KillResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn kill_task(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<KillResponse>, ApiError> {
    caller.require(Scope::Cancel)?;
    let message = match state.store.kill(&caller.tenant, &id).await? {
        Killed::Canceled => format!("Task {id} canceled"),
        // The same words for "already finished" and "no such task": never reveal existence.
        Killed::Unchanged => format!("Task {id} is not active; nothing to cancel"),
    };
    Ok(Json(KillResponse {
        success: true,
        message,
    }))
}

/// Kill (cancel) a task; the same operation as `DELETE /v1/tasks/{task_id}`.
#[utoipa::path(
    post, path = "/v1/tasks/{task_id}/kill", tag = "tasks",
    responses(
        (status = 200, body = KillResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn kill_task_post(
    state: State<AppState>,
    caller: Caller,
    id: TaskIdPath,
) -> Result<Json<KillResponse>, ApiError> {
    kill_task(state, caller, id).await
}

/// Record a new task (producers). The same id with the same content again is an idempotent 200.
#[utoipa::path(
    post, path = "/v1/tasks", tag = "producers",
    request_body = CreateTask,
    responses(
        (status = 201, description = "Created", body = TaskResponse),
        (status = 200, description = "Idempotent retry of an earlier create", body = TaskResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The id exists with different content", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTask>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    if let Some(id) = &req.task_id {
        crate::router::refuse_reserved_task_id(id)?;
    }
    state.task_types.check("task_type", &req.task_type)?;
    let created = state
        .store
        .create(&caller.tenant, req)
        .await
        .map_err(|e| ApiError::from(e).conflict_code("task_exists"))?;
    let status = if created.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(written_response(status, created.task))
}

/// Update a task (producers): `additional_data` is merge-patched, the rest replaced.
#[utoipa::path(
    patch, path = "/v1/tasks/{task_id}", tag = "producers",
    request_body = UpdateTask,
    responses(
        (status = 200, description = "The updated task; `ETag` carries its version", body = TaskResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The task is terminal", body = ErrorBody),
        (status = 412, description = "If-Match does not name the current version", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_task(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    IfMatch(if_match): IfMatch,
    ApiJson(update): ApiJson<UpdateTask>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    let task = state
        .store
        .update(&caller.tenant, &id, &update, if_match)
        .await
        .map_err(|e| ApiError::from(e).conflict_code("task_terminal"))?;
    Ok(written_response(StatusCode::OK, task))
}
