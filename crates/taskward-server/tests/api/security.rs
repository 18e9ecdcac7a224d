//! Cross-tenant probes beyond `tests/api/auth.rs`: every id of another tenant guessed right,
//! every filter operator aimed at its `additional_data`, its cursors replayed and forged. None
//! reveals or changes anything. Also: keys are stored as their SHA-256, not merely absent.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use taskward_model::{ApiKey, Mode};
use tokio::time::Instant;

use crate::support::{assert_error, assert_error_shape, ids, spawn_app, TestApp};

const MINE: [&str; 4] = ["a1", "a2", "a3", "a4"];
const THEIRS: [&str; 4] = ["b1", "b2", "b3", "b4"];

/// The main tenant (acme, test) owns a1..a4; `globex` owns b1..b4 with secrets in
/// `additional_data`. Returns globex's key.
async fn two_tenants(app: &TestApp) -> String {
    let theirs = app.key_for("globex", Mode::Test, "read,write,cancel").await;
    for id in MINE {
        app.create_ok(json!({"task_id": id, "task_type": "thumbnail", "status": "PROCESSING", "additional_data": {"owner": "acme"}}))
            .await;
    }
    for (i, id) in THEIRS.into_iter().enumerate() {
        let res = app
            .create(
                &theirs,
                json!({"task_id": id, "task_type": "materialize", "status": "PROCESSING", "description": "globex-private",
                       "additional_data": {"secret": "globex-only", "n": 40 + i, "nested": {"deep": "globex-deep"}}}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    theirs
}

async fn list_as(app: &TestApp, key: &str, query: &str, body: Value) -> (StatusCode, Value) {
    let res = app.list(key, query, body).await;
    let status = res.status();
    (status, res.json().await.expect("JSON"))
}

/// Everything `key`'s tenant can see, to compare before and after probes.
async fn everything(app: &TestApp, key: &str) -> Value {
    let (status, v) = list_as(
        app,
        key,
        "?page_size=1000",
        json!({"sort": {"field": "created_at", "direction": "asc"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    v["results"].clone()
}

#[tokio::test]
async fn guessed_ids_of_another_tenant_look_exactly_like_unknown_ones_and_change_nothing() {
    let app = spawn_app().await;
    let theirs = two_tenants(&app).await;
    let their_data = everything(&app, &theirs).await;
    for id in THEIRS {
        let unknown = format!("{id}-never");
        let same_as_unknown = |probe: &Value, missing: &Value| {
            let probe = probe.to_string();
            let missing = missing.to_string().replace(&unknown, id);
            assert_eq!(probe, missing, "{id}: differs from an unknown id");
        };
        let got = assert_error(app.get(&app.key, id).await, StatusCode::NOT_FOUND).await;
        let missing = assert_error(app.get(&app.key, &unknown).await, StatusCode::NOT_FOUND).await;
        same_as_unknown(&got, &missing);

        // A long-poll on their id does not wait and does not tell either.
        let started = Instant::now();
        let res = app
            .req(Method::GET, &format!("/v1/tasks/{id}?wait=5"), &app.key)
            .header("If-None-Match", "\"1\"")
            .send()
            .await
            .unwrap();
        let got = assert_error(res, StatusCode::NOT_FOUND).await;
        same_as_unknown(&got, &missing);
        assert!(started.elapsed() < Duration::from_secs(3));

        let body = json!({"status": "FAILED", "additional_data": {"secret": "overwritten"}});
        let got = assert_error(
            app.patch(&app.key, id, body.clone()).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let missing = assert_error(
            app.patch(&app.key, &unknown, body).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        same_as_unknown(&got, &missing);

        for (method, path) in [
            (Method::DELETE, format!("/v1/tasks/{id}")),
            (Method::POST, format!("/v1/tasks/{id}/kill")),
        ] {
            let killed = |p: String| {
                let req = app.req(method.clone(), &p, &app.key);
                async move {
                    let res = req.send().await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    res.json::<Value>().await.unwrap()
                }
            };
            let got = killed(path.clone()).await;
            let missing = killed(path.replace(id, &unknown)).await;
            same_as_unknown(&got, &missing);
        }

        // Creating their id in our tenant makes our own task; theirs is untouched.
        let res = app
            .create(&app.key, json!({"task_id": id, "task_type": "thumbnail"}))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "ids are per tenant");
    }
    assert_eq!(everything(&app, &theirs).await, their_data);
}

#[tokio::test]
async fn filters_and_searches_on_another_tenants_data_find_nothing() {
    let app = spawn_app().await;
    let theirs = two_tenants(&app).await;
    let ad = |field: &str, op: &str, value: Value| json!({"filters": {"AND": [{"field": field, "operator": op, "value": value}]}});
    let probes = vec![
        ad("additional_data.secret", "eq", json!("globex-only")),
        ad("additional_data.secret", "ne", json!("nothing")),
        ad("additional_data.secret", "contains", json!("globex")),
        ad("additional_data.secret", "starts_with", json!("g")),
        ad("additional_data.secret", "ends_with", json!("only")),
        ad("additional_data.secret", "regex", json!(".*")),
        ad("additional_data.secret", "in", json!(["globex-only"])),
        ad("additional_data.secret", "exists", json!(true)),
        ad("additional_data.secret", "is_null", json!(false)),
        ad("additional_data.n", "gte", json!(0)),
        ad("additional_data.nested.deep", "eq", json!("globex-deep")),
        ad("description", "eq", json!("globex-private")),
        ad("task_type", "eq", json!("materialize")),
        ad("task_id", "in", json!(THEIRS)),
        json!({"filters": {"NOT": [{"field": "additional_data.owner", "operator": "eq", "value": "acme"}]}}),
        json!({"search": "b"}),
        json!({"search": "materialize"}),
        json!({"task_type": "materialize"}),
    ];
    for probe in probes {
        let (status, v) = list_as(&app, &app.key, "?include_total=true", probe.clone()).await;
        assert_eq!(status, StatusCode::OK, "{probe}: {v}");
        let got = ids(&v);
        assert!(
            got.iter().all(|id| MINE.contains(&id.as_str())),
            "{probe} leaked {got:?}"
        );
        assert!(
            !v.to_string().contains("globex"),
            "{probe} leaked globex data: {v}"
        );
    }
    // The same probes from their side do find their data: the probes were not just wrong.
    let (_, v) = list_as(
        &app,
        &theirs,
        "",
        ad("additional_data.secret", "eq", json!("globex-only")),
    )
    .await;
    assert_eq!(ids(&v).len(), THEIRS.len());
}

fn decode(cursor: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(cursor).expect("base64url")).expect("JSON")
}

fn encode(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn cursors_from_another_tenant_or_forged_never_reach_its_data() {
    let app = spawn_app().await;
    let theirs = two_tenants(&app).await;
    let (_, page) = list_as(&app, &theirs, "?page_size=2", json!({})).await;
    let their_cursor = page["pagination"]["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let (_, page) = list_as(&app, &app.key, "?page_size=1", json!({})).await;
    let my_cursor = page["pagination"]["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();

    let c = decode(&their_cursor);
    let mut forged = Vec::new();
    forged.push(("their cursor".to_owned(), their_cursor.clone()));
    for (what, edit) in [
        ("pointing at their last id", json!({"i": "b4"})),
        (
            "value far in the future",
            json!({"v": "9999-12-31T23:59:59.999999Z"}),
        ),
        ("value far in the past", json!({"v": ""})),
        (
            "the other direction",
            json!({"d": !c["d"].as_bool().unwrap()}),
        ),
        ("another field", json!({"f": "version", "v": 1})),
        ("a number value for a text field", json!({"v": 5})),
        (
            "an injected value",
            json!({"v": "' OR 1=1 --", "i": "' OR 1=1 --"}),
        ),
        (
            "an extra tenant key",
            json!({"org": "globex", "tenant": "globex"}),
        ),
        ("a huge id", json!({"i": "x".repeat(5000)})),
    ] {
        let mut v = c.clone();
        for (k, val) in edit.as_object().unwrap() {
            v[k] = val.clone();
        }
        forged.push((what.to_owned(), encode(&v)));
    }
    forged.push((
        "truncated".into(),
        their_cursor[..their_cursor.len() / 2].to_owned(),
    ));
    forged.push(("flipped byte".into(), {
        let mut b = their_cursor.clone().into_bytes();
        b[3] = if b[3] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    }));
    forged.push(("not base64".into(), "%%%%".into()));
    forged.push(("JSON, not base64".into(), "{\"i\":\"b1\"}".into()));
    forged.push(("mine, reused".into(), my_cursor));

    for (what, cursor) in forged {
        for (method, path) in [(Method::POST, "/v1/tasks/list"), (Method::GET, "/v1/tasks")] {
            let mut req = app
                .req(method.clone(), path, &app.key)
                .query(&[("cursor", cursor.as_str()), ("page_size", "100")]);
            if method == Method::POST {
                req = req.json(&json!({}));
            }
            let res = req.send().await.unwrap();
            let status = res.status();
            let v: Value = res.json().await.expect("JSON");
            if status == StatusCode::OK {
                let got = ids(&v);
                assert!(
                    got.iter().all(|id| MINE.contains(&id.as_str())),
                    "{what} ({method} {path}) leaked {got:?}"
                );
                assert!(!v.to_string().contains("globex"), "{what}: {v}");
            } else {
                assert!(
                    status.is_client_error(),
                    "{what} ({method} {path}): {status} {v}"
                );
                assert_error_shape(&v, status.as_u16());
            }
        }
    }
}

#[tokio::test]
async fn keys_are_stored_as_their_sha256_and_nothing_else() {
    let app = spawn_app().await;
    let key = app.key_for("acme", Mode::Live, "read").await;
    let dump = app.durable_dump().await;
    for k in [&key, &app.key] {
        let parsed = ApiKey::parse(k).expect("a key");
        assert!(
            dump.contains(&parsed.hash()),
            "the SHA-256 is what is stored"
        );
        assert!(!dump.contains(k.as_str()), "the key itself is stored");
        // Not even the secret part after the prefix.
        assert!(!dump.contains(&k[8..]), "the key's secret part is stored");
    }
}
