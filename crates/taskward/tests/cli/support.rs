//! What the tests of the real binary share: [`taskward`], a command that sees none of the
//! settings of the environment running the tests, and [`Serve`], `taskward serve` as a child
//! process on a free port, its output collected, killed and reaped on drop (so a failing test
//! leaves nothing behind).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A `taskward` command that sees no `TASKWARD_*` variable (nor `RUST_LOG`) of the
/// environment running the tests, and runs in `cwd`.
pub fn taskward(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskward"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TASKWARD_") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion and asserts it succeeded (its stderr says why not).
pub fn output_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running taskward");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An address nobody listens on (yet).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Every API-key-shaped token in `text` that starts with `prefix` (`sk_test_`, `sk_`…).
pub fn keys_in(text: &str, prefix: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// What a child wrote on one pipe, read line by line by a thread of its own.
struct Collected {
    text: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Collected {
    fn new(pipe: impl Read + Send + 'static) -> Collected {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Collected {
            text,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Everything, once the child has exited (its pipe closed).
    fn finish(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.text()
    }
}

/// A running `taskward serve`.
pub struct Serve {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    spawned_at: Instant,
    stdout: Collected,
    stderr: Collected,
}

impl Serve {
    /// Spawns `cmd`, a `serve` command that will listen on `addr`; stdout (where the
    /// first-start key is printed) and stderr (the logs) are collected.
    pub fn spawn(mut cmd: Command, addr: SocketAddr) -> Serve {
        // Stops at once unless the test asks for the drain delay a balancer needs.
        let delay = "TASKWARD_SERVER__DRAIN_DELAY_SECONDS";
        if !cmd.get_envs().any(|(name, _)| name == delay) {
            cmd.env(delay, "0");
        }
        let spawned_at = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning taskward serve");
        let stdout = Collected::new(child.stdout.take().expect("piped stdout"));
        let stderr = Collected::new(child.stderr.take().expect("piped stderr"));
        Serve {
            child,
            addr,
            spawned_at,
            stdout,
            stderr,
        }
    }

    /// `serve --data-dir DATA_DIR --listen ADDR` in `cwd` on a free port, letting `tweak` add
    /// flags or variables first.
    pub fn start(cwd: &Path, data_dir: &Path, tweak: impl FnOnce(&mut Command)) -> Serve {
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

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Polls `/healthz` until it answers 200; fails if that takes longer than `within` from
    /// the spawn, or the process exits first.
    pub async fn wait_healthy(&mut self, within: Duration) {
        let deadline = self.spawned_at + within;
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
                panic!(
                    "taskward serve exited before answering /healthz: {status}\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "/healthz on {} did not answer 200 within {within:?} of spawning: {answer:?}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first `sk_test_` key printed on stdout, waiting up to 5 s for it.
    pub async fn first_key(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.stdout();
            if let Some(key) = keys_in(&out, "sk_test_").first() {
                return key.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no sk_test_ key on stdout: {out:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Stderr (the logs) so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Sends SIGTERM (the graceful stop).
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .output()
            .expect("kill");
        assert!(kill.status.success(), "kill -TERM {pid}: {kill:?}");
    }

    /// Waits for the process to exit (after a SIGTERM), failing after `within`; returns
    /// whether it exited successfully.
    pub async fn exited(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the server") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "no exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then expects a successful exit within 10 s; returns all of stdout.
    pub async fn stop(mut self) -> String {
        self.sigterm();
        assert!(
            self.exited(Duration::from_secs(10)).await,
            "taskward serve exited unsuccessfully:\n{}",
            self.stderr()
        );
        self.stdout.finish()
    }

    /// SIGKILL: no shutdown, no drain.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // Harmless after `stop`: the child is already reaped.
        self.kill();
        let logs = self.stderr.finish();
        self.stdout.finish();
        if std::thread::panicking() {
            eprintln!("--- taskward serve on {} logged:\n{logs}", self.addr);
        }
    }
}
