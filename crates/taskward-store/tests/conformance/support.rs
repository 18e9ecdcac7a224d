//! Back-ends to run the stories on, each in its own namespace.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use taskward_model::{CreateTask, Mode, OrgId, Task, TaskId, TaskStatus, Tenant};
use taskward_store::{
    Created, DurableTier, HotTier, Inserted, KeyStore, MemoryHot, PostgresDurable, PostgresOptions,
    RedisHot, SqliteDurable, TieredStore, WriteId,
};
use taskward_testkit::{PgSchema, RedisPrefix};

/// A durable back-end and what keeps its namespace alive.
pub struct Durable {
    pub tier: Arc<dyn DurableTier>,
    pub keys: Arc<dyn KeyStore>,
    pub pg: Option<PostgresDurable>,
    _guard: Box<dyn std::any::Any + Send>,
}

impl Durable {
    /// What the tier holds as acme's task `task_id`.
    pub async fn acme_copy(&self, task_id: &str) -> Option<Task> {
        self.tier.get(&acme(), &id(task_id)).await.expect("get")
    }

    /// Inserts `t` for `tenant` as a write of its own (a fresh write id), so never a retry.
    pub async fn insert_as_new_write(&self, tenant: &Tenant, t: &Task, digest: &str) -> Inserted {
        self.tier
            .insert(tenant, t, digest, WriteId::new())
            .await
            .expect("insert")
    }

    /// Replaces acme's copy of `t` if it is at `expected`, as a write of its own; whether it
    /// won.
    pub async fn replace_as_new_write(&self, t: &Task, expected: u64) -> bool {
        self.tier
            .replace(&acme(), t, expected, WriteId::new(), TaskStatus::Pending)
            .await
            .expect("replace")
    }
}

pub async fn sqlite() -> Durable {
    let dir = tempfile::tempdir().unwrap();
    let tier = SqliteDurable::open(&dir.path().join("t.db"), Duration::from_secs(5))
        .await
        .unwrap();
    let tier = Arc::new(tier);
    Durable {
        tier: tier.clone(),
        keys: tier,
        pg: None,
        _guard: Box::new(dir),
    }
}

pub async fn postgres() -> Durable {
    let schema = PgSchema::new();
    let opts = PostgresOptions {
        url: schema.url.clone(),
        schema: Some(schema.name.clone()),
        pool_size: 4,
        timeout: Duration::from_secs(5),
    };
    let tier = PostgresDurable::open(&opts).await.unwrap();
    Durable {
        tier: Arc::new(tier.clone()),
        keys: Arc::new(tier.clone()),
        pg: Some(tier),
        _guard: Box::new(schema),
    }
}

/// Both durable back-ends, named.
pub async fn durables() -> Vec<(&'static str, Durable)> {
    vec![("sqlite", sqlite().await), ("postgres", postgres().await)]
}

/// A hot back-end and what keeps its namespace alive.
pub struct Hot {
    pub tier: Arc<dyn HotTier>,
    _guard: Option<RedisPrefix>,
}

pub fn memory(ttl: Duration) -> Hot {
    Hot {
        tier: Arc::new(MemoryHot::new(ttl, 1000)),
        _guard: None,
    }
}

pub fn redis(ttl: Duration) -> Hot {
    let ns = RedisPrefix::new();
    let tier = RedisHot::new(
        &taskward_store::RedisTarget::Server(ns.url.clone()),
        &ns.prefix,
        ttl,
        Duration::from_secs(2),
    )
    .unwrap();
    Hot {
        tier: Arc::new(tier),
        _guard: Some(ns),
    }
}

/// Both hot back-ends, named.
pub fn hots() -> Vec<(&'static str, Hot)> {
    let ttl = Duration::from_secs(60);
    vec![("memory", memory(ttl)), ("redis", redis(ttl))]
}

pub fn tenant(org: &str, mode: Mode) -> Tenant {
    Tenant {
        org: OrgId::parse(org).unwrap(),
        mode,
    }
}

pub fn acme() -> Tenant {
    tenant("acme", Mode::Test)
}

pub fn id(s: &str) -> TaskId {
    TaskId::parse(s).unwrap()
}

pub fn create_req(v: serde_json::Value) -> CreateTask {
    serde_json::from_value(v).unwrap()
}

/// Creates the `thumbnail` task `t1` for `acme` through `store`: the subject of most stories.
pub async fn create_t1(store: &TieredStore) -> Created {
    store
        .create(
            &acme(),
            create_req(json!({"task_id": "t1", "task_type": "thumbnail"})),
        )
        .await
        .expect("create t1")
}

/// A task at `version`, built by the model's own rules.
pub fn task(task_id: &str, version: u64) -> Task {
    let mut t = Task::create(
        id(task_id),
        create_req(json!({"task_type": "thumbnail", "additional_data": {"v": version}})),
        taskward_model::time::now(),
    );
    t.version = version;
    t
}
