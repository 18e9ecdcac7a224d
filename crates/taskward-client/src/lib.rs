//! A typed async client of the taskward Tasks API.
//!
//! Every endpoint (get, list active, list, kill, create, update, healthz) takes and returns
//! the wire types of [`taskward_model`]; every failure is an [`Error`] that carries the HTTP
//! status and SPEC's error body. On top of the endpoints:
//!
//! - [`Client::get_if_changed`]: conditional GET (`If-None-Match`) with an optional long-poll
//!   (`?wait=`), [`Client::watch`] to follow every change of a task, and
//!   [`Client::wait_until_done`] to wait for its end. They loop until something happens, so
//!   they are also correct (just slower, polling every [`ClientBuilder::min_poll_interval`])
//!   against a server that ignores `wait`.
//! - [`Client::update_if`] and [`Client::update_with`]: compare-and-set for producers.
//! - [`Client::history`], [`Client::counts`], and event streams ([`Client::task_events`],
//!   [`Client::tenant_events`]) that resume by themselves after a dropped connection.
//!
//! It does not retry on its own, except where retrying is the point (`update_with` on a lost
//! race, the long-poll loops). It speaks plain HTTP only (no TLS stack is built in).
//!
//! ```no_run
//! use std::time::Duration;
//! use taskward_client::{Client, Error};
//! use taskward_model::{CreateTask, TaskStatus, UpdateTask};
//!
//! # async fn demo() -> Result<(), Error> {
//! let client = Client::new("http://127.0.0.1:8080", "sk_test_your_key")?;
//!
//! // A producer records a task and reports progress, compare-and-set on the version.
//! let created = client
//!     .create(&CreateTask {
//!         task_id: None,
//!         task_type: "thumbnail".into(),
//!         status: Some(TaskStatus::Processing),
//!         inputs: None,
//!         outputs: None,
//!         additional_data: None,
//!         description: None,
//!     })
//!     .await?;
//! let id = created.task.task_id.to_string();
//! let patch: UpdateTask = serde_json::from_value(serde_json::json!({
//!     "additional_data": {"progress": {"completed": 5, "total": 10}}
//! }))
//! .expect("a valid patch");
//! client.update_if(&id, created.task.version, &patch).await?;
//!
//! // A consumer waits for it to end (long-poll, no busy polling).
//! match client.wait_until_done(&id, Duration::from_secs(600)).await {
//!     Ok(task) => println!("{} ended {}", task.task_id, task.status),
//!     Err(e) if e.is_not_found() => println!("no such task"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod events;
mod webhooks;

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderValue, IF_MATCH, IF_NONE_MATCH, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use error::Error;
pub use events::{EventFilter, EventStream, StreamEvent};
pub use taskward_model::list::{ListResponse, ListTasksBody, OneOrMany, Pagination, SortSpec};
pub use taskward_model::{
    Counts, CreateTask, ErrorBody, EventId, EventType, History, Progress, TaskEvent, TaskId,
    TaskResponse, TaskStatus, UpdateTask,
};

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How often [`Client::update_with`] re-reads and retries after losing a race.
const UPDATE_WITH_ATTEMPTS: u32 = 16;

/// A handle on one taskward server with one API key. Cheap to clone (the connection pool is
/// shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: Option<HeaderValue>,
    request_timeout: Duration,
    long_poll: Duration,
    min_poll_interval: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("has_key", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// Options of a [`Client`]; [`Client::builder`] starts one.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    key: Option<String>,
    request_timeout: Duration,
    long_poll: Duration,
    min_poll_interval: Duration,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// The API key sent as `Authorization: Bearer …` (none: only `healthz` works).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Bound on one ordinary request, and the slack added to a long-poll's wait (default 30 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// The longest `?wait=` asked for in one request (default 55 s; the server cuts it to its
    /// own `limits.max_wait_secs`). Keep it below idle timeouts of proxies on the way.
    pub fn long_poll(mut self, d: Duration) -> Self {
        self.long_poll = d.max(Duration::from_millis(1));
        self
    }

    /// The shortest time between two reads that found the task unchanged (default 500 ms).
    /// Only a server that ignores `?wait=` answers that fast; this keeps the loops from
    /// spinning against it.
    pub fn min_poll_interval(mut self, d: Duration) -> Self {
        self.min_poll_interval = d;
        self
    }

    /// Use this `reqwest::Client` (its own timeouts, proxies, pool settings).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Checks the URL and the key's header form.
    pub fn build(self) -> Result<Client> {
        let mut base = Url::parse(&self.base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                taskward_model::Invalid::new(
                    "url",
                    "must be an http:// URL, e.g. http://127.0.0.1:8080",
                )
            })?;
        // Paths are joined onto the base, so it must end in exactly one slash.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let key = match self.key {
            None => None,
            Some(k) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", k.trim())).map_err(|_| {
                        taskward_model::Invalid::new(
                            "api_key",
                            "contains characters a header cannot carry",
                        )
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(Error::Transport)?,
        };
        Ok(Client {
            http,
            base,
            key,
            request_timeout: self.request_timeout,
            long_poll: self.long_poll,
            min_poll_interval: self.min_poll_interval,
        })
    }
}

