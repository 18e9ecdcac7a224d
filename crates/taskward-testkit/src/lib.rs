//! Dev-only helpers shared by the test suites: every test owns its namespace.
//!
//! - [`PgSchema`]: a fresh schema name on the machine's PostgreSQL, dropped on drop.
//! - [`RedisPrefix`]: a fresh key prefix on the machine's Redis, its keys deleted on drop.
//! - [`RedisServer`]: a private `redis-server` on a free port in a temp directory, to kill,
//!   pause (SIGSTOP: alive, data kept, unreachable) and restart; killed on drop.
//! - [`PostgresServer`]: a private PostgreSQL cluster (initdb, fsync on) on a free port in a
//!   temp directory, to SIGKILL (a crash: recovery runs at restart) and restart; killed on drop.
//!
//! - With the `app` feature, [`TestApp`]: a real taskward server on a random port, in either
//!   [`Shape`], on a thread and runtime of its own, joined when dropped; and the wire
//!   contract's assertions ([`assert_task_shape`], [`assert_error`]). A feature, so the
//!   store's tests need not build the server.
//!
//! - With `app` too, [`Receiver`]: a webhook receiver that records requests and answers as told.
//!
//! - [`TcpProxy`]: a proxy in front of a server, to stall or cut one client's connection alone.
//! - [`Haproxy`]: a load balancer in front of several instances.
//! - [`RedisCluster`]: six private redis-servers as a cluster of three masters and three
//!   replicas, to fail a master over.
//!
//! - [`raise_fd_limit`] and [`resident_kib`]: for tests that hold many connections and weigh
//!   what they cost a server process.
//!
//! `TASKWARD_TEST_DATABASE_URL` and `TASKWARD_TEST_REDIS_URL` override the default addresses.

#[cfg(feature = "app")]
mod app;
#[cfg(feature = "app")]
mod contract;
mod haproxy;
mod proxy;
#[cfg(feature = "app")]
mod receiver;
mod redis_cluster;

#[cfg(feature = "app")]
pub use app::{Namespace, RowLock, Shape, TestApp, WriteLock};
#[cfg(feature = "app")]
pub use contract::{assert_error, assert_error_shape, assert_task_shape, ids};
pub use haproxy::Haproxy;
pub use proxy::TcpProxy;
#[cfg(feature = "app")]
pub use receiver::{Answer, Hit, Receiver};
pub use redis_cluster::RedisCluster;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The PostgreSQL the tests use.
pub fn database_url() -> String {
    std::env::var("TASKWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("TASKWARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Raises this process's open-files soft limit to at least `want` (up to the hard limit), for
/// tests that hold thousands of connections; processes spawned afterwards inherit it. Returns
/// the soft limit now.
pub fn raise_fd_limit(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    if lim.current.is_some_and(|c| c < want) {
        lim.current = Some(want.min(hard));
        setrlimit(Resource::Nofile, lim).expect("raise RLIMIT_NOFILE");
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The resident memory of process `pid` (`VmRSS`), in KiB.
pub fn resident_kib(pid: u32) -> std::io::Result<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc/<pid>/status"))
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// Runs `f` to completion on a runtime of its own, from a plain thread: drop handlers run where
/// no async context can be borrowed.
fn block_on_thread<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let t = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(f());
        }
    });
    let _ = t.join();
}

/// A schema of its own on the test PostgreSQL (created by whoever opens it first).
#[derive(Debug)]
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    /// A fresh, unused schema name.
    pub fn new() -> PgSchema {
        PgSchema {
            url: database_url(),
            name: unique("tw_test_"),
        }
    }
}

impl Default for PgSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        block_on_thread(move || async move {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await;
            }
        });
    }
}

/// A key prefix of its own on a Redis.
#[derive(Debug)]
pub struct RedisPrefix {
    pub url: String,
    pub prefix: String,
}

impl RedisPrefix {
    /// A fresh prefix on the test Redis.
    pub fn new() -> RedisPrefix {
        RedisPrefix {
            url: redis_url(),
            prefix: format!("{}:", unique("tw_test_")),
        }
    }

    /// Deletes every key under the prefix.
    pub async fn clear(&self) {
        delete_prefixed(&self.url, &self.prefix).await;
    }
}

impl Default for RedisPrefix {
    fn default() -> Self {
        Self::new()
    }
}

async fn delete_prefixed(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async::<(u64, Vec<String>)>(&mut conn)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _ = redis::cmd("DEL")
                .arg(&keys)
                .query_async::<u64>(&mut conn)
                .await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        block_on_thread(move || async move { delete_prefixed(&url, &prefix).await });
    }
}

/// A private `redis-server` (no persistence) on a free port.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Waits until a server `what` accepts connections on loopback `port` (10 s at most).
// Blocking is fine here: a test waits for its own server before doing anything else.
#[allow(clippy::disallowed_methods)]
fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RedisServer {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir,
        };
        server.spawn();
        server
    }

    // Blocking is fine here: a test waits for its own server before doing anything else.
    #[allow(clippy::disallowed_methods)]
    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .map(|s| s.success());
            assert!(matches!(ok, Ok(true)), "kill {sig} failed");
        }
    }

    /// SIGKILL: gone, data lost.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: alive with its data, but answers nothing (a partition).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: the partition heals.
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A stopped process must be continued before it can die of SIGKILL cleanly.
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
    }
}

/// Where the PostgreSQL server binaries are (`TASKWARD_TEST_PG_BIN` overrides).
fn pg_bin(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("TASKWARD_TEST_PG_BIN")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    std::path::Path::new(&dir).join(name)
}

/// `initdb` and `postgres` refuse to run as root: as root, run them as the `postgres` account
/// (uid, gid), which the PostgreSQL packages create.
fn pg_account() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok()?;
    if me != 0 {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((
        id("-u").expect("running as root needs a `postgres` account for initdb"),
        id("-g").expect("running as root needs a `postgres` account for initdb"),
    ))
}

/// A private PostgreSQL (`initdb` + `postgres`, trust auth, fsync on) on a free port. Its
/// processes form one process group, so [`PostgresServer::kill`] takes the postmaster and
/// every backend down at once, as a machine or container crash would.
#[derive(Debug)]
pub struct PostgresServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    account: Option<(u32, u32)>,
}

impl PostgresServer {
    /// Creates a cluster and starts it; returns once it accepts queries.
    pub fn start() -> PostgresServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let account = pg_account();
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown temp dir");
        }
        let mut server = PostgresServer {
            child: None,
            port: free_port(),
            dir,
            account,
        };
        let out = server
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(server.data_dir())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.spawn();
        server
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, bin: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(pg_bin(bin));
        cmd.stdin(Stdio::null());
        if let Some((uid, gid)) = self.account {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    // Blocking is fine here: a test waits for its own server before doing anything else.
    #[allow(clippy::disallowed_methods)]
    fn spawn(&mut self) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .expect("log file");
        if let Some((uid, gid)) = self.account {
            std::os::unix::fs::chown(self.dir.path().join("postgres.log"), Some(uid), Some(gid))
                .expect("chown log");
        }
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .args(["-c", "max_connections=60", "-c", "shared_buffers=16MB"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("postgres runs");
        self.child = Some(child);
        // Crash recovery after a kill can take a moment; a cluster answering SELECT is ready.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(pg_bin("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("postgres exited with {status}: see {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start on port {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// SIGKILL to the postmaster and every backend: no shutdown checkpoint, sockets reset;
    /// what was committed is in the WAL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data (after a kill: crash recovery).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}
