//! Success paths of every task endpoint and the rules a task lives by.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskward_model::CreateTask;

use crate::support::{assert_error, assert_task_shape, spawn_app, Shape};

#[tokio::test]
async fn create_answers_201_with_etag_and_location_then_get_returns_the_task() {
    let app = spawn_app().await;
    let res = app
        .create(
            &app.key,
            json!({
                "task_id": "task_abc123def456",
                "task_type": "api_buckets_batches_process",
                "status": "PROCESSING",
                "inputs": ["batch_xyz789", {"bucket_id": "bkt_abc"}],
                "additional_data": {"batch_id": "batch_xyz789", "job_id": "ray_job_123"},
                "description": "Batch processing task in progress"
            }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert_eq!(res.headers()["location"], "/v1/tasks/task_abc123def456");
    let created: Value = res.json().await.unwrap();
    assert_task_shape(&created);
    assert_eq!(created["version"], 1);
    assert_eq!(
        created["started_at"], created["created_at"],
        "created already PROCESSING"
    );
    assert!(created["finished_at"].is_null());

    let res = app.get(&app.key, "task_abc123def456").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"1\"");
    // A hot GET sends the stored rendering with headers of its own making.
    assert_eq!(res.headers()["content-type"], "application/json");
    let got: Value = res.json().await.unwrap();
    assert_eq!(got, created);
    assert_eq!(
        got["inputs"],
        json!(["batch_xyz789", {"bucket_id": "bkt_abc"}])
    );
    assert!(got["error_message"].is_null());
}

#[tokio::test]
async fn create_without_an_id_generates_a_uuid_and_defaults_to_pending() {
    let app = spawn_app().await;
    let t = app.create_ok(json!({"task_type": "thumbnail"})).await;
    let id = t["task_id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(t["status"], "PENDING");
    assert!(t["started_at"].is_null());
    assert!(t["inputs"].is_null() && t["outputs"].is_null() && t["additional_data"].is_null());
}

#[tokio::test]
async fn repeating_a_create_is_idempotent_but_different_content_conflicts() {
    let app = spawn_app().await;
    let body =
        json!({"task_id": "t1", "task_type": "thumbnail", "additional_data": {"a": 1, "b": 2}});
    let first = app.create_ok(body).await;
    // Same content, other key order, status spelled out: the same request.
    let res = app
        .create(&app.key, json!({"additional_data": {"b": 2, "a": 1}, "status": "PENDING", "task_type": "thumbnail", "task_id": "t1"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again, first);

    app.create_refused(
        json!({"task_id": "t1", "task_type": "thumbnail", "additional_data": {"a": 2}}),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        app.get_ok("t1").await,
        first,
        "the conflicting create changed nothing"
    );
}

#[tokio::test]
async fn an_idempotent_create_retry_after_updates_returns_the_current_task() {
    let app = spawn_app().await;
    let body = json!({"task_id": "t1", "task_type": "thumbnail"});
    app.create_ok(body.clone()).await;
    let res = app
        .patch(&app.key, "t1", json!({"status": "PROCESSING"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.create(&app.key, body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["version"].as_u64()),
        (Some("PROCESSING"), Some(2))
    );
}

#[tokio::test]
async fn unregistered_task_type_is_422_naming_the_accepted_ones() {
    let app = spawn_app().await;
    let body = app
        .create_refused(
            json!({"task_type": "world_domination"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(body["error"]["details"]["field"], "task_type");
    let accepted = body["error"]["details"]["accepted"].as_array().unwrap();
    assert_eq!(accepted.len(), 17);
    assert!(accepted.contains(&json!("engine_cluster_build")));
}

#[tokio::test]
async fn configured_task_types_are_accepted() {
    let app = crate::support::spawn_app_with(|s| s.task_types = vec!["custom_export".into()]).await;
    let t = app.create_ok(json!({"task_type": "custom_export"})).await;
    assert_eq!(t["task_type"], "custom_export");
}

#[tokio::test]
async fn patch_merges_additional_data_replaces_the_rest_and_bumps_the_etag() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "t1", "task_type": "engine_cluster_build", "additional_data": {"job_id": "j1", "progress": {"completed": 1, "total": 10}, "drop": true}, "description": "old"}))
        .await;
    let res = app
        .patch(
            &app.key,
            "t1",
            json!({
                "status": "PROCESSING",
                "outputs": [{"cluster_id": "cl_abc123", "num_clusters": 5}],
                "additional_data": {"progress": {"completed": 5}, "drop": null, "from_mongodb": true},
                "description": "new"
            }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let t: Value = res.json().await.unwrap();
    assert_task_shape(&t);
    assert_eq!(
        t["additional_data"],
        json!({"job_id": "j1", "progress": {"completed": 5, "total": 10}})
    );
    assert_eq!(
        t["outputs"],
        json!([{"cluster_id": "cl_abc123", "num_clusters": 5}])
    );
    assert_eq!(t["description"], "new");
    assert_eq!(t["version"], 2);
    assert!(t["started_at"].is_string() && t["finished_at"].is_null());
    assert_eq!(app.get_ok("t1").await, t);

    // null clears a replaced field; an identical patch is a no-op that keeps the version.
    let t: Value = app
        .patch(&app.key, "t1", json!({"description": null}))
        .await
        .json()
        .await
        .unwrap();
    assert!(t["description"].is_null());
    assert_eq!(t["version"], 3);
    let res = app
        .patch(&app.key, "t1", json!({"description": null}))
        .await;
    assert_eq!(res.headers()["etag"], "\"3\"");
}

#[tokio::test]
async fn failed_tasks_surface_error_message_and_error() {
    let app = spawn_app().await;
    for (id, error, expected) in [
        (
            "s",
            json!("Failed to process batch: Object not found"),
            json!("Failed to process batch: Object not found"),
        ),
        (
            "o",
            json!({"message": "Clustering failed", "code": 7}),
            json!("Clustering failed"),
        ),
        ("n", json!(42), Value::Null),
    ] {
        app.create_ok(json!({"task_id": id, "task_type": "thumbnail"}))
            .await;
        let t: Value = app
            .patch(
                &app.key,
                id,
                json!({"status": "FAILED", "additional_data": {"error": error}}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_task_shape(&t);
        assert_eq!(t["error_message"], expected, "{id}");
        assert_eq!(t["error"], expected, "{id}");
        assert!(t["finished_at"].is_string());
    }
    // Only FAILED tasks carry it.
    app.create_ok(json!({"task_id": "c", "task_type": "thumbnail", "status": "COMPLETED", "additional_data": {"error": "ignored"}}))
        .await;
    assert!(app.get_ok("c").await["error_message"].is_null());
}

#[tokio::test]
async fn a_terminal_task_never_changes_again() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "t1", "task_type": "thumbnail"}))
        .await;
    let done: Value = app
        .patch(
            &app.key,
            "t1",
            json!({"status": "COMPLETED", "outputs": ["doc_1"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "COMPLETED");

    for change in [
        json!({"status": "FAILED"}),
        json!({"status": "PROCESSING"}),
        json!({"outputs": ["doc_2"]}),
        json!({"additional_data": {"x": 1}}),
        json!({"description": "late"}),
    ] {
        let res = app.patch(&app.key, "t1", change.clone()).await;
        let body = assert_error(res, StatusCode::CONFLICT).await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("terminal"),
            "{change}: {body}"
        );
    }
    // The same terminal write again is an idempotent no-op.
    let res = app
        .patch(
            &app.key,
            "t1",
            json!({"status": "COMPLETED", "outputs": ["doc_1"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    // Kill leaves it alone too.
    let res = app.send(Method::DELETE, "/v1/tasks/t1", &app.key).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.get_ok("t1").await, done);
}

#[tokio::test]
async fn if_match_applies_only_to_the_current_version() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "t1", "task_type": "thumbnail"}))
        .await;
    let res = app
        .patch_if_match("t1", "\"1\"", json!({"status": "PROCESSING"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let before = app.get_ok("t1").await;
    let res = app
        .patch_if_match("t1", "\"1\"", json!({"status": "FAILED"}))
        .await;
    let body = assert_error(res, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(body["error"]["details"]["current_version"], 2);
    assert_eq!(app.get_ok("t1").await, before);
    // Weak form and `*` are understood.
    for h in ["W/\"2\"", "*"] {
        let res = app
            .patch_if_match("t1", h, json!({"additional_data": {"h": h}}))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{h}");
    }
}

#[tokio::test]
async fn kill_cancels_an_active_task_by_delete_or_post_and_is_idempotent() {
    let app = spawn_app().await;
    for (id, method, path) in [
        ("d", Method::DELETE, "/v1/tasks/d"),
        ("p", Method::POST, "/v1/tasks/p/kill"),
    ] {
        app.create_processing(id).await;
        for _ in 0..2 {
            let res = app.send(method.clone(), path, &app.key).await;
            assert_eq!(res.status(), StatusCode::OK);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["success"], true);
            assert!(body["message"].is_string());
        }
        let t = app.get_ok(id).await;
        assert_eq!(t["status"], "CANCELED");
        assert_eq!(t["version"], 2, "the second kill changed nothing");
        assert!(t["finished_at"].is_string());
    }
    let res = app
        .send(Method::DELETE, "/v1/tasks/never-existed", &app.key)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["success"], true);
    assert_error(
        app.get(&app.key, "never-existed").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn an_unknown_task_is_404_never_a_fake_pending() {
    let app = spawn_app().await;
    let body = assert_error(app.get(&app.key, "nope").await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"]["type"], "not_found");
    assert_error(
        app.patch(&app.key, "nope", json!({"status": "FAILED"}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_read_that_misses_the_hot_tier_is_annotated_and_rewarms_it() {
    let app = spawn_app().await;
    let t = app
        .create_ok(
            json!({"task_id": "t1", "task_type": "thumbnail", "additional_data": {"k": "v"}}),
        )
        .await;
    assert!(t["additional_data"].get("from_mongodb").is_none());
    // With an empty hot tier the first read comes from the durable tier.
    let app = app.with_empty_hot_tier().await;
    let cold = app.get_ok("t1").await;
    assert_eq!(
        cold["additional_data"],
        json!({"k": "v", "from_mongodb": true})
    );
    let warm = app.get_ok("t1").await;
    assert_eq!(warm, t, "re-warmed, and the annotation was never stored");
    // Listing reads the durable tier but does not annotate every row.
    let res = app.list(&app.key, "", json!({})).await;
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["results"][0]["additional_data"], json!({"k": "v"}));
}

#[tokio::test]
async fn health_readiness_request_ids_and_openapi() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("x-request-id"));
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");

    let ready: Value = app.public_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    let (hot, durable) = match crate::SHAPE {
        Shape::Embedded => ("memory", "sqlite"),
        Shape::Production => ("redis", "postgres"),
    };
    assert_eq!(ready["tiers"]["hot"]["backend"], hot);
    assert_eq!(ready["tiers"]["durable"]["backend"], durable);
    let metrics = app.public_text("/metrics").await;
    assert!(
        metrics.contains(
            "taskward_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("taskward_hot_hits_total"), "{metrics}");
    assert!(metrics.trim_end().ends_with("# EOF"));

    let doc: Value = app.public_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/tasks",
        "/v1/tasks/{task_id}",
        "/v1/tasks/list",
        "/v1/tasks/{task_id}/kill",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let task = &doc["components"]["schemas"]["TaskResponse"]["properties"];
    // Every field a create may set comes back, and so does the computed `error_message`.
    for field in CreateTask::FIELDS.into_iter().chain(["error_message"]) {
        assert!(task[field].is_object(), "TaskResponse.{field} missing");
    }
    let statuses = &doc["components"]["schemas"]["TaskStatus"]["enum"];
    assert!(statuses.as_array().unwrap().contains(&json!("IN_PROGRESS")));
}

#[tokio::test]
async fn ids_that_are_paths_of_the_api_are_refused_at_create_and_in_paths() {
    let app = spawn_app().await;
    for id in ["list", "counts", ".", ".."] {
        let body = app
            .create_refused(
                json!({"task_id": id, "task_type": "thumbnail"}),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(body["error"]["details"]["field"], "task_id", "{id}: {body}");
        assert_eq!(body["error"]["code"], "invalid_value", "{id}: {body}");
    }
    let body = app
        .create_refused(
            json!({"task_id": "list", "task_type": "thumbnail"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("reserved") && message.contains("counts"),
        "{body}"
    );
    // Nothing was stored, and the route it would shadow still works.
    assert!(app.snapshot().await.is_empty());
    assert_eq!(
        app.list(&app.key, "", json!({})).await.status(),
        StatusCode::OK
    );
    // Ids that merely contain a reserved word are ordinary.
    for id in ["lists", "List", "counts-1", "...", "my.list"] {
        app.create_ok(json!({"task_id": id, "task_type": "thumbnail"}))
            .await;
        assert_eq!(app.get_ok(id).await["task_id"], id);
    }
    // A path naming a reserved id is refused too, rather than "nothing to cancel".
    let res = app
        .send(Method::POST, "/v1/tasks/list/kill", &app.key)
        .await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["error"]["details"]["field"], "task_id", "{body}");
}

#[tokio::test]
async fn every_error_has_a_code_that_names_its_cause() {
    let app = spawn_app().await;
    // 405, with the methods that are allowed.
    let res = app.send(Method::PUT, "/v1/tasks/t1", &app.key).await;
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert!(
        allow.contains("PATCH") && allow.contains("DELETE"),
        "{allow}"
    );
    let body = assert_error(res, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    // 415.
    let res = app
        .req(Method::POST, "/v1/tasks", &app.key)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let body = assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(body["error"]["code"], "not_json", "{body}");

    // 409 of a create: the id exists with other content.
    app.create_ok(json!({"task_id": "t1", "task_type": "thumbnail"}))
        .await;
    let body = app
        .create_refused(
            json!({"task_id": "t1", "task_type": "materialize"}),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(body["error"]["code"], "task_exists", "{body}");

    // 409 of an update: the task has ended.
    let res = app
        .patch(&app.key, "t1", json!({"status": "COMPLETED"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.patch(&app.key, "t1", json!({"status": "FAILED"})).await;
    let body = assert_error(res, StatusCode::CONFLICT).await;
    assert_eq!(body["error"]["code"], "task_terminal", "{body}");

    // 404 and 422 keep theirs.
    let body = assert_error(app.get(&app.key, "nope").await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"]["code"], "task_not_found", "{body}");
    let res = app.list(&app.key, "?page=0", json!({})).await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["error"]["code"], "invalid_value", "{body}");
}

#[tokio::test]
async fn a_list_body_of_the_wrong_shape_says_what_is_accepted() {
    let app = spawn_app().await;
    for (body, field, says) in [
        (
            json!({"status": {}}),
            "status",
            "a status or an array of statuses",
        ),
        (
            json!({"status": [{}]}),
            "status",
            "a status or an array of statuses",
        ),
        (
            json!({"status": "DONE"}),
            "status",
            "a status or an array of statuses",
        ),
        (
            json!({"task_type": {"a": 1}}),
            "task_type",
            "a task type (a string) or an array of them",
        ),
    ] {
        let res = app.list(&app.key, "", body.clone()).await;
        let b = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {b}");
        assert!(!message.contains("single key"), "serde's words leaked: {b}");
        assert_eq!(b["error"]["details"]["field"], field, "{body}: {b}");
    }
    for ok in [
        json!({"status": "FAILED"}),
        json!({"status": ["FAILED", "PENDING"]}),
        json!({"status": null}),
    ] {
        assert_eq!(app.list(&app.key, "", ok).await.status(), StatusCode::OK);
    }
}
