//! Retention: terminal tasks leave the durable tier a configurable time after they finished.
//! Non-terminal tasks stay however old they are.
//!
//! Deletes run in bounded batches, each its own statement, so a large backlog never holds a
//! long lock or a long transaction, and the sweep stops between batches when the server shuts
//! down. Hot entries need no sweep: they expire 24 h after their last write, and retention is
//! required to be longer than that (see the server's settings).

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::durable::DurableTier;
use crate::StoreError;

/// Deletes every terminal task that finished before `cutoff`, `batch` at a time; returns how
/// many were deleted (also when stopped part-way).
pub async fn sweep(
    durable: &dyn DurableTier,
    cutoff: DateTime<Utc>,
    batch: u32,
    stop: &CancellationToken,
) -> Result<u64, StoreError> {
    let mut total = 0;
    while !stop.is_cancelled() {
        let n = durable.delete_finished_before(cutoff, batch).await?;
        total += n;
        if n < u64::from(batch) {
            break;
        }
        // Let other work at the database between batches.
        tokio::task::yield_now().await;
    }
    if total > 0 {
        tracing::info!(deleted = total, "retention sweep");
    }
    Ok(total)
}
