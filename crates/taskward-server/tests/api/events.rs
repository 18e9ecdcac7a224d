//! Events over real HTTP: history, counts, typed progress, and the server-sent event streams
//! (replay, live, the seam between them, filters, the end of a task's stream, bad input).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskward_model::Mode;

use crate::support::{assert_error, spawn_app, spawn_app_with, TestApp};

/// One message of an event stream.
#[derive(Debug, Clone)]
struct Message {
    id: String,
    event: String,
    data: Value,
}

/// A stream being read: what arrived and is not consumed yet.
struct Stream {
    res: reqwest::Response,
    buf: String,
}

impl Stream {
    async fn open(app: &TestApp, path: &str, key: &str, last_event_id: Option<&str>) -> Stream {
        let mut req = app.req(Method::GET, path, key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        Stream::send(req, path).await
    }

    /// Sends the request of a stream.
    async fn send(req: reqwest::RequestBuilder, path: &str) -> Stream {
        let res = req.send().await.expect("stream request");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Stream {
            res,
            buf: String::new(),
        }
    }

    /// The next message (heartbeats skipped); `None` when the server ended the stream.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut m = Message {
                    id: String::new(),
                    event: String::new(),
                    data: Value::Null,
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        m.id = v.into();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        m.event = v.into();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        m.data = serde_json::from_str(v).expect("data is JSON");
                    }
                }
                if any {
                    return Some(m);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.res.chunk())
                .await
                .expect("a message within 10 s")
                .expect("stream read");
            self.buf
                .push_str(std::str::from_utf8(&chunk?).expect("UTF-8"));
        }
    }

    /// Nothing arrives for `quiet`.
    async fn silent_for(&mut self, quiet: Duration) {
        if let Ok(Some(m)) = tokio::time::timeout(quiet, self.next()).await {
            panic!("unexpected message {m:?}");
        }
    }
}

async fn patch_ok(app: &TestApp, id: &str, body: Value) -> Value {
    let res = app.patch(&app.key, id, body).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// `GET path` with the app's key: 200 and its JSON body.
async fn read_json(app: &TestApp, path: &str) -> Value {
    let res = app.send(Method::GET, path, &app.key).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.unwrap()
}

async fn kill(app: &TestApp, id: &str) {
    let res = app
        .send(Method::DELETE, &format!("/v1/tasks/{id}"), &app.key)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn history_lists_every_accepted_change_oldest_first_and_nothing_else() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "h1", "task_type": "thumbnail", "additional_data": {"progress": {"completed": 0, "total": 4}}}))
        .await;
    let body = json!({"status": "PROCESSING", "additional_data": {"progress": {"completed": 2}}});
    patch_ok(&app, "h1", body.clone()).await;
    // An idempotent repeat and a kill of an ended task append nothing.
    patch_ok(&app, "h1", body).await;
    kill(&app, "h1").await;
    kill(&app, "h1").await;
    // The same create again (idempotent) appends nothing either.
    let again = app
        .create(
            &app.key,
            json!({"task_id": "h1", "task_type": "thumbnail", "additional_data": {"progress": {"completed": 0, "total": 4}}}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);

    let h = read_json(&app, "/v1/tasks/h1/history").await;
    assert_eq!(h["task_id"], "h1");
    let events = h["events"].as_array().unwrap();
    let seen: Vec<(&str, u64, &str, Value)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["version"].as_u64().unwrap(),
                e["status"].as_str().unwrap(),
                e["previous_status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("task.created", 1, "PENDING", Value::Null),
            ("task.updated", 2, "PROCESSING", json!("PENDING")),
            ("task.canceled", 3, "CANCELED", json!("PROCESSING")),
        ]
    );
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing: {ids:?}");
    assert_eq!(events[1]["progress"]["completed"], 2);
    assert_eq!(events[1]["progress"]["percent"], 50.0);
    assert!(events[0]["at"].is_string());

    // 404 exactly like GET: unknown, and another tenant's (or mode's).
    for key in [
        app.key.clone(),
        app.key_for("acme", Mode::Live, "read").await,
        app.key_for("globex", Mode::Test, "read").await,
    ] {
        let path = if key == app.key {
            "/v1/tasks/nope/history"
        } else {
            "/v1/tasks/h1/history"
        };
        let res = app.send(Method::GET, path, &key).await;
        assert_error(res, StatusCode::NOT_FOUND).await;
    }
    let res = app
        .send(Method::GET, "/v1/tasks/h1/history", "sk_test_wrong")
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED).await;
    let res = app
        .send(Method::GET, "/v1/tasks/bad!id/history", &app.key)
        .await;
    assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    app.stop().await;
}

