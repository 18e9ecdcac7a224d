//! Connection timeouts over real sockets, with small settings: a keep-alive connection with no
//! request in flight lives for `limits.idle_timeout_ms`, not the header-read timeout; a request
//! head must arrive within `limits.header_read_timeout_ms` of its first byte, however long the
//! connection was idle before; and stopping the server still drains a request in flight while
//! idle connections close at once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::limits::t1_behind_a_patient_store;
use crate::raw::{self, Reply};
use crate::support::{spawn_app_with, TestApp};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: taskward\r\n\r\n";

/// Sends a `/healthz` request on `s` and expects its 200.
async fn healthz_on(s: &mut TcpStream) {
    s.write_all(HEALTHZ).await.expect("request sent");
    match raw::read_reply(s, Duration::from_secs(3)).await {
        Reply::Response(200, _) => {}
        other => panic!("{other:?}"),
    }
}

/// How long since `since` the server took to close `s`, which must happen within `within`.
async fn closed_within(s: &mut TcpStream, since: Instant, within: Duration) -> Duration {
    match raw::read_reply(s, within).await {
        Reply::Closed => since.elapsed(),
        other => panic!("expected the server to close the connection: {other:?}"),
    }
}

/// `closed_after` is `timeout` give or take the scheduling slack of a test machine: not more
/// than 150 ms early, less than 2 s late. `what` says what it was measured from.
fn assert_closed_at(closed_after: Duration, timeout: Duration, what: &str) {
    assert!(
        closed_after >= timeout - Duration::from_millis(150)
            && closed_after < timeout + Duration::from_secs(2),
        "closed {closed_after:?} {what}, the timeout is {timeout:?}"
    );
}

/// A server with these connection timeouts.
async fn spawn_app_with_timeouts(header_read_ms: u64, idle_ms: u64) -> TestApp {
    spawn_app_with(|s| {
        s.limits.header_read_timeout_ms = header_read_ms;
        s.limits.idle_timeout_ms = idle_ms;
    })
    .await
}

/// A connection to `app` that has served one request and is now idle.
async fn used_connection(app: &TestApp) -> TcpStream {
    let mut s = raw::connect(app).await;
    healthz_on(&mut s).await;
    s
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_read_timeout_and_serves_again() {
    let app = spawn_app_with_timeouts(300, 3_000).await;
    let mut s = used_connection(&app).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    healthz_on(&mut s).await;
    // A connection that has not sent anything yet is idle too.
    let mut fresh = raw::connect(&app).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    healthz_on(&mut fresh).await;
}

#[tokio::test]
async fn a_connection_with_no_request_in_flight_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(1_000);
    let app = spawn_app_with_timeouts(300, 1_000).await;
    let mut used = used_connection(&app).await;
    let since = Instant::now();
    let mut fresh = raw::connect(&app).await;
    let within = Duration::from_secs(5);
    let closed = tokio::join!(
        closed_within(&mut used, since, within),
        closed_within(&mut fresh, since, within)
    );
    for closed_after in [closed.0, closed.1] {
        assert_closed_at(closed_after, idle, "after the connection went idle");
    }
}

/// The idle timer is not moved on every request (see `IdleIo`): it is left where the first
/// wait set it and set again when it fires early. A connection busy for several idle timeouts
/// must neither be closed at one of those stale deadlines nor outlive its last wait's.
#[tokio::test]
async fn a_busy_connection_is_timed_from_its_last_response_not_its_first() {
    let idle = Duration::from_millis(500);
    let app = spawn_app_with_timeouts(300, 500).await;
    let mut s = raw::connect(&app).await;
    let busy_until = Instant::now() + Duration::from_millis(1_600);
    while Instant::now() < busy_until {
        healthz_on(&mut s).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    healthz_on(&mut s).await;
    let since = Instant::now();
    let closed_after = closed_within(&mut s, since, Duration::from_secs(5)).await;
    assert_closed_at(closed_after, idle, "after the last response");
}

/// A request that waits (a long-poll run to its end, longer than the idle timeout) has hyper
/// read while it is in flight and find nothing; after the response hyper does not read again
/// on its own, and nothing wakes the connection when the request ends. It must still be
/// closed the idle timeout after that response: not left open for ever, not cut early.
#[tokio::test]
async fn a_connection_is_timed_from_the_end_of_a_request_that_waited() {
    let idle = Duration::from_millis(800);
    let app = spawn_app_with_timeouts(300, 800).await;
    app.create_processing("w1").await;
    let mut s = raw::connect(&app).await;
    let poll = format!(
        "GET /v1/tasks/w1?wait=1.5 HTTP/1.1\r\nHost: taskward\r\nAuthorization: Bearer {}\r\n\
         If-None-Match: \"1\"\r\n\r\n",
        app.key
    );
    s.write_all(poll.as_bytes()).await.expect("request sent");
    match raw::read_reply(&mut s, Duration::from_secs(5)).await {
        Reply::Response(304, _) => {}
        other => panic!("{other:?}"),
    }
    let since = Instant::now();
    let closed_after = closed_within(&mut s, since, Duration::from_secs(5)).await;
    assert_closed_at(closed_after, idle, "after the long-poll's response");
}

#[tokio::test]
async fn a_head_begun_after_an_idle_while_is_cut_at_the_header_read_timeout_from_its_first_byte() {
    let header_read = Duration::from_millis(600);
    let app = spawn_app_with_timeouts(600, 10_000).await;
    let s = used_connection(&app).await;
    // Idle for longer than the header-read timeout: that time does not count against the head.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (mut rd, mut wr) = s.into_split();
    let first_byte = Instant::now();
    let trickle = tokio::spawn(async move {
        for b in HEALTHZ.iter().take(HEALTHZ.len() - 1) {
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let reply = raw::read_reply(&mut rd, Duration::from_secs(8)).await;
    let closed_after = first_byte.elapsed();
    trickle.abort();
    assert!(matches!(reply, Reply::Closed), "{reply:?}");
    assert_closed_at(closed_after, header_read, "after the first byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_drains_a_request_in_flight_and_closes_idle_connections_at_once() {
    // The write below waits on the lock for as long as the test holds it.
    let app = t1_behind_a_patient_store(20_000).await;
    let mut idle = used_connection(&app).await;
    let lock = app.lock_durable_writes().await;
    let patch = {
        let req = app
            .req(reqwest::Method::PATCH, "/v1/tasks/t1", &app.key)
            .json(&json!({"description": "during the drain"}));
        tokio::spawn(async move { req.send().await })
    };
    // The PATCH has reached the server and waits on the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!patch.is_finished());
    let stopping = tokio::spawn(app.stop());
    closed_within(&mut idle, Instant::now(), Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "the server stopped with a request in flight"
    );
    lock.release().await;
    let res = patch
        .await
        .expect("patch task")
        .expect("the request in flight got its response");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the drain ends once the request is answered")
        .expect("stop task");
}
