//! The client against a real taskward server (embedded shape, in this process, real HTTP on a
//! random port): every endpoint, the typed errors, conditional GET and long-poll, the
//! compare-and-set helpers under concurrent writers, and `wait_until_done`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskward_client::{
    Client, Conditional, Error, ListParams, ListTasksBody, OneOrMany, SortSpec, TaskStatus,
    UpdateTask,
};
use taskward_model::{CreateTask, Mode};
use taskward_testkit::{Shape, TestApp};

/// A real server (embedded shape) on a random port; stopped and joined when dropped, so a
/// panic inside the server fails the test.
async fn start() -> TestApp {
    TestApp::spawn(Shape::Embedded).await
}

/// The typed client with the server's all-scopes key (organisation `acme`, test mode).
fn client(app: &TestApp) -> Client {
    Client::new(&app.base, &app.key).expect("client")
}

fn new_task(id: &str, status: &str, extra: Value) -> CreateTask {
    let mut body = json!({"task_id": id, "task_type": "thumbnail", "status": status});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(body).expect("a valid create")
}

fn patch(v: Value) -> UpdateTask {
    serde_json::from_value(v).expect("a valid patch")
}

fn ids(tasks: &[taskward_client::TaskResponse]) -> Vec<String> {
    tasks.iter().map(|t| t.task_id.to_string()).collect()
}

