//! End-to-end tests of the real `taskward` binary: `serve` (start-up, the first-start key,
//! SIGTERM, restart on the same data), `keys create|list|revoke` against a running server, and
//! how `config`/`serve` layer the TOML file, `TASKWARD_*` variables and flags.
//!
//! Each test owns a temp directory (also the working directory of every command it runs, so
//! nothing lands in the repository) and a free port. The API itself is covered by
//! `taskward-server`'s tests; here only what the binary adds is checked.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use taskward_testkit::{raise_fd_limit, resident_kib};
use tempfile::TempDir;

use crate::support::{free_addr, keys_in, output_ok, taskward, Serve};

/// `serve` answers `/healthz` within this of being spawned.
const HEALTHY_WITHIN: Duration = Duration::from_secs(1);

/// Runs a short command to completion, capturing stdout and stderr.
fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("running taskward")
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// POST /v1/tasks with `body`.
async fn create_task(serve: &Serve, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(serve.url("/v1/tasks"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("POST /v1/tasks")
}

/// GET /v1/tasks/{id}.
async fn get_task(serve: &Serve, key: &str, id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(serve.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /v1/tasks/{id}")
}

/// Asserts `resp` has `status` and SPEC's error shape; returns the body.
async fn expect_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["status"], json!(status), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    body
}

/// Creates a task of `task_type`, expects 201, and returns its id.
async fn create_ok(serve: &Serve, key: &str, task_type: &str) -> String {
    let resp = create_task(serve, key, json!({ "task_type": task_type })).await;
    assert_eq!(resp.status(), 201);
    let task: Value = resp.json().await.unwrap();
    assert_eq!(task["task_type"], task_type, "{task}");
    task["task_id"].as_str().expect("a task_id").to_owned()
}

/// `keys create` arguments for a live read-write key of `acme`, the key these tests mint.
const CREATE_ACME_LIVE_KEY: [&str; 7] = [
    "create",
    "--org",
    "acme",
    "--mode",
    "live",
    "--scopes",
    "read,write",
];
#[tokio::test]
async fn serve_answers_healthz_within_a_second_and_prints_the_first_key_once() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");

    let mut serve = Serve::start(tmp.path(), &data, |_| {});
    serve.wait_healthy(HEALTHY_WITHIN).await;
    let key = serve.first_key().await;
    let id = create_ok(&serve, &key, "thumbnail").await;
    let resp = get_task(&serve, &key, &id).await;
    assert_eq!(resp.status(), 200);
    let task: Value = resp.json().await.unwrap();
    assert_eq!(
        (task["task_id"].as_str(), task["status"].as_str()),
        (Some(&*id), Some("PENDING"))
    );
    let first_stdout = serve.stop().await;
    assert_eq!(
        keys_in(&first_stdout, "sk_test_"),
        std::slice::from_ref(&key),
        "{first_stdout}"
    );
    assert_eq!(keys_in(&first_stdout, "sk_live_"), Vec::<String>::new());

    let mut again = Serve::start(tmp.path(), &data, |_| {});
    again.wait_healthy(HEALTHY_WITHIN).await;
    let resp = get_task(&again, &key, &id).await;
    assert_eq!(resp.status(), 200);
    let task: Value = resp.json().await.unwrap();
    assert_eq!(task["task_id"], json!(id));
    let second_stdout = again.stop().await;
    assert_eq!(
        keys_in(&second_stdout, "sk_"),
        Vec::<String>::new(),
        "{second_stdout}"
    );
}

#[tokio::test]
async fn keys_create_prints_only_the_key_and_works_while_serve_runs() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    // No key cache, so a revocation reaches the running server at once.
    let mut serve = Serve::start(tmp.path(), &data, |cmd| {
        cmd.env("TASKWARD_AUTH__KEY_CACHE_TTL_MS", "0");
    });
    serve.wait_healthy(HEALTHY_WITHIN).await;
    let first_key = serve.first_key().await;
    let keys = |args: &[&str]| {
        let mut cmd = taskward(tmp.path());
        cmd.arg("keys").arg(args[0]).arg("--data-dir").arg(&data);
        cmd.args(&args[1..]);
        run(&mut cmd)
    };

    let out = keys(&CREATE_ACME_LIVE_KEY);
    assert!(out.status.success(), "{out:?}");
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    let live_key = lines[0];
    assert_eq!(keys_in(live_key, "sk_live_"), [live_key], "{stdout:?}");
    assert!(live_key.len() >= "sk_live_".len() + 24, "{live_key}");

    let id = create_ok(&serve, live_key, "thumbnail").await;
    assert_eq!(get_task(&serve, live_key, &id).await.status(), 200);
    // The first key is default/test: another tenant's task is a 404.
    expect_error(get_task(&serve, &first_key, &id).await, 404).await;

    let out = keys(&["list"]);
    assert!(out.status.success(), "{out:?}");
    let table = stdout_of(&out);
    let out = keys(&["list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json_lines = stdout_of(&out);
    let records: Vec<Value> = json_lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    for r in &records {
        for field in ["key_id", "org", "mode", "scopes"] {
            assert!(r[field].is_string(), "{field} missing in {r}");
        }
    }
    let acme: Vec<&Value> = records.iter().filter(|r| r["org"] == "acme").collect();
    assert_eq!(acme.len(), 1, "{json_lines}");
    assert_eq!(
        (&acme[0]["mode"], &acme[0]["scopes"]),
        (&json!("live"), &json!("read,write"))
    );
    let key_id = acme[0]["key_id"].as_str().unwrap();
    assert!(table.contains(key_id) && table.contains("acme"), "{table}");
    assert_columns_line_up(&table);
    for shown in [&table, &json_lines] {
        assert!(
            !shown.contains(live_key) && !shown.contains(&first_key),
            "{shown}"
        );
    }

    let out = keys(&["revoke", key_id]);
    assert!(out.status.success(), "{out:?}");
    let body = expect_error(get_task(&serve, live_key, &id).await, 401).await;
    assert!(body["error"].is_object(), "{body}");
    expect_error(
        create_task(&serve, live_key, json!({"task_type": "thumbnail"})).await,
        401,
    )
    .await;

    let out = keys(&[
        "create", "--org", "acme", "--mode", "live", "--scopes", "read",
    ]);
    assert!(out.status.success(), "{out:?}");
    let read_key = stdout_of(&out).trim_end().to_owned();
    assert_eq!(get_task(&serve, &read_key, &id).await.status(), 200);
    let resp = create_task(&serve, &read_key, json!({"task_type": "thumbnail"})).await;
    let body = expect_error(resp, 403).await;
    assert_eq!(
        body["error"]["details"]["required_scope"], "write",
        "{body}"
    );

    serve.stop().await;
}

/// Every column of a space-aligned table starts at the same character in every line, as its
/// header does: organisations (`acme`, `default`) and scope lists of different lengths must
/// not shift the columns after them.
fn assert_columns_line_up(table: &str) {
    let lines: Vec<Vec<char>> = table.lines().map(|l| l.chars().collect()).collect();
    assert!(lines.len() >= 3, "a header and two keys: {table}");
    let header = &lines[0];
    let starts: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != ' ' && (i == 0 || header[i - 1] == ' '))
        .collect();
    assert_eq!(starts.len(), 7, "{table}");
    for line in &lines[1..] {
        for &i in &starts[1..] {
            assert!(
                line.get(i).is_some_and(|c| *c != ' ') && line[i - 1] == ' ' && line[i - 2] == ' ',
                "column at {i} does not line up:\n{table}"
            );
        }
    }
}

#[tokio::test]
async fn keys_create_rejects_bad_arguments() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");
    let bad: [&[&str]; 5] = [
        &["--org", "acme", "--mode", "prod", "--scopes", "read"],
        &["--org", "acme", "--mode", "live", "--scopes", "read,fly"],
        &["--org", "acme", "--mode", "live", "--scopes", ""],
        &["--org", "ac me", "--mode", "live", "--scopes", "read"],
        &["--org", "", "--mode", "test", "--scopes", "read"],
    ];
    for args in bad {
        let out = run(taskward(tmp.path())
            .args(["keys", "create", "--data-dir"])
            .arg(&data)
            .args(args));
        assert!(!out.status.success(), "{args:?} succeeded: {out:?}");
        assert_eq!(stdout_of(&out), "", "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no reason given");
    }
    // Nothing was stored either.
    let out = run(taskward(tmp.path())
        .args(["keys", "list", "--json", "--data-dir"])
        .arg(&data));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout_of(&out), "");
}

