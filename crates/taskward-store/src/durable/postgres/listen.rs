//! Other instances' writes, heard through `LISTEN`: the group-commit statement notifies each
//! won write in its own transaction (see `grouped.rs`), and every instance listens on the
//! schema's channel and wakes its local waiters.
//!
//! The listener has a one-connection pool of its own, checked before use, so after a
//! PostgreSQL restart it reconnects at once, and it pings every [`PING_EVERY`] to notice a
//! connection that vanished without a reset. Messages sent while it was not listening are
//! lost, so after every (re)connect every waiter re-reads its task — spread over
//! [`REWAKE_OVER`] rather than all at the same instant, so that thousands of long-polls do not
//! hit the database in one burst.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::changes::{parse_change, Changes};

/// How often the LISTEN connection is checked.
const PING_EVERY: Duration = Duration::from_secs(15);

/// Waiters woken after a reconnect are woken over this long, in batches.
const REWAKE_OVER: Duration = Duration::from_secs(1);

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Relays every change announced on `channel` to `changes` until `stop`.
pub(crate) async fn forward(
    pool: &PgPool,
    channel: &str,
    changes: Arc<Changes>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let listen = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            () = stop.cancelled() => return,
            listening = listen => match listening {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for task changes; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        let mut rewake = changes.rewake(REWAKE_OVER);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => return,
                () = rewake.next_batch(), if !rewake.is_done() => continue,
                received = listener.try_recv() => received,
                _ = ping.tick() => {
                    let alive = tokio::time::timeout(
                        PING_EVERY,
                        sqlx::query("SELECT 1").execute(&mut listener),
                    )
                    .await;
                    if matches!(alive, Ok(Ok(_))) {
                        continue;
                    }
                    tracing::warn!("LISTEN connection stopped answering; reconnecting");
                    break;
                }
            };
            match received {
                Ok(Some(n)) => match parse_change(n.payload()) {
                    Some((key, version)) => changes.publish_key(key, version),
                    None => tracing::warn!(payload = n.payload(), "unreadable change message"),
                },
                // The connection dropped: listen again on a fresh one (then re-wake).
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}