#[tokio::test]
async fn every_endpoint_round_trips_through_the_typed_client() {
    let app = start().await;
    let c = client(&app);
    assert_eq!(c.healthz().await.unwrap()["status"], "ok");

    let req = new_task(
        "t1",
        "PROCESSING",
        json!({"description": "d", "additional_data": {"job": "j1", "progress": {"completed": 1, "total": 4}}}),
    );
    let created = c.create(&req).await.unwrap();
    assert!(created.new);
    assert_eq!(created.task.version, 1);
    let again = c.create(&req).await.unwrap();
    assert!(!again.new, "an identical create is an idempotent 200");

    let got = c.get("t1").await.unwrap();
    assert_eq!(got.status, TaskStatus::Processing);
    assert_eq!(got.description.as_deref(), Some("d"));

    // Only the fields in the patch change: the others are not sent as nulls.
    let updated = c
        .update(
            "t1",
            &patch(json!({"additional_data": {"progress": {"completed": 2}}})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description.as_deref(), Some("d"));
    assert_eq!(
        Value::Object(updated.additional_data.clone().unwrap()),
        json!({"job": "j1", "progress": {"completed": 2, "total": 4}})
    );

    for i in 0..6 {
        c.create(&new_task(&format!("p{i}"), "PENDING", json!({})))
            .await
            .unwrap();
    }
    c.create(&new_task("completed", "COMPLETED", json!({})))
        .await
        .unwrap();

    // GET /v1/tasks: active only, newest first, paged.
    let page1 = c.list_active(&ListParams::page(1, 4)).await.unwrap();
    assert_eq!(ids(&page1.results), ["p5", "p4", "p3", "p2"]);
    assert!(page1.pagination.next_page.is_some());
    let page2 = c.list_active(&ListParams::page(2, 4)).await.unwrap();
    assert_eq!(ids(&page2.results), ["p1", "p0", "t1"]);
    assert!(page2.pagination.next_page.is_none());

    // POST /v1/tasks/list: status, type, search, sort, totals.
    let body = ListTasksBody {
        status: Some(OneOrMany::Many(vec![
            TaskStatus::Completed,
            TaskStatus::Processing,
        ])),
        task_type: Some(OneOrMany::One("thumbnail".into())),
        sort: Some(SortSpec {
            field: "task_id".into(),
            direction: Some("asc".into()),
        }),
        ..ListTasksBody::default()
    };
    let listed = c
        .list(
            &body,
            &ListParams {
                include_total: Some(true),
                ..ListParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&listed.results), ["completed", "t1"]);
    assert_eq!(listed.pagination.total, Some(2));
    let searched = ListTasksBody {
        search: Some("P3".into()),
        ..ListTasksBody::default()
    };
    assert_eq!(
        ids(&c
            .list(&searched, &ListParams::default())
            .await
            .unwrap()
            .results),
        ["p3"]
    );

    // Following the cursor three at a time visits every task once, newest first.
    let all = c
        .list_all(&ListTasksBody::default(), 3, None)
        .await
        .unwrap();
    assert_eq!(
        ids(&all),
        ["completed", "p5", "p4", "p3", "p2", "p1", "p0", "t1"]
    );
    let first5 = c
        .list_all(&ListTasksBody::default(), 3, Some(5))
        .await
        .unwrap();
    assert_eq!(ids(&first5), ["completed", "p5", "p4", "p3", "p2"]);

    // Kill cancels an active task, and is idempotent.
    let killed = c.kill("p0").await.unwrap();
    assert!(killed.success);
    assert_eq!(c.get("p0").await.unwrap().status, TaskStatus::Canceled);
    assert!(c.kill("p0").await.unwrap().success);
    assert!(c.kill("never-existed").await.unwrap().success);
    app.stop().await;
}

#[tokio::test]
async fn api_errors_are_typed_and_carry_the_error_body() {
    let app = start().await;
    let c = client(&app);
    c.create(&new_task("e1", "PROCESSING", json!({})))
        .await
        .unwrap();

    // 401: a well-formed key nobody minted.
    let stranger = Client::new(&app.base, "sk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let e = stranger.get("e1").await.unwrap_err();
    assert!(e.is_unauthorized(), "{e:?}");
    assert_eq!(e.body().unwrap().status, 401);
    assert!(!e.body().unwrap().success);

    // 403: a read-only key cannot create.
    let reader = Client::new(&app.base, &app.key_for("acme", Mode::Test, "read").await).unwrap();
    let e = reader
        .create(&new_task("e2", "PENDING", json!({})))
        .await
        .unwrap_err();
    assert!(e.is_forbidden(), "{e:?}");
    assert_eq!(e.code(), Some("missing_scope"));

    // 404.
    let e = c.get("missing").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.code(), Some("task_not_found"));
    assert_eq!(e.to_string(), "task not found (404 not_found)");

    // 422 names the field.
    let bad_sort = ListTasksBody {
        sort: Some(SortSpec {
            field: "colour".into(),
            direction: None,
        }),
        ..ListTasksBody::default()
    };
    let e = c.list(&bad_sort, &ListParams::default()).await.unwrap_err();
    assert!(e.is_validation(), "{e:?}");
    assert_eq!(
        e.body().unwrap().error.details.as_ref().unwrap()["field"],
        "sort.field"
    );
    let e = c.list_active(&ListParams::page(1, 5000)).await.unwrap_err();
    assert_eq!(e.status(), Some(422));

    // 412: If-Match on a stale version, with the current version in the details.
    c.update("e1", &patch(json!({"description": "x"})), None)
        .await
        .unwrap();
    let e = c
        .update_if("e1", 1, &patch(json!({"status": "FAILED"})))
        .await
        .unwrap_err();
    assert!(e.is_version_mismatch(), "{e:?}");
    assert_eq!(e.current_version(), Some(2));
    assert_eq!(c.get("e1").await.unwrap().status, TaskStatus::Processing);

    // 409: a terminal task refuses change; a create reusing an id with other content too.
    c.update_if("e1", 2, &patch(json!({"status": "COMPLETED"})))
        .await
        .unwrap();
    let e = c
        .update("e1", &patch(json!({"status": "FAILED"})), None)
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
    let e = c
        .create(&new_task("e1", "PENDING", json!({})))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e:?}");

    // Refused before sending: an id outside the alphabet cannot reach another path.
    let e = c.get("../healthz").await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(Client::new("not a url", &app.key).is_err());

    // A server that is not there: a transport error, worth retrying.
    let gone = Client::new("http://127.0.0.1:9", &app.key).unwrap();
    let e = gone.get("e1").await.unwrap_err();
    assert!(
        matches!(e, Error::Transport(_)) && e.is_retryable(),
        "{e:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn get_if_changed_answers_304_waits_for_a_change_and_times_out() {
    let app = start().await;
    let c = client(&app);
    c.create(&new_task("lp", "PROCESSING", json!({})))
        .await
        .unwrap();

    // No wait: 304 for the held version, the task for another.
    assert!(matches!(
        c.get_if_changed("lp", 1, Duration::ZERO).await.unwrap(),
        Conditional::NotModified
    ));
    match c.get_if_changed("lp", 7, Duration::ZERO).await.unwrap() {
        Conditional::Changed(t) => assert_eq!(t.version, 1),
        other => panic!("{other:?}"),
    }

    // Nothing changes: 304 once the wait is over, not before.
    let started = Instant::now();
    let r = c
        .get_if_changed("lp", 1, Duration::from_millis(400))
        .await
        .unwrap();
    assert!(matches!(r, Conditional::NotModified));
    assert!(started.elapsed() >= Duration::from_millis(350));

    // A write during the wait answers it with the new version, long before the timeout.
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.update(
                "lp",
                &patch(json!({"additional_data": {"progress": {"completed": 1, "total": 2}}})),
                None,
            )
            .await
            .unwrap();
        })
    };
    let started = Instant::now();
    match c
        .get_if_changed("lp", 1, Duration::from_secs(20))
        .await
        .unwrap()
    {
        Conditional::Changed(t) => {
            assert_eq!(t.version, 2);
            assert_eq!(t.additional_data.unwrap()["progress"]["completed"], 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    writer.await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn update_with_retries_until_every_concurrent_increment_lands() {
    let app = start().await;
    let c = client(&app);
    c.create(&new_task(
        "cas",
        "PROCESSING",
        json!({"additional_data": {"n": 0}}),
    ))
    .await
    .unwrap();

    // Four writers, five read-modify-write increments each. A writer loses a round only when
    // another wins one, so it loses at most 15 times in a row: under the 16 attempts allowed.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    c.update_with("cas", |t| {
                        let n = t.additional_data.as_ref()?["n"].as_u64()?;
                        Some(patch(json!({"additional_data": {"n": n + 1}})))
                    })
                    .await
                    .expect("update_with");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let t = c.get("cas").await.unwrap();
    assert_eq!(t.additional_data.unwrap()["n"], 20, "no increment lost");
    assert_eq!(t.version, 21);

    // `None` from the closure leaves the task alone.
    let same = c.update_with("cas", |_| None).await.unwrap();
    assert_eq!(same.version, 21);
    app.stop().await;
}

#[tokio::test]
async fn watch_yields_each_change_and_wait_until_done_returns_the_end() {
    let app = start().await;
    let c = client(&app);
    c.create(&new_task("w", "PENDING", json!({})))
        .await
        .unwrap();

    let mut watch = c.watch("w").unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap().version, 1);
    let producer = {
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            c.update("w", &patch(json!({"status": "PROCESSING"})), None)
                .await
                .unwrap();
        })
    };
    let second = watch.next().await.unwrap().unwrap();
    assert_eq!((second.version, second.status), (2, TaskStatus::Processing));
    producer.await.unwrap();

    // A producer reports progress, then completes; the waiter sees the end.
    let producer = {
        let c = c.clone();
        tokio::spawn(async move {
            for done in [1, 2, 3] {
                tokio::time::sleep(Duration::from_millis(100)).await;
                c.update(
                    "w",
                    &patch(
                        json!({"additional_data": {"progress": {"completed": done, "total": 3}}}),
                    ),
                    None,
                )
                .await
                .unwrap();
            }
            c.update("w", &patch(json!({"status": "COMPLETED"})), None)
                .await
                .unwrap();
        })
    };
    let done = c
        .wait_until_done("w", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.version, 6);
    producer.await.unwrap();

    // After a terminal state the watch is over.
    let mut watch = c.watch("w").unwrap();
    assert!(watch.next().await.unwrap().unwrap().status.is_terminal());
    assert!(watch.next().await.unwrap().is_none());

    // Nothing happens: a timeout carrying the last state seen.
    c.create(&new_task("idle", "PROCESSING", json!({})))
        .await
        .unwrap();
    let started = Instant::now();
    match c
        .wait_until_done("idle", Duration::from_millis(300))
        .await
        .unwrap_err()
    {
        Error::Timeout { last: Some(t) } => assert_eq!(t.status, TaskStatus::Processing),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    let e = c
        .wait_until_done("nope", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    app.stop().await;
}

#[tokio::test]
async fn wait_until_done_also_works_against_a_server_that_answers_at_once() {
    // `max_wait_secs = 0` cuts every `?wait=` to nothing, as a server without long-poll
    // behaves: the client must still reach the end, polling at its minimum interval.
    let app = TestApp::spawn_with(Shape::Embedded, |s| s.limits.max_wait_secs = 0).await;
    let c = Client::builder(&app.base)
        .api_key(&app.key)
        .min_poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    c.create(&new_task("poll", "PROCESSING", json!({})))
        .await
        .unwrap();
    let producer = {
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.update(
                "poll",
                &patch(json!({"status": "FAILED", "additional_data": {"error": "disk full"}})),
                None,
            )
            .await
            .unwrap();
        })
    };
    let started = Instant::now();
    let done = c
        .wait_until_done("poll", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(done.error_message.as_deref(), Some("disk full"));
    assert!(started.elapsed() >= Duration::from_millis(450));
    producer.await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn history_counts_and_event_streams_that_resume_by_themselves() {
    // A small lag limit and large events: a stream whose reader pauses is ended by the server.
    let app = TestApp::spawn_with(Shape::Embedded, |s| s.events.stream_lag_limit = 8).await;
    let c = client(&app);
    let big = "x".repeat(128 * 1024);
    c.create(&new_task("e1", "PENDING", json!({"description": big})))
        .await
        .unwrap();
    let mut tenant = c.tenant_events(&taskward_client::EventFilter::default(), None);
    let mut one = c
        .task_events("e1", Some(taskward_client::EventId(0)))
        .unwrap();
    let first = one.next().await.unwrap().unwrap();
    assert_eq!(first.kind, taskward_client::EventType::Created);
    assert_eq!(first.task.task_id.as_str(), "e1");

    // The tenant stream connects on its first call; give it one event to see it is live.
    let first_live = tokio::spawn(async move {
        let e = tenant.next().await.unwrap().unwrap();
        (tenant, e)
    });
    let mut sent = 0;
    while !first_live.is_finished() {
        sent += 1;
        c.update("e1", &patch(json!({"additional_data": {"n": sent}})), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut tenant, e) = first_live.await.unwrap();
    let mut seen = vec![e.task.version];
    // The reader now pauses while 200 more changes are made: the server ends its stream; the
    // client reconnects from the last event it returned and misses nothing.
    for i in 0..200 {
        c.update("e1", &patch(json!({"additional_data": {"m": i}})), None)
            .await
            .unwrap();
    }
    let last_version = c.get("e1").await.unwrap().version;
    while *seen.last().unwrap() < last_version {
        let e = tokio::time::timeout(Duration::from_secs(10), tenant.next())
            .await
            .expect("resumed")
            .unwrap()
            .unwrap();
        seen.push(e.task.version);
    }
    let expected: Vec<u64> = (seen[0]..=last_version).collect();
    assert_eq!(
        seen, expected,
        "every version once, in order, across the reconnects"
    );

    c.update("e1", &patch(json!({"status": "COMPLETED"})), None)
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while let Some(e) = one.next().await.unwrap() {
        kinds.push(e.kind);
    }
    assert_eq!(kinds.last(), Some(&taskward_client::EventType::Completed));
    assert_eq!(
        kinds.len() as u64,
        last_version,
        "every update, then the end"
    );

    let history = c.history("e1").await.unwrap();
    assert_eq!(history.events.len() as u64, last_version + 1);
    assert_eq!(history.events[0].kind, taskward_client::EventType::Created);
    let counts = c.counts(Some("thumbnail")).await.unwrap();
    assert_eq!(counts.by_status.get("COMPLETED"), Some(&1));
    match c.history("nope").await {
        Err(Error::Api { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
}
