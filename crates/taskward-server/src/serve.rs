//! The accept loop: HTTP/1.1 connections served by hyper with a header-read timeout, at most
//! `limits.max_connections` at once, and a graceful drain.
//!
//! `axum::serve` offers neither a header-read timeout nor a connection cap, hence this loop.
//! - The header-read timeout runs from the moment a connection waits for a request head, so a
//!   client trickling headers (slowloris) and a connection left idle between requests are both
//!   closed after `limits.header_read_timeout_ms`.
//! - Past the cap, new connections are not accepted: they wait in the kernel's backlog until a
//!   connection closes, rather than being refused, so a burst is served late instead of failing.
//! - On shutdown the listener closes, idle connections close, and each connection finishes the
//!   request it is serving (and sends its response) before closing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::settings::LimitSettings;

/// Serves `app` on `listener` until `shutdown` resolves, then drains every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &LimitSettings,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: the listener is fine, wait a bit
                    // for connections to close instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Header timeouts, resets, malformed requests: the client's business.
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
