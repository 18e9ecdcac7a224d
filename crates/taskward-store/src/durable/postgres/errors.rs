//! PostgreSQL's errors, classified, and the one retry policy every statement runs under.
//!
//! Pools do not ping a connection before lending it (that doubled the round trips of every
//! query), so after PostgreSQL restarts, each idle pooled connection fails its next statement
//! at once: the socket was closed under it (`Io`) or the server said it was terminating it
//! (57P01/57P02). Such a statement never ran on a live server, so it is run again on another
//! connection; each stale connection fails once and is dropped, so at most the pool's size of
//! retries. Every statement taskward runs is safe to repeat even if it did reach a server:
//! reads, inserts that do nothing on conflict, deletes, and compare-and-set writes that
//! recognise their own earlier commit by its write id.

use std::future::Future;

use crate::StoreError;

/// What a retry later could cure is `Unavailable` (503); a regular expression PostgreSQL
/// cannot compile is the client's (422); the rest internal.
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    let transient = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code == "2201B" {
                return StoreError::Invalid(format!(
                    "regular expression rejected by the database: {}",
                    db.message()
                ));
            }
            // connection exceptions, insufficient resources, operator intervention, lock and
            // statement timeouts, serialization failures and deadlocks.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || matches!(code.as_ref(), "55P03" | "40001" | "40P01")
        }
        _ => false,
    };
    if transient {
        unavailable(e)
    } else {
        StoreError::internal(e)
    }
}

pub(crate) fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::Unavailable {
        tier: "durable",
        source: e.into(),
    }
}

/// Whether `e` says the connection was dead before the statement ran (see the module docs).
fn stale_connection(e: &StoreError) -> bool {
    let StoreError::Unavailable { source, .. } = e else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_)) => true,
        Some(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("57P01" | "57P02")),
        _ => false,
    }
}

/// Runs `attempt`, again while it fails on a stale connection, at most `retries` more times.
/// Every pooled statement and every group statement goes through here.
pub(crate) async fn retrying<T, F, Fut>(retries: u32, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut left = retries;
    loop {
        match attempt().await {
            Err(e) if left > 0 && stale_connection(&e) => {
                left -= 1;
                tracing::debug!(error = %e, "stale PostgreSQL connection; running the statement on another");
            }
            done => return done,
        }
    }
}

/// A failed group's error, once for each of its requests (errors are not `Clone`).
pub(crate) fn each_error(e: StoreError) -> impl Fn() -> StoreError {
    let transient = matches!(e, StoreError::Unavailable { .. });
    let message = e.to_string();
    move || {
        if transient {
            unavailable(message.clone())
        } else {
            StoreError::internal(message.clone())
        }
    }
}
