//! What every handler shares: cheap handles, built once from [`Settings`].

use std::sync::Arc;
use std::time::Duration;

use taskward_model::TaskTypes;
use taskward_store::{
    DurableTier, HotTier, Maintenance, MemoryHot, PostgresDurable, PostgresOptions, RedisHot,
    SqliteDurable, TieredStore,
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
    pub settings: Settings,
    pub task_types: TaskTypes,
    pub keys: KeyCache,
    pub metrics: crate::metrics::Metrics,
    /// `/openapi.json`, serialised once: it enumerates this configuration's task types.
    pub openapi: bytes::Bytes,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Builds the state over an opened store.
    pub fn new(settings: Settings, store: TieredStore) -> anyhow::Result<Self> {
        let task_types = TaskTypes::new(&settings.task_types)?;
        let openapi = serde_json::to_vec(&crate::openapi::document(&task_types))?.into();
        Ok(AppState(Arc::new(Shared {
            openapi,
            store,
            keys: KeyCache::new(Duration::from_millis(settings.auth.key_cache_ttl_ms)),
            task_types,
            metrics: crate::metrics::Metrics::new(),
            settings,
        })))
    }
}

/// Opens the tiers `settings` select (applying migrations). Also used by `taskward keys`, so
/// the command works on exactly the store `serve` uses.
pub async fn open_store(settings: &Settings) -> anyhow::Result<TieredStore> {
    settings.validate().map_err(anyhow::Error::msg)?;
    let timeout = Duration::from_millis(settings.durable.timeout_ms);
    let durable: Arc<dyn DurableTier> = match &settings.database_url {
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
            Arc::new(pg)
        }
        None => {
            let path = settings.data_dir.join(SQLITE_FILE);
            let sqlite = SqliteDurable::open(&path, timeout)
                .await
                .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
            Arc::new(sqlite)
        }
    };
    let ttl = Duration::from_secs(settings.hot.ttl_secs);
    let hot: Arc<dyn HotTier> = match &settings.redis_url {
        Some(url) => Arc::new(
            RedisHot::new(
                url.expose(),
                &settings.hot.redis_prefix,
                ttl,
                Duration::from_millis(settings.hot.redis_timeout_ms),
            )
            .map_err(|e| anyhow::anyhow!("Redis at {}: {e}", url.masked()))?,
        ),
        None => Arc::new(MemoryHot::new(ttl, settings.hot.memory_capacity)),
    };
    Ok(TieredStore::new(hot, durable).await?)
}

/// The store's background work, from settings.
pub fn maintenance(settings: &Settings) -> Maintenance {
    let d = &settings.durable;
    Maintenance {
        replay_every: Duration::from_millis(d.replay_interval_ms),
        retention: Duration::from_secs(d.retention_days.saturating_mul(86_400)),
        sweep_every: Duration::from_secs(d.sweep_interval_secs),
        sweep_batch: d.sweep_batch,
    }
}
