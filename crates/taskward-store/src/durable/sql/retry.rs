//! The one retry policy every pooled and grouped statement runs under.
//!
//! Pools do not ping a connection before lending it (that doubled PostgreSQL's round trips),
//! so after the database restarts, each idle pooled connection fails its next statement at
//! once: the socket was closed under it (`Io`) or the server said it was terminating it
//! (PostgreSQL's 57P01/57P02). Such a statement never ran on a live server, so it is run again
//! on another connection; each stale connection fails once and is dropped, so at most the
//! pool's size of retries. Every statement taskward runs is safe to repeat even if it did reach
//! a server: reads, inserts that do nothing on conflict, deletes, and compare-and-set writes
//! that recognise their own earlier commit by its write id.

use std::future::Future;

use crate::StoreError;

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
