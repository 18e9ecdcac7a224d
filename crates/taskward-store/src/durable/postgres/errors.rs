//! PostgreSQL's errors, classified: what a client can fix, what a retry later may cure, and
//! what is a bug. (The retry policy for connections that died is the SQL core's,
//! `sql/retry.rs`.)

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
                return StoreError::Invalid(taskward_model::Invalid::new(
                    "filters",
                    format!(
                        "regular expression rejected by the database: {}",
                        db.message()
                    ),
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