#[tokio::test]
async fn configuration_layers_env_file_and_flags() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("taskward.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\ntask_types = [\"my_custom_job\"]\n",
    )
    .unwrap();
    let config = |tweak: &dyn Fn(&mut Command)| {
        let mut cmd = taskward(tmp.path());
        cmd.arg("config");
        tweak(&mut cmd);
        let out = run(&mut cmd);
        assert!(out.status.success(), "{out:?}");
        stdout_of(&out)
    };

    let from_file = config(&|c| {
        c.arg("--config").arg(&file);
    });
    assert!(
        from_file.contains("listen = \"127.0.0.1:1\""),
        "{from_file}"
    );
    assert!(from_file.contains("\"my_custom_job\""), "{from_file}");

    let env_wins = config(&|c| {
        c.arg("--config")
            .arg(&file)
            .env("TASKWARD_LISTEN", "127.0.0.1:2");
    });
    assert!(env_wins.contains("listen = \"127.0.0.1:2\""), "{env_wins}");
    assert!(env_wins.contains("\"my_custom_job\""), "{env_wins}");

    let flag_wins = config(&|c| {
        c.arg("--config")
            .arg(&file)
            .args(["--listen", "127.0.0.1:3"])
            .env("TASKWARD_LISTEN", "127.0.0.1:2");
    });
    assert!(
        flag_wins.contains("listen = \"127.0.0.1:3\""),
        "{flag_wins}"
    );

    let via_env = config(&|c| {
        c.env("TASKWARD_CONFIG", &file);
    });
    assert_eq!(via_env, from_file);

    let typo = tmp.path().join("typo.toml");
    std::fs::write(&typo, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = run(taskward(tmp.path())
        .arg("config")
        .arg("--config")
        .arg(&typo));
    assert!(!out.status.success(), "unknown key accepted: {out:?}");
    assert_eq!(stdout_of(&out), "");

    let mut serve = Serve::start(tmp.path(), &tmp.path().join("data"), |cmd| {
        cmd.arg("--config").arg(&file);
    });
    serve.wait_healthy(HEALTHY_WITHIN).await;
    let key = serve.first_key().await;
    create_ok(&serve, &key, "my_custom_job").await;
    let resp = create_task(&serve, &key, json!({"task_type": "not_registered"})).await;
    let body = expect_error(resp, 422).await;
    let accepted = body["error"]["details"]["accepted"]
        .as_array()
        .unwrap_or_else(|| panic!("no details.accepted: {body}"));
    assert!(accepted.contains(&json!("my_custom_job")), "{body}");
    assert!(accepted.contains(&json!("thumbnail")), "{body}");
    serve.stop().await;
}

