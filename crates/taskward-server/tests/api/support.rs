//! `spawn_app()`: a real server on a random port, in the shape the test binary was built for
//! (`crate::SHAPE`), and the helpers tests use to talk to it over real HTTP.
//!
//! Embedded: a temp data directory. Production: the machine's Redis and PostgreSQL, each test
//! in its own namespace (a fresh PostgreSQL schema and Redis key prefix), dropped when the test
//! ends (see `taskward-testkit`). `TASKWARD_TEST_DATABASE_URL` / `TASKWARD_TEST_REDIS_URL`
//! point elsewhere.

use std::sync::Once;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use taskward_model::{Mode, OrgId, Scopes};
use taskward_server::settings::Secret;
use taskward_server::{Server, Settings};
use taskward_testkit::{PgSchema, RedisPrefix};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which tiers a test binary runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each test binary names one variant
pub enum Shape {
    /// In-process cache + SQLite.
    Embedded,
    /// Redis + PostgreSQL.
    Production,
}

/// A production-shape namespace: a PostgreSQL schema and a Redis key prefix of its own,
/// removed when dropped.
pub struct Namespace {
    pg: PgSchema,
    redis: RedisPrefix,
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

/// A running server. Dropping it stops the server; [`TestApp::stop`] also joins it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// All scopes, organisation `acme`, test mode.
    pub key: String,
    pub settings: Settings,
    pub dir: TempDir,
    pub namespace: Option<Namespace>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
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

/// A server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server whose settings `tweak` adjusted.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let namespace = (crate::SHAPE == Shape::Production).then(Namespace::new);
    if let Some(ns) = &namespace {
        ns.apply(&mut settings);
    }
    tweak(&mut settings);
    start(settings, dir, namespace).await
}

