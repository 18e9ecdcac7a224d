//! Events: a task's history, counts, and the server-sent event streams of one task and of a
//! tenant (SPEC: Events).
//!
//! A stream first replays what the client missed from the durable log (`Last-Event-ID` or
//! `?after=`), then sends live events from its tenant's feed (`taskward_store::feeds`),
//! skipping any id it already sent: the listener is registered before the replay reads the
//! log, so the two overlap rather than leave a gap.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use taskward_model::{
    Counts, ErrorBody, EventId, EventType, History, Invalid, Scope, StoredEvent, TaskId,
    TaskResponse, TaskStatus, Tenant,
};
use taskward_store::{FeedEvent, ListenError, Listener, TieredStore};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiQuery, TaskIdPath};
use crate::state::AppState;

/// A comment line sent on an idle stream, so clients and proxies see it alive (SPEC: 15 s).
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Events read from the log per statement while replaying.
const REPLAY_PAGE: u32 = 500;

/// A task's history, oldest first.
#[utoipa::path(
    get, path = "/v1/tasks/{task_id}/history", tag = "events",
    responses(
        (status = 200, description = "Every accepted change of the task, oldest first", body = History),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown (or another tenant's) task", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
) -> Result<Json<History>, ApiError> {
    caller.require(Scope::Read)?;
    let events = state.store.history(&caller.tenant, &id).await?;
    Ok(Json(History {
        task_id: id,
        events: events.iter().map(StoredEvent::to_wire).collect(),
    }))
}

/// Query of `GET /v1/tasks/counts`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsParams {
    /// Count only tasks of this type.
    pub task_type: Option<String>,
}

/// The tenant's tasks counted by status and by type.
#[utoipa::path(
    get, path = "/v1/tasks/counts", tag = "events",
    responses(
        (status = 200, description = "Counts by status and by task type", body = Counts),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn counts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CountsParams>,
) -> Result<Json<Counts>, ApiError> {
    caller.require(Scope::Read)?;
    if let Some(t) = &params.task_type {
        state.task_types.check("task_type", t)?;
    }
    let counts = state
        .store
        .counts(&caller.tenant, params.task_type.as_deref())
        .await?;
    Ok(Json(counts))
}

/// What a stream sends: the events of one task, or the tenant's, optionally filtered.
#[derive(Debug, Default)]
struct Selection {
    task: Option<TaskId>,
    statuses: Vec<TaskStatus>,
    task_types: Vec<String>,
}

impl Selection {
    fn wants(&self, e: &StoredEvent) -> bool {
        self.task.as_ref().is_none_or(|t| *t == e.task.task_id)
            && (self.statuses.is_empty() || self.statuses.contains(&e.task.status))
            && (self.task_types.is_empty() || self.task_types.contains(&e.task.task_type))
    }
}

/// The query of a stream: `after`, and for the tenant stream `status` and `task_type`, each
/// repeatable.
fn stream_query(
    state: &AppState,
    raw: Option<&str>,
    tenant_stream: bool,
) -> Result<(Selection, Option<EventId>), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| ApiError::Invalid(Invalid::new("query", "is not a valid query string")))?;
    let mut selection = Selection::default();
    let mut after = None;
    let accepted: &[&str] = if tenant_stream {
        &["after", "status", "task_type"]
    } else {
        &["after"]
    };
    for (key, value) in pairs {
        match key.as_str() {
            "after" => after = Some(EventId::parse("after", &value)?),
            "status" if tenant_stream => {
                selection
                    .statuses
                    .push(TaskStatus::parse(&value).ok_or_else(|| {
                        Invalid::one_of(
                            "status",
                            format!("unknown status `{value}`"),
                            TaskStatus::ALL.iter().map(|s| s.as_str()),
                        )
                    })?)
            }
            "task_type" if tenant_stream => {
                state.task_types.check("task_type", &value)?;
                selection.task_types.push(value);
            }
            _ => {
                return Err(ApiError::Invalid(Invalid::one_of(
                    "query",
                    format!("unknown query parameter `{key}`"),
                    accepted,
                )))
            }
        }
    }
    Ok((selection, after))
}