#[tokio::test]
async fn env_vars_select_listen_and_data_dir() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("from-env");
    let addr = free_addr();
    let mut cmd = taskward(tmp.path());
    cmd.arg("serve")
        .env("TASKWARD_LISTEN", addr.to_string())
        .env("TASKWARD_DATA_DIR", &data);
    let mut serve = Serve::spawn(cmd, addr);
    serve.wait_healthy(HEALTHY_WITHIN).await;
    assert!(
        data.join("taskward.db").is_file(),
        "no taskward.db in {}",
        data.display()
    );
    assert!(
        !tmp.path().join("taskward-data").exists(),
        "the default data dir was used"
    );
    serve.stop().await;
}

#[tokio::test]
async fn the_production_shape_prints_no_key_and_keys_work_against_postgres() {
    let tmp = TempDir::new().unwrap();
    let schema = taskward_testkit::PgSchema::new();
    let redis = taskward_testkit::RedisPrefix::new();
    let production = |cmd: &mut Command| {
        cmd.env("TASKWARD_DATABASE_URL", &schema.url)
            .env("TASKWARD_DURABLE__SCHEMA", &schema.name)
            .env("TASKWARD_REDIS_URL", &redis.url)
            .env("TASKWARD_HOT__REDIS_PREFIX", &redis.prefix);
    };
    let data = tmp.path().join("unused");
    let mut serve = Serve::start(tmp.path(), &data, production);
    serve.wait_healthy(HEALTHY_WITHIN).await;

    let mut create = taskward(tmp.path());
    create.arg("keys").args(CREATE_ACME_LIVE_KEY);
    production(&mut create);
    let key = stdout_of(&run(&mut create)).trim().to_owned();
    assert!(key.starts_with("sk_live_"), "{key}");
    let id = create_ok(&serve, &key, "thumbnail").await;
    assert_eq!(get_task(&serve, &key, &id).await.status(), 200);

    let stdout = serve.stop().await;
    assert!(
        keys_in(&stdout, "sk_").is_empty(),
        "a production server printed a key: {stdout}"
    );
    assert!(
        !data.exists(),
        "the production shape wrote an embedded data dir"
    );
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_used_is_refused_with_what_to_do() {
    let dir = TempDir::new().expect("temp dir");
    // A file where the data directory should be.
    std::fs::write(dir.path().join("taken"), "not a directory").expect("file");
    let out = run(taskward(dir.path()).args(["keys", "list", "--data-dir", "taken"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a directory") && err.contains("--data-dir"),
        "says what is wrong and what to do: {err}"
    );
    assert!(!err.contains("os error"), "not a bare OS error: {err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken")).expect("file"),
        "not a directory",
        "left as it was"
    );
}

#[tokio::test]
async fn a_data_dir_or_database_the_user_cannot_write_is_refused_with_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // Permissions do not bind root: as root, run the binary as `nobody`, as a service would.
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    let dir = TempDir::new().expect("temp dir");
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))
    };
    mode(dir.path(), 0o777).expect("chmod");
    // `keys list` over `data`, run as that user.
    let keys_list_as_user = |data: &std::path::Path| {
        let mut cmd = taskward(dir.path());
        cmd.args(["keys", "list", "--data-dir"]).arg(data);
        if as_root {
            cmd.uid(65534).gid(65534);
        }
        cmd
    };
    // Refused, with an error that says each of `says`.
    let assert_refused = |data: &std::path::Path, says: [&str; 2]| {
        let out = run(&mut keys_list_as_user(data));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(says.iter().all(|s| err.contains(s)), "{err}");
    };
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("dir");
    mode(&locked, 0o555).expect("chmod");
    assert_refused(
        &locked,
        ["cannot write to the data directory", "permission denied"],
    );

    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("dir");
    mode(&data, 0o777).expect("chmod");
    output_ok(&mut keys_list_as_user(&data));
    mode(&data.join("taskward.db"), 0o444).expect("chmod");
    assert_refused(&data, ["is read-only", "chmod u+w"]);
}

