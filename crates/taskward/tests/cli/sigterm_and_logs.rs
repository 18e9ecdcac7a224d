//! The real `taskward serve` binary under two operational promises:
//! - SIGTERM during a write burst drains: `/readyz` turns 503 at once while requests are still
//!   served through the drain delay, then the listener closes, requests in flight finish with
//!   their response, long-polls end, the process exits cleanly, and after a restart every
//!   acknowledged write is there.
//! - No log line, even at `RUST_LOG=trace` through a full production-shape run (keys minted,
//!   writes, reads, bad keys, Redis killed), contains an API key or a database/Redis password.
//! - Log lines carry colour codes only when stderr is a terminal and `NO_COLOR` is unset: a
//!   log file or collector gets plain text.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskward_testkit::{PgSchema, RedisPrefix, RedisServer};

use crate::support::{free_addr, output_ok, taskward, Serve};

/// `taskward serve` in `cwd` over `cwd/data` on a free port.
fn start(cwd: &Path, tweak: impl FnOnce(&mut Command)) -> Serve {
    Serve::start(cwd, &cwd.join("data"), tweak)
}

/// `server.drain_delay_seconds` of the SIGTERM test: long enough to look at the server while
/// it drains.
const DRAIN_DELAY: Duration = Duration::from_secs(3);

/// How long a server may take to answer `/healthz` (the production shape migrates first).
const HEALTHY_WITHIN: Duration = Duration::from_secs(20);

/// What one writer knows at the end: its task, the last version acknowledged and the
/// description written then, and whether a later write ended without a clear answer.
struct Acked {
    id: String,
    version: u64,
    description: String,
    unsure: bool,
}

