//! Generated requests on every route (proptest): methods, paths, query strings, headers and
//! bodies built from the API's own vocabulary mixed with arbitrary text. Whatever comes in:
//! never a 5xx, every error body in SPEC's shape, and a refused request changes nothing stored.
//! Case counts are bounded so the binary stays well under a minute.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::{json, Map, Value};
use taskward_model::filter::Op;
use taskward_model::CreateTask;

use crate::raw::{self, Reply};
use crate::support::{assert_error_shape, spawn_app_with, TestApp};

/// Words of the API besides its operators ([`words`] adds those).
const OTHER_WORDS: &[&str] = &[
    "t1",
    "t2",
    "missing",
    "thumbnail",
    "materialize",
    "PENDING",
    "PROCESSING",
    "FAILED",
    "COMPLETED",
    "CANCELED",
    "task_id",
    "status",
    "created_at",
    "version",
    "additional_data.k",
    "additional_data..x",
    "additional_data.a.b.c",
    "asc",
    "desc",
    "2024-01-01T00:00:00Z",
    "(unclosed",
    "\\w{9999}",
    "' OR 1=1 --",
    "%",
    "_",
    "",
    " ",
    "✓",
    "\u{0}",
    "null",
    "1",
    "-1",
    "1e999",
    "\"1\"",
    "W/\"1\"",
    "*",
];

/// Body keys besides a create's fields ([`keys`] adds those).
const OTHER_KEYS: &[&str] = &[
    "filters",
    "AND",
    "OR",
    "NOT",
    "field",
    "operator",
    "value",
    "case_sensitive",
    "sort",
    "direction",
    "search",
    "version",
    "from_mongodb",
    "error",
    "k",
];

/// The vocabulary words are drawn from: every filter operator as the model spells it (so a new
/// one is generated at once), then the rest.
fn words() -> Vec<&'static str> {
    [&Op::NAMES[..], OTHER_WORDS].concat()
}

/// The keys bodies are built from: a create's fields as the model lists them, then the rest.
fn keys() -> Vec<&'static str> {
    [&CreateTask::FIELDS[..], OTHER_KEYS].concat()
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(words()).prop_map(str::to_owned),
        1 => ".{0,24}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        word().prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![3 => prop::sample::select(keys()).prop_map(str::to_owned), 1 => word()],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Auth {
    Main,
    Missing,
    Raw(String),
}

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Body,
    auth: Auth,
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&["t1", "t2", "missing", "", "..", "%2F", "a%00b", "%FF", "a%20b", "kill", "list"][..])
            .prop_map(str::to_owned),
        2 => "[A-Za-z0-9._:~%-]{0,140}",
        1 => "[^/?#]{0,20}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(
            &["/v1/tasks", "/v1/tasks/", "/v1/tasks/list", "/v1/keys/self", "/healthz", "/readyz", "/metrics", "/openapi.json", "/", "/dashboard", "/dashboard/"][..]
        )
        .prop_map(str::to_owned),
        1 => segment().prop_map(|s| format!("/dashboard/tasks/{s}")),
        1 => prop_oneof![Just("app.js".to_owned()), segment()].prop_map(|s| format!("/dashboard/assets/{s}")),
        3 => segment().prop_map(|s| format!("/v1/tasks/{s}")),
        1 => segment().prop_map(|s| format!("/v1/tasks/{s}/kill")),
        1 => prop::collection::vec(segment(), 0..4).prop_map(|v| format!("/{}", v.join("/"))),
    ]
}

