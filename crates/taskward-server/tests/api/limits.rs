//! The per-key rate limit and the request timeout, and that the timeout leaves a legitimate
//! long-poll alone.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskward_model::Mode;
use tokio::time::Instant;

use crate::support::{assert_error, spawn_app, spawn_app_with, TestApp};

/// The main tenant's tasks as `key` sees them (the main key may be rate limited).
async fn snapshot_as(app: &TestApp, key: &str) -> Value {
    let res = app
        .list(
            key,
            "?page_size=1000",
            json!({"sort": {"field": "created_at", "direction": "asc"}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// A server holding the PROCESSING task `t1`, whose store waits up to 20 s for a lock (longer
/// than any test holds one) and whose requests time out after `request_timeout_ms`.
pub(crate) async fn t1_behind_a_patient_store(request_timeout_ms: u64) -> TestApp {
    let app = spawn_app_with(|s| {
        s.durable.timeout_ms = 20_000;
        s.limits.request_timeout_ms = request_timeout_ms;
    })
    .await;
    app.create_processing("t1").await;
    app
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not() {
    let app = spawn_app_with(|s| {
        s.limits.rate_per_sec = 1;
        s.limits.burst = 5;
    })
    .await;
    let other = app.key_for("acme", Mode::Test, "read,write").await;
    app.create_processing("t1").await;
    // The burst is served; then the key is over its rate (1 a second).
    let mut served = 1;
    let limited = loop {
        let res = app.get(&app.key, "t1").await;
        if res.status() != StatusCode::OK {
            break res;
        }
        served += 1;
        assert!(served < 30, "never limited");
    };
    assert!(served >= 5, "the burst of 5 was served ({served})");
    let b = assert_error(limited, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(b["error"]["type"], "rate_limited", "{b}");

    // A write over the limit is refused whole. (On a slow machine a token may have come back
    // between the 429 above and this write: then spend the bucket again and retry.)
    let mut attempts = 0;
    let (retry_after, b) = loop {
        attempts += 1;
        assert!(attempts <= 5, "a write was never rate limited");
        let before = snapshot_as(&app, &other).await;
        let res = app
            .patch(
                &app.key,
                "t1",
                json!({"description": format!("try {attempts}")}),
            )
            .await;
        if res.status() == StatusCode::OK {
            while app.get(&app.key, "t1").await.status() == StatusCode::OK {}
            continue;
        }
        let retry_after: u64 = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in whole seconds");
        let b = assert_error(res, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(
            snapshot_as(&app, &other).await,
            before,
            "a rate-limited write did nothing"
        );
        break (retry_after, b);
    };
    // The next token is less than a second away: rounded up, 1 s.
    assert_eq!(retry_after, 1);
    assert_eq!(b["error"]["details"]["retry_after_secs"], 1);

    // Another key has its own bucket.
    assert_eq!(app.get(&other, "t1").await.status(), StatusCode::OK);

    // After Retry-After the key is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(app.get(&app.key, "t1").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_rate_limit_is_off_by_default() {
    let app = spawn_app().await;
    for _ in 0..300 {
        let res = app.send(Method::GET, "/v1/tasks", &app.key).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_request_past_the_timeout_answers_503_and_the_server_recovers() {
    let app = t1_behind_a_patient_store(500).await;
    let lock = app.lock_durable_writes().await;
    let started = Instant::now();
    let res = app
        .patch(&app.key, "t1", json!({"description": "slow"}))
        .await;
    let took = started.elapsed();
    assert_eq!(
        res.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let b = assert_error(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(b["error"]["code"], "request_timeout", "{b}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Reads are not held up by the stuck write.
    app.get_ok("t1").await;
    lock.release().await;
    // The writer is free again: the next write goes through. (The timed-out one may or may
    // not have landed; README says so.)
    let res = app
        .patch(&app.key, "t1", json!({"description": "after"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["description"], "after");
}

#[tokio::test]
async fn a_long_poll_outlasts_the_request_timeout() {
    let app = spawn_app_with(|s| {
        s.limits.request_timeout_ms = 300;
        s.limits.max_wait_secs = 5;
    })
    .await;
    app.create_processing("t1").await;
    let started = Instant::now();
    let res = app
        .req(Method::GET, "/v1/tasks/t1?wait=1.5", &app.key)
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_400) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_body_that_never_finishes_arriving_is_a_408_not_a_5xx() {
    let app = spawn_app_with(|s| s.limits.request_timeout_ms = 500).await;
    app.create_processing("t1").await;
    let before = app.snapshot().await;
    // Declares 100 bytes, sends 10, then waits.
    let req = format!(
        "PATCH /v1/tasks/t1 HTTP/1.1\r\nHost: taskward\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"status\":",
        app.key
    );
    let started = Instant::now();
    match crate::raw::exchange(&app, req.as_bytes(), Duration::from_secs(5)).await {
        crate::raw::Reply::Response(status, body) => {
            assert_eq!(status, 408);
            let b: Value = serde_json::from_slice(&body).unwrap();
            crate::support::assert_error_shape(&b, 408);
            assert_eq!(b["error"]["code"], "request_body_timeout");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(app.snapshot().await, before);
}
