//! taskward's storage: a hot tier, a durable tier, and [`TieredStore`], the one place that
//! knows there are two.
//!
//! Handlers only ever hold a [`TieredStore`]. Back-ends implement [`HotTier`] or
//! [`DurableTier`]; adding one (Redis, PostgreSQL) changes nothing above this crate. This crate
//! knows nothing of HTTP.

pub mod changes;
pub mod durable;
pub mod feeds;
pub mod hot;
pub mod keys;
pub mod retention;
pub mod tiered;
pub mod webhooks;

pub use changes::{Changes, Watch};
pub use durable::{
    DurableTier, Inserted, KeyStore, PendingInvalidation, PostgresDurable, PostgresOptions,
    SqliteDurable, WriteId,
};
pub use feeds::{FeedEvent, ListenError, Listener, FEED_CAPACITY};
pub use hot::redis::{RedisHot, RedisTarget};
pub use hot::{memory::MemoryHot, none::NoHot, HotTier, RenderedTask};
pub use keys::Keys;
pub use tiered::{
    Background, Created, Killed, Maintenance, Readiness, Source, StoreStats, TieredStore,
    DEFAULT_LEASE,
};
pub use webhooks::WebhookStore;

/// What callers of the store branch on. Driver errors are converted inside each back-end.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The task does not exist for this tenant.
    #[error("task not found")]
    NotFound,
    /// The write breaks the task's rules or repeats a create with other content.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Too many writers raced on this task for this write to land; retrying later will.
    #[error("too many concurrent writes to this task; retry")]
    Contention,
    /// The caller's If-Match version is not the current one.
    #[error("version mismatch: expected {expected}, current {current}")]
    VersionMismatch { expected: u64, current: u64 },
    /// The request is well-formed but breaks a rule found only when it is applied (progress
    /// that no longer adds up after a merge, a regular expression the database rejects): the
    /// client's to fix.
    #[error("{0}")]
    Invalid(taskward_model::Invalid),
    /// A tier this request needs cannot be reached.
    #[error("{tier} tier unavailable: {source}")]
    Unavailable {
        tier: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store cannot be used as configured (a data directory that is not writable, a
    /// schema name it cannot use): said so at start, with what to do.
    #[error("{0}")]
    Config(String),
    /// A bug or corrupt data: nothing the client can fix.
    #[error("internal storage error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any error as internal.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Internal(e.into())
    }
}
