//! [`TestApp`]: a real taskward server on a random port, in either shape, for the suites that
//! drive it over HTTP (the API suite, the typed client's, the CLI's client commands).
//!
//! The server runs on a runtime of its own in a dedicated thread, so it can be stopped and
//! joined anywhere, `Drop` included (no async context needed): dropping a `TestApp` stops the
//! server, waits for it to drain, and fails the test if the server panicked or returned an
//! error. Its shape: embedded (a temp data directory) or production (the machine's Redis and
//! PostgreSQL, in a [`Namespace`] of its own, removed when dropped).

use std::net::SocketAddr;
use std::sync::Once;
use std::thread::JoinHandle;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use taskward_model::{Mode, OrgId, Scopes};
use taskward_server::settings::{Secret, ServerSettings};
use taskward_server::{Server, Settings};
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::contract::{assert_error, assert_task_shape, ids};
use crate::{PgSchema, RedisPrefix};

/// Which tiers a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// In-process cache + SQLite.
    Embedded,
    /// Redis + PostgreSQL.
    Production,
}

/// A production-shape namespace: a PostgreSQL schema and a Redis key prefix of its own,
/// removed when dropped.
#[derive(Debug)]
pub struct Namespace {
    /// The durable tier's schema.
    pub pg: PgSchema,
    /// The hot tier's key prefix.
    pub redis: RedisPrefix,
}

impl Namespace {
    fn new() -> Namespace {
        Namespace {
            pg: PgSchema::new(),
            redis: RedisPrefix::new(),
        }
    }

    fn apply(&self, s: &mut Settings) {
        s.database_url = Some(Secret::new(self.pg.url.clone()));
        s.redis_url = Some(Secret::new(self.redis.url.clone()));
        s.durable.schema = Some(self.pg.name.clone());
        s.durable.pool_size = 8;
        s.hot.redis_prefix = self.redis.prefix.clone();
    }
}

/// A running server. Dropping it stops the server and joins it; [`TestApp::stop`] does the
/// same without blocking the caller's runtime.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// The address the server listens on.
    pub addr: SocketAddr,
    /// A client the helpers below use (a test may replace it, e.g. to tune its pool).
    pub client: reqwest::Client,
    /// All scopes, organisation `acme`, test mode.
    pub key: String,
    /// The settings the server runs with.
    pub settings: Settings,
    /// The data directory (embedded shape).
    pub dir: TempDir,
    /// The production shape's namespace, when this instance owns it.
    pub namespace: Option<Namespace>,
    server: Option<ServerThread>,
}

/// The thread a server runs in, and how to stop it.
#[derive(Debug)]
struct ServerThread {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<Result<(), String>>,
}

