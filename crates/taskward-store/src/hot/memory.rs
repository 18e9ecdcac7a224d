//! The embedded hot tier: an in-process map with a TTL per entry and a size bound.
//!
//! Sharded mutexes rather than a concurrent-map crate: the critical sections are a hash lookup
//! and a clone, and the version guard needs a compare-then-write that a plain lock makes
//! obvious. Expired entries are dropped when read, and swept from a shard only when it is full,
//! so no background task is needed. Time is `tokio::time::Instant`, so TTL tests run on paused
//! time.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use taskward_model::{Task, TaskId, Tenant};
use tokio::time::Instant;

use super::{HotError, HotTier, RenderedTask};

const SHARDS: usize = 16;

/// In-process hot tier.
#[derive(Debug)]
pub struct MemoryHot {
    shards: Vec<Mutex<HashMap<Key, Entry>>>,
    hasher: RandomState,
    ttl: Duration,
    shard_capacity: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    org: String,
    live: bool,
    task_id: String,
}

/// A cached document (the task and its rendered form), or a tombstone (`task: None`) left by
/// an invalidation so that no older version can be put back.
#[derive(Debug)]
struct Entry {
    task: Option<(Task, RenderedTask)>,
    version: u64,
    expires: Instant,
}

impl MemoryHot {
    /// A cache whose entries live `ttl` after their last write, holding about `capacity`
    /// entries at most.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        MemoryHot {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            ttl,
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn key(tenant: &Tenant, id: &TaskId) -> Key {
        Key {
            org: tenant.org.as_str().to_owned(),
            live: tenant.mode == taskward_model::Mode::Live,
            task_id: id.as_str().to_owned(),
        }
    }

    /// `f` of the live entry's document, if there is one.
    fn read<T>(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        f: impl FnOnce(&(Task, RenderedTask)) -> T,
    ) -> Option<T> {
        let key = Self::key(tenant, id);
        let mut shard = self.shard(&key);
        match shard.get(&key) {
            Some(e) if e.expires > Instant::now() => e.task.as_ref().map(f),
            Some(_) => {
                shard.remove(&key);
                None
            }
            None => None,
        }
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A panic while holding the lock cannot leave an entry half-written (inserts are
        // single calls), so a poisoned shard is still consistent.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl HotTier for MemoryHot {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), HotError> {
        Ok(())
    }

    async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, HotError> {
        Ok(self.read(tenant, id, |(task, _)| task.clone()))
    }

    async fn get_rendered(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Option<RenderedTask>, HotError> {
        Ok(self.read(tenant, id, |(_, rendered)| rendered.clone()))
    }

    async fn put(&self, tenant: &Tenant, task: &Task) -> Result<(), HotError> {
        let rendered = RenderedTask::new(task).map_err(|e| HotError(e.to_string()))?;
        let key = Self::key(tenant, &task.task_id);
        let now = Instant::now();
        let expires = now + self.ttl;
        let mut shard = self.shard(&key);
        if let Some(e) = shard.get_mut(&key) {
            if e.expires > now && e.version > task.version {
                return Ok(());
            }
            *e = Entry {
                task: Some((task.clone(), rendered)),
                version: task.version,
                expires,
            };
            return Ok(());
        }
        if shard.len() >= self.shard_capacity {
            shard.retain(|_, e| e.expires > now);
            if shard.len() >= self.shard_capacity {
                // Still full of live entries: evict one. Which one matters little (a miss
                // costs one durable read), and HashMap order is effectively random.
                if let Some(victim) = shard.keys().next().cloned() {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(
            key,
            Entry {
                task: Some((task.clone(), rendered)),
                version: task.version,
                expires,
            },
        );
        Ok(())
    }

    async fn invalidate(&self, tenant: &Tenant, id: &TaskId, version: u64) -> Result<(), HotError> {
        let key = Self::key(tenant, id);
        let now = Instant::now();
        let tombstone = Entry {
            task: None,
            version,
            expires: now + self.ttl,
        };
        let mut shard = self.shard(&key);
        match shard.get_mut(&key) {
            Some(e) if e.expires > now && e.version > version => {}
            Some(e) => *e = tombstone,
            None => {
                shard.insert(key, tombstone);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskward_model::{CreateTask, Mode, OrgId, TaskStatus};

    fn tenant() -> Tenant {
        Tenant {
            org: OrgId::parse("acme").unwrap(),
            mode: Mode::Test,
        }
    }

    fn task(id: &str, version: u64) -> Task {
        let req = CreateTask {
            task_id: None,
            task_type: "thumbnail".into(),
            status: Some(TaskStatus::Pending),
            inputs: None,
            outputs: None,
            additional_data: None,
            description: None,
        };
        let mut t = Task::create(TaskId::parse(id).unwrap(), req, taskward_model::time::now());
        t.version = version;
        t
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_ttl_after_their_last_write() {
        let hot = MemoryHot::new(Duration::from_secs(60), 100);
        let t = task("a", 1);
        hot.put(&tenant(), &t).await.unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        hot.put(&tenant(), &task("a", 2)).await.unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(
            hot.get(&tenant(), &t.task_id)
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(hot.get(&tenant(), &t.task_id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_older_version_never_replaces_a_newer_one() {
        let hot = MemoryHot::new(Duration::from_secs(60), 100);
        hot.put(&tenant(), &task("a", 5)).await.unwrap();
        hot.put(&tenant(), &task("a", 4)).await.unwrap();
        let id = TaskId::parse("a").unwrap();
        assert_eq!(hot.get(&tenant(), &id).await.unwrap().unwrap().version, 5);
        hot.invalidate(&tenant(), &id, 5).await.unwrap();
        assert!(hot.get(&tenant(), &id).await.unwrap().is_none());
        hot.put(&tenant(), &task("a", 4)).await.unwrap();
        assert!(
            hot.get(&tenant(), &id).await.unwrap().is_none(),
            "the tombstone refuses older versions"
        );
        hot.put(&tenant(), &task("a", 5)).await.unwrap();
        assert_eq!(hot.get(&tenant(), &id).await.unwrap().unwrap().version, 5);
    }

    #[tokio::test]
    async fn tenants_do_not_share_entries() {
        let hot = MemoryHot::new(Duration::from_secs(60), 100);
        hot.put(&tenant(), &task("a", 1)).await.unwrap();
        let live = Tenant {
            mode: Mode::Live,
            ..tenant()
        };
        let other = Tenant {
            org: OrgId::parse("other").unwrap(),
            ..tenant()
        };
        let id = TaskId::parse("a").unwrap();
        assert!(hot.get(&live, &id).await.unwrap().is_none());
        assert!(hot.get(&other, &id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn size_stays_bounded() {
        let hot = MemoryHot::new(Duration::from_secs(60), 32);
        for i in 0..1000 {
            hot.put(&tenant(), &task(&format!("t{i}"), 1))
                .await
                .unwrap();
        }
        let held: usize = hot.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= 32, "{held}");
    }
}