/// `Last-Event-ID` wins over `?after=`: a reconnecting EventSource sends the header and keeps
/// the URL it first used.
fn resume_point(headers: &HeaderMap, after: Option<EventId>) -> Result<Option<EventId>, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(after),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| Invalid::new("Last-Event-ID", "must be an event id"))?;
            Ok(Some(EventId::parse("Last-Event-ID", v)?))
        }
    }
}

/// 406 unless the client accepts `text/event-stream` (no `Accept` at all does, as curl sends).
fn check_accept(headers: &HeaderMap) -> Result<(), ApiError> {
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        any = true;
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                let q = p
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f64>().ok());
                q == Some(0.0)
            });
            if !refused && matches!(media.as_str(), "text/event-stream" | "text/*" | "*/*") {
                return Ok(());
            }
        }
    }
    if any {
        Err(ApiError::NotAcceptable("text/event-stream"))
    } else {
        Ok(())
    }
}

/// The events of one task: replayed after `Last-Event-ID` / `?after=`, then live; ends after
/// the task's terminal event (at once with it when the task has already ended).
#[utoipa::path(
    get, path = "/v1/tasks/{task_id}/events", tag = "events",
    responses(
        (status = 200, description = "A `text/event-stream` of the task's events", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown (or another tenant's) task", body = ErrorBody),
        (status = 406, description = "`Accept` rules out text/event-stream", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn task_events(
    State(state): State<AppState>,
    caller: Caller,
    TaskIdPath(id): TaskIdPath,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    check_accept(&headers)?;
    let (mut selection, after) = stream_query(&state, raw.as_deref(), false)?;
    let resume = resume_point(&headers, after)?;
    selection.task = Some(id.clone());
    let store = &state.store;
    // Listening first: whatever commits from here on reaches the listener.
    let listener = store.listen(&caller.tenant).await?;
    let newest = store.last_event(&caller.tenant, &id).await?;
    let mut stream = EventStream::new(store.clone(), caller.tenant, selection, listener);
    let ended = newest.as_ref().filter(|e| e.task.status.is_terminal());
    match (resume, ended) {
        // The client has the terminal event already: nothing more will come.
        (Some(after), Some(end)) if after >= end.event_id => stream.ended = true,
        (Some(after), _) => stream.last = after,
        // An ended task sends its terminal event and ends.
        (None, Some(end)) => {
            stream.backlog.push_back(FeedEvent::new(end.clone()));
            stream.replayed = true;
        }
        // Live from what the task has now.
        (None, None) => {
            stream.last = newest.as_ref().map(|e| e.event_id).unwrap_or_default();
            stream.replayed = true;
        }
    }
    Ok(stream.into_response())
}

/// The tenant's events, optionally only those whose status (after the change) or task type is
/// one of `status` / `task_type`.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    responses(
        (status = 200, description = "A `text/event-stream` of the tenant's events", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 406, description = "`Accept` rules out text/event-stream", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn tenant_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    check_accept(&headers)?;
    let (selection, after) = stream_query(&state, raw.as_deref(), true)?;
    let resume = resume_point(&headers, after)?;
    // Listening first: whatever commits from here on reaches the listener.
    let listener = state.store.listen(&caller.tenant).await?;
    let last = match resume {
        Some(after) => after,
        // Live only: after the log's head now. The feed may still be fanning out events that
        // committed before this request; they are not this stream's.
        None => state.store.last_event_id(&caller.tenant).await?,
    };
    let mut stream = EventStream::new(state.store.clone(), caller.tenant, selection, listener);
    stream.last = last;
    stream.replayed = resume.is_none();
    Ok(stream.into_response())
}

/// The data line of an event: the task response after the change, plus `event_id` and `type`.
#[derive(Serialize)]
struct StreamData {
    #[serde(flatten)]
    task: TaskResponse,
    event_id: EventId,
    #[serde(rename = "type")]
    kind: EventType,
}

/// An event as one SSE message.
fn frame(e: &StoredEvent) -> Bytes {
    let data = StreamData {
        // As of the change: the ETA and `stalled` of that moment.
        task: TaskResponse::at(e.task.clone(), e.task.updated_at),
        event_id: e.event_id,
        kind: e.kind(),
    };
    let json = serde_json::to_string(&data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {json}\n\n",
        e.event_id, data.kind
    ))
}

/// One stream's state: what it has sent, what it still has to replay, its listener.
struct EventStream {
    store: TieredStore,
    tenant: Tenant,
    selection: Selection,
    listener: Listener,
    /// The last event id sent (or skipped as not wanted): nothing at or before it is sent.
    last: EventId,
    /// Replayed from the log and not sent yet.
    backlog: VecDeque<Arc<FeedEvent>>,
    /// The log has been read up to where the listener takes over.
    replayed: bool,
    ended: bool,
}

impl EventStream {
    fn new(store: TieredStore, tenant: Tenant, selection: Selection, listener: Listener) -> Self {
        EventStream {
            store,
            tenant,
            selection,
            listener,
            last: EventId::default(),
            backlog: VecDeque::new(),
            replayed: false,
            ended: false,
        }
    }

    fn into_response(self) -> Response {
        let body = futures_util::stream::unfold(self, |mut s| async move {
            let frame = s.next_frame().await?;
            Some((Ok::<_, Infallible>(frame), s))
        });
        let mut res = (StatusCode::OK, Body::from_stream(body)).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells nginx-style proxies not to buffer the stream.
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        res
    }

    /// The next bytes to send; `None` ends the stream.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(e) = self.backlog.pop_front() {
                if let Some(frame) = self.send(&e) {
                    return Some(frame);
                }
                continue;
            }
            if !self.replayed {
                match self.replay_page().await {
                    Ok(()) => continue,
                    Err(_) => {
                        // The log cannot be read: end, the client resumes from its last id.
                        self.ended = true;
                        return None;
                    }
                }
            }
            let next = tokio::time::timeout(HEARTBEAT, self.listener.next()).await;
            match next {
                Err(_) => return Some(Bytes::from_static(b": heartbeat\n\n")),
                Ok(Ok(e)) => {
                    if let Some(frame) = self.send(&e) {
                        return Some(frame);
                    }
                }
                Ok(Err(ListenError::Lagged)) => {
                    tracing::info!(
                        "event stream fell too far behind (the client is not reading); ending it"
                    );
                    self.ended = true;
                }
                Ok(Err(ListenError::Closed)) => self.ended = true,
            }
        }
    }

    /// Reads the next page of missed events into the backlog; marks the replay done when the
    /// log has no more.
    async fn replay_page(&mut self) -> Result<(), ApiError> {
        // Boxed: inline, the log read would size the stream's future for as long as the stream
        // is held open, in every idle stream.
        let events = Box::pin(self.store.events_after(
            &self.tenant,
            self.selection.task.as_ref(),
            self.last,
            REPLAY_PAGE,
        ))
        .await?;
        self.replayed = events.len() < REPLAY_PAGE as usize;
        self.backlog = events.into_iter().map(FeedEvent::new).collect();
        Ok(())
    }

    /// The frame of `e` if this stream sends it; ends a task's stream after its terminal event.
    fn send(&mut self, e: &FeedEvent) -> Option<Bytes> {
        let event = &e.event;
        // Ids increase across the tenant, and the listener delivers them in order: whatever
        // this stream sends or skips, nothing at or before it can be new.
        if event.event_id <= self.last {
            return None;
        }
        self.last = event.event_id;
        if !self.selection.wants(event) {
            return None;
        }
        if self.selection.task.is_some() && event.task.status.is_terminal() {
            self.ended = true;
        }
        Some(e.rendered.get_or_init(|| frame(event)).clone())
    }
}
