//! Concurrent writers, and a durable tier that cannot take writes.

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{assert_error, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_under_contention_lets_exactly_one_writer_win() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "t1", "task_type": "thumbnail"}))
        .await;
    let attempts = (0..32).map(|i| {
        let body = json!({"status": "PROCESSING", "additional_data": {"writer": i}});
        app.patch_if_match("t1", "\"1\"", body)
    });
    let results = join_all(attempts).await;
    let mut winners = Vec::new();
    for (i, res) in results.into_iter().enumerate() {
        match res.status() {
            StatusCode::OK => winners.push(i),
            StatusCode::PRECONDITION_FAILED => {
                assert_error(res, StatusCode::PRECONDITION_FAILED).await;
            }
            other => panic!("writer {i}: unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one 200: {winners:?}");
    let t = app.get_ok("t1").await;
    assert_eq!(t["version"], 2);
    assert_eq!(t["additional_data"]["writer"], winners[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_merges_without_if_match_lose_no_key() {
    let app = spawn_app().await;
    app.create_processing("t1").await;
    let writes = (0..32).map(|i| {
        app.patch(
            &app.key,
            "t1",
            json!({"additional_data": {format!("k{i}"): i}}),
        )
    });
    for res in join_all(writes).await {
        assert_eq!(res.status(), StatusCode::OK);
    }
    let t = app.get_ok("t1").await;
    let data = t["additional_data"].as_object().unwrap();
    assert_eq!(data.len(), 32, "{data:?}");
    assert_eq!(t["version"], 33, "one version per write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_transition_racing_a_kill_has_one_winner_that_sticks() {
    let app = spawn_app().await;
    for round in 0..10 {
        let id = format!("r{round}");
        app.create_processing(&id).await;
        let complete = app.patch(&app.key, &id, json!({"status": "COMPLETED"}));
        let kill = app
            .req(Method::DELETE, &format!("/v1/tasks/{id}"), &app.key)
            .send();
        let (c, k) = tokio::join!(complete, kill);
        assert_eq!(k.unwrap().status(), StatusCode::OK);
        let t = app.get_ok(&id).await;
        let final_status = t["status"].as_str().unwrap().to_owned();
        match c.status() {
            StatusCode::OK => assert_eq!(final_status, "COMPLETED", "{id}"),
            StatusCode::CONFLICT => assert_eq!(final_status, "CANCELED", "{id}"),
            other => panic!("{id}: {other}"),
        }
        assert_eq!(t["version"], 2, "{id}: exactly one terminal write");
    }
}

#[tokio::test]
async fn writes_answer_503_while_the_durable_tier_is_locked_and_reads_keep_working() {
    let app = spawn_app_with(|s| s.durable.timeout_ms = 300).await;
    app.create_processing("t1").await;
    let before = app.get_ok("t1").await;

    // Another client holding the durable tier's write lock: a real fault, not a mock.
    let lock = app.lock_durable_writes().await;

    let res = app.patch(&app.key, "t1", json!({"status": "FAILED"})).await;
    assert_eq!(res.headers()["retry-after"], "1");
    let b = assert_error(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(b["error"]["type"], "unavailable");
    assert_error(
        app.create(&app.key, json!({"task_type": "thumbnail"}))
            .await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    // Reads are served meanwhile (hot tier; readers are not blocked by the lock either).
    assert_eq!(app.get_ok("t1").await, before);
    let res = app.list(&app.key, "", json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);

    lock.release().await;
    let res = app.patch(&app.key, "t1", json!({"status": "FAILED"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["version"], 2, "the refused write left no trace");
}
