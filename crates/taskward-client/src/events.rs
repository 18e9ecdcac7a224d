//! History, counts and server-sent event streams.

use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::{Method, Response};
use serde::Deserialize;
use taskward_model::{Counts, EventId, EventType, History, TaskResponse, TaskStatus};

use crate::{decode, task_path, Client, Error, Result};

/// One message of an event stream: the task after the change, the event's id and type.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamEvent {
    /// Resume after this one with [`EventStream::last_event_id`].
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The task as the change left it.
    #[serde(flatten)]
    pub task: TaskResponse,
}

/// Which events a tenant stream ([`Client::tenant_events`]) sends.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events whose status after the change is one of these (any when empty).
    pub statuses: Vec<TaskStatus>,
    /// Only events of tasks of these types (any when empty).
    pub task_types: Vec<String>,
}

impl Client {
    /// `GET /v1/tasks/{task_id}/history`: every accepted change of the task, oldest first.
    pub async fn history(&self, task_id: &str) -> Result<History> {
        let path = format!("{}/history", task_path(task_id)?);
        decode(self.send(self.request(Method::GET, &path)?).await?).await
    }

    /// `GET /v1/tasks/counts`: the tenant's tasks by status and by type (optionally of one
    /// type).
    pub async fn counts(&self, task_type: Option<&str>) -> Result<Counts> {
        let mut req = self.request(Method::GET, "v1/tasks/counts")?;
        if let Some(t) = task_type {
            req = req.query(&[("task_type", t)]);
        }
        decode(self.send(req).await?).await
    }

    /// The events of one task, after `after` (from the log) and then live; the stream ends
    /// after the task's terminal event (at once with it if the task has ended).
    pub fn task_events(&self, task_id: &str, after: Option<EventId>) -> Result<EventStream> {
        Ok(EventStream::new(
            self.clone(),
            format!("{}/events", task_path(task_id)?),
            Vec::new(),
            after,
            true,
        ))
    }

    /// The tenant's events that pass `filter`, after `after` (from the log) and then live;
    /// without `after`, live only. It never ends by itself.
    pub fn tenant_events(&self, filter: &EventFilter, after: Option<EventId>) -> EventStream {
        let query = filter
            .statuses
            .iter()
            .map(|s| ("status", s.as_str().to_owned()))
            .chain(filter.task_types.iter().map(|t| ("task_type", t.clone())))
            .collect();
        EventStream::new(self.clone(), "v1/events".into(), query, after, false)
    }
}

/// A server-sent event stream that resumes by itself: when the connection drops (or the
/// server ends a stream that fell behind), it reconnects with `Last-Event-ID` and goes on
/// from the last event it returned, so no event is lost or repeated.
#[derive(Debug)]
pub struct EventStream {
    client: Client,
    path: String,
    query: Vec<(&'static str, String)>,
    last: Option<EventId>,
    /// A task's stream ends with its terminal event.
    one_task: bool,
    ended: bool,
    res: Option<Response>,
    buf: String,
}

impl EventStream {
    fn new(
        client: Client,
        path: String,
        query: Vec<(&'static str, String)>,
        after: Option<EventId>,
        one_task: bool,
    ) -> Self {
        EventStream {
            client,
            path,
            query,
            last: after,
            one_task,
            ended: false,
            res: None,
            buf: String::new(),
        }
    }

    /// The id of the last event returned (resume from it later with `after`).
    pub fn last_event_id(&self) -> Option<EventId> {
        self.last
    }

    /// The next event; `None` once a task's stream has sent its terminal event. An error is
    /// returned only when (re)connecting fails; call again to retry.
    pub async fn next(&mut self) -> Result<Option<StreamEvent>> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if let Some(event) = self.take_message()? {
                self.last = Some(event.event_id);
                if self.one_task && event.task.status.is_terminal() {
                    self.ended = true;
                }
                return Ok(Some(event));
            }
            let Some(res) = self.res.as_mut() else {
                self.connect().await?;
                continue;
            };
            match res.chunk().await {
                Ok(Some(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                // Dropped or ended by the server: resume from the last event.
                Ok(None) | Err(_) => {
                    self.res = None;
                    self.buf.clear();
                    tokio::time::sleep(self.client.min_poll_interval.min(RECONNECT_PAUSE)).await;
                }
            }
        }
    }

    /// Connects now rather than at the first [`EventStream::next`]: every change committed
    /// from here on will be delivered (read the task after this to miss nothing).
    pub async fn connect(&mut self) -> Result<()> {
        // The stream lasts as long as it lasts: no request timeout over its body.
        let mut req = self
            .client
            .request(Method::GET, &self.path)?
            .timeout(Duration::from_secs(u32::MAX.into()))
            .header(ACCEPT, "text/event-stream")
            .query(&self.query);
        if let Some(last) = self.last {
            req = req.header("last-event-id", last.to_string());
        }
        self.res = Some(self.client.send(req).await?);
        Ok(())
    }

    /// The next complete event in the buffer (comments and heartbeats skipped).
    fn take_message(&mut self) -> Result<Option<StreamEvent>> {
        while let Some(end) = self.buf.find("\n\n") {
            let message: String = self.buf.drain(..end + 2).collect();
            let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let event: StreamEvent =
                serde_json::from_str(data).map_err(|source| Error::Decode {
                    status: 200,
                    source,
                })?;
            return Ok(Some(event));
        }
        Ok(None)
    }
}

/// The longest pause before reconnecting a dropped stream.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
