//! Two instances on one PostgreSQL claim from one outbox: each attempt is made by one of them,
//! never by both.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use taskward_testkit::{Answer, Receiver};

use crate::support::spawn_app_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_make_the_same_attempt_twice() {
    let a = spawn_app_with(|s| {
        s.webhooks.allow_private_networks = true;
        s.webhooks.poll_interval_ms = 10;
        s.webhooks.retry_schedule_seconds = vec![0.05, 0.05];
    })
    .await;
    let b = a.second_instance().await;
    // The first attempt of each delivery fails, so retries (claimed again, maybe by the other
    // instance) are part of the race too.
    let receiver = Receiver::start(Answer::FirstOfEachFails).await;
    let res = a
        .req(reqwest::Method::POST, "/v1/webhooks", &a.key)
        .json(&json!({"url": receiver.url, "events": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let hook: serde_json::Value = res.json().await.unwrap();
    let id = hook["webhook_id"].as_str().unwrap().to_owned();

    let n = 120;
    for i in 0..n {
        let app = if i % 2 == 0 { &a } else { &b };
        let res = app
            .create(
                &a.key,
                json!({"task_id": format!("race-{i}"), "task_type": "thumbnail"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    // Every delivery ends delivered (a failed attempt is retried); then count attempts.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let log = loop {
        let res = a
            .send(
                reqwest::Method::GET,
                &format!("/v1/webhooks/{id}/deliveries?limit=500"),
                &a.key,
            )
            .await;
        let body: serde_json::Value = res.json().await.unwrap();
        let results = body["results"].as_array().unwrap().clone();
        if results.len() == n && results.iter().all(|d| d["state"] == "delivered") {
            break results;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for hit in receiver.hits() {
        *per_id
            .entry(hit.header("webhook-id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), n);
    for d in &log {
        let attempts = d["attempts"].as_array().unwrap().len();
        let sent = per_id[d["delivery_id"].as_str().unwrap()];
        // As many requests as recorded attempts, two each: none made twice, none unrecorded.
        assert_eq!((sent, attempts), (2, 2), "{d}");
    }
    drop(b);
}
