//! The accept loop: HTTP/1.1 connections served by hyper, closed when idle or when a request
//! head arrives too slowly, at most `limits.max_connections` at once, and a graceful drain.
//!
//! `axum::serve` (0.8) bounds neither header reads nor connections, hence this loop.
//! - A connection with no request in flight is closed after `limits.idle_timeout_ms`: a
//!   keep-alive client may sit between requests far longer than a request head takes.
//! - Once the first byte of a request head has arrived, the whole head must arrive within
//!   `limits.header_read_timeout_ms`, else the connection is closed (slowloris).
//!
//!   hyper's own `header_read_timeout` is not used: it runs from the moment hyper starts
//!   waiting for a head (the connection accepted, or the previous response sent), so it also
//!   closes every idle keep-alive connection at the header-read timeout. Instead [`Activity`]
//!   counts a connection's requests in flight (from the service call, when hyper has the
//!   whole head, to the end of the response body), and [`IdleIo`] times the reads of a
//!   connection with none in flight: closing it (end of stream to hyper) when idle too long,
//!   failing the read when a started head is too slow.
//! - Past the cap, new connections are not accepted: they wait in the kernel's backlog until a
//!   connection closes, rather than being refused, so a burst is served late instead of failing.
//! - While draining (see [`crate::Server::run`]) every response carries `Connection: close`.
//! - On shutdown the listener closes, idle connections close, and each connection finishes the
//!   request it is serving (and sends its response) before closing, within
//!   `limits.request_timeout_ms`: past that, connections still writing are dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::settings::LimitSettings;

/// Serves `app` on `listener` until `shutdown` resolves, then drains every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &LimitSettings,
    draining: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    // Measured by `IdleIo` instead (see above); hyper would also count the idle time.
    http.header_read_timeout(None);
    let timeouts = Timeouts {
        idle: Duration::from_millis(limits.idle_timeout_ms),
        header_read: Duration::from_millis(limits.header_read_timeout_ms),
    };
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
        let activity = Arc::new(Activity::new());
        let io = IdleIo::new(stream, activity.clone(), timeouts);
        let conn = http.serve_connection(
            TokioIo::new(io),
            service(app.clone(), activity, draining.clone()),
        );
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
    // Every request still in flight has had its whole deadline by then; what is left is a
    // response the client does not read (a stalled stream fills the socket and hyper waits on
    // it for ever), and that must not keep the process from exiting.
    let limit = Duration::from_millis(limits.request_timeout_ms);
    if tokio::time::timeout(limit, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            after_ms = limits.request_timeout_ms,
            "connections still busy at the end of the drain (clients not reading); closing them"
        );
    }
}

/// `app` as hyper's service, each request counted in flight until its response is done.
fn service(
    app: Router,
    activity: Arc<Activity>,
    draining: Arc<AtomicBool>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<TrackedResponse>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<TrackedResponse>, Infallible>> + Send,
> {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = InFlight::start(&activity);
        let response = app.clone().oneshot(req);
        let draining = draining.clone();
        async move {
            let mut response = response.await?;
            // Draining: the client's next request opens a new connection, which the balancer
            // sends to another instance; hyper closes this one after the response.
            if draining.load(Ordering::Relaxed) {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| TrackedResponse {
                body,
                _in_flight: in_flight,
            }))
        }
    })
}

/// The two connection timeouts.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    idle: Duration,
    header_read: Duration,
}

/// One connection's requests: how many were handed to the service (hyper had their whole
/// head), how many of those are done (response body sent to its end, or dropped), and when
/// the connection last became idle.
#[derive(Debug)]
struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    /// When the last request in flight ended (or the connection was accepted), in nanoseconds
    /// since `accepted`: the idle wait that follows is timed from then.
    idle_since: AtomicU64,
    accepted: Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            accepted: Instant::now(),
        }
    }

    fn idle_since(&self) -> Instant {
        self.accepted + Duration::from_nanos(self.idle_since.load(Ordering::Acquire))
    }
}

