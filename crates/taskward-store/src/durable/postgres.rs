//! The production durable tier: PostgreSQL.
//!
//! Typed columns for everything that is listed, filtered or sorted, JSONB for the document's
//! free-form parts (`inputs`, `outputs`, `additional_data`), indexes for every tenant listing
//! (see the migration). Every connection gets `statement_timeout` and `lock_timeout` equal to
//! the durable timeout, so a stalled database turns into a 503 instead of a hung request.
//! Migrations run at open under an advisory lock, so instances starting together migrate once.
//! Compare-and-set writes are group-committed (see `commit_groups`): under load many writes
//! share one commit, which is what bounds write throughput on a durable database.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use taskward_model::list::{ListPage, ListQuery};
use taskward_model::{KeyRecord, Mode, OrgId, Scopes, Task, TaskId, TaskStatus, Tenant};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;

use super::query::{self, Arg, Dialect, Sql, TASK_COLUMNS};
use super::sqlite::pending;
use super::{DurableTier, Inserted, PendingInvalidation};
use crate::changes::{parse_change, Changes};
use crate::StoreError;

/// Migrations in order; applied ones are recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    include_str!("../../migrations/postgres/0001_initial.sql"),
)];

/// Arbitrary, fixed key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x7461_736b_7761_7264; // "taskward"

/// How often the LISTEN connection is checked.
const LISTEN_PING_EVERY: Duration = Duration::from_secs(15);

/// Most compare-and-set writes committed together.
const MAX_GROUP: usize = 128;

/// Group-commit workers: each drains what is queued and commits it as one statement while the
/// others take what queues meanwhile, so commits overlap.
const COMMITTERS: usize = 4;

/// Group-read workers, likewise for reads of one task by key.
const READERS: usize = 4;

/// A group worker's connection idle longer than this is exchanged for a checked one.
const HELD_IDLE: Duration = Duration::from_secs(60);

/// PostgreSQL durable tier.
#[derive(Debug, Clone)]
pub struct PostgresDurable {
    pool: PgPool,
    /// One connection for `LISTEN`.
    listen_pool: PgPool,
    writes: mpsc::Sender<Replace>,
    reads: mpsc::Sender<Read>,
    /// `LISTEN/NOTIFY` channel of this schema's task changes.
    channel: Arc<str>,
}

