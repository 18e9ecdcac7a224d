//! Conditional GET (`If-None-Match` → 304) and long-poll (`?wait=`): wakes on a change, on a
//! terminal transition, at the timeout, across two instances (production shape).

use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::support::{assert_error, spawn_app, spawn_app_with, Shape, TestApp};

/// A GET of task `id` with `If-None-Match` (if any) and a query string: built at once, sent
/// when awaited (so it can run on a task of its own).
fn get_with(
    app: &TestApp,
    id: &str,
    inm: Option<&str>,
    query: &str,
) -> impl std::future::Future<Output = Response> + Send + 'static {
    let mut req = app.req(Method::GET, &format!("/v1/tasks/{id}{query}"), &app.key);
    if let Some(inm) = inm {
        req = req.header("if-none-match", inm);
    }
    async move { req.send().await.expect("request") }
}

/// [`get_with`] on a task of its own (so the test can write meanwhile), returned once the
/// server has registered it as the only wait: what follows exercises the wake, not the first
/// read. Its answer and how long it took.
async fn waiting_get(
    app: &TestApp,
    id: &str,
    inm: Option<&str>,
    query: &str,
) -> tokio::task::JoinHandle<(Response, Duration)> {
    let get = get_with(app, id, inm, query);
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        (get.await, started.elapsed())
    });
    until_waiting(app, 1).await;
    waiter
}

/// The server's count of tasks long-polls are waiting on (`/metrics`).
async fn waited_on(app: &TestApp) -> u64 {
    let text = app.public_text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("taskward_long_poll_tasks "))
        .and_then(|v| v.trim().parse().ok())
        .expect("taskward_long_poll_tasks in /metrics")
}

