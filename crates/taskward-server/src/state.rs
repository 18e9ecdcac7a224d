//! What every handler shares: cheap handles, built once from [`Settings`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use taskward_model::TaskTypes;
use taskward_store::{
    DurableTier, HotTier, KeyStore, Keys, Maintenance, MemoryHot, NoHot, PostgresDurable,
    PostgresOptions, RedisHot, RedisTarget, SqliteDurable, TieredStore, WebhookStore,
};

use crate::auth::KeyCache;
use crate::settings::Settings;

/// Name of the embedded database file inside the data directory.
pub const SQLITE_FILE: &str = "taskward.db";

/// Shared by all requests. One `Arc`: axum clones the state for every middleware and handler
/// of every request, and one reference count is much cheaper to share between worker threads
/// than a dozen.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Shared {
    pub store: TieredStore,
    /// The stored keys.
    pub key_store: Keys,
    /// Webhook endpoints and their deliveries.
    pub webhooks: Arc<dyn WebhookStore>,
    pub settings: Settings,
    pub task_types: TaskTypes,
    /// Recently confirmed keys, so auth costs no database round trip.
    pub keys: KeyCache,
    pub metrics: crate::metrics::Metrics,
    /// `/openapi.json`, serialised once: it enumerates this configuration's task types.
    pub openapi: bytes::Bytes,
    /// Set on SIGTERM: `/readyz` answers 503 and responses close their connections (see
    /// [`crate::Server::run`]).
    pub draining: Arc<AtomicBool>,
    /// The rate limit and request deadline every request passes.
    pub limits: crate::limits::Limits,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Builds the state over an opened store.
    pub fn new(settings: Settings, storage: Storage) -> anyhow::Result<Self> {
        let task_types = TaskTypes::new(&settings.task_types)?;
        taskward_model::progress::set_stall_after_seconds(settings.events.stall_after_seconds);
        storage
            .tasks
            .set_stream_lag_limit(settings.events.stream_lag_limit);
        let metrics = crate::metrics::Metrics::new(storage.tasks.clone());
        let openapi = serde_json::to_vec(&crate::openapi::document(&task_types))?.into();
        Ok(AppState(Arc::new(Shared {
            limits: crate::limits::Limits::new(&settings.limits),
            openapi,
            draining: Arc::default(),
            store: storage.tasks,
            key_store: storage.keys,
            webhooks: storage.webhooks,
            keys: KeyCache::new(Duration::from_millis(settings.auth.key_cache_ttl_ms)),
            task_types,
            metrics,
            settings,
        })))
    }
}

/// What [`open_store`] opens: the tasks over their two tiers, and the keys.
#[derive(Debug, Clone)]
pub struct Storage {
    pub tasks: TieredStore,
    pub keys: Keys,
    pub webhooks: Arc<dyn WebhookStore>,
}

/// Opens the tiers `settings` select (applying migrations). Also used by `taskward keys`, so
/// the command works on exactly the store `serve` uses.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Storage> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let timeout = Duration::from_millis(settings.durable.timeout_ms);
    type Stores = (
        Arc<dyn DurableTier>,
        Arc<dyn KeyStore>,
        Arc<dyn WebhookStore>,
    );
    let (durable, keys, webhooks): Stores = match &settings.database_url {
        Some(url) => {
            let opts = PostgresOptions {
                url: url.expose().to_owned(),
                schema: settings.durable.schema.clone(),
                pool_size: settings.durable.pool_size,
                timeout,
            };
            let pg = PostgresDurable::open(&opts)
                .await
                .map_err(|e| anyhow::anyhow!("opening PostgreSQL at {}: {e}", url.masked()))?;
            let pg = Arc::new(pg);
            (pg.clone(), pg.clone(), pg)
        }
        None => {
            let path = settings.data_dir.join(SQLITE_FILE);
            let sqlite = SqliteDurable::open(&path, timeout)
                .await
                .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
            let sqlite = Arc::new(sqlite);
            (sqlite.clone(), sqlite.clone(), sqlite)
        }
    };
    let ttl = Duration::from_secs(settings.hot.ttl_secs);
    let redis = match (&settings.redis_url, &settings.redis_cluster_nodes) {
        (Some(url), _) => Some((RedisTarget::Server(url.expose().to_owned()), url.masked())),
        (None, Some(nodes)) => Some((
            RedisTarget::Cluster {
                nodes: nodes.expose(),
                wait_replicas: settings.hot.cluster_wait_replicas,
            },
            format!("cluster {}", nodes.masked()),
        )),
        (None, None) => None,
    };
    let hot: Arc<dyn HotTier> = match (redis, &settings.database_url) {
        (Some((target, shown)), _) => Arc::new(
            RedisHot::new(
                &target,
                &settings.hot.redis_prefix,
                ttl,
                Duration::from_millis(settings.hot.redis_timeout_ms),
            )
            .map_err(|e| anyhow::anyhow!("Redis at {shown}: {e}"))?,
        ),
        // Several instances may share PostgreSQL: a cache of each one's own would serve
        // another instance's writes late.
        (None, Some(_)) => Arc::new(NoHot),
        (None, None) => Arc::new(MemoryHot::new(ttl, settings.hot.memory_capacity)),
    };
    let lease = Duration::from_millis(settings.hot.trust_lease_ms);
    Ok(Storage {
        tasks: TieredStore::with_lease(hot, durable, lease).await?,
        keys: Keys::new(keys),
        webhooks,
    })
}

/// The store's background work, from settings.
pub fn maintenance(settings: &Settings) -> Maintenance {
    let d = &settings.durable;
    Maintenance {
        retention: Duration::from_secs(d.retention_days.saturating_mul(86_400)),
        sweep_every: Duration::from_secs(d.sweep_interval_secs),
        sweep_batch: d.sweep_batch,
    }
}