async fn start(settings: Settings, dir: TempDir, namespace: Option<Namespace>) -> TestApp {
    init_logs();
    let server = Server::bind(settings.clone()).await.expect("server binds");
    let base = format!("http://{}", server.local_addr());
    let (key, _) = server
        .state()
        .key_store
        .create(
            OrgId::parse("acme").expect("org"),
            Mode::Test,
            Scopes::all(),
        )
        .await
        .expect("key");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::new(),
        key: key.expose().to_owned(),
        settings,
        dir,
        namespace,
        stop: Some(tx),
        handle: Some(handle),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) -> (TempDir, Settings, Option<Namespace>) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server ran cleanly");
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, self.settings.clone(), self.namespace.take())
    }

    /// Starts a new server on the same data.
    pub async fn restart(self) -> TestApp {
        let (dir, mut settings, namespace) = self.stop().await;
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        start(settings, dir, namespace).await
    }

    /// Another instance over the same tiers (production shape: the same schema and key
    /// prefix), as a second process of a deployment would be. It does not own the namespace.
    #[allow(dead_code)] // not every test binary uses it
    pub async fn second_instance(&self) -> TestApp {
        self.second_instance_with(|_| {}).await
    }

    /// [`TestApp::second_instance`] with its settings adjusted by `tweak` (e.g. reaching Redis
    /// through a proxy of its own).
    #[allow(dead_code)] // not every test binary uses it
    pub async fn second_instance_with(&self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        tweak(&mut settings);
        start(settings, tempfile::tempdir().expect("temp dir"), None).await
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
                let mut conn = self.pg(ns).await;
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

    async fn pg(&self, ns: &Namespace) -> sqlx::PgConnection {
        let mut conn = sqlx::PgConnection::connect(&ns.pg.url)
            .await
            .expect("postgres");
        sqlx::raw_sql(&format!("SET search_path TO \"{}\"", ns.pg.name))
            .execute(&mut conn)
            .await
            .expect("search_path");
        conn
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
                let mut conn = self.pg(ns).await;
                sqlx::raw_sql("BEGIN; LOCK TABLE tasks IN EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .expect("lock");
                WriteLock::Postgres(conn)
            }
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with `key` as bearer token.
    pub fn req(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    pub async fn create(&self, key: &str, body: Value) -> Response {
        self.req(Method::POST, "/v1/tasks", key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Creates a task and returns its JSON, asserting 201.
    pub async fn create_ok(&self, body: Value) -> Value {
        let res = self.create(&self.key, body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let v: Value = res.json().await.expect("json");
        assert_task_shape(&v);
        v
    }

    pub async fn get(&self, key: &str, id: &str) -> Response {
        self.req(Method::GET, &format!("/v1/tasks/{id}"), key)
            .send()
            .await
            .expect("request")
    }

    /// GETs a task with the main key, asserting 200.
    pub async fn get_ok(&self, id: &str) -> Value {
        let res = self.get(&self.key, id).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {id}");
        let v: Value = res.json().await.expect("json");
        assert_task_shape(&v);
        v
    }

    pub async fn patch(&self, key: &str, id: &str, body: Value) -> Response {
        self.req(Method::PATCH, &format!("/v1/tasks/{id}"), key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn list(&self, key: &str, query: &str, body: Value) -> Response {
        self.req(Method::POST, &format!("/v1/tasks/list{query}"), key)
            .json(&body)
            .send()
            .await
            .expect("request")
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

/// A held write lock on the durable tier.
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

/// The task ids of a list response.
pub fn ids(list: &Value) -> Vec<String> {
    list["results"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list response: {list}"))
        .iter()
        .map(|t| {
            assert_task_shape(t);
            t["task_id"].as_str().expect("task_id").to_owned()
        })
        .collect()
}

/// Built-in task types and statuses of the reference API (the wire contract).
const REFERENCE_TASK_TYPES: [&str; 17] = [
    "api_namespaces_create",
    "api_buckets_objects_create",
    "api_buckets_delete",
    "api_buckets_batches_process",
    "api_buckets_batches_submit",
    "api_buckets_uploads_create",
    "api_buckets_uploads_confirm",
    "api_buckets_uploads_batch_confirm",
    "api_taxonomies_create",
    "api_taxonomies_execute",
    "api_taxonomies_materialize",
    "engine_feature_extractor_run",
    "engine_inference_run",
    "engine_object_processing",
    "engine_cluster_build",
    "thumbnail",
    "materialize",
];
const REFERENCE_STATUSES: [&str; 13] = [
    "PENDING",
    "IN_PROGRESS",
    "PROCESSING",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "UNKNOWN",
    "SKIPPED",
    "DRAFT",
    "ACTIVE",
    "ARCHIVED",
    "SUSPENDED",
    "COMPLETED_WITH_ERRORS",
];

/// What a client generated from the reference API's schema requires of a task: the required
/// fields present with the right types, enums spelled exactly, optional fields typed.
pub fn assert_task_shape(t: &Value) {
    let is_items = |v: &Value| {
        v.is_null()
            || v.as_array()
                .is_some_and(|a| a.iter().all(|i| i.is_string() || i.is_object()))
    };
    assert!(t["task_id"].is_string(), "task_id: {t}");
    let tt = t["task_type"]
        .as_str()
        .unwrap_or_else(|| panic!("task_type: {t}"));
    assert!(
        REFERENCE_TASK_TYPES.contains(&tt) || tt.starts_with("custom_"),
        "task_type {tt}"
    );
    let st = t["status"]
        .as_str()
        .unwrap_or_else(|| panic!("status: {t}"));
    assert!(REFERENCE_STATUSES.contains(&st), "status {st}");
    assert!(is_items(&t["inputs"]), "inputs: {t}");
    assert!(is_items(&t["outputs"]), "outputs: {t}");
    assert!(
        t["additional_data"].is_null() || t["additional_data"].is_object(),
        "additional_data: {t}"
    );
    assert!(
        t["error_message"].is_null() || t["error_message"].is_string(),
        "error_message: {t}"
    );
    assert!(
        t["description"].is_null() || t["description"].is_string(),
        "description: {t}"
    );
    assert_eq!(t["error"], t["error_message"]);
    assert!(t["version"].is_u64());
    assert!(t["created_at"].is_string() && t["updated_at"].is_string());
}

/// Asserts SPEC's error shape with `status`, and returns the body.
pub async fn assert_error(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let body: Value = res
        .json()
        .await
        .unwrap_or_else(|e| panic!("{got}: body is not JSON: {e}"));
    assert_eq!(got, status, "{body}");
    assert_error_shape(&body, status.as_u16());
    body
}

/// `{"success": false, "status": N, "error": {"message": "...", "type": "...", ...}}`
pub fn assert_error_shape(body: &Value, status: u16) {
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["status"], json!(status), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["type"].is_string(), "{body}");
}