fn request() -> impl Strategy<Value = Req> {
    let method = prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::PUT,
        Method::HEAD,
        Method::OPTIONS,
    ]);
    let query_key = prop_oneof![
        4 => prop::sample::select(&["page", "page_size", "limit", "offset", "cursor", "include_total", "wait"][..])
            .prop_map(str::to_owned),
        1 => word(),
    ];
    let query = prop::collection::vec((query_key, word()), 0..4);
    let header_name = prop::sample::select(
        &[
            "content-type",
            "if-match",
            "if-none-match",
            "accept",
            "x-request-id",
            "accept-encoding",
            "content-encoding",
            "range",
            "cookie",
            "x-forwarded-for",
            "origin",
        ][..],
    );
    let header_value = prop_oneof![
        2 => prop::sample::select(&["application/json", "text/plain", "application/json; charset=utf-8",
            "application/x+json", "\"1\"", "\"2\", \"1\"", "gzip", "bytes=0-1"][..]).prop_map(str::to_owned),
        2 => word(),
    ];
    let headers = prop::collection::vec((header_name.prop_map(str::to_owned), header_value), 0..4);
    let body = prop_oneof![
        1 => Just(Body::None),
        4 => json_value().prop_map(Body::Json),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Bytes),
    ];
    let auth = prop_oneof![
        8 => Just(Auth::Main),
        1 => Just(Auth::Missing),
        1 => word().prop_map(Auth::Raw),
    ];
    (method, path(), query, headers, body, auth).prop_map(
        |(method, path, query, headers, body, auth)| Req {
            method,
            path,
            query,
            headers,
            body,
            auth,
        },
    )
}

/// The status and body text, or `None` when the request cannot even be expressed (a URL or
/// header value reqwest refuses to build).
async fn send(app: &TestApp, r: &Req) -> Option<(u16, String)> {
    let mut url = app.url(&r.path);
    if !r.query.is_empty() {
        let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        url = format!("{url}?{}", q.join("&"));
    }
    let url = reqwest::Url::parse(&url).ok()?;
    let mut req = app.client.request(r.method.clone(), url);
    match &r.auth {
        Auth::Main => req = req.bearer_auth(&app.key),
        Auth::Missing => {}
        Auth::Raw(v) => req = req.header("authorization", HeaderValue::from_str(v).ok()?),
    }
    for (k, v) in &r.headers {
        req = req.header(
            HeaderName::from_bytes(k.as_bytes()).ok()?,
            HeaderValue::from_str(v).ok()?,
        );
    }
    req = match &r.body {
        Body::None => req,
        Body::Json(v) => req.json(v),
        Body::Bytes(b) => req.body(b.clone()),
    };
    let res = req
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("every request is answered");
    let status = res.status().as_u16();
    Some((status, res.text().await.unwrap_or_default()))
}

fn check_reply(what: &str, status: u16, body: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{what}: {status} {body}");
    if status >= 400 && !body.is_empty() {
        let v: Value = serde_json::from_str(body)
            .map_err(|e| TestCaseError::fail(format!("{what}: {status} non-JSON {body:?}: {e}")))?;
        assert_error_shape(&v, status);
    }
    Ok(())
}

