//! Wire and domain types of taskward.
//!
//! Everything a client sends or receives, and the rules that hold for a task whatever stores
//! it: id and status validation, terminal immutability, the `error_message` derivation, the
//! filter language. This crate does no I/O (no tokio, sqlx, redis or axum) so that the store,
//! the server and a future client can all share it.

pub mod error_body;
pub mod event;
pub mod filter;
pub mod key;
pub mod list;
pub mod progress;
pub mod task;
pub mod time;
pub mod webhook;

pub use error_body::{ErrorBody, ErrorDetail};
pub use event::{Counts, EventId, EventType, History, StoredEvent, TaskEvent};
pub use key::{ApiKey, KeyRecord, KeySelf, Mode, OrgId, Scope, Scopes, Tenant};
pub use progress::{Progress, ProgressTrack};
pub use task::{
    CreateTask, IoItem, Task, TaskId, TaskResponse, TaskStatus, TaskTypes, TransitionError,
    UpdateTask,
};

/// A validation failure: which input was wrong, why, and (where there is a closed set) the
/// values that would have been accepted. Rendered as a 422 by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// Dotted path of the offending input, e.g. `filters.AND[0].operator`.
    pub field: String,
    /// What is wrong, in words a client developer understands.
    pub message: String,
    /// The accepted values, when they form a closed set.
    pub accepted: Option<Vec<String>>,
}

impl Invalid {
    /// An invalid input with no closed set of accepted values.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            accepted: None,
        }
    }

    /// An invalid input that had to be one of `accepted`.
    pub fn one_of<S: ToString>(
        field: impl Into<String>,
        message: impl Into<String>,
        accepted: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            accepted: Some(accepted.into_iter().map(|s| s.to_string()).collect()),
        }
    }
}