/// What [`Client::create`] returns: the task, and whether this call created it (201) or found
/// an identical earlier create (200, an idempotent retry).
#[derive(Debug, Clone)]
pub struct Created {
    /// The stored task.
    pub task: TaskResponse,
    /// `true` for 201, `false` for an idempotent repeat.
    pub new: bool,
}

/// The body of kill responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillResponse {
    /// Always `true`: kill is idempotent.
    pub success: bool,
    /// What happened, for people.
    pub message: String,
}

/// The answer of a conditional GET.
#[derive(Debug, Clone)]
pub enum Conditional {
    /// The task is at another version than the one the client holds.
    Changed(Box<TaskResponse>),
    /// 304: still the version the client holds.
    NotModified,
}

/// Paging of a listing. Either `page`/`page_size`, `limit`/`offset`, or a `cursor` from
/// [`Pagination::next_cursor`] (which neither skips nor repeats tasks created meanwhile).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListParams {
    /// 1-based page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// 1 to 1000 (server default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Alternative to `page_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Alternative to `page`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Keyset position from the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Ask for `total` and `total_pages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_total: Option<bool>,
}

impl ListParams {
    /// Page `page` (1-based) of `page_size` tasks.
    pub fn page(page: u64, page_size: u32) -> Self {
        ListParams {
            page: Some(page),
            page_size: Some(page_size),
            ..Self::default()
        }
    }

    /// The page after `cursor`, of `page_size` tasks.
    pub fn after(cursor: impl Into<String>, page_size: u32) -> Self {
        ListParams {
            cursor: Some(cursor.into()),
            page_size: Some(page_size),
            ..Self::default()
        }
    }
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`) with `api_key`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Client> {
        Client::builder(base_url).api_key(api_key).build()
    }

    /// Options beyond URL and key.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            key: None,
            request_timeout: Duration::from_secs(30),
            long_poll: Duration::from_secs(55),
            min_poll_interval: Duration::from_millis(500),
            http: None,
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /healthz`: `Ok` while the server answers HTTP. Needs no key.
    pub async fn healthz(&self) -> Result<serde_json::Value> {
        let res = self.send(self.request(Method::GET, "healthz")?).await?;
        decode(res).await
    }

    /// `GET /v1/tasks/{task_id}`: the task.
    pub async fn get(&self, task_id: &str) -> Result<TaskResponse> {
        let res = self
            .send(self.request(Method::GET, &task_path(task_id)?)?)
            .await?;
        decode(res).await
    }

    /// Conditional GET: [`Conditional::NotModified`] while the task is still at
    /// `known_version`. With a non-zero `wait`, the server holds the request until the task
    /// changes or ends, or until `wait` (cut to its `limits.max_wait_secs`) has passed.
    ///
    /// ```no_run
    /// # async fn demo(client: taskward_client::Client) -> Result<(), taskward_client::Error> {
    /// use std::time::Duration;
    /// use taskward_client::Conditional;
    ///
    /// let mut task = client.get("task_abc123").await?;
    /// while !task.status.is_terminal() {
    ///     match client.get_if_changed("task_abc123", task.version, Duration::from_secs(30)).await? {
    ///         Conditional::Changed(newer) => task = *newer,
    ///         Conditional::NotModified => {} // nothing happened for 30 s; ask again
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_if_changed(
        &self,
        task_id: &str,
        known_version: u64,
        wait: Duration,
    ) -> Result<Conditional> {
        let mut req = self
            .request(Method::GET, &task_path(task_id)?)?
            .header(IF_NONE_MATCH, format!("\"{known_version}\""));
        if !wait.is_zero() {
            req = req
                .query(&[("wait", wait.as_secs_f64().to_string())])
                .timeout(wait + self.request_timeout);
        }
        let res = self.send(req).await?;
        if res.status() == StatusCode::NOT_MODIFIED {
            return Ok(Conditional::NotModified);
        }
        let task: TaskResponse = decode(res).await?;
        // A server without conditional GET answers 200 with the same version.
        Ok(if task.version == known_version {
            Conditional::NotModified
        } else {
            Conditional::Changed(Box::new(task))
        })
    }