async fn writer(base: String, key: String, id: String) -> Acked {
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(&key)
        .json(&json!({"task_id": id, "task_type": "thumbnail", "status": "PROCESSING", "description": "0"}))
        .send()
        .await
        .expect("the first create is served");
    assert_eq!(res.status(), 201);
    let mut acked = Acked {
        id: id.clone(),
        version: 1,
        description: "0".into(),
        unsure: false,
    };
    for n in 1.. {
        let description = n.to_string();
        let res = client
            .patch(format!("{base}/v1/tasks/{id}"))
            .bearer_auth(&key)
            .json(&json!({"description": description}))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.expect("a full response body");
                acked.version = v["version"].as_u64().expect("version");
                acked.description = description;
            }
            Ok(r) => panic!("{id}: a write answered {}", r.status()),
            Err(e) => {
                // Refused before it reached the server: nothing happened. Anything else (a
                // connection closed under a request the server may not have read) is unsure.
                acked.unsure = !e.is_connect();
                break;
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = start(dir.path(), |c| {
        c.env(
            "TASKWARD_SERVER__DRAIN_DELAY_SECONDS",
            DRAIN_DELAY.as_secs().to_string(),
        );
    });
    serve.wait_healthy(HEALTHY_WITHIN).await;
    let key = serve.first_key().await;
    let base = serve.url("");
    let client = reqwest::Client::new();
    let res = client
        .post(serve.url("/v1/tasks"))
        .bearer_auth(&key)
        .json(&json!({"task_id": "watched", "task_type": "thumbnail", "status": "PROCESSING"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // Long-polls that will be in flight when the signal comes.
    let polls: Vec<_> = (0..3)
        .map(|_| {
            let (c, url, key) = (
                client.clone(),
                serve.url("/v1/tasks/watched?wait=10"),
                key.clone(),
            );
            tokio::spawn(async move {
                c.get(url)
                    .bearer_auth(key)
                    .header("If-None-Match", "\"1\"")
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    let writers: Vec<_> = (0..6)
        .map(|i| tokio::spawn(writer(base.clone(), key.clone(), format!("w{i}"))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    serve.sigterm();

    // Out of rotation at once, yet still serving: readiness fails, requests (on new
    // connections too) are answered, each closing its connection so that a balancer's next
    // request goes elsewhere. The writers write on meanwhile.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = reqwest::Client::new()
        .get(serve.url("/readyz"))
        .send()
        .await
        .expect("served during the drain delay");
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["connection"], "close");
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "draining", "{ready}");
    let still = reqwest::Client::new()
        .get(serve.url("/v1/tasks/watched"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("served during the drain delay");
    assert_eq!(still.status(), 200);
    assert!(
        signalled.elapsed() < DRAIN_DELAY,
        "the checks above ran within the drain delay (the machine was too slow to tell)"
    );

    // Not accepting any more once the delay is over: a new connection is refused while the
    // drain goes on.
    tokio::time::sleep_until((signalled + DRAIN_DELAY + Duration::from_millis(300)).into()).await;
    let late = reqwest::Client::new()
        .get(serve.url("/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        late.is_err(),
        "a request after SIGTERM was served: {late:?}"
    );

    for p in polls {
        let status = p
            .await
            .unwrap()
            .expect("an in-flight long-poll got its response");
        assert_eq!(status, 304);
    }
    let acked: Vec<Acked> = futures_join(writers).await;
    assert!(serve.exited(Duration::from_secs(15)).await, "clean exit");
    let drained_in = signalled.elapsed();
    let total: u64 = acked.iter().map(|a| a.version).sum();
    assert!(total > 6, "the burst wrote something ({total} versions)");

    let mut again = start(dir.path(), |_| {});
    again.wait_healthy(HEALTHY_WITHIN).await;
    let mut unsure_applied = 0;
    for a in &acked {
        let req = client.get(again.url(&format!("/v1/tasks/{}", a.id)));
        let v: Value = sent(req.bearer_auth(&key)).await.json().await.unwrap();
        let stored = v["version"].as_u64().unwrap();
        if stored == a.version {
            assert_eq!(v["description"], a.description.as_str(), "{}", a.id);
        } else {
            assert!(
                a.unsure && stored == a.version + 1,
                "{}: acknowledged version {}, stored {stored}",
                a.id,
                a.version
            );
            unsure_applied += 1;
        }
    }
    println!(
        "SIGTERM drain: {} writers, {total} acknowledged versions, all present; {unsure_applied} \
         unanswered writes applied; drained and exited {drained_in:?} after the signal",
        acked.len()
    );
}

/// Sends a request that must reach the server (its answer is the test's business).
async fn sent(req: reqwest::RequestBuilder) -> reqwest::Response {
    req.send().await.expect("request")
}

async fn futures_join<T: Send + 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

const PG_PASSWORD: &str = "pgS3cretPw9";
const REDIS_PASSWORD: &str = "r3disS3cretPw7";

/// `scheme://user@host…` → `scheme://user:password@host…`
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    match rest.split_once('@') {
        Some((user, host)) => format!("{scheme}://{user}:{password}@{host}"),
        None => format!("{scheme}://:{password}@{rest}"),
    }
}

fn redis_command(port: u16, cmd: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("redis");
    s.write_all(format!("{cmd}\r\n").as_bytes()).expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("read");
    assert!(
        buf[..n].starts_with(b"+OK"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_password_appears_in_any_log_line_at_trace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = PgSchema::new();
    let prefix = RedisPrefix::new();
    let mut redis = RedisServer::start();
    redis_command(
        redis.port,
        &format!("CONFIG SET requirepass {REDIS_PASSWORD}"),
    );
    let db_url = with_password(&pg.url, PG_PASSWORD);
    let redis_url = with_password(&redis.url(), REDIS_PASSWORD);
    let env = |cmd: &mut Command| {
        cmd.env("TASKWARD_DATABASE_URL", &db_url)
            .env("TASKWARD_REDIS_URL", &redis_url)
            .env("TASKWARD_DURABLE__SCHEMA", &pg.name)
            .env("TASKWARD_HOT__REDIS_PREFIX", &prefix.prefix)
            .env("TASKWARD_HOT__REDIS_TIMEOUT_MS", "200")
            .env("RUST_LOG", "trace");
    };
    let mut logs = String::new();
    let mut keys = Vec::new();
    for (org, scopes) in [("acme", "read,write,cancel"), ("globex", "read")] {
        let mut cmd = taskward(dir.path());
        env(&mut cmd);
        let out = output_ok(cmd.args([
            "keys", "create", "--org", org, "--mode", "live", "--scopes", scopes,
        ]));
        keys.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    let (key, reader) = (keys[0].clone(), keys[1].clone());
    assert!(key.starts_with("sk_live_"), "{key}");
    let wrong = "sk_live_WrongButWellFormed0123456789abc".to_owned();

    let mut serve = start(dir.path(), |c| env(c));
    serve.wait_healthy(HEALTHY_WITHIN).await;
    let c = reqwest::Client::new();
    let url = |p: &str| serve.url(p);
    let scenario = |round: u32| {
        let (c, key, reader, wrong) = (c.clone(), key.clone(), reader.clone(), wrong.clone());
        let url = url("");
        async move {
            let id = format!("log-{round}");
            let task = format!("{url}/v1/tasks/{id}");
            let r = sent(c.post(format!("{url}/v1/tasks")).bearer_auth(&key).json(
                &json!({"task_id": id, "task_type": "thumbnail", "status": "PROCESSING", "additional_data": {"k": 1}}),
            ))
            .await;
            assert_eq!(r.status(), 201);
            // Reads with every kind of key, and a key in the wrong scheme.
            let mut reads: Vec<_> = [&key, &reader, &wrong]
                .into_iter()
                .map(|k| c.get(&task).bearer_auth(k))
                .collect();
            reads.push(c.get(&task).header("Authorization", format!("Basic {key}")));
            for req in reads {
                sent(req).await;
            }
            let failed = json!({"status": "FAILED", "additional_data": {"error": "boom"}});
            let if_match = |body: Value| {
                c.patch(&task)
                    .bearer_auth(&key)
                    .header("If-Match", "\"1\"")
                    .json(&body)
            };
            assert_eq!(sent(if_match(failed)).await.status(), 200);
            // Then what answers errors: a stale If-Match, a filter, bad JSON; and the rest.
            let filter = json!({"filters": {"AND": [{"field": "additional_data.k", "operator": "eq", "value": 1}]}});
            for req in [
                if_match(json!({"status": "COMPLETED"})),
                c.post(format!("{url}/v1/tasks/list?include_total=true"))
                    .bearer_auth(&reader)
                    .json(&filter),
                c.post(format!("{url}/v1/tasks"))
                    .bearer_auth(&key)
                    .header("Content-Type", "application/json")
                    .body("{not json"),
                c.delete(&task).bearer_auth(&key),
                c.get(format!("{url}/readyz")),
            ] {
                sent(req).await;
            }
        }
    };
    scenario(1).await;
    // Errors are where secrets leak: connection failures name their targets.
    redis.kill();
    scenario(2).await;
    let _ = c.get(url("/metrics")).send().await;
    serve.sigterm();
    assert!(serve.exited(Duration::from_secs(15)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    logs.push_str(&serve.stderr());

    let lines = logs.lines().count();
    // Every request leaves lines at debug, with its route: the scan read a real log.
    assert!(
        lines > 40 && logs.contains("/v1/tasks/list") && logs.contains("sqlx::query"),
        "trace logging was on ({lines} lines)"
    );
    for secret in [
        key.as_str(),
        &key[8..],
        reader.as_str(),
        &reader[8..],
        wrong.as_str(),
        &wrong[8..],
        PG_PASSWORD,
        REDIS_PASSWORD,
    ] {
        if let Some(line) = logs.lines().find(|l| l.contains(secret)) {
            panic!("a log line holds a secret: {line}");
        }
    }
    println!("scanned {lines} log lines at trace: no key, no password");
}

#[tokio::test]
async fn logs_carry_escape_codes_only_on_a_terminal_without_no_color() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Piped, as under systemd or `> serve.log`: debug lines for requests, warnings, errors.
    let mut serve = Serve::start(dir.path(), &dir.path().join("data"), |c| {
        c.env("RUST_LOG", "debug").env_remove("NO_COLOR");
    });
    serve.wait_healthy(Duration::from_secs(10)).await;
    let c = reqwest::Client::new();
    let first = serve.first_key().await;
    for (path, key) in [
        ("/v1/tasks/nope", first.clone()),
        ("/v1/tasks?page=0", first),
        (
            "/v1/tasks/nope",
            "sk_test_unknownButWellFormed0123456789".to_owned(),
        ),
    ] {
        let r = c
            .get(serve.url(path))
            .bearer_auth(key)
            .header("x-request-id", "client-chosen-id-7")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        assert_eq!(r.headers()["x-request-id"], "client-chosen-id-7");
    }
    serve.sigterm();
    assert!(serve.exited(Duration::from_secs(15)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = serve.stderr();
    assert!(
        logs.lines().count() > 5 && logs.contains("listening") && logs.contains("DEBUG"),
        "a real log was read: {logs}"
    );
    // At debug, a request's lines sit in its span, which names the client's request id.
    assert!(
        logs.lines()
            .any(|l| l.contains("client-chosen-id-7") && l.contains("/v1/tasks/{task_id}")),
        "request lines carry the request id and route: {logs}"
    );
    assert!(
        !logs.contains('\x1b'),
        "escape codes in a piped log: {logs:?}"
    );

    // On a terminal the level is coloured, unless NO_COLOR says otherwise.
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let addr = free_addr();
        let mut cmd = taskward(dir.path());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen")
            .arg(addr.to_string())
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let pty = crate::client::Pty::spawn(cmd, 200);
        pty.wait_for("listening").await;
        assert_eq!(
            pty.coloured("INFO"),
            coloured,
            "NO_COLOR={no_color:?}:\n{}",
            pty.contents()
        );
    }
}