/// One compare-and-set write waiting for a group commit.
#[derive(Debug)]
struct Replace {
    tenant: Tenant,
    task: Task,
    expected: u64,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// One read of a task by key waiting for a group read.
#[derive(Debug)]
struct Read {
    tenant: Tenant,
    id: TaskId,
    reply: oneshot::Sender<Result<Option<Task>, StoreError>>,
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:pass@host:port/db`
    pub url: String,
    /// Schema to use (created if missing); `None` keeps the server's `search_path`.
    pub schema: Option<String>,
    /// Largest number of connections.
    pub pool_size: u32,
    /// Wait for a connection, a lock or a statement before giving up with 503.
    pub timeout: Duration,
}

impl PostgresDurable {
    /// Connects, creates the schema if asked, and applies migrations.
    pub async fn open(opts: &PostgresOptions) -> Result<Self, StoreError> {
        let base: PgConnectOptions = opts
            .url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::internal(e.to_string()))?;
        let ms = opts.timeout.as_millis().to_string();
        let mut settings = vec![("statement_timeout", ms.clone()), ("lock_timeout", ms)];
        if let Some(schema) = &opts.schema {
            check_schema_name(schema)?;
            settings.push(("search_path", schema.clone()));
        }
        let connect = base.clone().options(settings);
        if let Some(schema) = &opts.schema {
            // Before the pool exists: its connections' search_path names this schema.
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(opts.timeout)
                .connect_with(base)
                .await
                .map_err(map_err)?;
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&pool)
                .await
                .map_err(map_err)?;
            pool.close().await;
        }
        let pool = PgPoolOptions::new()
            // No ping before every use: it doubles the round trips of every query. A connection
            // that died (PostgreSQL restarted) fails its next query with 503 and is replaced.
            .test_before_acquire(false)
            .max_connections(opts.pool_size.max(1))
            .acquire_timeout(opts.timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        migrate(&pool).await?;
        // LISTEN gets a connection of its own, checked before use: it never takes one from the
        // request pool, and after a PostgreSQL restart it reconnects at once instead of
        // failing on each stale pooled connection in turn.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(true)
            .acquire_timeout(opts.timeout)
            .connect_lazy_with(connect.clone());
        // Channels are database-wide: one per schema keeps instances of separate deployments
        // (and parallel tests) sharing a database out of each other's wake-ups.
        let channel: Arc<str> = match &opts.schema {
            Some(schema) => format!("taskward_changes:{schema}").into(),
            None => "taskward_changes".into(),
        };
        // The group workers' connections, one each, held for good (see `Held`): pools of
        // their own, so they never starve the request pool however small it is. Each worker
        // ends when every sender (every clone of this tier) is gone.
        let workers_pool = |n: usize| {
            PgPoolOptions::new()
                .max_connections(n as u32)
                .test_before_acquire(true)
                .acquire_timeout(opts.timeout)
                .connect_lazy_with(connect.clone())
        };
        let (writes, queue) = mpsc::channel(4 * MAX_GROUP);
        let (queue, write_pool) = (Arc::new(Mutex::new(queue)), workers_pool(COMMITTERS));
        for _ in 0..COMMITTERS {
            tokio::spawn(commit_groups(
                Held::new(write_pool.clone(), opts.timeout),
                queue.clone(),
                channel.clone(),
            ));
        }
        let (reads, queue) = mpsc::channel(4 * MAX_GROUP);
        let (queue, read_pool) = (Arc::new(Mutex::new(queue)), workers_pool(READERS));
        for _ in 0..READERS {
            tokio::spawn(read_groups(
                Held::new(read_pool.clone(), opts.timeout),
                queue.clone(),
            ));
        }
        Ok(PostgresDurable {
            pool,
            listen_pool,
            writes,
            reads,
            channel,
        })
    }

    /// The plan PostgreSQL chooses for a listing (`EXPLAIN` text), for operators and tests.
    pub async fn explain_list(&self, tenant: &Tenant, q: &ListQuery) -> Result<String, StoreError> {
        let mut select = query::select(Dialect::Postgres, tenant, q);
        select.text = format!("EXPLAIN {}", select.text);
        let rows = bind(&select).fetch_all(&self.pool).await.map_err(map_err)?;
        let lines: Result<Vec<String>, _> =
            rows.iter().map(|r| r.try_get::<String, _>(0)).collect();
        lines.map(|l| l.join("\n")).map_err(StoreError::internal)
    }

    /// The pool, for tests that inspect stored rows.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Schema names are spliced into DDL, so they are held to a safe identifier shape.
fn check_schema_name(s: &str) -> Result<(), StoreError> {
    // 46: the change channel `taskward_changes:<schema>` must fit PostgreSQL's 63-byte names.
    let ok = !s.is_empty()
        && s.len() <= 46
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::internal(
            "postgres schema must match [a-z_][a-z0-9_]{0,45}",
        ))
    }
}

async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if applied.iter().any(|v| *v > known) {
        return Err(StoreError::internal(
            "the database was written by a newer taskward (unknown schema migration)",
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(())
}

/// Driver errors: what a retry later could cure is `Unavailable` (503); a regular expression
/// PostgreSQL cannot compile is the client's (422); the rest internal.
fn map_err(e: sqlx::Error) -> StoreError {
    let transient = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code == "2201B" {
                return StoreError::Invalid(format!(
                    "regular expression rejected by the database: {}",
                    db.message()
                ));
            }
            // connection exceptions, insufficient resources, operator intervention, lock and
            // statement timeouts, serialization failures and deadlocks.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || matches!(code.as_ref(), "55P03" | "40001" | "40P01")
        }
        _ => false,
    };
    if transient {
        StoreError::Unavailable {
            tier: "durable",
            source: e.into(),
        }
    } else {
        StoreError::internal(e)
    }
}

/// A pooled connection to a server that has since died (PostgreSQL restarted while it sat
/// idle; pools do not ping before use) fails its next query at once: the socket was closed
/// under it (`Io`) or the server said it was terminating it (57P01/57P02). The query never ran
/// on a live server, so it is run again, on another connection; each stale connection fails
/// once and is dropped, so at most the pool's size of them.
fn stale_connection(e: &StoreError) -> bool {
    let StoreError::Unavailable { source, .. } = e else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_)) => true,
        Some(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("57P01" | "57P02")),
        _ => false,
    }
}

/// Runs `f`, again while it fails on a stale connection (see [`stale_connection`]). Every
/// statement run through here is safe to repeat even if it did reach a server: reads, inserts
/// that do nothing on conflict, and compare-and-set updates that cannot match twice.
async fn retry_stale<T, F, Fut>(pool: &PgPool, mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut left = pool.options().get_max_connections();
    loop {
        match f().await {
            Err(e) if left > 0 && stale_connection(&e) => {
                left -= 1;
                tracing::debug!(error = %e, "stale PostgreSQL connection; retrying on another");
            }
            done => return done,
        }
    }
}

fn json_of<T: serde::de::DeserializeOwned>(v: Option<Value>) -> Result<Option<T>, StoreError> {
    v.map(serde_json::from_value)
        .transpose()
        .map_err(StoreError::internal)
}

fn row_to_task(row: &PgRow) -> Result<Task, StoreError> {
    let status: String = row.try_get(2).map_err(StoreError::internal)?;
    Ok(Task {
        task_id: TaskId::parse(&row.try_get::<String, _>(0).map_err(StoreError::internal)?)
            .map_err(StoreError::internal)?,
        task_type: row.try_get(1).map_err(StoreError::internal)?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| StoreError::internal(format!("bad stored status {status:?}")))?,
        inputs: json_of(row.try_get(3).map_err(StoreError::internal)?)?,
        outputs: json_of(row.try_get(4).map_err(StoreError::internal)?)?,
        additional_data: json_of(row.try_get(5).map_err(StoreError::internal)?)?,
        description: row.try_get(6).map_err(StoreError::internal)?,
        created_at: row.try_get(7).map_err(StoreError::internal)?,
        updated_at: row.try_get(8).map_err(StoreError::internal)?,
        started_at: row.try_get(9).map_err(StoreError::internal)?,
        finished_at: row.try_get(10).map_err(StoreError::internal)?,
        version: row.try_get::<i64, _>(11).map_err(StoreError::internal)? as u64,
    })
}

fn row_to_key(row: &PgRow) -> Result<KeyRecord, StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(StoreError::internal);
    Ok(KeyRecord {
        key_id: get("key_id")?,
        org: OrgId::parse(&get("org")?).map_err(StoreError::internal)?,
        mode: Mode::parse(&get("mode")?).map_err(StoreError::internal)?,
        scopes: Scopes::parse(&get("scopes")?).map_err(StoreError::internal)?,
        hint: get("hint")?,
        created_at: row.try_get("created_at").map_err(StoreError::internal)?,
        revoked_at: row.try_get("revoked_at").map_err(StoreError::internal)?,
    })
}

const KEY_COLUMNS: &str = "key_id, org, mode, scopes, hint, created_at, revoked_at";

/// Binds a compiled query's arguments with PostgreSQL's types.
fn bind(sql: &Sql) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sql.args
        .iter()
        .fold(sqlx::query(&sql.text), |q, a| match a {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
            Arg::Float(f) => q.bind(*f),
            Arg::Bool(b) => q.bind(*b),
            Arg::Time(t) => q.bind(*t),
            Arg::Path(segments) => q.bind(segments.clone()),
            Arg::Json(v) => q.bind(Json(v.clone())),
        })
}

#[async_trait]
impl DurableTier for PostgresDurable {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let (reply, done) = oneshot::channel();
        let read = Read {
            tenant: tenant.clone(),
            id: id.clone(),
            reply,
        };
        self.reads.send(read).await.map_err(|_| workers_stopped())?;
        done.await.map_err(|_| workers_stopped())?
    }

    async fn insert(
        &self,
        tenant: &Tenant,
        task: &Task,
        digest: &str,
    ) -> Result<Inserted, StoreError> {
        let done = retry_stale(&self.pool, || async {
            sqlx::query(
            "INSERT INTO tasks (org, mode, task_id, task_type, status, active, inputs, outputs, additional_data, \
             description, created_at, updated_at, started_at, finished_at, version, create_digest) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (org, mode, task_id) DO NOTHING",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.mode.as_str())
        .bind(task.task_id.as_str())
        .bind(&task.task_type)
        .bind(task.status.as_str())
        .bind(!task.status.is_terminal())
        .bind(task.inputs.as_ref().map(Json))
        .bind(task.outputs.as_ref().map(Json))
        .bind(task.additional_data.as_ref().map(Json))
        .bind(&task.description)
        .bind(task.created_at)
        .bind(task.updated_at)
        .bind(task.started_at)
        .bind(task.finished_at)
        .bind(task.version as i64)
        .bind(digest)
        .execute(&self.pool)
        .await
        .map_err(map_err)
        })
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Inserted::Created);
        }
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS}, t.create_digest FROM tasks t WHERE t.org = $1 AND t.mode = $2 AND t.task_id = $3"
        ))
        .bind(tenant.org.as_str())
        .bind(tenant.mode.as_str())
        .bind(task.task_id.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(Inserted::Exists {
            task: Box::new(row_to_task(&row)?),
            digest: row.try_get("create_digest").map_err(StoreError::internal)?,
        })
    }

    async fn replace(
        &self,
        tenant: &Tenant,
        task: &Task,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let (reply, done) = oneshot::channel();
        let job = Replace {
            tenant: tenant.clone(),
            task: task.clone(),
            expected: expected_version,
            reply,
        };
        self.writes.send(job).await.map_err(|_| workers_stopped())?;
        done.await.map_err(|_| workers_stopped())?
    }

    async fn list(&self, tenant: &Tenant, q: &ListQuery) -> Result<ListPage, StoreError> {
        let select = query::select(Dialect::Postgres, tenant, q);
        let rows = bind(&select).fetch_all(&self.pool).await.map_err(map_err)?;
        let has_more = rows.len() > q.limit as usize;
        let tasks = rows
            .iter()
            .take(q.limit as usize)
            .map(row_to_task)
            .collect::<Result<Vec<_>, _>>()?;
        let total = if q.include_total {
            let count = query::count(Dialect::Postgres, tenant, q);
            let row = bind(&count).fetch_one(&self.pool).await.map_err(map_err)?;
            Some(row.try_get::<i64, _>(0).map_err(StoreError::internal)? as u64)
        } else {
            None
        };
        Ok(ListPage {
            tasks,
            has_more,
            total,
        })
    }

    async fn insert_key(&self, key: &KeyRecord, hash: &str) -> Result<(), StoreError> {
        insert_key(&self.pool, key, hash).await
    }

    async fn insert_first_key(&self, key: &KeyRecord, hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let marked = sqlx::query("INSERT INTO markers (name, created_at) VALUES ('first_key', $1) ON CONFLICT DO NOTHING")
            .bind(key.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if marked.rows_affected() == 0 {
            return Ok(false);
        }
        insert_key(&mut *tx, key, hash).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn find_key(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = retry_stale(&self.pool, || async {
            sqlx::query(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
            ))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
        })
        .await?;
        row.as_ref().map(row_to_key).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, key_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(row_to_key).collect()
    }

    async fn revoke_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(key_id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError> {
        retry_stale(&self.pool, || async {
        sqlx::query(
            "INSERT INTO pending_invalidations (org, mode, task_id, version) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org, mode, task_id) DO UPDATE SET version = GREATEST(pending_invalidations.version, excluded.version)",
        )
        .bind(p.tenant.org.as_str())
        .bind(p.tenant.mode.as_str())
        .bind(p.task_id.as_str())
        .bind(p.version as i64)
        .execute(&self.pool)
        .await
        .map_err(map_err)
        })
        .await?;
        Ok(())
    }

    async fn pending_invalidations(
        &self,
        limit: u32,
    ) -> Result<Vec<PendingInvalidation>, StoreError> {
        let rows =
            sqlx::query("SELECT org, mode, task_id, version FROM pending_invalidations LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let get = |i: usize| r.try_get::<String, _>(i).map_err(StoreError::internal);
                pending(
                    &get(0)?,
                    &get(1)?,
                    &get(2)?,
                    r.try_get::<i64, _>(3).map_err(StoreError::internal)?,
                )
            })
            .collect()
    }

    async fn clear_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_invalidations WHERE org = $1 AND mode = $2 AND task_id = $3 AND version <= $4")
            .bind(p.tenant.org.as_str())
            .bind(p.tenant.mode.as_str())
            .bind(p.task_id.as_str())
            .bind(p.version as i64)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn count_pending_invalidations(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_invalidations")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn delete_finished_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM tasks WHERE (org, mode, task_id) IN (SELECT org, mode, task_id FROM tasks \
             WHERE finished_at IS NOT NULL AND finished_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn forward_changes(&self, changes: Arc<Changes>, stop: CancellationToken) {
        const MAX_BACKOFF: Duration = Duration::from_secs(5);
        let mut backoff = Duration::from_millis(100);
        loop {
            let listen = async {
                let mut listener = PgListener::connect_with(&self.listen_pool).await?;
                listener.listen(&self.channel).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                _ = stop.cancelled() => return,
                listening = listen => match listening {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for task changes; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            backoff = Duration::from_millis(100);
            // Changes committed while we were not listening were not heard: every waiter
            // re-reads its task.
            changes.wake_all();
            // A connection that silently vanished (no RST) would otherwise leave us deaf.
            let mut ping = tokio::time::interval(LISTEN_PING_EVERY);
            ping.reset();
            loop {
                let received = tokio::select! {
                    _ = stop.cancelled() => return,
                    received = listener.try_recv() => received,
                    _ = ping.tick() => {
                        let alive = tokio::time::timeout(
                            LISTEN_PING_EVERY,
                            sqlx::query("SELECT 1").execute(&mut listener),
                        )
                        .await;
                        if matches!(alive, Ok(Ok(_))) {
                            continue;
                        }
                        tracing::warn!("LISTEN connection stopped answering; reconnecting");
                        break;
                    }
                };
                match received {
                    Ok(Some(n)) => match parse_change(n.payload()) {
                        Some((key, version)) => changes.publish_key(key, version),
                        None => tracing::warn!(payload = n.payload(), "unreadable change message"),
                    },
                    // The connection dropped: listen again on a fresh one (then wake all).
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

fn workers_stopped() -> StoreError {
    StoreError::Unavailable {
        tier: "durable",
        source: "the group workers stopped".into(),
    }
}

/// The connection a group worker keeps for good. sqlx pings a connection (a round trip) every
/// time it goes back to a pool, which would double the statements of every group; a worker's
/// statements are serial anyway. It comes from a pool of the workers' own that checks it before
/// handing it out, and is replaced when it turns out stale.
struct Held {
    pool: PgPool,
    conn: Option<PoolConnection<sqlx::Postgres>>,
    last_used: std::time::Instant,
    /// How long a statement may take before the connection is given up: the server's
    /// `statement_timeout` and then some, so this only fires when the server is cut off
    /// without the socket noticing.
    limit: Duration,
}

impl Held {
    fn new(pool: PgPool, timeout: Duration) -> Self {
        Held {
            pool,
            conn: None,
            last_used: std::time::Instant::now(),
            limit: timeout + Duration::from_secs(1),
        }
    }

    /// The connection, opened if there is none. One left idle for a while goes back to the
    /// pool and a checked one is taken, as a pooled connection would be retired: firewalls and
    /// NATs drop quiet connections without telling either end.
    async fn conn(&mut self) -> Result<&mut sqlx::PgConnection, StoreError> {
        if self.last_used.elapsed() > HELD_IDLE {
            self.conn = None;
        }
        self.last_used = std::time::Instant::now();
        let conn = match self.conn.take() {
            Some(c) => c,
            None => self.pool.acquire().await.map_err(map_err)?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// What became of a statement run on the connection: `None` to run it again on a new one,
    /// since the held one turned out stale (as in [`retry_stale`]; `retried` counts the
    /// attempts). After any failure the next statement starts on a connection the pool checks.
    fn settle<T>(
        &mut self,
        result: Result<T, StoreError>,
        retried: &mut u32,
    ) -> Option<Result<T, StoreError>> {
        let e = match result {
            Err(e) => e,
            done => return Some(done),
        };
        self.conn = None;
        if *retried < self.pool.options().get_max_connections() && stale_connection(&e) {
            *retried += 1;
            tracing::debug!(error = %e, "stale PostgreSQL connection; running the group on another");
            return None;
        }
        Some(Err(e))
    }
}

/// Runs a group's statement within `limit` (see [`Held::limit`]).
async fn bounded<T>(
    limit: Duration,
    statement: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, statement)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable {
                tier: "durable",
                source: format!("no answer from PostgreSQL within {limit:?}").into(),
            })
        })
}

/// The next group from `queue`: waits for one request, then takes whatever else is queued, up
/// to [`MAX_GROUP`]; `None` once every sender is gone.
async fn next_group<T>(queue: &Mutex<mpsc::Receiver<T>>) -> Option<Vec<T>> {
    let mut rx = queue.lock().await;
    let mut group = vec![rx.recv().await?];
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    Some(group)
}

/// A failed group's error, once for each of its requests (errors are not `Clone`).
fn each_error(e: StoreError) -> impl Fn() -> StoreError {
    let transient = matches!(e, StoreError::Unavailable { .. });
    let message = e.to_string();
    move || {
        if transient {
            StoreError::Unavailable {
                tier: "durable",
                source: message.clone().into(),
            }
        } else {
            StoreError::internal(message.clone())
        }
    }
}

/// Group commit: concurrent compare-and-set writes go to PostgreSQL as one `UPDATE … FROM
/// unnest(…)` statement, one commit and one WAL flush for the whole group, instead of one each.
/// `RETURNING v.idx` names the writes that won; the rest lost their race (the version moved),
/// exactly as they would have alone. Two writes to the same task in one group expect the same
/// version, so at most one wins, and `RETURNING` says which.
async fn commit_groups(
    mut held: Held,
    queue: Arc<Mutex<mpsc::Receiver<Replace>>>,
    channel: Arc<str>,
) {
    while let Some(mut group) = next_group(&queue).await {
        // Every group locks its rows in key order, so concurrent groups wait for one another
        // instead of deadlocking.
        group.sort_by(|a, b| {
            (
                a.tenant.org.as_str(),
                a.tenant.mode.as_str(),
                a.task.task_id.as_str(),
            )
                .cmp(&(
                    b.tenant.org.as_str(),
                    b.tenant.mode.as_str(),
                    b.task.task_id.as_str(),
                ))
        });
        let (mut retried, limit) = (0, held.limit);
        let result = loop {
            let result = match held.conn().await {
                Ok(c) => bounded(limit, update_group(c, &group, &channel)).await,
                Err(e) => Err(e),
            };
            if let Some(done) = held.settle(result, &mut retried) {
                break done;
            }
        };
        match result {
            Ok(won) => {
                for (i, job) in group.into_iter().enumerate() {
                    let _ = job.reply.send(Ok(won.contains(&(i as i32))));
                }
            }
            Err(e) => {
                let err = each_error(e);
                for job in group {
                    let _ = job.reply.send(Err(err()));
                }
            }
        }
    }
}

/// Group read: concurrent reads of one task each go to PostgreSQL as one `SELECT … JOIN
/// unnest(…)`, one round trip for the whole group.
async fn read_groups(mut held: Held, queue: Arc<Mutex<mpsc::Receiver<Read>>>) {
    while let Some(group) = next_group(&queue).await {
        let (mut retried, limit) = (0, held.limit);
        let result = loop {
            let result = match held.conn().await {
                Ok(c) => bounded(limit, select_group(c, &group)).await,
                Err(e) => Err(e),
            };
            if let Some(done) = held.settle(result, &mut retried) {
                break done;
            }
        };
        match result {
            Ok(mut found) => {
                for (job, task) in group.into_iter().zip(found.iter_mut()) {
                    let _ = job.reply.send(task.take().transpose());
                }
            }
            Err(e) => {
                let err = each_error(e);
                for job in group {
                    let _ = job.reply.send(Err(err()));
                }
            }
        }
    }
}

/// The task of each read of `group`, in its order.
async fn select_group(
    conn: &mut sqlx::PgConnection,
    group: &[Read],
) -> Result<Vec<Option<Result<Task, StoreError>>>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS}, k.idx \
         FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[]) AS k(idx, org, mode, task_id) \
         JOIN tasks t ON t.org = k.org AND t.mode = k.mode AND t.task_id = k.task_id"
    ))
    .bind((0..group.len() as i32).collect::<Vec<i32>>())
    .bind(
        group
            .iter()
            .map(|r| r.tenant.org.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        group
            .iter()
            .map(|r| r.tenant.mode.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(group.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    let mut found: Vec<Option<Result<Task, StoreError>>> = group.iter().map(|_| None).collect();
    for row in &rows {
        let idx: i32 = row.try_get(12).map_err(StoreError::internal)?;
        let slot = found
            .get_mut(idx as usize)
            .ok_or_else(|| StoreError::internal("group read returned an unknown index"))?;
        *slot = Some(row_to_task(row));
    }
    Ok(found)
}

async fn update_group(
    conn: &mut sqlx::PgConnection,
    group: &[Replace],
    channel: &str,
) -> Result<Vec<i32>, StoreError> {
    let mut inputs = Vec::with_capacity(group.len());
    let mut outputs = Vec::with_capacity(group.len());
    for j in group {
        inputs.push(
            j.task
                .inputs
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(StoreError::internal)?,
        );
        outputs.push(
            j.task
                .outputs
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(StoreError::internal)?,
        );
    }
    let data: Vec<Option<Value>> = group
        .iter()
        .map(|j| j.task.additional_data.clone().map(Value::Object))
        .collect();
    // Each won write is announced on `channel` in the same transaction, so other instances'
    // long-poll waiters hear of exactly the committed writes, as they commit.
    let won: Vec<i32> = sqlx::query_scalar(
        "WITH won AS (UPDATE tasks AS t SET task_type = v.task_type, status = v.status, active = v.active, inputs = v.inputs, \
         outputs = v.outputs, additional_data = v.additional_data, description = v.description, \
         updated_at = v.updated_at, started_at = v.started_at, finished_at = v.finished_at, version = v.version \
         FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::jsonb[], \
                     $9::jsonb[], $10::jsonb[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], \
                     $15::int8[], $16::int8[], $17::timestamptz[]) \
           AS v(idx, org, mode, task_id, task_type, status, active, inputs, outputs, additional_data, description, \
                updated_at, started_at, finished_at, version, expected, created_at) \
         WHERE t.org = v.org AND t.mode = v.mode AND t.task_id = v.task_id AND t.version = v.expected \
           AND t.created_at = v.created_at \
         RETURNING v.idx, t.org, t.mode, t.task_id, t.version) \
         SELECT won.idx FROM won, pg_notify($18, won.org || ' ' || won.mode || ' ' || won.task_id || ' ' || won.version) AS n",
    )
    .bind((0..group.len() as i32).collect::<Vec<i32>>())
    .bind(group.iter().map(|j| j.tenant.org.as_str()).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.tenant.mode.as_str()).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.task.task_id.as_str()).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.task.task_type.as_str()).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.task.status.as_str()).collect::<Vec<_>>())
    .bind(group.iter().map(|j| !j.task.status.is_terminal()).collect::<Vec<_>>())
    .bind(inputs)
    .bind(outputs)
    .bind(data)
    .bind(group.iter().map(|j| j.task.description.clone()).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.task.updated_at).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.task.started_at).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.task.finished_at).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.task.version as i64).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.expected as i64).collect::<Vec<_>>())
    .bind(group.iter().map(|j| j.task.created_at).collect::<Vec<_>>())
    .bind(channel)
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(won)
}

async fn insert_key<'c, E: sqlx::Executor<'c, Database = sqlx::Postgres>>(
    exec: E,
    key: &KeyRecord,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (key_id, key_hash, org, mode, scopes, hint, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(&key.key_id)
    .bind(hash)
    .bind(key.org.as_str())
    .bind(key.mode.as_str())
    .bind(key.scopes.to_string())
    .bind(&key.hint)
    .bind(key.created_at)
    .execute(exec)
    .await
    .map_err(map_err)?;
    Ok(())
}
