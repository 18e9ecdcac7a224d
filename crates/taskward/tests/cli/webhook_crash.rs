//! Webhooks survive a crash: `taskward serve` is SIGKILLed while its deliveries are in flight
//! (claimed, the receiver not answering); restarted on the same data, it delivers every one of
//! them once their claims run out.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use taskward_testkit::{Answer, Receiver};

use crate::support::Serve;

fn start(data: &Path) -> Serve {
    Serve::start(data, data, |cmd| {
        cmd.env("TASKWARD_WEBHOOKS__ALLOW_PRIVATE_NETWORKS", "true")
            .env("TASKWARD_WEBHOOKS__TIMEOUT_MS", "500")
            .env(
                "TASKWARD_WEBHOOKS__RETRY_SCHEDULE_SECONDS",
                "[0.2, 0.2, 0.2]",
            )
            .env("TASKWARD_WEBHOOKS__POLL_INTERVAL_MS", "100");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_in_flight_at_a_sigkill_are_delivered_after_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(Answer::Hang).await;
    let mut serve = start(dir.path());
    serve.wait_healthy(Duration::from_secs(10)).await;
    let key = serve.first_key().await;
    let http = reqwest::Client::new();
    let res = http
        .post(serve.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url, "events": ["task.created"]}))
        .send()
        .await
        .expect("create webhook");
    assert_eq!(res.status(), 201);
    let hook: Value = res.json().await.expect("json");
    let hook_id = hook["webhook_id"].as_str().expect("id").to_owned();
    for i in 0..3 {
        let res = http
            .post(serve.url("/v1/tasks"))
            .bearer_auth(&key)
            .json(&json!({"task_id": format!("crash-{i}"), "task_type": "thumbnail"}))
            .send()
            .await
            .expect("create task");
        assert_eq!(res.status(), 201);
    }
    // Every delivery is being attempted (the receiver holds the requests): kill the server.
    let in_flight = receiver.wait_hits(3, Duration::from_secs(10)).await;
    let ids: HashSet<String> = in_flight
        .iter()
        .map(|h| h.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    serve.kill();

    receiver.answer(Answer::Status(200));
    let serve = start(dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut serve = serve;
    serve.wait_healthy(Duration::from_secs(10)).await;
    let log = loop {
        let res = http
            .get(serve.url(&format!("/v1/webhooks/{hook_id}/deliveries")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("deliveries");
        let body: Value = res.json().await.expect("json");
        let results = body["results"].as_array().expect("results").clone();
        if results.len() == 3 && results.iter().all(|d| d["state"] == "delivered") {
            break results;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for d in &log {
        assert!(ids.contains(d["delivery_id"].as_str().expect("id")), "{d}");
    }
    // Each was sent again under its own id after the restart, and taken.
    let after: Vec<String> = receiver.hits()[3..]
        .iter()
        .map(|h| h.header("webhook-id").to_owned())
        .collect();
    assert_eq!(after.iter().collect::<HashSet<_>>().len(), 3, "{after:?}");
}