    /// Follows `task_id` change by change (long-poll); see [`TaskWatch`].
    pub fn watch(&self, task_id: &str) -> Result<TaskWatch> {
        task_path(task_id)?;
        Ok(TaskWatch {
            client: self.clone(),
            id: task_id.to_owned(),
            last: None,
        })
    }

    /// Waits until the task is terminal (COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELED)
    /// and returns it, or [`Error::Timeout`] after `timeout` with the last state seen.
    pub async fn wait_until_done(&self, task_id: &str, timeout: Duration) -> Result<TaskResponse> {
        let mut watch = self.watch(task_id)?;
        // A timeout too large to represent is no timeout.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let next = match deadline {
                Some(d) => tokio::time::timeout_at(d, watch.next()).await,
                None => Ok(watch.next().await),
            };
            match next {
                Ok(Ok(Some(task))) if task.status.is_terminal() => return Ok(task),
                Ok(Ok(Some(_))) => {}
                // `next` yields `None` only after it returned a terminal state (handled above).
                Ok(Ok(None)) => {
                    if let Some(task) = watch.last.take() {
                        return Ok(task);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(Error::Timeout {
                        last: watch.last.map(Box::new),
                    })
                }
            }
        }
    }

    /// `GET /v1/tasks`: active (non-terminal) tasks, newest first.
    pub async fn list_active(&self, params: &ListParams) -> Result<ListResponse> {
        let req = self.request(Method::GET, "v1/tasks")?.query(params);
        decode(self.send(req).await?).await
    }

    /// `POST /v1/tasks/list`: tasks by status, type, filters, search, in `body.sort` order.
    pub async fn list(&self, body: &ListTasksBody, params: &ListParams) -> Result<ListResponse> {
        let req = self
            .request(Method::POST, "v1/tasks/list")?
            .query(params)
            .json(body);
        decode(self.send(req).await?).await
    }

    /// Every task `body` matches, following the keyset cursor `page_size` at a time, up to
    /// `max` tasks (`None`: all). A task created while paging is neither skipped twice nor
    /// repeated.
    pub async fn list_all(
        &self,
        body: &ListTasksBody,
        page_size: u32,
        max: Option<usize>,
    ) -> Result<Vec<TaskResponse>> {
        let max = max.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut params = ListParams {
            page_size: Some(page_size),
            ..ListParams::default()
        };
        while out.len() < max {
            let page = self.list(body, &params).await?;
            out.extend(page.results.into_iter().take(max - out.len()));
            match page.pagination.next_cursor {
                Some(c) => params = ListParams::after(c, page_size),
                None => break,
            }
        }
        Ok(out)
    }

    /// `DELETE /v1/tasks/{task_id}`: cancel an active task. Idempotent: a terminal or unknown
    /// task is left as it is, and the answer is still a success.
    pub async fn kill(&self, task_id: &str) -> Result<KillResponse> {
        let res = self
            .send(self.request(Method::DELETE, &task_path(task_id)?)?)
            .await?;
        decode(res).await
    }

    /// `POST /v1/tasks` (producers): record a task. The same id with the same content again
    /// is an idempotent success (`new: false`); with other content, a 409.
    pub async fn create(&self, task: &CreateTask) -> Result<Created> {
        let res = self
            .send(self.request(Method::POST, "v1/tasks")?.json(task))
            .await?;
        let new = res.status() == StatusCode::CREATED;
        Ok(Created {
            task: decode(res).await?,
            new,
        })
    }

    /// `PATCH /v1/tasks/{task_id}` (producers): `additional_data` is merge-patched, the other
    /// fields present replaced. With `if_match`, only if the task is still at that version
    /// (else a 412, [`Error::is_version_mismatch`]).
    pub async fn update(
        &self,
        task_id: &str,
        patch: &UpdateTask,
        if_match: Option<u64>,
    ) -> Result<TaskResponse> {
        let mut req = self
            .request(Method::PATCH, &task_path(task_id)?)?
            .json(patch);
        if let Some(v) = if_match {
            req = req.header(IF_MATCH, format!("\"{v}\""));
        }
        decode(self.send(req).await?).await
    }

    /// Compare-and-set: apply `patch` only if the task is still at `expected_version`.
    pub async fn update_if(
        &self,
        task_id: &str,
        expected_version: u64,
        patch: &UpdateTask,
    ) -> Result<TaskResponse> {
        self.update(task_id, patch, Some(expected_version)).await
    }

    /// Read-modify-write: `f` sees the current task and returns the patch to apply (or
    /// `None` to leave it as it is); it is applied with `If-Match`, and on a lost race the
    /// task is re-read and `f` asked again (up to 16 times, then the 412 is returned).
    ///
    /// ```no_run
    /// # async fn demo(client: taskward_client::Client) -> Result<(), taskward_client::Error> {
    /// // Count a processed item, whoever else is counting at the same time.
    /// let task = client
    ///     .update_with("task_abc123", |t| {
    ///         let done = t.additional_data.as_ref()?.get("completed")?.as_u64()?;
    ///         serde_json::from_value(serde_json::json!({"additional_data": {"completed": done + 1}})).ok()
    ///     })
    ///     .await?;
    /// println!("now at version {}", task.version);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_with<F>(&self, task_id: &str, mut f: F) -> Result<TaskResponse>
    where
        F: FnMut(&TaskResponse) -> Option<UpdateTask>,
    {
        let mut attempt = 0;
        loop {
            let current = self.get(task_id).await?;
            let Some(patch) = f(&current) else {
                return Ok(current);
            };
            attempt += 1;
            match self.update_if(task_id, current.version, &patch).await {
                Err(e) if e.is_version_mismatch() && attempt < UPDATE_WITH_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    fn request(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let url = self.base.join(path).map_err(|_| {
            taskward_model::Invalid::new("url", "cannot join the request path onto the base URL")
        })?;
        let mut req = self.http.request(method, url).timeout(self.request_timeout);
        if let Some(key) = &self.key {
            req = req.header(reqwest::header::AUTHORIZATION, key.clone());
        }
        Ok(req)
    }

    /// Sends; turns every error status into [`Error`].
    async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let res = req.send().await.map_err(Error::Transport)?;
        let status = res.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(res);
        }
        let retry_after = res
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let text = res.text().await.map_err(Error::Transport)?;
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Error::Api {
                status: status.as_u16(),
                body: Box::new(body),
                retry_after,
            },
            Err(_) => Error::UnexpectedResponse {
                status: status.as_u16(),
                body: text,
            },
        })
    }
}

