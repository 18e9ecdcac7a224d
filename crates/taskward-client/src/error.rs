//! The client's one error type: what the server answered (status + SPEC's error body), what
//! went wrong on the way (transport, decoding), or what the client refused before sending.
//!
//! Each message states its own part only and leaves the cause to `source()`, so a chain
//! printed with `{:#}` names every cause once.

use std::time::Duration;

use taskward_model::{ErrorBody, Invalid, TaskResponse};

/// Everything a [`Client`](crate::Client) call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error in SPEC's shape.
    #[error("{} ({} {})", .body.error.message, .status, .body.error.kind)]
    Api {
        /// The HTTP status (also in `body.status`).
        status: u16,
        /// The parsed body: `error.message`, `error.type`, `error.code`, `error.details`.
        body: Box<ErrorBody>,
        /// `Retry-After` of a 429 or 503, when the server sent one in seconds.
        retry_after: Option<Duration>,
    },
    /// An error status whose body is not SPEC's shape (e.g. from a proxy in front).
    #[error("HTTP {status}: {}", truncate(.body, 200))]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// The body as text, for the log.
        body: String,
    },
    /// The request did not complete: connection refused, reset, timed out…
    // Transparent: reqwest's message and its causes, each once (a message that repeated its
    // source would print it twice in an `{:#}` chain).
    #[error(transparent)]
    Transport(reqwest::Error),
    /// A success status whose body is not what the endpoint returns.
    #[error("unexpected response body (HTTP {status})")]
    Decode {
        /// The HTTP status.
        status: u16,
        #[source]
        source: serde_json::Error,
    },
    /// Refused before sending: an invalid task id or base URL.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// [`wait_until_done`](crate::Client::wait_until_done) ran out of time; `last` is the
    /// last state seen, if any.
    #[error("timed out waiting for the task to finish")]
    Timeout {
        /// The newest state read before the deadline.
        last: Option<Box<TaskResponse>>,
    },
}

impl Error {
    /// The HTTP status of an answer from the server, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. }
            | Error::UnexpectedResponse { status, .. }
            | Error::Decode { status, .. } => Some(*status),
            Error::Transport(e) => e.status().map(|s| s.as_u16()),
            Error::Invalid(_) | Error::Timeout { .. } => None,
        }
    }

    /// The server's error body, for API errors.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Error::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// `error.code` of the server's body (`task_not_found`, `version_mismatch`, …).
    pub fn code(&self) -> Option<&str> {
        self.body()?.error.code.as_deref()
    }

    /// 401: the key is missing, malformed, unknown or revoked.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// 403: the key lacks the scope this call needs.
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// 404: no such task for this key's tenant (or it passed retention).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 409: the task is terminal and the write would change it, or a create reused an id with
    /// other content. Retrying does not help.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// 412: `If-Match` named a version that is no longer current; re-read and retry.
    pub fn is_version_mismatch(&self) -> bool {
        self.status() == Some(412)
    }

    /// 422: the request was invalid; `body().error.details` names the field.
    pub fn is_validation(&self) -> bool {
        self.status() == Some(422) || matches!(self, Error::Invalid(_))
    }

    /// The server could not be reached at all (refused, unresolvable, unroutable): nothing
    /// was sent.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Transport(e) if e.is_connect())
    }

    /// The request timed out (connecting or waiting for the answer).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Transport(e) if e.is_timeout())
    }

    /// Worth retrying as it is: 429, 503 or a request that did not complete.
    pub fn is_retryable(&self) -> bool {
        matches!(self.status(), Some(429 | 503))
            || matches!(self, Error::Transport(e) if e.status().is_none())
    }

    /// The current version of the task, from a 412's `details.current_version`.
    pub fn current_version(&self) -> Option<u64> {
        self.body()?
            .error
            .details
            .as_ref()?
            .get("current_version")?
            .as_u64()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
