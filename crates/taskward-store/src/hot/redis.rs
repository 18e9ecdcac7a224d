//! The production hot tier: Redis, one hash per task.
//!
//! Key `{prefix}t:{org}:{mode}:{task_id}`, fields `v` (version), `w` (the task as the API
//! sends it: a hot GET returns these bytes as they are) and `wv` (the version `w` is of). Writes
//! and invalidations are Lua scripts that compare versions on the server, so an
//! older document never replaces a newer one whatever order concurrent instances' writes arrive
//! in. An invalidation leaves a tombstone (`v` without `w`) for the TTL, so a slow re-warm of an
//! older version read before the invalidation cannot bring stale data back.
//!
//! One multiplexed connection (the `redis` crate's `ConnectionManager`) carries every request
//! and reconnects by itself. Every call is bounded by a short timeout: a read that times out
//! falls back to the durable tier instead of stalling the request. If Redis is down when the
//! server starts, the connection is retried on use.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use taskward_model::{Task, TaskId, Tenant};
use tokio::sync::OnceCell;

use super::{HotError, HotTier, RenderedTask};

/// Stores the document unless a newer version is there; (re)starts the TTL. `d` is where
/// earlier releases kept the document: dropped so it can never be read stale. Their scripts
/// know nothing of `w`: after one of them writes or invalidates, `v` moves on while `w` stays
/// behind, and `wv` no longer matching `v` makes that a miss.
const PUT: &str = r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'v'))
if cur and cur > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'w', ARGV[2], 'wv', ARGV[1])
redis.call('HDEL', KEYS[1], 'd')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Drops the document and leaves a tombstone at `version` unless a newer document is there.
const INVALIDATE: &str = r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'v'))
if cur and cur > tonumber(ARGV[1]) then return 0 end
redis.call('HDEL', KEYS[1], 'w', 'wv', 'd')
redis.call('HSET', KEYS[1], 'v', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Redis hot tier.
pub struct RedisHot {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
    put: Script,
    invalidate: Script,
}

impl std::fmt::Debug for RedisHot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's connection info may carry a password.
        f.debug_struct("RedisHot")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RedisHot {
    /// A hot tier on `url` with keys under `prefix`, entries living `ttl` after their last
    /// write, each call bounded by `timeout`. Connects lazily.
    pub fn new(
        url: &str,
        prefix: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, HotError> {
        let client = redis::Client::open(url).map_err(|e| HotError(format!("redis url: {e}")))?;
        Ok(RedisHot {
            client,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            ttl,
            timeout,
            put: Script::new(PUT),
            invalidate: Script::new(INVALIDATE),
        })
    }

    fn key(&self, tenant: &Tenant, id: &TaskId) -> String {
        format!("{}t:{}:{}:{}", self.prefix, tenant.org, tenant.mode, id)
    }

    async fn conn(&self) -> Result<ConnectionManager, HotError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = self
            .conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .map_err(|e| HotError(format!("redis connect: {e}")))?;
        Ok(conn.clone())
    }

    /// Runs `f` on the connection within the call timeout.
    async fn call<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, HotError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.conn().await?;
            f(conn).await.map_err(|e| HotError(format!("redis: {e}")))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| HotError(format!("redis: no answer within {:?}", self.timeout)))?
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    /// Deletes every key under this tier's prefix (test namespaces clean up with it).
    pub async fn delete_all(&self) -> Result<u64, HotError> {
        let pattern = format!("{}*", self.prefix);
        self.call(|mut c| async move {
            let mut deleted = 0u64;
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut c)
                    .await?;
                if !keys.is_empty() {
                    deleted += redis::cmd("DEL")
                        .arg(&keys)
                        .query_async::<u64>(&mut c)
                        .await?;
                }
                if next == 0 {
                    return Ok(deleted);
                }
                cursor = next;
            }
        })
        .await
    }
}

#[async_trait]
impl HotTier for RedisHot {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), HotError> {
        self.call(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, HotError> {
        // The rendered form parses as a `Task`: the fields it adds are ignored.
        self.get_rendered(tenant, id)
            .await?
            .map(|r| {
                serde_json::from_slice(&r.body)
                    .map_err(|e| HotError(format!("corrupt hot entry: {e}")))
            })
            .transpose()
    }

    async fn get_rendered(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Option<RenderedTask>, HotError> {
        let key = self.key(tenant, id);
        let (version, of, body): (Option<u64>, Option<u64>, Option<Vec<u8>>) = self
            .call(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("v")
                    .arg("wv")
                    .arg("w")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(match (version, of, body) {
            (Some(version), Some(of), Some(body)) if of == version => Some(RenderedTask {
                version,
                body: body.into(),
            }),
            _ => None,
        })
    }

    async fn put(&self, tenant: &Tenant, task: &Task) -> Result<(), HotError> {
        let key = self.key(tenant, &task.task_id);
        let doc = RenderedTask::new(task, false)
            .map_err(|e| HotError(e.to_string()))?
            .body;
        let (version, ttl) = (task.version, self.ttl_ms());
        self.call(|mut c| async move {
            self.put
                .key(&key)
                .arg(version)
                .arg(&doc[..])
                .arg(ttl)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    async fn invalidate(&self, tenant: &Tenant, id: &TaskId, version: u64) -> Result<(), HotError> {
        let key = self.key(tenant, id);
        let ttl = self.ttl_ms();
        self.call(|mut c| async move {
            self.invalidate
                .key(&key)
                .arg(version)
                .arg(ttl)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }
}
