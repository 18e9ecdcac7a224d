//! Attacks on the HTTP layer itself. In each, a normal client keeps being served while it
//! runs, and what the attacker gets is a 4xx or a closed connection, never a 5xx.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskward_testkit::raise_fd_limit;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::raw::{self, Reply};
use crate::support::{assert_error_shape, spawn_app, spawn_app_with, TestApp};

async fn seed(app: &TestApp) {
    app.create_processing("t1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_100000_deep_is_a_prompt_422_on_every_json_route() {
    let app = spawn_app().await;
    seed(&app).await;
    let before = app.snapshot().await;
    let n = 100_000;
    let deep_object = format!(
        "{{\"task_type\": \"thumbnail\", \"additional_data\": {}1{}}}",
        "{\"a\":".repeat(n),
        "}".repeat(n)
    );
    let deep_array = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_filter = format!(
        "{{\"filters\": {}{}}}",
        "{\"AND\":[".repeat(n),
        "]}".repeat(n)
    );
    let unclosed = "{\"a\":[".repeat(n);
    for (method, path, body) in [
        (Method::POST, "/v1/tasks", &deep_object),
        (Method::POST, "/v1/tasks", &unclosed),
        (Method::PATCH, "/v1/tasks/t1", &deep_object),
        (Method::PATCH, "/v1/tasks/t1", &deep_array),
        (Method::POST, "/v1/tasks/list", &deep_filter),
        (Method::POST, "/v1/tasks/list", &deep_array),
    ] {
        let started = Instant::now();
        let attack = app
            .req(method.clone(), path, &app.key)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send();
        let (res, _) = tokio::join!(attack, raw::served_promptly(&app));
        let res = res.expect("answered");
        let status = res.status();
        let b: Value = res.json().await.expect("a JSON error body");
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {b}"
        );
        assert_error_shape(&b, 422);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{method} {path} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(app.snapshot().await, before);
}

/// Streams a 100 MB body (declared or chunked) and returns the reply and how much of the
/// body the server had let us send by the time it answered.
async fn send_100_mb(app: &TestApp, declared: bool) -> (Reply, u64) {
    const TOTAL: u64 = 100 * 1024 * 1024;
    let stream = raw::connect(app).await;
    let (mut rd, mut wr) = stream.into_split();
    let framing = if declared {
        format!("Content-Length: {TOTAL}")
    } else {
        "Transfer-Encoding: chunked".to_owned()
    };
    let head = format!(
        "POST /v1/tasks HTTP/1.1\r\nHost: taskward\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\n{framing}\r\n\r\n",
        app.key
    );
    wr.write_all(head.as_bytes()).await.expect("head");
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        let piece = vec![b' '; 64 * 1024];
        let chunk_head = format!("{:x}\r\n", piece.len());
        while counter.load(Ordering::Relaxed) < TOTAL {
            let ok = if declared {
                wr.write_all(&piece).await.is_ok()
            } else {
                wr.write_all(chunk_head.as_bytes()).await.is_ok()
                    && wr.write_all(&piece).await.is_ok()
                    && wr.write_all(b"\r\n").await.is_ok()
            };
            if !ok {
                break;
            }
            counter.fetch_add(piece.len() as u64, Ordering::Relaxed);
        }
    });
    let reply = raw::read_reply(&mut rd, Duration::from_secs(20)).await;
    let at_reply = sent.load(Ordering::Relaxed);
    writer.abort();
    (reply, at_reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_is_refused_with_413_before_it_is_read() {
    let app = spawn_app().await;
    seed(&app).await;
    let before = app.snapshot().await;
    for declared in [true, false] {
        let ((reply, sent), _) = tokio::join!(send_100_mb(&app, declared), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            raw::served_promptly(&app).await
        });
        let Reply::Response(status, body) = reply else {
            panic!("declared={declared}: no response: {reply:?}");
        };
        assert_eq!(status, 413, "declared={declared}");
        let b: Value = serde_json::from_slice(&body).expect("JSON error body");
        assert_error_shape(&b, 413);
        // The limit is 1 MiB; the rest sits in socket buffers at most.
        assert!(
            sent < 32 * 1024 * 1024,
            "declared={declared}: the server read {sent} bytes before answering"
        );
    }
    raw::served_promptly(&app).await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mb_header_is_refused_with_431() {
    let app = spawn_app().await;
    seed(&app).await;
    let big = "a".repeat(1024 * 1024);
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (what, extra) in [
        ("one 1 MB header", format!("X-Big: {big}\r\n")),
        ("2000 headers", many),
    ] {
        let req = format!(
            "GET /v1/tasks/t1 HTTP/1.1\r\nHost: taskward\r\nAuthorization: Bearer {}\r\n{extra}\r\n",
            app.key
        );
        let (reply, _) = tokio::join!(
            raw::exchange(&app, req.as_bytes(), Duration::from_secs(10)),
            raw::served_promptly(&app)
        );
        match reply {
            Reply::Response(status, _) => {
                assert!(status == 431 || status == 400, "{what}: {status}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_trickled_a_byte_a_second_are_cut_off_at_the_header_read_timeout() {
    let timeout = Duration::from_secs(3);
    let app = spawn_app_with(|s| s.limits.header_read_timeout_ms = 3_000).await;
    seed(&app).await;
    let started = Instant::now();
    let stream = raw::connect(&app).await;
    let (mut rd, mut wr) = stream.into_split();
    let request = format!(
        "GET /v1/tasks/t1 HTTP/1.1\r\nHost: taskward\r\nAuthorization: Bearer {}\r\n\r\n",
        app.key
    );
    let trickle = tokio::spawn(async move {
        let mut sent = 0;
        for b in request.bytes() {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        sent
    });
    let (reply, served) = tokio::join!(raw::read_reply(&mut rd, Duration::from_secs(15)), async {
        let mut took = Vec::new();
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            took.push(raw::served_promptly(&app).await);
        }
        took
    });
    let closed_after = started.elapsed();
    trickle.abort();
    let sent = trickle.await.unwrap_or(0);
    assert!(
        matches!(reply, Reply::Closed | Reply::Response(408, _)),
        "{reply:?}"
    );
    assert!(
        closed_after >= timeout - Duration::from_millis(200)
            && closed_after < timeout + Duration::from_secs(3),
        "closed after {closed_after:?}, the timeout is {timeout:?}"
    );
    assert!(sent < 20, "the request never completed ({sent} bytes sent)");
    assert_eq!(served.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_do_not_stop_other_clients() {
    // Both ends of every connection live in this process.
    let limit = raise_fd_limit(8_192);
    let idle_count = 2_500.min((limit as usize).saturating_sub(500) / 2);
    assert!(idle_count >= 1_000, "open-files limit {limit} is too low");
    let app = spawn_app().await;
    seed(&app).await;
    let mut idle = Vec::with_capacity(idle_count);
    for i in 0..idle_count {
        let mut s = raw::connect(&app).await;
        if i % 2 == 0 {
            // Half of them start a request and stop.
            s.write_all(b"GET /v1/tasks/t1 HTTP/1.1\r\nHo")
                .await
                .expect("partial request");
        }
        idle.push(s);
    }
    for _ in 0..5 {
        raw::served_promptly(&app).await;
    }
    let res = app
        .req(Method::POST, "/v1/tasks/list", &app.key)
        .json(&json!({}))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("list answered");
    assert_eq!(res.status(), StatusCode::OK);
    drop(idle);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_wait_until_one_closes() {
    let cap = 4;
    let app = spawn_app_with(|s| s.limits.max_connections = cap).await;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(raw::connect(&app).await);
    }
    let probe = {
        let (url, key) = (app.url("/v1/tasks"), app.key.clone());
        tokio::spawn(async move {
            let res = reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("answered once a slot frees");
            (res.status(), Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !probe.is_finished(),
        "a connection past the cap was served while {cap} were open"
    );
    let released = Instant::now();
    held.pop();
    let (status, answered) = tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .expect("served after a slot freed")
        .expect("probe task");
    assert_eq!(status, StatusCode::OK);
    assert!(answered >= released);
    drop(held);
    app.stop().await;
}