/// A task followed change by change. Each [`TaskWatch::next`] returns the next version of
/// the task (the first call: the current one), waiting with long-polls as long as it takes;
/// after a terminal state it returns `None`. Wrap calls in `tokio::time::timeout` to bound
/// them.
#[derive(Debug)]
pub struct TaskWatch {
    client: Client,
    id: String,
    last: Option<TaskResponse>,
}

impl TaskWatch {
    /// The newest state seen.
    pub fn last(&self) -> Option<&TaskResponse> {
        self.last.as_ref()
    }

    /// The next version of the task, or `None` once a terminal state has been returned.
    /// Cancel-safe: dropping the future loses no state.
    pub async fn next(&mut self) -> Result<Option<TaskResponse>> {
        let known = match &self.last {
            None => {
                let task = self.client.get(&self.id).await?;
                self.last = Some(task.clone());
                return Ok(Some(task));
            }
            Some(t) if t.status.is_terminal() => return Ok(None),
            Some(t) => t.version,
        };
        loop {
            let asked = Instant::now();
            match self
                .client
                .get_if_changed(&self.id, known, self.client.long_poll)
                .await?
            {
                Conditional::Changed(task) => {
                    self.last = Some((*task).clone());
                    return Ok(Some(*task));
                }
                Conditional::NotModified => {
                    sleep_rest(asked, self.client.min_poll_interval).await;
                }
            }
        }
    }
}

/// Sleeps until `interval` after `since` (at once if that has passed).
fn sleep_rest(since: Instant, interval: Duration) -> impl Future<Output = ()> {
    tokio::time::sleep_until(since + interval)
}

/// `v1/tasks/<id>` relative to the base; the id is checked first, so it cannot change the
/// path (`/`, `?`, `..` are not in the id alphabet).
fn task_path(task_id: &str) -> Result<String> {
    let id = TaskId::parse(task_id)?;
    Ok(format!("v1/tasks/{id}"))
}

/// The JSON body of a success.
async fn decode<T: DeserializeOwned>(res: Response) -> Result<T> {
    let status = res.status().as_u16();
    let bytes = res.bytes().await.map_err(Error::Transport)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Decode { status, source })
}
