//! Webhooks over real HTTP, both ways: the management API, and deliveries to a real receiver
//! (an HTTP server inside the test) whose signatures are verified with an independent
//! implementation of Standard Webhooks (the `standardwebhooks` crate).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskward_model::Mode;
use taskward_server::Settings;
use taskward_testkit::{Answer, Hit, Receiver};

use crate::support::{assert_error, spawn_app_with, TestApp};

/// Asserts an error response of `status` with `error.code` = `code`; returns its body.
async fn refused(res: reqwest::Response, status: u16, code: &str) -> Value {
    let body = assert_error(res, StatusCode::from_u16(status).unwrap()).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

const WAIT: Duration = Duration::from_secs(15);

/// Deliveries to the test's own receivers, retried quickly.
fn quick(s: &mut Settings) {
    s.webhooks.allow_private_networks = true;
    s.webhooks.retry_schedule_seconds = vec![0.2, 0.2];
    s.webhooks.poll_interval_ms = 100;
}

async fn app() -> TestApp {
    spawn_app_with(quick).await
}

/// Registers an endpoint; returns its body (with the secret).
async fn create_webhook(app: &TestApp, url: &str, events: Value) -> Value {
    let res = app
        .req(Method::POST, "/v1/webhooks", &app.key)
        .json(&json!({"url": url, "events": events, "description": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

async fn json_of(app: &TestApp, method: Method, path: &str) -> (StatusCode, Value) {
    let res = app.send(method, path, &app.key).await;
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The deliveries log of an endpoint.
async fn deliveries(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = json_of(app, Method::GET, &format!("/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"].as_array().unwrap().clone()
}

/// Waits until the endpoint's newest delivery is in `state`.
async fn settled(app: &TestApp, id: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let d = deliveries(app, id).await;
        if d.first().is_some_and(|d| d["state"] == state) {
            return d[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "never {state}: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn verify(secret: &str, hit: &Hit) {
    let wh = standardwebhooks::Webhook::new(secret).expect("secret");
    wh.verify(&hit.body, &hit.headers)
        .unwrap_or_else(|e| panic!("signature does not verify with {secret}: {e:?}"));
}

async fn complete(app: &TestApp, id: &str) {
    app.create_processing(id).await;
    let res = app
        .patch(
            &app.key,
            id,
            json!({"status": "COMPLETED", "outputs": [{"n": 1}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_completed_task_is_delivered_signed_and_logged() {
    let app = app().await;
    let receiver = Receiver::start(Answer::Status(204)).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.completed"])).await;
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{hook}");
    let id = hook["webhook_id"].as_str().unwrap();
    complete(&app, "wh-done").await;

    let hits = receiver.wait_hits(1, WAIT).await;
    let hit = &hits[0];
    verify(secret, hit);
    let body = hit.json();
    assert_eq!(body["type"], "task.completed");
    assert_eq!(body["data"]["task_id"], "wh-done");
    assert_eq!(body["data"]["status"], "COMPLETED");
    assert_eq!(body["data"]["outputs"], json!([{"n": 1}]));
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(hit.header("content-type"), "application/json");

    let d = settled(&app, id, "delivered").await;
    assert_eq!(d["delivery_id"], hit.header("webhook-id"));
    assert_eq!(d["type"], "task.completed");
    assert_eq!(d["task_id"], "wh-done");
    assert_eq!(d["event_id"], body["data"]["event_id"]);
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(d["attempts"][0]["status_code"], 204);
    assert!(d["next_attempt_at"].is_null());

    // The create and the move to PROCESSING were not asked for: one delivery only.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.hits().len(), 1);
    assert_eq!(deliveries(&app, id).await.len(), 1);
    // The secret is shown at creation only.
    let (_, got) = json_of(&app, Method::GET, &format!("/v1/webhooks/{id}")).await;
    let (_, list) = json_of(&app, Method::GET, "/v1/webhooks").await;
    assert!(!got.to_string().contains(secret) && got.get("secret").is_none());
    assert!(!list.to_string().contains(secret));
    assert_eq!(list["results"][0]["webhook_id"], id);
    assert_eq!(got["events"], json!(["task.completed"]));
    assert_eq!(got["disabled"], false);
}

#[tokio::test]
async fn failed_attempts_are_retried_with_the_same_id_until_the_schedule_ends() {
    let app = app().await;
    // Fails twice, then takes it.
    let flaky = Receiver::start(Answer::Sequence(vec![500, 503, 200])).await;
    // Never takes it.
    let broken = Receiver::start(Answer::Status(500)).await;
    let a = create_webhook(&app, &flaky.url, json!(["task.created"])).await;
    let b = create_webhook(&app, &broken.url, json!(["task.created"])).await;
    app.create_processing("wh-retry").await;

    let hits = flaky.wait_hits(3, WAIT).await;
    let ids: Vec<&str> = hits.iter().map(|h| h.header("webhook-id")).collect();
    // One delivery, tried three times under one id.
    let first = ids[0];
    assert!(ids.iter().all(|i| *i == first), "{ids:?}");
    let d = settled(&app, a["webhook_id"].as_str().unwrap(), "delivered").await;
    let all = deliveries(&app, a["webhook_id"].as_str().unwrap()).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let retried = all.iter().find(|d| d["delivery_id"] == first).unwrap();
    let codes: Vec<&Value> = retried["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(503), &json!(200)]);
    assert!(retried["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .contains("500"));
    assert_eq!(retried["attempts"][0]["response_body"], "answered 500");
    assert_eq!(d["state"], "delivered");

    // The schedule has two retries: three attempts, then failed, and it stays visible.
    let d = settled(&app, b["webhook_id"].as_str().unwrap(), "failed").await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 3, "{d}");
    assert!(d["next_attempt_at"].is_null());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let hits = broken.hits();
    assert_eq!(hits.len(), 3);
    assert!(hits
        .iter()
        .all(|h| h.header("webhook-id") == d["delivery_id"]));
}

#[tokio::test]
async fn a_receiver_that_hangs_is_given_up_on_at_the_timeout_and_retried() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.webhooks.timeout_ms = 300;
        s.webhooks.retry_schedule_seconds = vec![0.1];
    })
    .await;
    let receiver = Receiver::start(Answer::Hang).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.created"])).await;
    let started = std::time::Instant::now();
    let res = app
        .create(
            &app.key,
            json!({"task_id": "wh-hang", "task_type": "thumbnail"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let d = settled(&app, hook["webhook_id"].as_str().unwrap(), "failed").await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{d}");
    for a in attempts {
        assert!(a["status_code"].is_null(), "{a}");
        assert!(a["error"].as_str().unwrap().contains("timed out"), "{a}");
        assert!(a["duration_ms"].as_u64().unwrap() >= 250, "{a}");
    }
    assert_eq!(receiver.hits().len(), 2);
    assert!(started.elapsed() < WAIT);
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign() {
    let app = app().await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.created"])).await;
    let id = hook["webhook_id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap();
    let (status, rotated) = json_of(
        &app,
        Method::POST,
        &format!("/v1/webhooks/{id}/rotate-secret"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let new = rotated["secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != old);
    assert_eq!(rotated["webhook_id"], id);

    app.create_processing("wh-rotate").await;
    let hits = receiver.wait_hits(1, WAIT).await;
    assert_eq!(hits[0].header("webhook-signature").split(' ').count(), 2);
    verify(new, &hits[0]);
    verify(old, &hits[0]);
    let stranger = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let wh = standardwebhooks::Webhook::new(stranger).unwrap();
    assert!(wh.verify(&hits[0].body, &hits[0].headers).is_err());
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_redelivery_sends_again_with_a_new_id() {
    let app = app().await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.created"])).await;
    let id = hook["webhook_id"].as_str().unwrap();
    app.create_processing("wh-gone").await;
    let first = receiver.wait_hits(1, WAIT).await[0].clone();
    let delivered = settled(&app, id, "delivered").await;

    // Redeliver: a new delivery, a new webhook-id, the same event.
    let path = format!(
        "/v1/webhooks/{id}/deliveries/{}/redeliver",
        delivered["delivery_id"].as_str().unwrap()
    );
    let (status, again) = json_of(&app, Method::POST, &path).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_ne!(again["delivery_id"], delivered["delivery_id"]);
    assert_eq!(again["event_id"], delivered["event_id"]);
    let hits = receiver.wait_hits(2, WAIT).await;
    assert_eq!(hits[1].header("webhook-id"), again["delivery_id"]);
    assert_eq!(hits[1].json()["data"], first.json()["data"]);

    // 410 Gone: the endpoint is disabled; nothing more is queued for it.
    receiver.answer(Answer::Status(410));
    app.create_processing("wh-gone-2").await;
    receiver.wait_hits(3, WAIT).await;
    let d = settled(&app, id, "failed").await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, got) = json_of(&app, Method::GET, &format!("/v1/webhooks/{id}")).await;
        if got["disabled"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = deliveries(&app, id).await.len();
    app.create_processing("wh-gone-3").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(deliveries(&app, id).await.len(), before);
    assert_eq!(receiver.hits().len(), 3);
    let res = app.send(Method::POST, &path, &app.key).await;
    refused(res, 409, "webhook_disabled").await;
}

#[tokio::test]
async fn a_deleted_endpoint_gets_nothing_more() {
    let app = app().await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let hook = create_webhook(&app, &receiver.url, json!(["*"])).await;
    let id = hook["webhook_id"].as_str().unwrap();
    let res = app
        .send(Method::DELETE, &format!("/v1/webhooks/{id}"), &app.key)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .send(Method::GET, &format!("/v1/webhooks/{id}"), &app.key)
        .await;
    refused(res, 404, "webhook_not_found").await;
    let res = app
        .send(Method::DELETE, &format!("/v1/webhooks/{id}"), &app.key)
        .await;
    refused(res, 404, "webhook_not_found").await;
    app.create_processing("wh-deleted").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.hits().is_empty());
    let (_, list) = json_of(&app, Method::GET, "/v1/webhooks").await;
    assert_eq!(list["results"], json!([]));
}

#[tokio::test]
async fn targets_on_private_networks_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]/",
        "https://no-such-host.invalid/hook",
    ] {
        let res = app
            .req(Method::POST, "/v1/webhooks", &app.key)
            .json(&json!({"url": url, "events": ["*"]}))
            .send()
            .await
            .unwrap();
        let body = refused(res, 422, "invalid_value").await;
        assert_eq!(body["error"]["details"]["field"], "url", "{url}: {body}");
    }
    let (_, list) = json_of(&app, Method::GET, "/v1/webhooks").await;
    assert_eq!(list["results"], json!([]));
}

#[tokio::test]
async fn bad_input_on_every_webhook_endpoint_is_a_clear_4xx_and_changes_nothing() {
    let app = app().await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.failed"])).await;
    let id = hook["webhook_id"].as_str().unwrap().to_owned();
    let post = |body: &str| {
        app.req(Method::POST, "/v1/webhooks", &app.key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let long_url =
        json!({"url": format!("https://example.com/{}", "a".repeat(3000)), "events": ["*"]});
    let long_description =
        json!({"url": "https://example.com", "events": ["*"], "description": "d".repeat(501)});
    let (long_url, long_description) = (long_url.to_string(), long_description.to_string());
    for (body, code) in [
        (long_url.as_str(), "invalid_value"),
        (long_description.as_str(), "invalid_value"),
        ("{", "invalid_json"),
        ("[]", "invalid_value"),
        (r#"{"events": ["*"]}"#, "invalid_value"),
        (r#"{"url": "https://example.com"}"#, "invalid_value"),
        (r#"{"url": 5, "events": ["*"]}"#, "invalid_value"),
        (
            r#"{"url": "https://example.com", "events": ["*"], "secret": "x"}"#,
            "invalid_value",
        ),
        (
            r#"{"url": "ftp://example.com", "events": ["*"]}"#,
            "invalid_value",
        ),
        (r#"{"url": "not a url", "events": ["*"]}"#, "invalid_value"),
        (
            r#"{"url": "https://u:p@example.com/", "events": ["*"]}"#,
            "invalid_value",
        ),
        (
            r#"{"url": "https://example.com", "events": []}"#,
            "invalid_value",
        ),
        (
            r#"{"url": "https://example.com", "events": ["task.done"]}"#,
            "invalid_value",
        ),
        (
            r#"{"url": "https://example.com", "events": ["*", "task.failed"]}"#,
            "invalid_value",
        ),
    ] {
        let res = post(body).await.unwrap();
        refused(res, 422, code).await;
    }
    let res = app
        .req(Method::POST, "/v1/webhooks", &app.key)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    refused(res, 415, "not_json").await;

    let d = format!("/v1/webhooks/{id}/deliveries");
    let redeliver = format!("/v1/webhooks/{id}/deliveries/msg_999999/redeliver");
    let every: Vec<(Method, String)> = vec![
        (Method::GET, "/v1/webhooks".into()),
        (Method::POST, "/v1/webhooks".into()),
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        (Method::GET, d.clone()),
        (Method::POST, redeliver.clone()),
    ];
    // A key without `admin`, of the same tenant: 403 everywhere, for a well-formed request.
    let worker = app.key_for("acme", Mode::Test, "read,write,cancel").await;
    let valid = json!({"url": "https://example.com/hook", "events": ["*"]});
    for (m, p) in &every {
        let res = app
            .req(m.clone(), p, &worker)
            .json(&valid)
            .send()
            .await
            .unwrap();
        refused(res, 403, "missing_scope").await;
        let res = app.send(m.clone(), p, "tw_test_nonsense").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{m} {p}");
    }
    // Another tenant's admin (and the same org's live mode): this endpoint does not exist.
    for key in [
        app.key_for("other", Mode::Test, "admin").await,
        app.key_for("acme", Mode::Live, "admin").await,
    ] {
        for (m, p) in &every[2..] {
            let res = app.send(m.clone(), p, &key).await;
            refused(res, 404, "webhook_not_found").await;
        }
        let (_, list) = {
            let res = app.send(Method::GET, "/v1/webhooks", &key).await;
            (res.status(), res.json::<Value>().await.unwrap())
        };
        assert_eq!(list["results"], json!([]));
    }
    // Malformed ids and queries.
    for (m, p, code) in [
        (Method::GET, "/v1/webhooks/nope".to_owned(), "invalid_value"),
        (
            Method::DELETE,
            "/v1/webhooks/wh_UPPER".to_owned(),
            "invalid_value",
        ),
        (
            Method::POST,
            "/v1/webhooks/wh_%FF/rotate-secret".to_owned(),
            "invalid_value",
        ),
        (Method::GET, format!("{d}?limit=0"), "invalid_value"),
        (Method::GET, format!("{d}?limit=501"), "invalid_value"),
        (Method::GET, format!("{d}?limit=ten"), "invalid_value"),
        (Method::GET, format!("{d}?state=lost"), "invalid_value"),
        (Method::GET, format!("{d}?before=42"), "invalid_value"),
        (Method::GET, format!("{d}?colour=red"), "invalid_value"),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/deliveries/42/redeliver"),
            "invalid_value",
        ),
        (Method::POST, redeliver.clone(), "delivery_not_found"),
        (
            Method::GET,
            "/v1/webhooks/wh_unknown0000".to_owned(),
            "webhook_not_found",
        ),
    ] {
        let res = app.send(m.clone(), &p, &app.key).await;
        let status = if code.ends_with("not_found") {
            404
        } else {
            422
        };
        refused(res, status, code).await;
    }
    let res = app
        .send(Method::PUT, &format!("/v1/webhooks/{id}"), &app.key)
        .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Nothing changed: the one endpoint, with no deliveries, still signing with its secret.
    let (_, list) = json_of(&app, Method::GET, "/v1/webhooks").await;
    assert_eq!(list["results"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["results"][0]["webhook_id"], id.as_str());
    assert!(deliveries(&app, &id).await.is_empty());
    let (status, page) = json_of(&app, Method::GET, &format!("{d}?limit=500&state=failed")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page, json!({"results": [], "has_more": false}));
}

#[tokio::test]
async fn deliveries_page_newest_first() {
    let app = app().await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.created"])).await;
    let id = hook["webhook_id"].as_str().unwrap();
    for i in 0..5 {
        let res = app
            .create(
                &app.key,
                json!({"task_id": format!("wh-page-{i}"), "task_type": "thumbnail"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    receiver.wait_hits(5, WAIT).await;
    let (_, first) = json_of(
        &app,
        Method::GET,
        &format!("/v1/webhooks/{id}/deliveries?limit=3"),
    )
    .await;
    assert_eq!(first["has_more"], true);
    let tasks: Vec<&str> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["wh-page-4", "wh-page-3", "wh-page-2"]);
    let before = first["results"][2]["delivery_id"].as_str().unwrap();
    let (_, rest) = json_of(
        &app,
        Method::GET,
        &format!("/v1/webhooks/{id}/deliveries?limit=3&before={before}"),
    )
    .await;
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["results"].as_array().unwrap().len(), 2);
    assert_eq!(rest["results"][1]["task_id"], "wh-page-0");
}

/// The event log is the outbox: an endpoint that hangs holds only as many deliveries as it may
/// have attempts in flight, whatever the writes; once it answers again it receives every event
/// it missed, in order, each once.
#[tokio::test]
async fn an_endpoint_that_hangs_holds_a_few_rows_and_later_gets_its_whole_backlog_in_order() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.webhooks.timeout_ms = 300;
        s.webhooks.retry_schedule_seconds = vec![0.2; 30];
        s.webhooks.per_endpoint_concurrency = 1;
        s.webhooks.max_pending_per_endpoint = 3;
    })
    .await;
    let receiver = Receiver::start(Answer::Hang).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.created"])).await;
    let id = hook["webhook_id"].as_str().unwrap();
    for i in 0..40 {
        let res = app
            .create(
                &app.key,
                json!({"task_id": format!("bl-{i:02}"), "task_type": "thumbnail"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    // While it hangs, attempts go on (retries and new deliveries), and the endpoint holds at
    // most 3 rows: the rest of its 40 events wait in the log.
    receiver.wait_hits(12, WAIT).await;
    let (status, body) = json_of(
        &app,
        Method::GET,
        &format!("/v1/webhooks/{id}/deliveries?limit=100"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rows = body["results"].as_array().unwrap();
    assert!(
        !rows.is_empty() && rows.len() <= 3,
        "a hanging endpoint holds {} rows",
        rows.len()
    );
    assert!(rows.iter().all(|d| d["state"] == "pending"), "{rows:?}");
    let metrics = app.public_text("/metrics").await;
    assert!(metrics.contains("taskward_webhook_pending"), "{metrics}");

    receiver.answer(Answer::Status(204));
    let deadline = std::time::Instant::now() + WAIT;
    let delivered = loop {
        let (status, body) = json_of(
            &app,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries?limit=100&state=delivered"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let d = body["results"].as_array().unwrap().clone();
        if d.len() == 40 {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 40 delivered",
            d.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Each task's event once, and (newest first) in the order the tasks were written.
    let tasks: Vec<&str> = delivered
        .iter()
        .rev()
        .map(|d| d["task_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..40).map(|i| format!("bl-{i:02}")).collect();
    assert_eq!(tasks, expected);
    let events: Vec<u64> = delivered
        .iter()
        .rev()
        .map(|d| d["event_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(events.windows(2).all(|w| w[0] < w[1]), "{events:?}");
}

/// An endpoint receives the events after its creation, not its tenant's history; and a long
/// run of events its selection does not want is passed over, not a wall.
#[tokio::test]
async fn an_endpoint_gets_only_later_events_and_passes_over_unwanted_ones() {
    let app = app().await;
    complete(&app, "before").await;
    let receiver = Receiver::start(Answer::Status(200)).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.completed"])).await;
    let id = hook["webhook_id"].as_str().unwrap();
    app.create_processing("busy").await;
    for n in 0..300 {
        let res = app
            .patch(&app.key, "busy", json!({"additional_data": {"n": n}}))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    complete(&app, "after").await;
    let hits = receiver.wait_hits(1, WAIT).await;
    assert_eq!(hits[0].json()["data"]["task_id"], "after");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.hits().len(),
        1,
        "an event from before the endpoint was sent"
    );
    let d = deliveries(&app, id).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["task_id"], "after");
}

/// An endpoint that fails puts its deliveries into backoff; the first one it accepts again
/// brings the others forward, so they do not wait out their retry delay.
#[tokio::test]
async fn retries_come_forward_when_the_endpoint_accepts_again() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.webhooks.retry_schedule_seconds = vec![60.0];
        s.webhooks.per_endpoint_concurrency = 1;
    })
    .await;
    let receiver = Receiver::start(Answer::Status(503)).await;
    let hook = create_webhook(&app, &receiver.url, json!(["task.created"])).await;
    let id = hook["webhook_id"].as_str().unwrap();
    for t in ["back-1", "back-2"] {
        let res = app
            .create(&app.key, json!({"task_id": t, "task_type": "thumbnail"}))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    receiver.wait_hits(2, WAIT).await;
    receiver.answer(Answer::Status(200));
    // Both wait a minute for their retry; a new event that goes through brings them forward.
    let res = app
        .create(
            &app.key,
            json!({"task_id": "back-3", "task_type": "thumbnail"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let started = std::time::Instant::now();
    let deadline = started + WAIT;
    loop {
        let (_, body) = json_of(
            &app,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries?state=delivered"),
        )
        .await;
        if body["results"].as_array().unwrap().len() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retries stayed in their 60 s backoff: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tasks: Vec<String> = receiver
        .hits()
        .iter()
        .map(|h| h.json()["data"]["task_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tasks.len(), 5, "{tasks:?}");
}
