//! Dev-only helpers shared by the test suites: every test owns its namespace.
//!
//! - [`PgSchema`]: a fresh schema name on the machine's PostgreSQL, dropped on drop.
//! - [`RedisPrefix`]: a fresh key prefix on the machine's Redis, its keys deleted on drop.
//! - [`RedisServer`]: a private `redis-server` on a free port in a temp directory, to kill,
//!   pause (SIGSTOP: alive, data kept, unreachable) and restart; killed on drop.
//!
//! `TASKWARD_TEST_DATABASE_URL` and `TASKWARD_TEST_REDIS_URL` override the default addresses.

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
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
