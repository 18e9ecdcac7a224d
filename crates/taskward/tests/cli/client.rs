//! The client commands of the real `taskward` binary (`get`, `list`, `kill`, `watch`,
//! `create`, `update`) against a real server started in this process on a random port:
//! output when piped (plain, no escape codes), `--json`, exit codes, the server's error
//! messages, and `watch` under a pseudo-terminal, its screen read as a person would see it.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use taskward_client::{Client, CreateTask, TaskStatus, UpdateTask};
use taskward_testkit::{Shape, TestApp};
use tempfile::TempDir;

use crate::support::taskward;

/// A server in this process (the shared harness: stopped and joined when dropped), and the
/// client commands aimed at it.
struct App {
    server: TestApp,
    /// Where commands run, so nothing they might write lands in the repository.
    dir: TempDir,
}

impl App {
    async fn start() -> App {
        App {
            server: TestApp::spawn(Shape::Embedded).await,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.server.base, &self.server.key).expect("client")
    }

    /// `taskward ARGS` aimed at this server through `TASKWARD_URL`/`TASKWARD_API_KEY`, with
    /// no other `TASKWARD_*` or colour setting of the environment running the tests.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = taskward(self.dir.path());
        for (name, _) in std::env::vars_os() {
            let n = name.to_string_lossy();
            if n == "NO_COLOR" || n.starts_with("CLICOLOR") {
                cmd.env_remove(name);
            }
        }
        cmd.args(args)
            .env("TASKWARD_URL", &self.server.base)
            .env("TASKWARD_API_KEY", &self.server.key);
        cmd
    }

    /// Runs `taskward ARGS` to completion, piped.
    async fn run(&self, args: &[&str]) -> Out {
        self.run_cmd(self.cmd(args)).await
    }

    async fn run_cmd(&self, mut cmd: Command) -> Out {
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("running taskward"))
            .await
            .expect("join");
        Out(out)
    }

    async fn create(&self, id: &str, status: &str, extra: Value) {
        let mut body = json!({"task_id": id, "task_type": "thumbnail", "status": status});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let req: CreateTask = serde_json::from_value(body).unwrap();
        self.client().create(&req).await.expect("create");
    }

    async fn update(&self, id: &str, patch: Value) {
        let patch: UpdateTask = serde_json::from_value(patch).unwrap();
        self.client()
            .update(id, &patch, None)
            .await
            .expect("update");
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// A finished command.
struct Out(Output);

impl Out {
    fn code(&self) -> i32 {
        self.0.status.code().expect("exited (no signal)")
    }
    fn stdout(&self) -> String {
        String::from_utf8(self.0.stdout.clone()).expect("UTF-8 stdout")
    }
    fn stderr(&self) -> String {
        String::from_utf8(self.0.stderr.clone()).expect("UTF-8 stderr")
    }
    /// Asserts the exit code and that nothing printed carries a terminal escape or a panic.
    fn expect(self, code: i32) -> Out {
        let (out, err) = (self.stdout(), self.stderr());
        assert_eq!(self.code(), code, "stdout: {out}\nstderr: {err}");
        assert!(
            !out.contains('\x1b') && !err.contains('\x1b'),
            "escape codes in piped output: {out:?} {err:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
        self
    }
}

#[tokio::test]
async fn get_prints_a_readable_view_or_the_json_body_and_errors_exit_1() {
    let app = App::start().await;
    app.create(
        "g1",
        "PROCESSING",
        json!({"additional_data": {"progress": {"completed": 1, "total": 4}}, "description": "resize"}),
    )
    .await;

    let out = app.run(&["get", "g1"]).await.expect(0).stdout();
    for line in [
        "task_id         g1",
        "status          PROCESSING",
        "version         1",
        "progress        1/4 (25%)",
        "description     resize",
        "error_message   -",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} in\n{out}");
    }

    let json: Value =
        serde_json::from_str(&app.run(&["get", "g1", "--json"]).await.expect(0).stdout())
            .expect("--json prints JSON");
    assert_eq!(json["task_id"], "g1");
    assert_eq!(json["additional_data"]["progress"]["total"], 4);

    // Flags instead of the environment.
    let mut cmd = app.cmd(&[
        "get",
        "g1",
        "--url",
        &app.server.base,
        "--api-key",
        &app.server.key,
    ]);
    cmd.env_remove("TASKWARD_URL")
        .env_remove("TASKWARD_API_KEY");
    app.run_cmd(cmd).await.expect(0);

    // The server's message, exit 1, never a panic.
    let err = app.run(&["get", "nope"]).await.expect(1).stderr();
    assert!(
        err.contains("task not found") && err.contains("404"),
        "{err}"
    );
    let err = app.run(&["get", "bad/id"]).await.expect(1).stderr();
    assert!(err.contains("task_id"), "{err}");
    let mut cmd = app.cmd(&["get", "g1"]);
    cmd.env("TASKWARD_API_KEY", "sk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let err = app.run_cmd(cmd).await.expect(1).stderr();
    assert!(err.contains("401"), "{err}");
    let mut cmd = app.cmd(&["get", "g1"]);
    cmd.env_remove("TASKWARD_API_KEY");
    let err = app.run_cmd(cmd).await.expect(1).stderr();
    assert!(err.contains("TASKWARD_API_KEY"), "{err}");
    let mut cmd = app.cmd(&["get", "g1"]);
    cmd.env("TASKWARD_URL", "http://127.0.0.1:9");
    let err = app.run_cmd(cmd).await.expect(1).stderr();
    assert!(err.contains("cannot reach"), "{err}");
    app.run(&["get"]).await.expect(2);
    app.stop().await;
}

#[tokio::test]
async fn errors_name_each_cause_once_and_an_unreachable_server_says_what_to_check() {
    let app = App::start().await;
    // Refused before sending: the id's rule, once.
    let err = app.run(&["get", "bad id!"]).await.expect(1).stderr();
    assert_eq!(err.matches("must be").count(), 1, "{err}");
    assert_eq!(err.matches("task_id").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Nothing listens on the discard port: the URL once, the reason once, what to check.
    for args in [&["get", "g1"][..], &["list"], &["kill", "g1"]] {
        let mut cmd = app.cmd(args);
        cmd.env("TASKWARD_URL", "http://127.0.0.1:9");
        let err = app.run_cmd(cmd).await.expect(1).stderr();
        assert_eq!(err.matches("127.0.0.1:9").count(), 1, "{err}");
        assert_eq!(err.to_lowercase().matches("refused").count(), 1, "{err}");
        assert!(
            err.contains("Is it running") && err.contains("--url") && err.contains("TASKWARD_URL"),
            "{err}"
        );
    }

    // The server's answer: its message once, with the status.
    let err = app.run(&["get", "nope"]).await.expect(1).stderr();
    assert_eq!(err.matches("task not found").count(), 1, "{err}");
    app.stop().await;
}

#[tokio::test]
async fn list_prints_an_aligned_table_or_json_lines_and_filters() {
    let app = App::start().await;
    app.create(
        "a-long-task-id",
        "PROCESSING",
        json!({"additional_data": {"progress": {"completed": 1, "total": 2}}}),
    )
    .await;
    app.create("b", "FAILED", json!({"task_type": "materialize"}))
        .await;
    app.create("c", "PENDING", json!({})).await;

    let out = app.run(&["list"]).await.expect(0).stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("TASK_ID"), "{out}");
    assert!(
        lines[1].starts_with("c ") && lines[3].starts_with("a-long-task-id "),
        "newest first: {out}"
    );
    // Every column starts where its header does.
    for header in ["TYPE", "STATUS", "PROGRESS", "VERSION", "UPDATED_AT"] {
        let col = lines[0].find(header).unwrap();
        for l in &lines[1..] {
            assert_ne!(l.as_bytes()[col], b' ', "{header} column in {l:?}");
            assert_eq!(l.as_bytes()[col - 1], b' ', "{header} column in {l:?}");
        }
    }
    assert!(lines[3].contains("50%"), "{out}");

    let out = app.run(&["list", "--json"]).await.expect(0).stdout();
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("a JSON task per line")["task_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["c", "b", "a-long-task-id"]);

    // Each selector, and the ids of the table's rows (after its header), newest first.
    for (args, expected) in [
        (&["--status", "failed"][..], &["b"][..]),
        (&["--status", "FAILED,PENDING"], &["c", "b"]),
        (&["--type", "materialize"], &["b"]),
        (&["--search", "LONG"], &["a-long-task-id"]),
        (&["--limit", "2"], &["c", "b"]),
        (&["--active"], &["c", "a-long-task-id"]),
    ] {
        let out = app.run(&[&["list"][..], args].concat()).await.expect(0);
        let ids: Vec<String> = out
            .stdout()
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect();
        assert_eq!(ids, expected, "list {args:?}");
    }

    let err = app
        .run(&["list", "--status", "DONE"])
        .await
        .expect(1)
        .stderr();
    assert!(
        err.contains("unknown status") && err.contains("COMPLETED"),
        "{err}"
    );
    assert_eq!(
        app.run(&["list", "--type", "nope"])
            .await
            .expect(0)
            .stdout()
            .lines()
            .count(),
        1
    );
    let err = app
        .run(&["list", "--search", &"x".repeat(300)])
        .await
        .expect(1)
        .stderr();
    assert!(err.contains("422") && err.contains("search"), "{err}");

    // A reader that went away (`| head`) is no error worth a message.
    let mut child = spawn_piped(app.cmd(&["list"]));
    drop(child.stdout.take());
    let out = finish(child).await.expect(0);
    assert_eq!(out.stderr(), "");
    app.stop().await;
}

#[tokio::test]
async fn kill_cancels_and_is_idempotent() {
    let app = App::start().await;
    app.create("k", "PROCESSING", json!({})).await;
    let out = app.run(&["kill", "k"]).await.expect(0).stdout();
    assert!(out.contains("canceled"), "{out}");
    assert_eq!(
        app.client().get("k").await.unwrap().status,
        TaskStatus::Canceled
    );
    let out = app.run(&["kill", "k"]).await.expect(0).stdout();
    assert!(out.contains("not active"), "{out}");
    app.run(&["kill", "never-was"]).await.expect(0);
    app.stop().await;
}

#[tokio::test]
async fn create_and_update_take_json_from_an_argument_a_file_or_stdin() {
    let app = App::start().await;
    let out = app
        .run(&["create", r#"{"task_id": "c1", "task_type": "thumbnail"}"#])
        .await
        .expect(0);
    assert_eq!(out.stdout(), "c1\n");
    // Again, same content: idempotent, said on stderr.
    let out = app
        .run(&["create", r#"{"task_id": "c1", "task_type": "thumbnail"}"#])
        .await
        .expect(0);
    assert!(out.stderr().contains("idempotent"), "{}", out.stderr());
    // No id: the generated one is printed.
    let id = app
        .run(&["create", r#"{"task_type": "thumbnail"}"#])
        .await
        .expect(0)
        .stdout();
    app.client()
        .get(id.trim())
        .await
        .expect("the printed id exists");

    std::fs::write(
        app.dir.path().join("task.json"),
        r#"{"task_id": "c2", "task_type": "materialize", "status": "PROCESSING"}"#,
    )
    .unwrap();
    let out = app
        .run(&["create", "@task.json", "--json"])
        .await
        .expect(0)
        .stdout();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["task_id"].as_str(), v["version"].as_u64()),
        (Some("c2"), Some(1))
    );

    let mut cmd = app.cmd(&["update", "c2", "-", "--if-match", "1", "--json"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"additional_data": {"progress": {"completed": 3, "total": 9}}}"#)
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&Out(out).expect(0).stdout()).unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(
        v["status"], "PROCESSING",
        "fields not in the patch are left alone"
    );

    // A stale --if-match is the server's 412, and nothing changes.
    let err = app
        .run(&["update", "c2", r#"{"status": "FAILED"}"#, "--if-match", "1"])
        .await
        .expect(1)
        .stderr();
    assert!(err.contains("412") && err.contains("If-Match"), "{err}");
    let out = app
        .run(&["update", "c2", r#"{"status": "COMPLETED"}"#])
        .await
        .expect(0)
        .stdout();
    assert!(out.contains("status          COMPLETED"), "{out}");
    // A terminal task refuses change: 409.
    let err = app
        .run(&["update", "c2", r#"{"status": "FAILED"}"#])
        .await
        .expect(1)
        .stderr();
    assert!(err.contains("409"), "{err}");

    // Bad bodies are caught before sending, with the reason.
    let err = app.run(&["create", "{not json"]).await.expect(1).stderr();
    assert!(err.contains("not a valid body"), "{err}");
    let err = app
        .run(&["update", "c2", r#"{"colour": 1}"#])
        .await
        .expect(1)
        .stderr();
    assert!(err.contains("colour"), "{err}");
    let err = app
        .run(&["create", "@missing.json"])
        .await
        .expect(1)
        .stderr();
    assert!(err.contains("missing.json"), "{err}");
    app.stop().await;
}

/// Spawns `cmd` (piped) in the background.
fn spawn_piped(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning taskward")
}

async fn finish(child: Child) -> Out {
    Out(
        tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
            .await
            .expect("join"),
    )
}

#[tokio::test]
async fn watch_follows_changes_when_piped_and_exits_by_how_the_task_ended() {
    let app = App::start().await;
    app.create("w", "PENDING", json!({})).await;
    let child = spawn_piped(app.cmd(&["watch", "w"]));
    for done in [1, 2] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.update("w", json!({"status": "PROCESSING", "additional_data": {"progress": {"completed": done, "total": 2}}}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.update("w", json!({"status": "COMPLETED"})).await;
    let out = finish(child).await.expect(0).stdout();
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.first().unwrap()[..3], ["w", "PENDING", "1"], "{out}");
    assert_eq!(lines.last().unwrap()[..3], ["w", "COMPLETED", "4"], "{out}");
    assert!(out.contains("1/2 (50%)"), "progress shown: {out}");
    assert!(
        lines.iter().all(|l| l.len() == 5),
        "five tab-separated fields: {out}"
    );

    // Ended otherwise: distinct codes, the error message on stderr.
    app.create("f", "PROCESSING", json!({})).await;
    let child = spawn_piped(app.cmd(&["watch", "f"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.update(
        "f",
        json!({"status": "FAILED", "additional_data": {"error": {"message": "GPU on fire"}}}),
    )
    .await;
    let out = finish(child).await.expect(3);
    assert!(
        out.stderr().contains("error_message: GPU on fire"),
        "{}",
        out.stderr()
    );

    app.create("x", "PROCESSING", json!({})).await;
    let child = spawn_piped(app.cmd(&["watch", "x"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.run(&["kill", "x"]).await.expect(0);
    let out = finish(child).await.expect(4);
    assert!(out.stdout().contains("CANCELED"), "{}", out.stdout());

    app.create("p", "COMPLETED_WITH_ERRORS", json!({})).await;
    app.run(&["watch", "p"]).await.expect(5);

    app.create("slow", "PROCESSING", json!({})).await;
    let started = Instant::now();
    let out = app
        .run(&["watch", "slow", "--timeout", "0.5"])
        .await
        .expect(6);
    assert!(out.stderr().contains("timed out"), "{}", out.stderr());
    assert!(started.elapsed() < Duration::from_secs(10));

    let err = app.run(&["watch", "nope"]).await.expect(1).stderr();
    assert!(err.contains("404"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn get_wait_waits_for_the_end_and_exits_like_watch() {
    let app = App::start().await;
    app.create("gw", "PROCESSING", json!({})).await;
    let child = spawn_piped(app.cmd(&["get", "gw", "--wait", "--json"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.update(
        "gw",
        json!({"status": "FAILED", "additional_data": {"error": "out of memory"}}),
    )
    .await;
    let out = finish(child).await.expect(3);
    let v: Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(v["status"], "FAILED");
    assert!(out.stderr().contains("out of memory"));

    app.create("gd", "COMPLETED", json!({})).await;
    app.run(&["get", "gd", "--wait"]).await.expect(0);
    app.create("gs", "PROCESSING", json!({})).await;
    app.run(&["get", "gs", "--wait", "--timeout", "0.3"])
        .await
        .expect(6);
    app.stop().await;
}

/// A command running on a pseudo-terminal of `cols`×24, its output fed to a screen.
pub(crate) struct Pty {
    child: Child,
    screen: Arc<Mutex<vt100::Parser>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Pty {
    pub(crate) fn spawn(mut cmd: Command, cols: u16) -> Pty {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        rustix::termios::tcsetwinsize(
            &master,
            rustix::termios::Winsize {
                ws_row: 24,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .expect("window size");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().expect("pty name"))
            .expect("open pty");
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave)
            .env("TERM", "xterm-256color");
        let child = cmd.spawn().expect("spawning on the pty");
        // The command holds the slave's descriptors; drop it so that the master sees the end
        // when the child exits.
        drop(cmd);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            NonZeroU16::new(24).unwrap(),
            NonZeroU16::new(cols).expect("columns"),
            0,
        )));
        let sink = screen.clone();
        let mut master = std::fs::File::from(master);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child (the last holder of the slave) has exited.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().process(&buf[..n]);
            }
        });
        Pty {
            child,
            screen,
            reader: Some(reader),
        }
    }

    pub(crate) fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until the screen shows `text`.
    pub(crate) async fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.contents().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the screen never showed {text:?}; it shows:\n{}",
                self.contents()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the exit and the last output; returns the exit code.
    async fn exit(mut self) -> (i32, Self) {
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        let reader = self.reader.take();
        let code = tokio::task::spawn_blocking(move || {
            let code = child.wait().expect("wait").code().expect("exit code");
            if let Some(r) = reader {
                r.join().expect("reader");
            }
            code
        })
        .await
        .expect("join");
        (code, self)
    }

    /// Whether the first occurrence of `text` on the screen is drawn in a colour.
    pub(crate) fn coloured(&self, text: &str) -> bool {
        let parser = self.screen.lock().unwrap();
        let screen = parser.screen();
        let (rows, cols) = screen.size();
        let want: Vec<String> = text.chars().map(String::from).collect();
        for row in 0..rows.get() {
            let cells: Vec<String> = (0..cols.get())
                .map(|c| {
                    screen
                        .cell(row, c)
                        .map(|x| x.contents().to_owned())
                        .unwrap_or_default()
                })
                .collect();
            if let Some(col) = cells.windows(want.len()).position(|w| w == want.as_slice()) {
                let cell = screen.cell(row, col as u16).expect("cell");
                return cell.fgcolor() != vt100::Color::Default;
            }
        }
        panic!("{text:?} is not on the screen:\n{}", screen.contents());
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn watch_on_a_terminal_shows_a_live_progress_line_then_the_outcome() {
    let app = App::start().await;
    app.create("tty", "PROCESSING", json!({})).await;
    let pty = Pty::spawn(app.cmd(&["watch", "tty"]), 100);
    pty.wait_for("tty PROCESSING").await;

    app.update(
        "tty",
        json!({"additional_data": {"progress": {"completed": 50, "total": 100}}}),
    )
    .await;
    pty.wait_for("50/100 (50%)").await;
    let live = pty.contents();
    assert!(live.contains("[===="), "a bar for a known fraction: {live}");
    assert!(live.contains("00:00:0"), "elapsed time: {live}");
    assert!(pty.coloured("PROCESSING"), "colour on a terminal");

    app.update(
        "tty",
        json!({"status": "COMPLETED", "additional_data": {"progress": {"completed": 100}}}),
    )
    .await;
    let (code, pty) = pty.exit().await;
    assert_eq!(code, 0, "{}", pty.contents());
    let screen = pty.contents();
    assert!(
        screen.contains("tty COMPLETED after 00:00:0") && screen.contains("100/100 (100%)"),
        "{screen}"
    );
    assert!(
        !screen.contains("PROCESSING"),
        "the live line is cleared: {screen}"
    );
    assert!(pty.coloured("COMPLETED"));
    app.stop().await;
}

#[tokio::test]
async fn no_color_turns_colour_off_even_on_a_terminal() {
    let app = App::start().await;
    app.create(
        "nc",
        "FAILED",
        json!({"additional_data": {"error": "boom"}}),
    )
    .await;

    let pty = Pty::spawn(app.cmd(&["get", "nc"]), 100);
    let (code, pty) = pty.exit().await;
    assert_eq!(code, 0);
    assert!(pty.coloured("FAILED"), "{}", pty.contents());

    let mut cmd = app.cmd(&["get", "nc"]);
    cmd.env("NO_COLOR", "1");
    let (code, pty) = Pty::spawn(cmd, 100).exit().await;
    assert_eq!(code, 0);
    assert!(!pty.coloured("FAILED"), "{}", pty.contents());

    let mut cmd = app.cmd(&["watch", "nc"]);
    cmd.env("NO_COLOR", "1");
    let (code, pty) = Pty::spawn(cmd, 100).exit().await;
    assert_eq!(code, 3);
    assert!(
        pty.contents().contains("error_message: boom"),
        "{}",
        pty.contents()
    );
    assert!(!pty.coloured("FAILED"), "{}", pty.contents());
    app.stop().await;
}

#[tokio::test]
async fn history_prints_every_change_and_watch_json_prints_json_lines() {
    let app = App::start().await;
    app.create("hi", "PENDING", json!({})).await;
    app.update(
        "hi",
        json!({"status": "PROCESSING", "additional_data": {"progress": {"completed": 1, "total": 4}}}),
    )
    .await;

    let child = spawn_piped(app.cmd(&["watch", "hi", "--json"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.update(
        "hi",
        json!({"additional_data": {"progress": {"completed": 2}}}),
    )
    .await;
    app.update("hi", json!({"status": "COMPLETED"})).await;
    let out = finish(child).await.expect(0).stdout();
    let states: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    let versions: Vec<u64> = states
        .iter()
        .map(|t| t["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        [2, 3, 4],
        "the current state, then each change once: {out}"
    );
    assert_eq!(states[1]["progress"]["percent"], 50.0);
    assert_eq!(states[2]["status"], "COMPLETED");

    let out = app.run(&["history", "hi"]).await.expect(0).stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("EVENT_ID"), "{out}");
    let types: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "task.created",
            "task.updated",
            "task.updated",
            "task.completed"
        ],
        "{out}"
    );
    assert!(lines[2].contains("1/4 (25%)"), "{out}");
    let json: Value = serde_json::from_str(
        &app.run(&["history", "hi", "--json"])
            .await
            .expect(0)
            .stdout(),
    )
    .unwrap();
    assert_eq!(json["events"].as_array().unwrap().len(), 4);
    let err = app.run(&["history", "nope"]).await.expect(1);
    assert!(err.stderr().contains("not found"), "{}", err.stderr());
    app.stop().await;
}

#[tokio::test]
async fn webhooks_commands_create_list_show_deliveries_rotate_redeliver_and_delete() {
    let app = App {
        server: TestApp::spawn_with(Shape::Embedded, |s| {
            s.webhooks.allow_private_networks = true;
            s.webhooks.poll_interval_ms = 100;
        })
        .await,
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let receiver = taskward_testkit::Receiver::start(taskward_testkit::Answer::Status(200)).await;
    let created = app
        .run(&[
            "webhooks",
            "create",
            &receiver.url,
            "--events",
            "task.created,task.completed",
            "--json",
        ])
        .await
        .expect(0);
    let hook: Value = serde_json::from_str(&created.stdout()).expect("json");
    let id = hook["webhook_id"].as_str().unwrap().to_owned();
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(hook["events"], json!(["task.created", "task.completed"]));

    let list = app.run(&["webhooks", "list"]).await.expect(0).stdout();
    assert!(list.starts_with("WEBHOOK"), "{list}");
    assert!(
        list.contains(&id)
            && list.contains("task.created,task.completed")
            && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains("whsec_"), "no secret in listings: {list}");

    app.create("wh-cli", "PENDING", json!({})).await;
    receiver.wait_hits(1, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let table = loop {
        let out = app
            .run(&["webhooks", "deliveries", &id])
            .await
            .expect(0)
            .stdout();
        if out.contains("delivered") {
            break out;
        }
        assert!(Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        table.contains("task.created") && table.contains("wh-cli") && table.contains("200"),
        "{table}"
    );
    let page: Value = serde_json::from_str(
        &app.run(&["webhooks", "deliveries", &id, "--json"])
            .await
            .expect(0)
            .stdout(),
    )
    .expect("json");
    let delivery = page["results"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let again = app
        .run(&["webhooks", "redeliver", &id, &delivery])
        .await
        .expect(0)
        .stdout();
    assert!(
        again.trim().starts_with("msg_") && again.trim() != delivery,
        "{again}"
    );
    receiver.wait_hits(2, Duration::from_secs(10)).await;

    let rotated = app
        .run(&["webhooks", "rotate", &id])
        .await
        .expect(0)
        .stdout();
    assert!(
        rotated.trim().starts_with("whsec_") && rotated.trim() != hook["secret"],
        "{rotated}"
    );

    app.run(&["webhooks", "delete", &id]).await.expect(0);
    let gone = app.run(&["webhooks", "delete", &id]).await.expect(1);
    assert!(
        gone.stderr().contains("webhook endpoint not found"),
        "{}",
        gone.stderr()
    );
    let bad = app.run(&["webhooks", "rotate", "nope"]).await.expect(1);
    assert!(bad.stderr().contains("webhook_id"), "{}", bad.stderr());
    let list = app
        .run(&["webhooks", "list", "--json"])
        .await
        .expect(0)
        .stdout();
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap(), json!([]));
}
