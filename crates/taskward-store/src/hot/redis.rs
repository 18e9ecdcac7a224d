//! The production hot tier: Redis (one server, or a Redis Cluster), one hash per task.
//!
//! Key `{prefix}t:{org}:{mode}:{task_id}` on one server; on a cluster
//! `{prefix}t:{{org}:{mode}:{task_id}}`, whose hash tag is the task (never the tenant, which
//! would pin a tenant to one master), so every call, scripts included, touches one slot.
//! Fields `v` (version) and `w` (the task as the API sends it: a hot GET returns these bytes
//! as they are). Writes and invalidations are Lua
//! scripts that compare versions on the server, so an older document never replaces a newer
//! one whatever order concurrent instances' writes arrive in. An invalidation leaves a
//! tombstone (`v` without `w`) for the TTL, so a slow re-warm of an older version read before
//! the invalidation cannot bring stale data back.
//!
//! A cluster replicates asynchronously: a master that fails over to its replica can take the
//! last writes with it, and the promoted replica would serve the version before them. So on a
//! cluster every write and invalidation is followed, on the same connection to the key's master,
//! by `WAIT <replicas>`: the call succeeds only once that many replicas have it, and otherwise
//! fails like any hot-tier write failure (the write is still acknowledged, through the
//! pending-invalidation protocol, and no instance reads that task from Redis until it has been
//! invalidated there).
//!
//! One multiplexed connection (the `redis` crate's `ConnectionManager`, or its cluster
//! connection, which follows MOVED/ASK and refreshes the slot map) carries every request and
//! reconnects by itself. Every call is bounded by a short timeout: a read that times out
//! falls back to the durable tier instead of stalling the request. Only when there is nothing
//! to fall back to (the durable tier is down too) does a read wait longer
//! ([`PATIENT_TIMEOUT`]). If Redis is down when the server starts, the connection is retried
//! on use.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
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

/// Where the hot tier lives.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One server: `redis://host:port/db`.
    Server(String),
    /// A Redis Cluster, by seed nodes (`redis://host:port` each), and how many replicas must
    /// have each write before it counts (`WAIT`; 0 for a cluster without replicas).
    Cluster {
        nodes: Vec<String>,
        wait_replicas: u32,
    },
}

enum Client {
    Server(redis::Client),
    // Boxed: built once per process, and the enum stays small.
    Cluster(Box<ClusterClient>),
}

/// The connection every call uses: one server's or the cluster's.
#[derive(Clone)]
enum Conn {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Redis hot tier.
pub struct RedisHot {
    client: Client,
    conn: OnceCell<Conn>,
    prefix: String,
    ttl: Duration,
    timeout: Duration,
    /// Replicas each write must reach (cluster only; 0: no `WAIT`).
    wait_replicas: u32,
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
    /// A hot tier on `target` with keys under `prefix`, entries living `ttl` after their last
    /// write, each call bounded by `timeout`. Connects lazily.
    pub fn new(
        target: &RedisTarget,
        prefix: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, HotError> {
        let (client, wait_replicas) = match target {
            RedisTarget::Server(url) => (
                Client::Server(
                    redis::Client::open(url.as_str())
                        .map_err(|e| HotError(format!("redis url: {e}")))?,
                ),
                0,
            ),
            RedisTarget::Cluster {
                nodes,
                wait_replicas,
            } => {
                // No response timeout on the connection itself: each call bounds its own wait.
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .retries(2)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()
                    .map_err(|e| HotError(format!("redis cluster nodes: {e}")))?;
                (Client::Cluster(Box::new(client)), *wait_replicas)
            }
        };
        Ok(RedisHot {
            client,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            ttl,
            timeout,
            wait_replicas,
            put: Script::new(PUT),
            invalidate: Script::new(INVALIDATE),
        })
    }

    fn key(&self, tenant: &Tenant, id: &TaskId) -> String {
        match self.client {
            Client::Server(_) => format!("{}t:{}:{}:{}", self.prefix, tenant.org, tenant.mode, id),
            Client::Cluster(_) => {
                format!("{}t:{{{}:{}:{}}}", self.prefix, tenant.org, tenant.mode, id)
            }
        }
    }

    async fn conn(&self) -> Result<Conn, HotError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                match &self.client {
                    Client::Server(client) => {
                        // No response timeout on the connection itself: each call bounds its
                        // own wait (short, or patient; see `call`).
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(self.timeout))
                            .set_response_timeout(None)
                            .set_number_of_retries(1)
                            .set_max_delay(Duration::from_millis(500));
                        ConnectionManager::new_with_config(client.clone(), config)
                            .await
                            .map(Conn::Server)
                    }
                    Client::Cluster(client) => {
                        client.get_async_connection().await.map(Conn::Cluster)
                    }
                }
            })
            .await
            .map_err(|e| HotError(format!("redis connect: {e}")))?;
        Ok(conn.clone())
    }

    /// Runs `f` on the connection within the call timeout.
    async fn call<T, F>(&self, f: impl FnOnce(Conn) -> F) -> Result<T, HotError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.call_within(self.timeout, f).await
    }

    async fn call_within<T, F>(
        &self,
        timeout: Duration,
        f: impl FnOnce(Conn) -> F,
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

    /// Runs a write script (`source`, cached as `script`) on `key` with `args`; on a cluster
    /// with `wait_replicas`, then `WAIT` in the same pipeline, so on the connection to the
    /// key's master (the cluster client routes a pipeline by its keyed command). Fails unless
    /// enough replicas have the write.
    async fn write(
        &self,
        (script, source): (&Script, &str),
        key: &str,
        args: &[&[u8]],
    ) -> Result<(), HotError> {
        if self.wait_replicas == 0 {
            let mut invocation = script.key(key);
            for a in args {
                invocation.arg(*a);
            }
            return self
                .call(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
                .await
                .map(|_| ());
        }
        // EVAL, not EVALSHA: a pipeline cannot load a script that a promoted replica lacks
        // (Redis caches the compiled script by its hash either way).
        let mut pipe = redis::pipe();
        let eval = pipe.cmd("EVAL").arg(source).arg(1).arg(key);
        for a in args {
            eval.arg(*a);
        }
        let wait_ms = self.timeout.as_millis().max(1) as u64;
        pipe.cmd("WAIT").arg(self.wait_replicas).arg(wait_ms);
        let (_, replicas): (i64, u32) = self
            .call(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        if replicas < self.wait_replicas {
            return Err(HotError(format!(
                "redis: the write reached {replicas} of {} replicas in time",
                self.wait_replicas
            )));
        }
        Ok(())
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
        let (version, ttl) = (task.version.to_string(), self.ttl_ms().to_string());
        self.write(
            (&self.put, PUT),
            &key,
            &[version.as_bytes(), &doc[..], ttl.as_bytes()],
        )
        .await
    }

    async fn invalidate(&self, tenant: &Tenant, id: &TaskId, version: u64) -> Result<(), HotError> {
        let key = self.key(tenant, id);
        let (version, ttl) = (version.to_string(), self.ttl_ms().to_string());
        self.write(
            (&self.invalidate, INVALIDATE),
            &key,
            &[version.as_bytes(), ttl.as_bytes()],
        )
        .await
    }
}
