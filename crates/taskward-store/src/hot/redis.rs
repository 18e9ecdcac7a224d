//! The production hot tier: Redis, one hash per task.
//!
//! Key `{prefix}t:{org}:{mode}:{task_id}`, fields `v` (version) and `w` (the task as the API
//! sends it: a hot GET returns these bytes as they are). Writes and invalidations are Lua
//! scripts that compare versions on the server, so an older document never replaces a newer
//! one whatever order concurrent instances' writes arrive in. An invalidation leaves a
//! tombstone (`v` without `w`) for the TTL, so a slow re-warm of an older version read before
//! the invalidation cannot bring stale data back.
//!
//! One multiplexed connection (the `redis` crate's `ConnectionManager`) carries every request
//! and reconnects by itself. Every call is bounded by a short timeout: a read that times out
//! falls back to the durable tier instead of stalling the request. Only when there is nothing
//! to fall back to (the durable tier is down too) does a read wait longer
//! ([`PATIENT_TIMEOUT`]). If Redis is down when the server starts, the connection is retried
//! on use.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use taskward_model::{Task, TaskId, Tenant};
use tokio::sync::OnceCell;

use super::{HotError, HotTier, RenderedTask};

/// Stores the document unless a newer version is there; (re)starts the TTL.
const PUT: &str = r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'v'))
if cur and cur > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'w', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Drops the document and leaves a tombstone at `version` unless a newer document is there.
const INVALIDATE: &str = r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'v'))
if cur and cur > tonumber(ARGV[1]) then return 0 end
redis.call('HDEL', KEYS[1], 'w')
redis.call('HSET', KEYS[1], 'v', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// How long a read waits for Redis when the durable tier cannot answer either.
const PATIENT_TIMEOUT: Duration = Duration::from_secs(5);

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
        // No response timeout on the connection itself: each call bounds its own wait (short,
        // or patient; see `call`).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None)
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
        self.call_within(self.timeout, f).await
    }

    async fn call_within<T, F>(
        &self,
        timeout: Duration,
        f: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, HotError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.conn().await?;
            f(conn).await.map_err(|e| HotError(format!("redis: {e}")))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| HotError(format!("redis: no answer within {timeout:?}")))?
    }

    async fn read_rendered(
        &self,
        tenant: &Tenant,
        id: &TaskId,
        timeout: Duration,
    ) -> Result<Option<RenderedTask>, HotError> {
        let key = self.key(tenant, id);
        let (version, body): (Option<u64>, Option<Vec<u8>>) = self
            .call_within(timeout, |mut c| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("v")
                    .arg("w")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(match (version, body) {
            (Some(version), Some(body)) => Some(RenderedTask {
                version,
                body: body.into(),
            }),
            _ => None,
        })
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
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
        self.read_rendered(tenant, id, self.timeout).await
    }

    async fn get_rendered_patiently(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Option<RenderedTask>, HotError> {
        self.read_rendered(tenant, id, PATIENT_TIMEOUT.max(self.timeout))
            .await
    }

    async fn put(&self, tenant: &Tenant, task: &Task) -> Result<(), HotError> {
        let key = self.key(tenant, &task.task_id);
        let doc = RenderedTask::new(task)
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
