//! Keys, scopes and tenant isolation.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskward_model::Mode;

use crate::support::{assert_error, spawn_app, spawn_app_with, TestApp};

/// Every task endpoint, with a body where it takes one.
fn endpoints() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/v1/tasks/t1", None),
        (Method::GET, "/v1/tasks", None),
        (Method::GET, "/v1/tasks/", None),
        (Method::POST, "/v1/tasks/list", Some(json!({}))),
        (Method::DELETE, "/v1/tasks/t1", None),
        (Method::POST, "/v1/tasks/t1/kill", None),
        (
            Method::POST,
            "/v1/tasks",
            Some(json!({"task_type": "thumbnail"})),
        ),
        (
            Method::PATCH,
            "/v1/tasks/t1",
            Some(json!({"status": "FAILED"})),
        ),
    ]
}

async fn send(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: &Option<Value>,
    auth: Option<&str>,
) -> reqwest::Response {
    let mut req = app.client.request(method.clone(), app.url(path));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_keys_are_401_everywhere() {
    let app = spawn_app_with(|s| s.auth.key_cache_ttl_ms = 0).await;
    app.create_processing("t1").await;
    let before = app.snapshot().await;

    let revoked = app.key_for("acme", Mode::Test, "read,write,cancel").await;
    let store = taskward_server::open_store(&app.settings).await.unwrap();
    assert!(store.keys.revoke(&revoked).await.unwrap());

    let revoked_header = format!("Bearer {revoked}");
    let unknown = "Bearer sk_test_0000000000000000000000000000".to_owned();
    let wrong_scheme = format!("Basic {}", app.key);
    let no_space = format!("Bearer{}", app.key);
    let auths: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some(&no_space),
        Some(&wrong_scheme),
        Some("Bearer sk_prod_abcdefghijklmnopqrstuvwxyz"),
        Some("Bearer sk_test_short"),
        Some("Bearer sk_test_abc'--;DROP TABLE api_keys;-- xxxxxxxxxxxxxxxxxxxx"),
        Some(&unknown),
        Some(&revoked_header),
    ];
    for (method, path, body) in endpoints() {
        for auth in &auths {
            let res = send(&app, &method, path, &body, *auth).await;
            let b = assert_error(res, StatusCode::UNAUTHORIZED).await;
            assert_eq!(
                b["error"]["type"], "unauthorized",
                "{method} {path} {auth:?}"
            );
        }
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_key_without_the_scope_gets_403_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_processing("t1").await;
    let before = app.snapshot().await;
    let read = app.key_for("acme", Mode::Test, "read").await;
    let cancel = app.key_for("acme", Mode::Test, "cancel").await;
    let write = app.key_for("acme", Mode::Test, "write").await;
    let needs = |method: &Method, path: &str| match (method.as_str(), path) {
        ("GET", _) | ("POST", "/v1/tasks/list") => "read",
        ("DELETE", _) | ("POST", "/v1/tasks/t1/kill") => "cancel",
        _ => "write",
    };
    for (method, path, body) in endpoints() {
        for (key, has) in [(&read, "read"), (&cancel, "cancel"), (&write, "write")] {
            let res = send(&app, &method, path, &body, Some(&format!("Bearer {key}"))).await;
            let required = needs(&method, path);
            if has == required {
                assert_ne!(
                    res.status(),
                    StatusCode::FORBIDDEN,
                    "{method} {path} with {has}"
                );
            } else {
                let b = assert_error(res, StatusCode::FORBIDDEN).await;
                assert_eq!(
                    b["error"]["details"]["required_scope"], required,
                    "{method} {path}"
                );
            }
        }
    }
    // The allowed calls above did write: only what the right scopes may do happened.
    let after = app.snapshot().await;
    assert_eq!(after.len(), before.len() + 1, "one create by the write key");
}

#[tokio::test]
async fn tenants_never_see_each_other_in_either_direction() {
    let app = spawn_app().await;
    let other_org = app.key_for("globex", Mode::Test, "read,write,cancel").await;
    let live = app.key_for("acme", Mode::Live, "read,write,cancel").await;
    app.create_ok(json!({"task_id": "shared-id", "task_type": "thumbnail", "status": "PROCESSING", "additional_data": {"secret": "acme-test"}}))
        .await;
    let mine = app.get_ok("shared-id").await;

    for intruder in [&other_org, &live] {
        // Another tenant's task is exactly a missing one.
        let res = app.get(intruder, "shared-id").await;
        let b = assert_error(res, StatusCode::NOT_FOUND).await;
        let missing = assert_error(
            app.get(intruder, "never-existed").await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(b["error"], missing["error"]);
        assert_error(
            app.patch(intruder, "shared-id", json!({"status": "FAILED"}))
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let res = app
            .send(Method::DELETE, "/v1/tasks/shared-id", intruder)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = app
            .send(Method::POST, "/v1/tasks/shared-id/kill", intruder)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        // Listings, searches and filters on the other tenant's data find nothing.
        for body in [
            json!({}),
            json!({"search": "shared"}),
            json!({"filters": {"AND": [{"field": "additional_data.secret", "operator": "eq", "value": "acme-test"}]}}),
        ] {
            let v: Value = app
                .list(intruder, "?include_total=true", body)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(v["results"], json!([]));
            assert_eq!(v["pagination"]["total"], 0);
        }
        let v: Value = app
            .send(Method::GET, "/v1/tasks", intruder)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["results"], json!([]));
    }
    assert_eq!(
        app.get_ok("shared-id").await,
        mine,
        "untouched by the other tenants"
    );

    // The same id is free in another tenant, and lives independently there.
    let res = app
        .create(
            &live,
            json!({"task_id": "shared-id", "task_type": "materialize"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = app.send(Method::DELETE, "/v1/tasks/shared-id", &live).await;
    assert_eq!(res.status(), StatusCode::OK);
    let theirs: Value = app.get(&live, "shared-id").await.json().await.unwrap();
    assert_eq!(theirs["status"], "CANCELED");
    assert_eq!(app.get_ok("shared-id").await, mine);
}

#[tokio::test]
async fn revoking_a_key_takes_effect_on_a_running_server() {
    let app = spawn_app_with(|s| s.auth.key_cache_ttl_ms = 0).await;
    let key = app.key_for("acme", Mode::Test, "read").await;
    let res = app.send(Method::GET, "/v1/tasks", &key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let store = taskward_server::open_store(&app.settings).await.unwrap();
    let keys = store.keys.list().await.unwrap();
    let rec = keys
        .iter()
        .find(|k| k.hint == key[..12].to_owned() + "…")
        .unwrap();
    assert!(store.keys.revoke(&rec.key_id).await.unwrap());
    let res = app.send(Method::GET, "/v1/tasks", &key).await;
    let b = assert_error(res, StatusCode::UNAUTHORIZED).await;
    assert!(b["error"]["message"].as_str().unwrap().contains("revoked"));
    assert!(
        !store.keys.revoke(&rec.key_id).await.unwrap(),
        "already revoked"
    );
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let key = app.key_for("acme", Mode::Live, "read").await;
    let stored = app.durable_dump().await;
    assert!(stored.contains("acme"), "the dump sees the key records");
    assert!(!stored.contains(&key), "the key itself is stored");
    assert!(!stored.contains(&app.key));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/v2/nothing")).send().await.unwrap();
    assert_error(res, StatusCode::NOT_FOUND).await;
    let res = app
        .client
        .put(app.url("/v1/tasks/t1"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn any_valid_key_may_ask_what_it_may_do_and_nothing_else_may() {
    let app = spawn_app_with(|s| s.auth.key_cache_ttl_ms = 0).await;
    for (scopes, want) in [
        ("cancel", json!(["cancel"])),
        ("write,read", json!(["read", "write"])),
        (
            "admin,cancel,write,read",
            json!(["read", "cancel", "write", "admin"]),
        ),
    ] {
        let key = app.key_for("globex", Mode::Live, scopes).await;
        let res = send(
            &app,
            &Method::GET,
            "/v1/keys/self",
            &None,
            Some(&format!("Bearer {key}")),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{scopes}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["org"], "globex");
        assert_eq!(body["mode"], "live");
        assert_eq!(body["scopes"], want, "{scopes}");
        assert!(
            body["key_id"].as_str().unwrap().starts_with("key_"),
            "{body}"
        );
        // Only those four fields: never the key, its hint or its hash.
        assert_eq!(body.as_object().unwrap().len(), 4, "{body}");
        assert!(!body.to_string().contains(&key[..12]), "{body}");
    }

    let revoked = app.key_for("acme", Mode::Test, "read").await;
    let store = taskward_server::open_store(&app.settings).await.unwrap();
    assert!(store.keys.revoke(&revoked).await.unwrap());
    for auth in [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer sk_test_0000000000000000000000000000".to_owned()),
        Some(format!("Bearer {revoked}")),
        Some(format!("Basic {}", app.key)),
    ] {
        let res = send(&app, &Method::GET, "/v1/keys/self", &None, auth.as_deref()).await;
        let b = assert_error(res, StatusCode::UNAUTHORIZED).await;
        assert_eq!(b["error"]["type"], "unauthorized", "{auth:?}");
    }
    let res = send(
        &app,
        &Method::POST,
        "/v1/keys/self",
        &Some(json!({})),
        Some(&format!("Bearer {}", app.key)),
    )
    .await;
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED).await;
}