impl ServerThread {
    /// Stops the server and waits for it; panics if it failed or panicked.
    fn join(self) {
        let _ = self.stop.send(());
        match self.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the test server failed: {e}"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Server logs only with `TEST_LOG=1` (filter from `RUST_LOG`, default debug).
fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

impl TestApp {
    /// A server of `shape` with default settings.
    pub async fn spawn(shape: Shape) -> TestApp {
        TestApp::spawn_with(shape, |_| {}).await
    }

    /// A server of `shape` whose settings `tweak` adjusted (after the namespace was applied).
    pub async fn spawn_with(shape: Shape, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().to_path_buf(),
            // Stops at once: no balancer to wait for (tests of the drain set it).
            server: ServerSettings {
                drain_delay_seconds: 0,
            },
            ..Settings::default()
        };
        let namespace = (shape == Shape::Production).then(Namespace::new);
        if let Some(ns) = &namespace {
            ns.apply(&mut settings);
        }
        tweak(&mut settings);
        TestApp::start(settings, dir, namespace).await
    }

    async fn start(settings: Settings, dir: TempDir, namespace: Option<Namespace>) -> TestApp {
        init_logs();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(SocketAddr, String), String>>();
        let (stop, stopped) = oneshot::channel::<()>();
        let server_settings = settings.clone();
        let thread = std::thread::Builder::new()
            .name("test-server".into())
            .spawn(move || run_server(server_settings, ready_tx, stopped))
            .expect("spawning the server thread");
        let server = ServerThread { stop, thread };
        let (addr, key) = match ready_rx.await {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => panic!("the test server did not start: {e}"),
            Err(_) => {
                server.join();
                panic!("the test server thread ended before it started serving");
            }
        };
        TestApp {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::new(),
            key,
            settings,
            dir,
            namespace,
            server: Some(server),
        }
    }

    /// Stops the server and waits for it to drain (on a blocking thread, so the caller's
    /// runtime keeps running its clients meanwhile). Returns what a restart needs.
    pub async fn stop(mut self) -> (TempDir, Settings, Option<Namespace>) {
        if let Some(server) = self.server.take() {
            tokio::task::spawn_blocking(move || server.join())
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, self.settings.clone(), self.namespace.take())
    }

    /// Starts a new server on the same data.
    pub async fn restart(self) -> TestApp {
        let (dir, mut settings, namespace) = self.stop().await;
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        TestApp::start(settings, dir, namespace).await
    }

    /// Stops the server (draining as on SIGTERM) and starts a new one on the same data and
    /// the same address, as a process manager restarts a service behind a balancer.
    pub async fn restart_in_place(self) -> TestApp {
        let addr = self.addr;
        let (dir, mut settings, namespace) = self.stop().await;
        settings.listen = addr;
        TestApp::start(settings, dir, namespace).await
    }

    /// Another instance over the same tiers (production shape: the same schema and key
    /// prefix), as a second process of a deployment would be. It does not own the namespace.
    pub async fn second_instance(&self) -> TestApp {
        self.second_instance_with(|_| {}).await
    }

    /// [`TestApp::second_instance`] with its settings adjusted by `tweak` (e.g. reaching Redis
    /// through a proxy of its own).
    pub async fn second_instance_with(&self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        tweak(&mut settings);
        TestApp::start(settings, tempfile::tempdir().expect("temp dir"), None).await
    }

    /// The same data behind an empty hot tier: a new process for the in-process cache, the
    /// namespace's keys deleted for Redis.
    pub async fn with_empty_hot_tier(self) -> TestApp {
        match &self.namespace {
            Some(ns) => {
                ns.redis.clear().await;
                self
            }
            None => self.restart().await,
        }
    }

    /// Everything the durable tier holds, as text (to check what is and is not stored).
    pub async fn durable_dump(&self) -> String {
        match &self.namespace {
            None => {
                let mut text = String::new();
                for file in ["taskward.db", "taskward.db-wal"] {
                    let bytes = std::fs::read(self.dir.path().join(file)).unwrap_or_default();
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
                text
            }
            Some(ns) => {
                let mut conn = pg_connection(ns).await;
                let mut text = String::new();
                for table in ["tasks", "api_keys", "markers", "pending_invalidations"] {
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT row_to_json(x)::text FROM {table} x"))
                            .fetch_all(&mut conn)
                            .await
                            .expect("dump");
                    text.push_str(&rows.join("\n"));
                }
                text
            }
        }
    }

    /// Another client holds the durable tier's write lock until the guard is released: a real
    /// lock, not a mock (SQLite: `BEGIN EXCLUSIVE`; PostgreSQL: `LOCK TABLE … EXCLUSIVE`, which
    /// still lets readers through).
    pub async fn lock_durable_writes(&self) -> WriteLock {
        match &self.namespace {
            None => {
                let url = format!("sqlite://{}", self.dir.path().join("taskward.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut conn)
                    .await
                    .expect("lock");
                WriteLock::Sqlite(conn)
            }
            Some(ns) => {
                let mut conn = pg_connection(ns).await;
                sqlx::raw_sql("BEGIN; LOCK TABLE tasks IN EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .expect("lock");
                WriteLock::Postgres(conn)
            }
        }
    }

    /// Another client holds task `id`'s row locked (`SELECT … FOR UPDATE` in an open
    /// transaction) until the guard is released: a write to that task waits for it in
    /// PostgreSQL, writes to other tasks need not. Production shape only.
    pub async fn lock_task_row(&self, id: &str) -> RowLock {
        let ns = self
            .namespace
            .as_ref()
            .expect("a row lock needs the production shape");
        let mut conn = pg_connection(ns).await;
        sqlx::raw_sql("BEGIN")
            .execute(&mut conn)
            .await
            .expect("begin");
        let locked: Vec<(i32,)> =
            sqlx::query_as("SELECT pg_backend_pid() FROM tasks WHERE task_id = $1 FOR UPDATE")
                .bind(id)
                .fetch_all(&mut conn)
                .await
                .expect("lock");
        let [(pid,)] = locked[..] else {
            panic!("{} tasks {id} to lock, not one", locked.len());
        };
        RowLock {
            conn,
            pid,
            url: ns.pg.url.clone(),
        }
    }

    /// Mints a key directly in the store (as `taskward keys create` would).
    pub async fn key_for(&self, org: &str, mode: Mode, scopes: &str) -> String {
        let store = taskward_server::open_store(&self.settings)
            .await
            .expect("store");
        let (key, _) = store
            .keys
            .create(
                OrgId::parse(org).expect("org"),
                mode,
                Scopes::parse(scopes).expect("scopes"),
            )
            .await
            .expect("key");
        key.expose().to_owned()
    }

    /// `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with `key` as bearer token.
    pub fn req(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    /// Sends `method path` with `key` as bearer token and no body.
    pub async fn send(&self, method: Method, path: &str, key: &str) -> Response {
        sent(self.req(method, path, key)).await
    }

    /// An unauthenticated `GET path` (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`).
    pub async fn get_public(&self, path: &str) -> Response {
        sent(self.client.get(self.url(path))).await
    }

    /// The JSON an unauthenticated `GET path` answers.
    pub async fn public_json(&self, path: &str) -> Value {
        self.get_public(path).await.json().await.expect("json")
    }

    /// The text an unauthenticated `GET path` answers.
    pub async fn public_text(&self, path: &str) -> String {
        self.get_public(path).await.text().await.expect("text")
    }

    /// `POST /v1/tasks` with `body`.
    pub async fn create(&self, key: &str, body: Value) -> Response {
        sent(self.req(Method::POST, "/v1/tasks", key).json(&body)).await
    }

    /// Creates a task and returns its JSON, asserting 201.
    pub async fn create_ok(&self, body: Value) -> Value {
        let res = self.create(&self.key, body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let v: Value = res.json().await.expect("json");
        assert_task_shape(&v);
        v
    }

    /// Creates with the main key, asserting that it is refused with `status` in SPEC's error
    /// shape; returns the error body.
    pub async fn create_refused(&self, body: Value, status: StatusCode) -> Value {
        assert_error(self.create(&self.key, body).await, status).await
    }

    /// Creates a PROCESSING `thumbnail` task `id` (the usual subject of a test), asserting 201.
    pub async fn create_processing(&self, id: &str) -> Value {
        self.create_ok(json!({"task_id": id, "task_type": "thumbnail", "status": "PROCESSING"}))
            .await
    }

    /// `GET /v1/tasks/{id}`.
    pub async fn get(&self, key: &str, id: &str) -> Response {
        self.send(Method::GET, &format!("/v1/tasks/{id}"), key)
            .await
    }

    /// GETs a task with the main key, asserting 200.
    pub async fn get_ok(&self, id: &str) -> Value {
        let res = self.get(&self.key, id).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {id}");
        let v: Value = res.json().await.expect("json");
        assert_task_shape(&v);
        v
    }

    /// `PATCH /v1/tasks/{id}` with `body`.
    pub async fn patch(&self, key: &str, id: &str, body: Value) -> Response {
        sent(
            self.req(Method::PATCH, &format!("/v1/tasks/{id}"), key)
                .json(&body),
        )
        .await
    }

    /// `PATCH /v1/tasks/{id}` with the main key, applied only if the task's ETag matches
    /// `if_match` (`"2"`, `W/"2"`, `*`).
    pub async fn patch_if_match(&self, id: &str, if_match: &str, body: Value) -> Response {
        let req = self.req(Method::PATCH, &format!("/v1/tasks/{id}"), &self.key);
        sent(req.header("If-Match", if_match).json(&body)).await
    }

    /// `POST /v1/tasks/list{query}` with `body`.
    pub async fn list(&self, key: &str, query: &str, body: Value) -> Response {
        sent(
            self.req(Method::POST, &format!("/v1/tasks/list{query}"), key)
                .json(&body),
        )
        .await
    }

    /// The ids a listing returns, asserting 200.
    pub async fn list_ids(&self, query: &str, body: Value) -> Vec<String> {
        let res = self.list(&self.key, query, body.clone()).await;
        let status = res.status();
        let v: Value = res.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "{body} → {v}");
        ids(&v)
    }

    /// Every task of the main tenant, oldest first, as stored (for "nothing changed" checks).
    pub async fn snapshot(&self) -> Vec<Value> {
        let res = self
            .list(
                &self.key,
                "?page_size=1000",
                json!({"sort": {"field": "created_at", "direction": "asc"}}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.expect("json");
        v["results"].as_array().expect("results").clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        if std::thread::panicking() {
            // The test already failed; a second panic would abort and hide the first.
            let _ = server.stop.send(());
            let _ = server.thread.join();
        } else {
            server.join();
        }
    }
}

/// The server's thread: its own runtime, bind, the main key, serve until told to stop.
fn run_server(
    settings: Settings,
    ready: oneshot::Sender<Result<(SocketAddr, String), String>>,
    stopped: oneshot::Receiver<()>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("test-server-worker")
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async move {
        let server = match Server::bind(settings).await {
            Ok(server) => server,
            Err(e) => {
                let _ = ready.send(Err(format!("{e:#}")));
                return Ok(());
            }
        };
        let (key, _) = server
            .state()
            .key_store
            .create(
                OrgId::parse("acme").expect("org"),
                Mode::Test,
                Scopes::all(),
            )
            .await
            .map_err(|e| format!("minting the test key: {e}"))?;
        let _ = ready.send(Ok((server.local_addr(), key.expose().to_owned())));
        server
            .run(async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| format!("{e:#}"))
    })
}

/// Sends a request the test expects to reach the server (a transport error fails the test).
async fn sent(req: RequestBuilder) -> Response {
    req.send().await.expect("request")
}

async fn pg_connection(ns: &Namespace) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(&ns.pg.url)
        .await
        .expect("postgres");
    sqlx::raw_sql(&format!("SET search_path TO \"{}\"", ns.pg.name))
        .execute(&mut conn)
        .await
        .expect("search_path");
    conn
}

/// A row lock another client holds ([`TestApp::lock_task_row`]).
#[derive(Debug)]
pub struct RowLock {
    conn: sqlx::PgConnection,
    pid: i32,
    url: String,
}

impl RowLock {
    /// Waits until a statement is blocked on this lock: the write to the locked task is then
    /// in flight, stuck. Asked on a connection of its own: the locking one, inside its
    /// transaction, would keep seeing the activity as it was at the transaction's first look.
    pub async fn wait_for_a_waiter(&self) {
        let mut observer = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("postgres");
        for _ in 0..1000 {
            let (waiting,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            )
            .bind(self.pid)
            .fetch_one(&mut observer)
            .await
            .expect("pg_stat_activity");
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no statement waited for the row lock within 10 s");
    }

    /// Lets the waiting write through.
    pub async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut self.conn)
            .await
            .expect("unlock");
    }
}

/// A held write lock on the durable tier.
#[derive(Debug)]
pub enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    /// Lets writers through again.
    pub async fn release(self) {
        match self {
            WriteLock::Sqlite(mut c) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("unlock");
            }
            WriteLock::Postgres(mut c) => {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("unlock");
            }
        }
    }
}