/// A request in flight, from the service call until its response body is done.
#[derive(Debug)]
struct InFlight {
    activity: Arc<Activity>,
}

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.started.fetch_add(1, Ordering::AcqRel);
        InFlight {
            activity: activity.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.activity;
        if a.finished.load(Ordering::Acquire) + 1 == a.started.load(Ordering::Acquire) {
            let since = a.accepted.elapsed().as_nanos() as u64;
            a.idle_since.store(since, Ordering::Release);
        }
        a.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until hyper has taken all of it (or
/// drops it): a long stream is not an idle connection.
#[derive(Debug)]
struct TrackedResponse {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedResponse {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket that times the waits for a request head. While a request is in
/// flight, reads pass through. Otherwise the connection is waiting for a head: it is closed
/// (reads end, as if the client had closed) `idle` after the wait began unless a byte
/// arrives, and a read fails `header_read` after the head's first byte. hyper has read a
/// whole head exactly when it calls the service, so the count of started requests tells one
/// wait from the next, pipelined requests included.
///
/// The timer is not moved on every request: moving a registered timer takes the timer
/// wheel's lock, twice a request on a busy keep-alive connection. A wait only records when it
/// ends (`until`); the timer stays where it is as long as that is no later, and when it fires
/// early (the wait it was set for has been followed by a later one) it is set again. So a busy
/// connection moves its timer about once per idle timeout, and a head that arrives in one
/// read (nearly all) never moves it.
///
/// Nothing wakes the connection when a request ends: hyper does not read again after a
/// response once a read has come back empty while the request was in flight, and waking the
/// task to make it read cost a reschedule per request (~2 µs of a 9 µs `/healthz`, often on
/// the other worker). Instead a read that comes back empty while a request is in flight keeps
/// the timer set within `idle` of it; when it fires after the request has ended, hyper reads,
/// and the idle wait is timed from when the request ended (`Activity::idle_since`), as if the
/// connection had been woken then.
#[derive(Debug)]
struct IdleIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    /// Fires at or before `until` (see above).
    timer: Pin<Box<Sleep>>,
    /// The end of the current wait.
    until: Instant,
    /// The current wait is for the head that follows this many started requests.
    waiting_after: Option<u64>,
    /// The current wait's head has begun to arrive: `until` is the header-read timeout's.
    head_begun: bool,
}

impl IdleIo {
    fn new(stream: TcpStream, activity: Arc<Activity>, timeouts: Timeouts) -> IdleIo {
        let until = activity.accepted + timeouts.idle;
        IdleIo {
            stream,
            activity,
            timer: Box::pin(tokio::time::sleep_until(until)),
            until,
            timeouts,
            waiting_after: None,
            head_begun: false,
        }
    }

    /// Whether the current wait has run out (at `until`); if not, the timer will wake the task
    /// by `until` at the latest.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.deadline() > self.until {
                self.timer.as_mut().reset(self.until);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.timer.deadline() >= self.until {
                return true;
            }
            // Set for an earlier wait: this one ends later.
            self.timer.as_mut().reset(self.until);
        }
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Both counts move only in this connection's task (hyper polls the service future and
        // the response body there), so they cannot change under this read.
        let started = this.activity.started.load(Ordering::Acquire);
        if started != this.activity.finished.load(Ordering::Acquire) {
            // Its body, and hyper's checks for a client hanging up, read freely.
            let read = Pin::new(&mut this.stream).poll_read(cx, buf);
            if read.is_pending() {
                // hyper may not read again when the request ends: the timer will (see above).
                // `until` is in the future, so this only sets the timer; it cannot run out.
                this.until = Instant::now() + this.timeouts.idle;
                this.expired(cx);
            }
            return read;
        }
        if this.waiting_after != Some(started) {
            this.waiting_after = Some(started);
            this.head_begun = false;
            this.until = this.activity.idle_since() + this.timeouts.idle;
        }
        if this.head_begun {
            // The deadline first, so a client trickling bytes cannot keep it from firing.
            if this.expired(cx) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request head not received within the header-read timeout",
                )));
            }
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.head_begun = true;
                this.until = this.until.min(Instant::now() + this.timeouts.header_read);
                Poll::Ready(Ok(()))
            }
            // Idle past the timeout: end of stream, which hyper takes as the client closing
            // between requests, and closes quietly.
            Poll::Pending if this.expired(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
            closed_or_failed => closed_or_failed,
        }
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