fn seeded_app(
    rt: &tokio::runtime::Runtime,
    header_read_timeout_ms: u64,
    request_timeout_ms: u64,
) -> TestApp {
    rt.block_on(async {
        let mut app = spawn_app_with(|s| {
            // A generated `?wait=` must not stall the run.
            s.limits.max_wait_secs = 1;
            s.limits.header_read_timeout_ms = header_read_timeout_ms;
            // A connection that never sends a byte is closed as soon as one that starts a head.
            s.limits.idle_timeout_ms = header_read_timeout_ms;
            s.limits.request_timeout_ms = request_timeout_ms;
        })
        .await;
        // The server closes a keep-alive connection idle for the idle timeout; the checking
        // client must drop idle connections before that, or it may send a request on one
        // just as the server closes it (a transport error, not a server answer).
        app.client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_millis(header_read_timeout_ms / 3))
            .build()
            .expect("client");
        app.create_ok(json!({"task_id": "t1", "task_type": "thumbnail", "status": "PROCESSING", "additional_data": {"k": "v"}}))
            .await;
        app.create_ok(json!({"task_id": "t2", "task_type": "materialize"}))
            .await;
        app
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        max_shrink_iters: 256,
        // Nothing is written into the source tree.
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn generated_requests_on_every_route_never_get_a_5xx_or_change_data_when_refused() {
    let rt = runtime();
    let app = seeded_app(&rt, 10_000, 30_000);
    // `TestRunner::run` takes an `Fn`: the running state lives in cells.
    let stored = RefCell::new(rt.block_on(app.snapshot()));
    let answered = Cell::new(0u32);
    runner(400)
        .run(&request(), |r| {
            rt.block_on(async {
                let Some((status, body)) = send(&app, &r).await else {
                    return Ok(());
                };
                answered.set(answered.get() + 1);
                let what = format!("{} {} {:?}", r.method, r.path, r.query);
                check_reply(&what, status, &body)?;
                let now = app.snapshot().await;
                if status >= 400 {
                    prop_assert_eq!(
                        &now,
                        &*stored.borrow(),
                        "{}: refused with {} yet data changed",
                        what,
                        status
                    );
                }
                stored.replace(now);
                Ok(())
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let answered = answered.get();
    assert!(
        answered > 300,
        "only {answered} generated requests could be sent"
    );
    rt.block_on(app.stop());
}

/// A valid request, then damaged: bytes flipped, inserted, removed or cut.
fn mutated_bytes(key: &str) -> impl Strategy<Value = Vec<u8>> {
    let base = prop::sample::select(
        [
        "PATCH /v1/tasks/t1 HTTP/1.1\r\nHost: taskward\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 23\r\nIf-Match: \"1\"\r\n\r\n{\"status\": \"COMPLETED\"}",
        "POST /v1/tasks/list?page_size=2 HTTP/1.1\r\nHost: taskward\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n{\"search\": \"t1\"}\r\n0\r\n\r\n",
        "GET /v1/tasks/t1?wait=1 HTTP/1.1\r\nHost: taskward\r\nAuthorization: Bearer {KEY}\r\nIf-None-Match: \"9\"\r\n\r\n",
        ]
        .map(|r| r.replace("{KEY}", key))
        .to_vec(),
    );
    let edits = prop::collection::vec((0usize..4, any::<prop::sample::Index>(), any::<u8>()), 1..6);
    (base, edits).prop_map(|(base, edits)| {
        let mut b = base.as_bytes().to_vec();
        for (kind, at, byte) in edits {
            if b.is_empty() {
                break;
            }
            let i = at.index(b.len());
            match kind {
                0 => b[i] = byte,
                1 => b.insert(i, byte),
                2 => {
                    b.remove(i);
                }
                _ => b.truncate(i),
            }
        }
        b
    })
}

#[test]
fn damaged_raw_requests_never_get_a_5xx_or_change_data_when_refused() {
    let rt = runtime();
    // Requests cut short leave the connection waiting for the rest of the head (closed at the
    // header-read timeout, or the idle timeout when no byte came) or of the body (408 at the
    // request timeout): keep them short.
    let app = seeded_app(&rt, 300, 1_000);
    let stored = RefCell::new(rt.block_on(app.snapshot()));
    runner(120)
        .run(&mutated_bytes(&app.key), |bytes| {
            rt.block_on(async {
                let reply = raw::exchange(&app, &bytes, Duration::from_secs(4)).await;
                let refused = match &reply {
                    Reply::Response(status, body) => {
                        check_reply("damaged request", *status, &String::from_utf8_lossy(body))?;
                        *status >= 400
                    }
                    Reply::Closed => true,
                    Reply::Silent => false,
                };
                let now = app.snapshot().await;
                if refused {
                    prop_assert_eq!(
                        &now,
                        &*stored.borrow(),
                        "refused ({:?}) yet data changed",
                        reply
                    );
                }
                stored.replace(now);
                Ok(())
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        raw::served_promptly(&app).await;
        app.stop().await;
    });
}