#[tokio::test]
async fn counts_by_status_and_type_for_the_tenant_only() {
    let app = spawn_app().await;
    for (id, ty) in [
        ("c1", "thumbnail"),
        ("c2", "thumbnail"),
        ("c3", "materialize"),
    ] {
        app.create_ok(json!({"task_id": id, "task_type": ty})).await;
    }
    kill(&app, "c2").await;
    let other = app.key_for("globex", Mode::Test, "read,write").await;
    let res = app
        .create(&other, json!({"task_id": "x", "task_type": "thumbnail"}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let counts = read_json(&app, "/v1/tasks/counts").await;
    assert_eq!(
        counts,
        json!({"by_status": {"PENDING": 2, "CANCELED": 1}, "by_task_type": {"thumbnail": 2, "materialize": 1}})
    );
    let counts = read_json(&app, "/v1/tasks/counts?task_type=thumbnail").await;
    assert_eq!(
        counts,
        json!({"by_status": {"PENDING": 1, "CANCELED": 1}, "by_task_type": {"thumbnail": 2}})
    );
    for bad in ["?task_type=nope", "?status=PENDING"] {
        let res = app
            .send(Method::GET, &format!("/v1/tasks/counts{bad}"), &app.key)
            .await;
        assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn progress_is_validated_and_derived_on_every_response() {
    let app = spawn_app().await;
    let t = app
        .create_ok(json!({"task_id": "p1", "task_type": "thumbnail", "additional_data": {"progress": {"completed": 1, "total": 4}}}))
        .await;
    assert_eq!(t["progress"]["percent"], 25.0);
    assert_eq!(t["progress"]["failed"], 0);
    assert_eq!(t["progress"]["rate_per_second"], Value::Null, "one report");
    assert_eq!(t["progress"]["eta_seconds"], Value::Null);
    assert_eq!(t["progress"]["stalled"], false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = patch_ok(
        &app,
        "p1",
        json!({"status": "PROCESSING", "additional_data": {"progress": {"completed": 2, "failed": 1}}}),
    )
    .await;
    assert_eq!(t["progress"]["percent"], 75.0);
    let rate = t["progress"]["rate_per_second"].as_f64().expect("a rate");
    let eta = t["progress"]["eta_seconds"].as_f64().expect("an ETA");
    assert!(rate > 0.0 && eta >= 0.0, "{t}");
    assert_eq!(app.get_ok("p1").await["progress"], t["progress"]);
    let listed = app.list_ids("", json!({})).await;
    assert_eq!(listed, ["p1"]);

    // Wrong types, negatives, and counts that add up to more than total: 422 naming the field,
    // nothing stored.
    for (body, field) in [
        (
            json!({"progress": {"completed": "2", "total": 4}}),
            "additional_data.progress.completed",
        ),
        (
            json!({"progress": {"completed": -1}}),
            "additional_data.progress.completed",
        ),
        (
            json!({"progress": {"completed": 4}}),
            "additional_data.progress",
        ),
        (json!({"progress": 0.5}), "additional_data.progress"),
        (
            json!({"progress": {"total": 4, "completed": 1, "stage": 7}}),
            "additional_data.progress.stage",
        ),
    ] {
        let res = app
            .patch(&app.key, "p1", json!({ "additional_data": body }))
            .await;
        let err = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(err["error"]["details"]["field"], field, "{body}");
    }
    let res = app
        .create(
            &app.key,
            json!({"task_type": "thumbnail", "additional_data": {"progress": {"completed": 1}}}),
        )
        .await;
    let err = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        err["error"]["details"]["field"],
        "additional_data.progress.total"
    );
    assert_eq!(app.get_ok("p1").await["version"], 2, "store unchanged");

    let t = patch_ok(&app, "p1", json!({"additional_data": {"progress": null}})).await;
    assert_eq!(t["progress"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_task_stream_replays_goes_live_and_ends_after_the_terminal_event() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "s1", "task_type": "thumbnail"}))
        .await;
    // Replay from the start, then live.
    let mut s = Stream::open(&app, "/v1/tasks/s1/events", &app.key, Some("0")).await;
    let created = s.next().await.expect("the created event");
    assert_eq!(created.event, "task.created");
    assert_eq!(created.data["type"], "task.created");
    assert_eq!(created.data["event_id"], created.id.as_str());
    assert_eq!(created.data["task_id"], "s1");
    assert_eq!(created.data["version"], 1);
    assert!(created.data.get("progress").is_some());

    patch_ok(&app, "s1", json!({"status": "PROCESSING", "additional_data": {"progress": {"completed": 1, "total": 2}}})).await;
    let updated = s.next().await.expect("live update");
    assert_eq!(updated.event, "task.updated");
    assert_eq!(updated.data["status"], "PROCESSING");
    assert_eq!(updated.data["progress"]["percent"], 50.0);
    assert!(updated.id > created.id);

    patch_ok(&app, "s1", json!({"status": "COMPLETED"})).await;
    let done = s.next().await.expect("terminal event");
    assert_eq!(done.event, "task.completed");
    assert!(s.next().await.is_none(), "the stream ends after it");

    // An ended task: its terminal event at once, then the end; resuming past it: nothing.
    let mut s = Stream::open(&app, "/v1/tasks/s1/events", &app.key, None).await;
    assert_eq!(s.next().await.unwrap().id, done.id);
    assert!(s.next().await.is_none());
    let mut s = Stream::open(&app, "/v1/tasks/s1/events", &app.key, Some(&done.id)).await;
    assert!(s.next().await.is_none());
    // Resuming from the middle sends what followed, once each.
    let path = format!("/v1/tasks/s1/events?after={}", created.id);
    let mut s = Stream::open(&app, &path, &app.key, None).await;
    assert_eq!(s.next().await.unwrap().id, updated.id);
    assert_eq!(s.next().await.unwrap().id, done.id);
    assert!(s.next().await.is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_stream_filters_and_resumes_without_gap_or_duplicate() {
    let app = spawn_app().await;
    let mut all = Stream::open(&app, "/v1/events", &app.key, None).await;
    let mut done = Stream::open(
        &app,
        "/v1/events?status=COMPLETED&status=FAILED&task_type=thumbnail",
        &app.key,
        None,
    )
    .await;
    // Another tenant's and mode's streams see none of this.
    let live_key = app.key_for("acme", Mode::Live, "read").await;
    let mut theirs = Stream::open(&app, "/v1/events", &live_key, None).await;

    app.create_ok(json!({"task_id": "a", "task_type": "thumbnail"}))
        .await;
    app.create_ok(json!({"task_id": "b", "task_type": "materialize"}))
        .await;
    patch_ok(&app, "b", json!({"status": "COMPLETED"})).await;
    patch_ok(&app, "a", json!({"status": "COMPLETED"})).await;

    let mut got = Vec::new();
    for _ in 0..4 {
        let m = all.next().await.unwrap();
        got.push((
            m.data["task_id"].as_str().unwrap().to_owned(),
            m.event.clone(),
            m.id.clone(),
        ));
    }
    assert_eq!(
        got.iter()
            .map(|(t, e, _)| (t.as_str(), e.as_str()))
            .collect::<Vec<_>>(),
        [
            ("a", "task.created"),
            ("b", "task.created"),
            ("b", "task.completed"),
            ("a", "task.completed")
        ]
    );
    let m = done.next().await.unwrap();
    assert_eq!(
        (m.data["task_id"].as_str(), m.event.as_str()),
        (Some("a"), "task.completed")
    );
    theirs.silent_for(Duration::from_millis(300)).await;

    // The client drops; changes happen; it reconnects from its last id.
    let last_seen = got[1].2.clone();
    drop(all);
    app.create_ok(json!({"task_id": "c", "task_type": "thumbnail"}))
        .await;
    let mut again = Stream::open(&app, "/v1/events", &app.key, Some(&last_seen)).await;
    patch_ok(&app, "c", json!({"status": "FAILED"})).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let m = again.next().await.unwrap();
        ids.push((m.data["task_id"].as_str().unwrap().to_owned(), m.event));
    }
    assert_eq!(
        ids.iter()
            .map(|(t, e)| (t.as_str(), e.as_str()))
            .collect::<Vec<_>>(),
        [
            ("b", "task.completed"),
            ("a", "task.completed"),
            ("c", "task.created"),
            ("c", "task.failed")
        ],
        "replayed, then live, each once"
    );
    again.silent_for(Duration::from_millis(300)).await;
    app.stop().await;
}

#[tokio::test]
async fn streams_refuse_bad_input_in_the_error_shape() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "b1", "task_type": "thumbnail"}))
        .await;
    let get = |path: &str, header: Option<(&'static str, &'static str)>| {
        let mut req = app.req(Method::GET, path, &app.key);
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        req.send()
    };
    for (path, header, status, field) in [
        (
            "/v1/events",
            Some(("accept", "application/json")),
            StatusCode::NOT_ACCEPTABLE,
            None,
        ),
        (
            "/v1/tasks/b1/events",
            Some(("accept", "text/html")),
            StatusCode::NOT_ACCEPTABLE,
            None,
        ),
        (
            "/v1/events?after=abc",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("after"),
        ),
        (
            "/v1/events?after=-1",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("after"),
        ),
        (
            "/v1/events",
            Some(("last-event-id", "x")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Last-Event-ID"),
        ),
        (
            "/v1/events?status=NOPE",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("status"),
        ),
        (
            "/v1/events?task_type=nope",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("task_type"),
        ),
        (
            "/v1/events?colour=red",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("query"),
        ),
        (
            "/v1/tasks/b1/events?status=PENDING",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("query"),
        ),
        ("/v1/tasks/nope/events", None, StatusCode::NOT_FOUND, None),
        (
            "/v1/tasks/bad!/events",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("task_id"),
        ),
    ] {
        let res = get(path, header).await.unwrap();
        let err = assert_error(res, status).await;
        if let Some(field) = field {
            assert_eq!(err["error"]["details"]["field"], field, "{path}");
        }
    }
    // Accepted: no Accept at all, the exact type, wildcards.
    for accept in [
        None,
        Some("text/event-stream"),
        Some("*/*"),
        Some("text/*;q=0.5"),
    ] {
        let mut req = app.req(Method::GET, "/v1/tasks/b1/events", &app.key);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{accept:?}");
    }
    // Scope and tenant.
    let write_only = app.key_for("acme", Mode::Test, "write").await;
    let res = app.send(Method::GET, "/v1/events", &write_only).await;
    assert_error(res, StatusCode::FORBIDDEN).await;
    let foreign = app.key_for("globex", Mode::Test, "read").await;
    let res = app.send(Method::GET, "/v1/tasks/b1/events", &foreign).await;
    assert_error(res, StatusCode::NOT_FOUND).await;
    let res = app.send(Method::GET, "/v1/events", "sk_test_nope").await;
    assert_error(res, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

#[tokio::test]
async fn a_change_through_one_instance_reaches_a_stream_on_another() {
    let a = spawn_app().await;
    if crate::SHAPE == taskward_testkit::Shape::Embedded {
        // One data directory has one server; across instances is the production shape.
        a.stop().await;
        return;
    }
    let b = a.second_instance().await;
    let mut s = Stream::open(&b, "/v1/events", &a.key, None).await;
    let started = std::time::Instant::now();
    a.create_ok(json!({"task_id": "x1", "task_type": "thumbnail"}))
        .await;
    let m = s.next().await.unwrap();
    assert_eq!(m.data["task_id"], "x1");
    // Not a latency bound (the benchmark measures that): a wide margin under the followers'
    // 5 s fallback poll tells that the notification woke the other instance.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "woken by the notification: {:?}",
        started.elapsed()
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_is_ended_not_buffered() {
    let app = spawn_app_with(|s| s.events.stream_lag_limit = 16).await;
    // Large events fill the socket buffers quickly, so the server's side of the stream must
    // fall behind rather than the kernel absorbing it all.
    let big = "x".repeat(64 * 1024);
    app.create_ok(json!({"task_id": "big", "task_type": "thumbnail", "description": big}))
        .await;
    let mut stalled = Stream::open(&app, "/v1/events", &app.key, None).await;
    let writes = 300;
    for i in 0..writes {
        patch_ok(&app, "big", json!({"additional_data": {"n": i}})).await;
    }
    // Another stream of the tenant still works.
    let mut fresh = Stream::open(&app, "/v1/events", &app.key, None).await;
    patch_ok(&app, "big", json!({"additional_data": {"n": "last"}})).await;
    let m = fresh.next().await.expect("a live stream is unaffected");
    assert_eq!(m.data["additional_data"]["n"], "last");

    // The stalled client reads again: what was in flight, then the end, well before the last
    // write.
    let mut received = 0;
    while let Some(m) = stalled.next().await {
        received += 1;
        assert!(
            m.data["additional_data"]["n"] != "last",
            "ended before the last write"
        );
    }
    assert!(
        received < writes,
        "the stream ended after {received} events"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_live_stream_sends_nothing_that_committed_before_it_opened() {
    let a = spawn_app().await;
    if crate::SHAPE == taskward_testkit::Shape::Embedded {
        // One data directory has one server; across instances is the production shape.
        a.stop().await;
        return;
    }
    // Instance b reaches PostgreSQL through a proxy the test can stall: a write through a then
    // commits while b has not heard of it yet, which is what a busy feed looks like to a
    // stream opening on b, only for as long as the test needs.
    let pg = a.settings.database_url.as_ref().expect("production shape");
    let pg_port = url::Url::parse(pg.expose())
        .expect("url")
        .port()
        .unwrap_or(5432);
    let proxy = taskward_testkit::TcpProxy::start(pg_port).await;
    let b = a
        .second_instance_with(|s| {
            let mut url = url::Url::parse(pg.expose()).expect("url");
            url.set_port(Some(proxy.port)).expect("port");
            s.database_url = Some(taskward_server::settings::Secret::new(url.as_str()));
        })
        .await;
    // Starts b's feed of the tenant (and caches the key), so opening a stream needs no database.
    let keeper = Stream::open(&b, "/v1/events", &a.key, None).await;

    proxy.stall(true);
    a.create_ok(json!({"task_id": "before", "task_type": "thumbnail"}))
        .await;
    let opening = tokio::spawn(Stream::send(
        b.req(Method::GET, "/v1/events", &a.key),
        "/v1/events",
    ));
    // Long enough for the request to reach b; a stream that answered already has taken its
    // starting point without the database.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.stall(false);
    let mut live = opening.await.expect("the stream opened");
    a.create_ok(json!({"task_id": "after", "task_type": "thumbnail"}))
        .await;
    let first = live.next().await.expect("the write after opening");
    assert_eq!(
        first.data["task_id"], "after",
        "a live stream sent an event that committed before it opened"
    );
    drop((keeper, live));
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_hold_up_shutdown() {
    let app = spawn_app_with(|s| {
        s.events.stream_lag_limit = 16;
        s.limits.request_timeout_ms = 1_000;
    })
    .await;
    let big = "x".repeat(64 * 1024);
    app.create_ok(json!({"task_id": "big", "task_type": "thumbnail", "description": big}))
        .await;
    // Opened on a connection of its own and never read: the server's writes to it fill both
    // sockets' buffers and then wait for ever.
    let _stalled = Stream::open(&app, "/v1/events", &app.key, None).await;
    for i in 0..300 {
        patch_ok(&app, "big", json!({"additional_data": {"n": i}})).await;
    }
    // Not a latency bound: a drain that waited on the stalled client would never end.
    tokio::time::timeout(Duration::from_secs(60), app.stop())
        .await
        .expect("the server stopped while a client was not reading");
}
