//! What every handler shares: cheap handles, built once from [`Settings`].

use std::sync::Arc;
use std::time::Duration;

use taskward_model::TaskTypes;
use taskward_store::{MemoryHot, SqliteDurable, TieredStore};

use crate::auth::KeyCache;
use crate::settings::Settings;

/// Name of the embedded database file inside the data directory.
pub const SQLITE_FILE: &str = "taskward.db";

/// Shared by all requests.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: TieredStore,
    pub settings: Arc<Settings>,
    pub task_types: Arc<TaskTypes>,
    pub keys: Arc<KeyCache>,
}

impl AppState {
    /// Builds the state over an opened store.
    pub fn new(settings: Settings, store: TieredStore) -> anyhow::Result<Self> {
        let task_types = TaskTypes::new(&settings.task_types)?;
        Ok(AppState {
            store,
            keys: Arc::new(KeyCache::new(Duration::from_millis(
                settings.auth.key_cache_ttl_ms,
            ))),
            task_types: Arc::new(task_types),
            settings: Arc::new(settings),
        })
    }
}

/// Opens the tiers `settings` select (applying migrations). Also used by `taskward keys`, so
/// the command works on exactly the store `serve` uses.
pub async fn open_store(settings: &Settings) -> anyhow::Result<TieredStore> {
    let path = settings.data_dir.join(SQLITE_FILE);
    let durable = SqliteDurable::open(&path, Duration::from_millis(settings.durable.timeout_ms))
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    let hot = MemoryHot::new(
        Duration::from_secs(settings.hot.ttl_secs),
        settings.hot.memory_capacity,
    );
    Ok(TieredStore::new(Arc::new(hot), Arc::new(durable)))
}