/// Returns once `n` tasks are being waited on.
async fn until_waiting(app: &TestApp, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while waited_on(app).await != n {
        assert!(Instant::now() < deadline, "never {n} waited-on tasks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn patch_ok(app: &TestApp, id: &str, body: Value) -> Value {
    let res = app.patch(&app.key, id, body).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("json")
}

#[tokio::test]
async fn if_none_match_answers_304_for_a_held_version_and_200_otherwise() {
    let app = spawn_app().await;
    app.create_processing("cond").await;
    patch_ok(&app, "cond", json!({"additional_data": {"step": 1}})).await;

    for held in ["\"2\"", "W/\"2\"", "\"1\", \"2\"", "*"] {
        let res = get_with(&app, "cond", Some(held), "").await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{held}");
        assert_eq!(res.headers()["etag"], "\"2\"");
        assert!(res.bytes().await.unwrap().is_empty(), "304 has no body");
    }
    let res = get_with(&app, "cond", Some("\"1\""), "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["version"], 2);
}

#[tokio::test]
async fn malformed_if_none_match_and_wait_are_422_and_unknown_tasks_404_at_once() {
    let app = spawn_app().await;
    app.create_processing("bad").await;
    for inm in ["abc", "\"v1\"", "\"1\", nope", "\"-1\""] {
        let res = get_with(&app, "bad", Some(inm), "").await;
        let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(body.to_string().contains("If-None-Match"), "{inm}: {body}");
    }
    for wait in ["-1", "abc", "NaN", "inf", "1e999", ""] {
        let res = get_with(&app, "bad", None, &format!("?wait={wait}")).await;
        let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(body.to_string().contains("wait"), "{wait}: {body}");
    }
    let started = Instant::now();
    let res = get_with(&app, "nope", Some("\"1\""), "?wait=20").await;
    assert_error(res, StatusCode::NOT_FOUND).await;
    assert!(started.elapsed() < Duration::from_secs(10), "404 at once");
}

#[tokio::test]
async fn a_waiter_is_answered_by_the_next_change_with_the_new_version() {
    let app = spawn_app().await;
    app.create_processing("lp").await;
    let waiter = waiting_get(&app, "lp", Some("\"1\""), "?wait=30").await;
    assert!(!waiter.is_finished(), "no change yet: still waiting");
    patch_ok(
        &app,
        "lp",
        json!({"additional_data": {"progress": {"completed": 1, "total": 2}}}),
    )
    .await;
    let (res, took) = waiter.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["additional_data"]["progress"]["completed"], 1);
    assert_eq!(body["progress"]["percent"], 50.0, "the derived progress");
    assert!(
        took < Duration::from_secs(20),
        "woken by the write, not the timeout"
    );
}

#[tokio::test]
async fn a_kill_wakes_a_waiter_and_terminal_tasks_answer_at_once() {
    let app = spawn_app().await;
    app.create_processing("k").await;
    let waiter = waiting_get(&app, "k", None, "?wait=30").await;
    let res = app.send(Method::DELETE, "/v1/tasks/k", &app.key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (res, _) = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("woken by the kill")
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "CANCELED");

    // Terminal: no waiting, whatever the client holds.
    let started = Instant::now();
    let version = body["version"].to_string();
    let res = get_with(&app, "k", Some(&format!("\"{version}\"")), "?wait=30").await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = get_with(&app, "k", None, "?wait=30").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered at once"
    );
}

#[tokio::test]
async fn at_the_timeout_the_current_state_comes_back_and_waits_are_capped() {
    let app = spawn_app_with(|s| s.limits.max_wait_secs = 1).await;
    app.create_processing("t").await;

    // Held version unchanged at the timeout: 304 (the client's copy is current).
    let started = Instant::now();
    let res = get_with(&app, "t", Some("\"1\""), "?wait=0.5").await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert!(started.elapsed() >= Duration::from_millis(500), "waited");

    // No If-None-Match: the current state; a wait beyond the cap is cut to it (1 s here).
    let started = Instant::now();
    let res = get_with(&app, "t", None, "?wait=3600").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["version"], 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(30),
        "{took:?}"
    );

    // A stale held version answers at once, with the task.
    let started = Instant::now();
    patch_ok(&app, "t", json!({"description": "v2"})).await;
    let res = get_with(&app, "t", Some("\"1\""), "?wait=1").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_waiter_that_hangs_up_is_forgotten() {
    let app = spawn_app().await;
    app.create_processing("gone").await;
    let waiting = waiting_get(&app, "gone", Some("\"1\""), "?wait=30").await;
    // The client gives up: the server sees the connection close and forgets the wait.
    waiting.abort();
    until_waiting(&app, 0).await;
}

#[tokio::test]
async fn a_write_through_one_instance_wakes_a_waiter_on_another() {
    if crate::SHAPE != Shape::Production {
        // The embedded default is one process over one file; there is no other instance.
        return;
    }
    let a = spawn_app().await;
    let b = a.second_instance().await;
    a.create_processing("x").await;
    // B has read (and cached) version 1 before the change.
    assert_eq!(b.get_ok("x").await["version"], 1);
    for version in 2..=4u64 {
        let held = format!("\"{}\"", version - 1);
        let waiter = waiting_get(&b, "x", Some(&held), "?wait=30").await;
        assert!(!waiter.is_finished());
        patch_ok(&a, "x", json!({"additional_data": {"step": version}})).await;
        let (res, took) = waiter.await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["version"], version, "never an older version");
        assert_eq!(body["additional_data"]["step"], version);
        assert!(took < Duration::from_secs(20), "woken, not timed out");
        // Polling B again at once with what it just answered: nothing older comes back.
        let held = format!("\"{version}\"");
        let res = get_with(&b, "x", Some(&held), "?wait=0.2").await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    }
}

#[tokio::test]
async fn stopping_the_server_answers_waiting_long_polls_at_once() {
    let app = spawn_app().await;
    app.create_processing("s").await;
    let waiter = waiting_get(&app, "s", Some("\"1\""), "?wait=60").await;
    let started = Instant::now();
    // Joins the server: returns only once in-flight requests have drained.
    app.stop().await;
    let (res, _) = waiter.await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_MODIFIED,
        "the current state, at once"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the drain did not wait out the 60 s long-poll"
    );
}

#[tokio::test]
async fn if_none_match_star_never_waits_and_empty_list_elements_are_ignored() {
    let app = spawn_app().await;
    app.create_processing("star").await;
    let started = Instant::now();
    let res = get_with(&app, "star", Some("*"), "?wait=30").await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered at once"
    );
    let res = get_with(&app, "star", Some("\"1\", "), "").await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}