/// Opens a connection to `addr` and has one `/healthz` answered on it, which leaves it an idle
/// keep-alive connection with whatever the server keeps for one.
async fn served_keep_alive(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // `/healthz` answers a small body with a Content-Length: the response is whole once the
    // head and that many bytes after it have arrived.
    loop {
        let n = s.read(&mut buf).await.expect("response");
        assert!(n > 0, "closed before the response ended");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if got.len() >= head_end + 4 + length {
                assert!(text.starts_with("http/1.1 200"), "{text}");
                return s;
            }
        }
    }
}

/// Memory is what bounds how many clients one instance holds (keep-alive pools, long-polls,
/// streams). A connection costs hyper two 8 KiB buffers of which little is ever written, so it
/// is cheap only if untouched memory stays unresident: with transparent huge pages (which
/// mimalloc asks for unless told not to) each connection cost 19.5 KiB here instead of 11.8.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn held_connections_cost_the_server_little_memory() {
    const CONNECTIONS: u64 = 2_000;
    const MAX_KIB_EACH: u64 = 15;
    // Both ends of every connection are open at once; the server inherits the limit.
    let limit = raise_fd_limit(2 * CONNECTIONS + 500);
    assert!(
        limit >= 2 * CONNECTIONS + 500,
        "open-files limit {limit} is too low"
    );
    let tmp = TempDir::new().unwrap();
    let mut serve = Serve::start(tmp.path(), &tmp.path().join("data"), |_| {});
    serve.wait_healthy(HEALTHY_WITHIN).await;
    // What a first connection sets up once (buffers of the runtime, the allocator's first
    // pages) is not what each further one costs.
    drop(served_connections(serve.addr, 50).await);
    let before = resident_kib(serve.pid()).expect("server RSS");
    let held = served_connections(serve.addr, CONNECTIONS as usize).await;
    let after = resident_kib(serve.pid()).expect("server RSS");
    let each = (after.saturating_sub(before)) as f64 / CONNECTIONS as f64;
    assert!(
        each <= MAX_KIB_EACH as f64,
        "{CONNECTIONS} idle keep-alive connections took the server from {before} to {after} KiB \
         resident: {each:.1} KiB each, over {MAX_KIB_EACH}"
    );
    drop(held);
    serve.stop().await;
}

/// `n` connections, each with one request served, opened one after another.
async fn served_connections(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(served_keep_alive(addr).await);
    }
    held
}
