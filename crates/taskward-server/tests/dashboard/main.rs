//! The dashboard in a real browser (SPEC: Dashboard): Debian's Chromium, headless, driven over
//! WebDriver against a real server (embedded shape: the page is the same over either shape,
//! and the API under it is tested on both by `tests/api` and `tests/api_production`).
//!
//! Every test ends with `finish()`, which fails on any console error the page logged (script
//! errors, failed loads, Content-Security-Policy violations) that the test did not cause on
//! purpose.

mod browser;
mod live;
mod pages;
mod sign_in;

use reqwest::Method;
use serde_json::{json, Value};
use taskward_testkit::{Shape, TestApp};

pub use browser::Browser;

/// A server for one test, with the key cache off so that a revoked key is refused at once.
pub async fn spawn_app() -> TestApp {
    TestApp::spawn_with(Shape::Embedded, |s| s.auth.key_cache_ttl_ms = 0).await
}

/// Creates a task with `body` (task_type defaults to thumbnail) through the API.
pub async fn create(app: &TestApp, key: &str, id: &str, body: Value) -> Value {
    let mut body = body;
    body["task_id"] = json!(id);
    if body.get("task_type").is_none() {
        body["task_type"] = json!("thumbnail");
    }
    let res = app
        .req(Method::POST, "/v1/tasks", key)
        .json(&body)
        .send()
        .await
        .expect("create");
    assert!(res.status().is_success(), "create {id}: {}", res.status());
    res.json().await.expect("task")
}

/// PATCHes a task through the API and returns the response.
pub async fn patch(app: &TestApp, key: &str, id: &str, body: Value) -> Value {
    let res = app
        .req(Method::PATCH, &format!("/v1/tasks/{id}"), key)
        .json(&body)
        .send()
        .await
        .expect("patch");
    assert!(res.status().is_success(), "patch {id}: {}", res.status());
    res.json().await.expect("task")
}
