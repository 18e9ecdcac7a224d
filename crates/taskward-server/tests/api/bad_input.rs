//! SPEC's bad-input list on every endpoint: each gets a 4xx in the error shape, none a 5xx,
//! and nothing stored changes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{assert_error_shape, spawn_app, TestApp};

/// What a bad request sends as its body.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

struct Case {
    what: String,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Body,
    expect: StatusCode,
}

fn case(
    what: impl Into<String>,
    method: Method,
    path: impl Into<String>,
    body: Body,
    expect: StatusCode,
) -> Case {
    Case {
        what: what.into(),
        method,
        path: path.into(),
        headers: vec![],
        body,
        expect,
    }
}

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

fn nested(depth: usize) -> String {
    format!(
        "{{\"additional_data\": {}1{}}}",
        "{\"a\": ".repeat(depth),
        "}".repeat(depth)
    )
}

/// Bad bodies that no JSON endpoint may accept.
fn body_cases(method: &Method, path: &str, huge: &[u8]) -> Vec<Case> {
    let raw = |ct: &'static str, s: &str| Body::Raw(ct, s.as_bytes().to_vec());
    let j = "application/json";
    let mut v = vec![
        case(
            "malformed JSON",
            method.clone(),
            path,
            raw(j, "{\"task_type\":"),
            UNPROCESSABLE,
        ),
        case(
            "not JSON at all",
            method.clone(),
            path,
            raw(j, "hello"),
            UNPROCESSABLE,
        ),
        case(
            "an array body",
            method.clone(),
            path,
            raw(j, "[1, 2]"),
            UNPROCESSABLE,
        ),
        case(
            "a string body",
            method.clone(),
            path,
            raw(j, "\"x\""),
            UNPROCESSABLE,
        ),
        case(
            "a null body",
            method.clone(),
            path,
            raw(j, "null"),
            UNPROCESSABLE,
        ),
        case(
            "trailing garbage",
            method.clone(),
            path,
            raw(j, "{} {}"),
            UNPROCESSABLE,
        ),
        case(
            "invalid UTF-8",
            method.clone(),
            path,
            Body::Raw(j, b"{\"description\": \"\xff\xfe\"}".to_vec()),
            UNPROCESSABLE,
        ),
        case(
            "nested 33 deep",
            method.clone(),
            path,
            raw(j, &nested(33)),
            UNPROCESSABLE,
        ),
        case(
            "nested 100000 deep",
            method.clone(),
            path,
            Body::Raw(j, [b'['; 100_000].to_vec()),
            UNPROCESSABLE,
        ),
        case(
            "over the body limit",
            method.clone(),
            path,
            Body::Raw(j, huge.to_vec()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        case(
            "text/plain",
            method.clone(),
            path,
            raw("text/plain", "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        case(
            "form encoded",
            method.clone(),
            path,
            raw("application/x-www-form-urlencoded", "a=b"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        case(
            "unknown key",
            method.clone(),
            path,
            Body::Json(json!({"task_type": "thumbnail", "colour": "red"})),
            UNPROCESSABLE,
        ),
    ];
    if path != "/v1/tasks/list" {
        // The list endpoint treats an empty body as "no criteria"; the others need a body.
        v.push(case(
            "empty body",
            method.clone(),
            path,
            raw(j, ""),
            UNPROCESSABLE,
        ));
        v.push(case(
            "no content type",
            method.clone(),
            path,
            Body::Raw("", b"{}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ));
    }
    v
}

fn create_cases() -> Vec<Case> {
    let p = "/v1/tasks";
    let bad = |what: &str, body: Value| {
        case(
            format!("create: {what}"),
            Method::POST,
            p,
            Body::Json(body),
            UNPROCESSABLE,
        )
    };
    vec![
        bad("missing task_type", json!({})),
        bad("task_type not a string", json!({"task_type": 5})),
        bad("unregistered task_type", json!({"task_type": "THUMBNAIL"})),
        bad(
            "unknown status",
            json!({"task_type": "thumbnail", "status": "DONE"}),
        ),
        bad(
            "lower-case status",
            json!({"task_type": "thumbnail", "status": "pending"}),
        ),
        bad(
            "inputs not an array",
            json!({"task_type": "thumbnail", "inputs": "x"}),
        ),
        bad(
            "inputs item a number",
            json!({"task_type": "thumbnail", "inputs": [1]}),
        ),
        bad(
            "outputs an object",
            json!({"task_type": "thumbnail", "outputs": {"a": 1}}),
        ),
        bad(
            "additional_data an array",
            json!({"task_type": "thumbnail", "additional_data": [1]}),
        ),
        bad(
            "description a number",
            json!({"task_type": "thumbnail", "description": 5}),
        ),
        bad(
            "task_id with a space",
            json!({"task_type": "thumbnail", "task_id": "a b"}),
        ),
        bad(
            "task_id empty",
            json!({"task_type": "thumbnail", "task_id": ""}),
        ),
        bad(
            "task_id too long",
            json!({"task_type": "thumbnail", "task_id": "a".repeat(129)}),
        ),
        bad(
            "task_id with a slash",
            json!({"task_type": "thumbnail", "task_id": "../etc"}),
        ),
        bad(
            "task_id a number",
            json!({"task_type": "thumbnail", "task_id": 5}),
        ),
        bad(
            "version is not writable",
            json!({"task_type": "thumbnail", "version": 9}),
        ),
    ]
}

fn update_cases() -> Vec<Case> {
    let p = "/v1/tasks/t1";
    let bad = |what: &str, body: Value| {
        case(
            format!("update: {what}"),
            Method::PATCH,
            p,
            Body::Json(body),
            UNPROCESSABLE,
        )
    };
    let mut v = vec![
        bad("unknown status", json!({"status": "done"})),
        bad("status a number", json!({"status": 5})),
        bad("outputs item a bool", json!({"outputs": [true]})),
        bad("additional_data a string", json!({"additional_data": "x"})),
        bad("additional_data an array", json!({"additional_data": [1]})),
        bad("description a number", json!({"description": 5})),
        bad("inputs are not patchable", json!({"inputs": ["x"]})),
        bad("task_id is not patchable", json!({"task_id": "t2"})),
        bad(
            "task_type is not patchable",
            json!({"task_type": "thumbnail"}),
        ),
    ];
    for h in ["abc", "\"x\"", "\"1\", \"2\"", "-1", "\"-1\"", "W/", ""] {
        let mut c = case(
            format!("If-Match {h:?}"),
            Method::PATCH,
            p,
            Body::Json(json!({"status": "FAILED"})),
            UNPROCESSABLE,
        );
        c.headers.push(("If-Match", h.to_owned()));
        v.push(c);
    }
    v
}

fn list_cases() -> Vec<Case> {
    let p = "/v1/tasks/list";
    let bad = |what: &str, body: Value| {
        case(
            format!("list: {what}"),
            Method::POST,
            p,
            Body::Json(body),
            UNPROCESSABLE,
        )
    };
    let f = |c: Value| json!({"filters": {"AND": [c]}});
    let mut deep = json!({"field": "task_id", "operator": "eq", "value": "x"});
    for _ in 0..9 {
        deep = json!({"AND": [deep]});
    }
    vec![
        bad("unknown key", json!({"where": {}})),
        bad("unknown status", json!({"status": "DONE"})),
        bad(
            "status list with a number",
            json!({"status": ["FAILED", 5]}),
        ),
        bad("task_type a number", json!({"task_type": 5})),
        bad("filters a string", json!({"filters": "status=FAILED"})),
        bad(
            "AND not an array",
            json!({"filters": {"AND": {"field": "status"}}}),
        ),
        bad("unknown group key", json!({"filters": {"XOR": []}})),
        bad(
            "unknown operator",
            f(json!({"field": "status", "operator": "like", "value": "x"})),
        ),
        bad(
            "unknown field",
            f(json!({"field": "owner", "operator": "eq", "value": "x"})),
        ),
        bad(
            "unknown condition key",
            f(json!({"field": "status", "operator": "eq", "value": "FAILED", "boost": 2})),
        ),
        bad(
            "invalid regex",
            f(json!({"field": "task_id", "operator": "regex", "value": "(unclosed"})),
        ),
        bad(
            "oversized regex",
            f(
                json!({"field": "task_id", "operator": "regex", "value": "\\w{500}\\w{500}\\w{500}"}),
            ),
        ),
        bad(
            "in with a non-array",
            f(json!({"field": "status", "operator": "in", "value": "FAILED"})),
        ),
        bad(
            "status value not a status",
            f(json!({"field": "status", "operator": "eq", "value": "DONE"})),
        ),
        bad(
            "timestamp not a timestamp",
            f(json!({"field": "created_at", "operator": "gt", "value": "yesterday"})),
        ),
        bad(
            "version not an integer",
            f(json!({"field": "version", "operator": "gt", "value": "2"})),
        ),
        bad(
            "hostile path",
            f(json!({"field": "additional_data.a') OR 1=1 --", "operator": "eq", "value": 1})),
        ),
        bad(
            "empty path segment",
            f(json!({"field": "additional_data..a", "operator": "eq", "value": 1})),
        ),
        bad(
            "object comparison value",
            f(json!({"field": "additional_data.a", "operator": "eq", "value": {"$gt": 1}})),
        ),
        bad("groups nested too deep", json!({"filters": deep})),
        bad(
            "sort by an unknown field",
            json!({"sort": {"field": "password", "direction": "asc"}}),
        ),
        bad(
            "unknown sort direction",
            json!({"sort": {"field": "created_at", "direction": "up"}}),
        ),
        bad("search a number", json!({"search": 5})),
        bad("search too long", json!({"search": "x".repeat(257)})),
    ]
}

fn query_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for q in [
        "page=0",
        "page=-1",
        "page=abc",
        "page=1.5",
        "page_size=0",
        "page_size=1001",
        "page_size=",
        "limit=0",
        "limit=5000",
        "offset=-1",
        "include_total=maybe",
        "page=2&offset=10",
        "page_size=5&limit=6",
        "cursor=garbage",
        "page=99999999999999999999999",
    ] {
        v.push(case(
            format!("GET ?{q}"),
            Method::GET,
            format!("/v1/tasks?{q}"),
            Body::None,
            UNPROCESSABLE,
        ));
        v.push(case(
            format!("list ?{q}"),
            Method::POST,
            format!("/v1/tasks/list?{q}"),
            Body::Json(json!({})),
            UNPROCESSABLE,
        ));
    }
    v
}

fn path_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let long = "a".repeat(129);
    for id in [
        "a%20b",
        long.as_str(),
        "%E2%9C%93",
        "a%00b",
        "..%2F..%2Fetc",
        "a%2Fb",
        "%FF",
        "a;b",
        "a'b",
    ] {
        v.push(case(
            format!("GET id {id}"),
            Method::GET,
            format!("/v1/tasks/{id}"),
            Body::None,
            UNPROCESSABLE,
        ));
        v.push(case(
            format!("DELETE id {id}"),
            Method::DELETE,
            format!("/v1/tasks/{id}"),
            Body::None,
            UNPROCESSABLE,
        ));
        v.push(case(
            format!("kill id {id}"),
            Method::POST,
            format!("/v1/tasks/{id}/kill"),
            Body::None,
            UNPROCESSABLE,
        ));
        v.push(case(
            format!("PATCH id {id}"),
            Method::PATCH,
            format!("/v1/tasks/{id}"),
            Body::Json(json!({"status": "FAILED"})),
            UNPROCESSABLE,
        ));
    }
    v
}

async fn send(app: &TestApp, c: &Case) -> reqwest::Response {
    let mut req = app
        .client
        .request(c.method.clone(), app.url(&c.path))
        .bearer_auth(&app.key);
    for (k, v) in &c.headers {
        req = req.header(*k, v);
    }
    req = match &c.body {
        Body::None => req,
        Body::Json(v) => req.json(v),
        Body::Raw(ct, bytes) => {
            let req = if ct.is_empty() {
                req
            } else {
                req.header("Content-Type", *ct)
            };
            req.body(bytes.clone())
        }
    };
    req.send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", c.what))
}

#[tokio::test]
async fn every_bad_input_gets_a_4xx_in_the_error_shape_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "t1", "task_type": "thumbnail", "status": "PROCESSING", "additional_data": {"k": "v"}}))
        .await;
    app.create_ok(json!({"task_id": "t2", "task_type": "materialize"}))
        .await;
    let before = app.snapshot().await;

    let huge = format!(
        "{{\"task_type\": \"thumbnail\", \"description\": \"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let mut cases = Vec::new();
    for (m, p) in [
        (Method::POST, "/v1/tasks"),
        (Method::PATCH, "/v1/tasks/t1"),
        (Method::POST, "/v1/tasks/list"),
    ] {
        cases.extend(body_cases(&m, p, huge.as_bytes()));
    }
    cases.extend(create_cases());
    cases.extend(update_cases());
    cases.extend(list_cases());
    cases.extend(query_cases());
    cases.extend(path_cases());
    assert!(cases.len() > 150, "{}", cases.len());

    let mut failures = Vec::new();
    for c in &cases {
        let res = send(&app, c).await;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let body: Value = match serde_json::from_str(&text) {
            Ok(b) => b,
            Err(_) => {
                failures.push(format!(
                    "{} ({} {}): {status} with a non-JSON body {text:?}",
                    c.what, c.method, c.path
                ));
                continue;
            }
        };
        if status != c.expect {
            failures.push(format!(
                "{} ({} {}): expected {}, got {status}: {body}",
                c.what, c.method, c.path, c.expect
            ));
            continue;
        }
        assert_error_shape(&body, status.as_u16());
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused request changed stored data"
    );
}

#[tokio::test]
async fn validation_errors_name_the_field_and_the_accepted_values() {
    let app = spawn_app().await;
    let b = app
        .create_refused(
            json!({"task_type": "thumbnail", "status": "DONE"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(b["error"]["details"]["field"], "status", "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("IN_PROGRESS"),
        "{b}"
    );

    let b = app
        .create_refused(
            json!({"task_type": "thumbnail", "colour": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task_type"),
        "names accepted keys: {b}"
    );

    let b = app
        .create_refused(
            json!({"task_type": "thumbnail", "inputs": ["ok", 7]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(b["error"]["details"]["field"], "inputs[1]", "{b}");

    let res = app
        .list(&app.key, "", json!({"filters": {"OR": [{"AND": [{"field": "status", "operator": "like", "value": "x"}]}]}}))
        .await;
    let b: Value = res.json().await.unwrap();
    assert_eq!(
        b["error"]["details"]["field"], "filters.OR[0].AND[0].operator",
        "{b}"
    );
    assert_eq!(
        b["error"]["details"]["accepted"].as_array().unwrap().len(),
        14
    );

    let res = app
        .list(&app.key, "", json!({"sort": {"field": "nope"}}))
        .await;
    let b: Value = res.json().await.unwrap();
    assert!(
        b["error"]["details"]["accepted"]
            .as_array()
            .unwrap()
            .contains(&json!("created_at")),
        "{b}"
    );

    let res = app
        .send(Method::GET, "/v1/tasks?page_size=5000", &app.key)
        .await;
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["details"]["field"], "page_size", "{b}");
}

#[tokio::test]
async fn hostile_strings_in_filter_values_are_data_not_sql() {
    let app = spawn_app().await;
    app.create_ok(json!({"task_id": "t1", "task_type": "thumbnail", "additional_data": {"q": "x' OR '1'='1"}})).await;
    app.create_ok(
        json!({"task_id": "t2", "task_type": "thumbnail", "additional_data": {"q": "plain"}}),
    )
    .await;
    for (op, value, expected) in [
        ("eq", json!("x' OR '1'='1"), vec!["t1"]),
        ("eq", json!("' OR 1=1 --"), vec![]),
        ("contains", json!("%"), vec![]),
        ("contains", json!("_"), vec![]),
        ("starts_with", json!("x'"), vec!["t1"]),
        ("regex", json!("'\\) OR \\(1"), vec![]),
        (
            "in",
            json!(["'); DROP TABLE tasks; --", "plain"]),
            vec!["t2"],
        ),
    ] {
        let got = app
            .list_ids("", json!({"filters": {"AND": [{"field": "additional_data.q", "operator": op, "value": value}]}}))
            .await;
        assert_eq!(got, expected, "{op} {value}");
    }
    assert_eq!(app.snapshot().await.len(), 2);
}
