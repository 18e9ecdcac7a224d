//! End-to-end tests of the real `taskward` binary: `serve` (start-up, the first-start key,
//! SIGTERM, restart on the same data), `keys create|list|revoke` against a running server, and
//! how `config`/`serve` layer the TOML file, `TASKWARD_*` variables and flags.
//!
//! Each test owns a temp directory (also the working directory of every command it runs, so
//! nothing lands in the repository) and a free port. The API itself is covered by
//! `taskward-server`'s tests; here only what the binary adds is checked.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// A `taskward` command that sees no `TASKWARD_*` variable of the environment running the
/// tests, and runs in `cwd`.
fn taskward(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskward"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TASKWARD_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

/// Runs a short command to completion, capturing stdout and stderr.
fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("running taskward")
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// An address nobody listens on (yet).
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    listener.local_addr().expect("bound address")
}

/// Every API-key-shaped token in `text` that starts with `prefix` (`sk_test_`, `sk_`…).
fn keys_in(text: &str, prefix: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// A running `taskward serve`. Dropping it kills and reaps the process, so a failing test
/// leaves nothing behind; [`Serve::stop`] is the graceful way.
struct Serve {
    child: Child,
    addr: SocketAddr,
    spawned_at: Instant,
    stdout: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Serve {
    /// Spawns `cmd` (a `serve` command that will listen on `addr`). Its stderr (the logs) goes
    /// to the test's output; its stdout is collected.
    fn spawn(mut cmd: Command, addr: SocketAddr) -> Serve {
        let spawned_at = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning taskward serve");
        let pipe = child.stdout.take().expect("piped stdout");
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = stdout.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Serve {
            child,
            addr,
            spawned_at,
            stdout,
            reader: Some(reader),
        }
    }

    /// `serve --data-dir DIR --listen ADDR` on a free port.
    fn start(cwd: &Path, data_dir: &Path) -> Serve {
        Serve::start_with(cwd, data_dir, |_| {})
    }

    /// Like [`Serve::start`], letting `tweak` add flags or variables first.
    fn start_with(cwd: &Path, data_dir: &Path, tweak: impl FnOnce(&mut Command)) -> Serve {
        let addr = free_addr();
        let mut cmd = taskward(cwd);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(addr.to_string());
        tweak(&mut cmd);
        Serve::spawn(cmd, addr)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Polls `/healthz` until it answers 200; fails one second after the spawn.
    async fn wait_healthy(&mut self) {
        let deadline = self.spawned_at + Duration::from_secs(1);
        let client = reqwest::Client::new();
        loop {
            let answer = client
                .get(self.url("/healthz"))
                .timeout(Duration::from_millis(200))
                .send()
                .await;
            if matches!(&answer, Ok(r) if r.status() == 200) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("polling the server") {
                panic!("taskward serve exited before answering /healthz: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "/healthz on {} did not answer 200 within 1 s of spawning: {answer:?}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first `sk_test_` key printed on stdout, waiting up to 5 s for it.
    async fn first_key(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(key) = keys_in(&self.stdout.lock().unwrap(), "sk_test_").first() {
                return key.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no sk_test_ key on stdout: {:?}",
                self.stdout.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM, expects a successful exit within 10 s, and returns all of stdout.
    async fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let kill = run(Command::new("kill").args(["-TERM", &pid]));
        assert!(kill.status.success(), "kill -TERM {pid}: {kill:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("polling the server") {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "taskward serve exited with {status}");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stdout reader");
        }
        let out = self.stdout.lock().unwrap().clone();
        out
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // Harmless after `stop`: the child is already reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

#[tokio::test]
async fn serve_answers_healthz_within_a_second_and_prints_the_first_key_once() {
    let tmp = TempDir::new().unwrap();
    let data = tmp.path().join("data");

    let mut serve = Serve::start(tmp.path(), &data);
    serve.wait_healthy().await;
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

    let mut again = Serve::start(tmp.path(), &data);
    again.wait_healthy().await;
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
    let mut serve = Serve::start_with(tmp.path(), &data, |cmd| {
        cmd.env("TASKWARD_AUTH__KEY_CACHE_TTL_MS", "0");
    });
    serve.wait_healthy().await;
    let first_key = serve.first_key().await;
    let keys = |args: &[&str]| {
        let mut cmd = taskward(tmp.path());
        cmd.arg("keys").arg(args[0]).arg("--data-dir").arg(&data);
        cmd.args(&args[1..]);
        run(&mut cmd)
    };

    let out = keys(&[
        "create",
        "--org",
        "acme",
        "--mode",
        "live",
        "--scopes",
        "read,write",
    ]);
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

    let mut serve = Serve::start_with(tmp.path(), &tmp.path().join("data"), |cmd| {
        cmd.arg("--config").arg(&file);
    });
    serve.wait_healthy().await;
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
    serve.wait_healthy().await;
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
    let mut serve = Serve::start_with(tmp.path(), &data, production);
    serve.wait_healthy().await;

    let mut create = taskward(tmp.path());
    create.args([
        "keys",
        "create",
        "--org",
        "acme",
        "--mode",
        "live",
        "--scopes",
        "read,write",
    ]);
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
