//! The embedded durable tier: one SQLite file in the data directory.
//!
//! WAL mode with `synchronous=FULL`: a commit is on disk before it is acknowledged, readers
//! never block the writer. Writes go through a pool of one connection, so this process never
//! contends with itself for SQLite's single write lock; other processes on the same file (the
//! `taskward keys` command while `serve` runs) wait on `busy_timeout`. Reads use their own pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use taskward_model::list::{ListPage, ListQuery};
use taskward_model::{time, KeyRecord, Mode, OrgId, Scopes, Task, TaskId, TaskStatus, Tenant};

use super::query::{self, Arg, Dialect, Sql, TASK_COLUMNS};
use super::{DurableTier, Inserted, PendingInvalidation};
use crate::StoreError;

/// Migrations in order; applied ones are recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_pending_invalidations.sql"),
    ),
];

/// SQLite durable tier.
#[derive(Debug, Clone)]
pub struct SqliteDurable {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteDurable {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| unavailable(e.into()))?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(StoreError::internal)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(busy_timeout)
            .with_regexp();
        let writer = SqlitePoolOptions::new()
            // A local file connection does not die; a ping per use would only cost a round trip
            // to its worker thread.
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(busy_timeout)
            .connect_with(opts.clone())
            .await
            .map_err(map_err)?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            // A local file connection does not die; a ping per use would only cost a round trip
            // to its worker thread.
            .test_before_acquire(false)
            .max_connections(4)
            .acquire_timeout(busy_timeout)
            .connect_with(opts)
            .await
            .map_err(map_err)?;
        Ok(SqliteDurable { writer, reader })
    }
}

/// Applies missing migrations inside one `BEGIN IMMEDIATE`, so two processes opening a fresh
/// file together migrate it once.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let result = async {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?;
        Ok::<_, sqlx::Error>(applied)
    }
    .await;
    let applied = match result {
        Ok(a) => a,
        Err(e) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return Err(map_err(e));
        }
    };
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if applied.iter().any(|v| *v > known) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        return Err(StoreError::internal(
            "the database was written by a newer taskward (unknown schema migration)",
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
        let step = async {
            sqlx::raw_sql(sql).execute(&mut *conn).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(time::format(&time::now()))
                .execute(&mut *conn)
                .await
        }
        .await;
        if let Err(e) = step {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return Err(map_err(e));
        }
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

fn unavailable(source: Box<dyn std::error::Error + Send + Sync>) -> StoreError {
    StoreError::Unavailable {
        tier: "durable",
        source,
    }
}

/// Driver errors: the ones a retry later could cure are `Unavailable` (503), the rest internal.
fn map_err(e: sqlx::Error) -> StoreError {
    let transient = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, and their
            // extended codes (the primary code is the low byte).
            let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0) & 0xff;
            matches!(code, 5 | 6 | 10 | 13 | 14)
        }
        _ => false,
    };
    if transient {
        unavailable(e.into())
    } else {
        StoreError::internal(e)
    }
}

fn json_text<T: serde::Serialize>(v: &Option<T>) -> Result<Option<String>, StoreError> {
    v.as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(StoreError::internal)
}

fn parse_json<T: serde::de::DeserializeOwned>(s: Option<String>) -> Result<Option<T>, StoreError> {
    s.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(StoreError::internal)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    time::parse(s).ok_or_else(|| StoreError::internal(format!("bad stored timestamp {s:?}")))
}

fn parse_opt_time(s: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.as_deref().map(parse_time).transpose()
}

/// Reads a row selected with [`TASK_COLUMNS`].
fn row_to_task(row: &SqliteRow) -> Result<Task, StoreError> {
    let get_str = |i: usize| row.try_get::<String, _>(i).map_err(StoreError::internal);
    let get_opt = |i: usize| {
        row.try_get::<Option<String>, _>(i)
            .map_err(StoreError::internal)
    };
    let status = get_str(2)?;
    Ok(Task {
        task_id: TaskId::parse(&get_str(0)?).map_err(StoreError::internal)?,
        task_type: get_str(1)?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| StoreError::internal(format!("bad stored status {status:?}")))?,
        inputs: parse_json(get_opt(3)?)?,
        outputs: parse_json(get_opt(4)?)?,
        additional_data: parse_json(get_opt(5)?)?,
        description: get_opt(6)?,
        created_at: parse_time(&get_str(7)?)?,
        updated_at: parse_time(&get_str(8)?)?,
        started_at: parse_opt_time(get_opt(9)?)?,
        finished_at: parse_opt_time(get_opt(10)?)?,
        version: row.try_get::<i64, _>(11).map_err(StoreError::internal)? as u64,
    })
}

fn row_to_key(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    let get_str = |c: &str| row.try_get::<String, _>(c).map_err(StoreError::internal);
    let bad = |e: taskward_model::Invalid| StoreError::internal(e);
    Ok(KeyRecord {
        key_id: get_str("key_id")?,
        org: OrgId::parse(&get_str("org")?).map_err(bad)?,
        mode: Mode::parse(&get_str("mode")?).map_err(bad)?,
        scopes: Scopes::parse(&get_str("scopes")?).map_err(bad)?,
        hint: get_str("hint")?,
        created_at: parse_time(&get_str("created_at")?)?,
        revoked_at: parse_opt_time(row.try_get("revoked_at").map_err(StoreError::internal)?)?,
    })
}

const KEY_COLUMNS: &str = "key_id, org, mode, scopes, hint, created_at, revoked_at";

#[async_trait]
impl DurableTier for SqliteDurable {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks t WHERE t.org = ? AND t.mode = ? AND t.task_id = ?"
        ))
        .bind(tenant.org.as_str())
        .bind(tenant.mode.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.as_ref().map(row_to_task).transpose()
    }

    async fn insert(
        &self,
        tenant: &Tenant,
        task: &Task,
        digest: &str,
    ) -> Result<Inserted, StoreError> {
        let done = sqlx::query(
            "INSERT INTO tasks (org, mode, task_id, task_type, status, active, inputs, outputs, \
             additional_data, description, created_at, updated_at, started_at, finished_at, version, \
             create_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (org, mode, task_id) DO NOTHING",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.mode.as_str())
        .bind(task.task_id.as_str())
        .bind(&task.task_type)
        .bind(task.status.as_str())
        .bind(!task.status.is_terminal())
        .bind(json_text(&task.inputs)?)
        .bind(json_text(&task.outputs)?)
        .bind(json_text(&task.additional_data)?)
        .bind(&task.description)
        .bind(time::format(&task.created_at))
        .bind(time::format(&task.updated_at))
        .bind(task.started_at.as_ref().map(time::format))
        .bind(task.finished_at.as_ref().map(time::format))
        .bind(task.version as i64)
        .bind(digest)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 1 {
            return Ok(Inserted::Created);
        }
        // Read through the writer: it has just seen the conflicting row.
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS}, t.create_digest FROM tasks t \
             WHERE t.org = ? AND t.mode = ? AND t.task_id = ?"
        ))
        .bind(tenant.org.as_str())
        .bind(tenant.mode.as_str())
        .bind(task.task_id.as_str())
        .fetch_one(&self.writer)
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
        let done = sqlx::query(
            "UPDATE tasks SET task_type = ?, status = ?, active = ?, inputs = ?, outputs = ?, \
             additional_data = ?, description = ?, updated_at = ?, started_at = ?, finished_at = ?, \
             version = ? WHERE org = ? AND mode = ? AND task_id = ? AND version = ? AND created_at = ?",
        )
        .bind(&task.task_type)
        .bind(task.status.as_str())
        .bind(!task.status.is_terminal())
        .bind(json_text(&task.inputs)?)
        .bind(json_text(&task.outputs)?)
        .bind(json_text(&task.additional_data)?)
        .bind(&task.description)
        .bind(time::format(&task.updated_at))
        .bind(task.started_at.as_ref().map(time::format))
        .bind(task.finished_at.as_ref().map(time::format))
        .bind(task.version as i64)
        .bind(tenant.org.as_str())
        .bind(tenant.mode.as_str())
        .bind(task.task_id.as_str())
        .bind(expected_version as i64)
        .bind(time::format(&task.created_at))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list(&self, tenant: &Tenant, q: &ListQuery) -> Result<ListPage, StoreError> {
        let select = query::select(Dialect::Sqlite, tenant, q);
        let rows = bind(&select)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        let has_more = rows.len() > q.limit as usize;
        let tasks = rows
            .iter()
            .take(q.limit as usize)
            .map(row_to_task)
            .collect::<Result<Vec<_>, _>>()?;
        let total = if q.include_total {
            let count = query::count(Dialect::Sqlite, tenant, q);
            let row = bind(&count)
                .fetch_one(&self.reader)
                .await
                .map_err(map_err)?;
            let n: i64 = row.try_get(0).map_err(StoreError::internal)?;
            Some(n as u64)
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
        insert_key(&self.writer, key, hash).await
    }

    async fn insert_first_key(&self, key: &KeyRecord, hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        let marked = sqlx::query(
            "INSERT INTO markers (name, created_at) VALUES ('first_key', ?) ON CONFLICT DO NOTHING",
        )
        .bind(time::format(&key.created_at))
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
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?"
        ))
        .bind(hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.as_ref().map(row_to_key).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, key_id"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(row_to_key).collect()
    }

    async fn revoke_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        )
        .bind(time::format(&at))
        .bind(key_id)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_invalidations (org, mode, task_id, version) VALUES (?, ?, ?, ?) \
             ON CONFLICT (org, mode, task_id) DO UPDATE SET version = max(version, excluded.version)",
        )
        .bind(p.tenant.org.as_str())
        .bind(p.tenant.mode.as_str())
        .bind(p.task_id.as_str())
        .bind(p.version as i64)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn pending_invalidations(
        &self,
        limit: u32,
    ) -> Result<Vec<PendingInvalidation>, StoreError> {
        let rows =
            sqlx::query("SELECT org, mode, task_id, version FROM pending_invalidations LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
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
        sqlx::query("DELETE FROM pending_invalidations WHERE org = ? AND mode = ? AND task_id = ? AND version <= ?")
            .bind(p.tenant.org.as_str())
            .bind(p.tenant.mode.as_str())
            .bind(p.task_id.as_str())
            .bind(p.version as i64)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn count_pending_invalidations(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_invalidations")
            .fetch_one(&self.reader)
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
             WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT ?)",
        )
        .bind(time::format(&cutoff))
        .bind(i64::from(limit))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

/// Builds a [`PendingInvalidation`] from stored text.
pub(crate) fn pending(
    org: &str,
    mode: &str,
    task_id: &str,
    version: i64,
) -> Result<PendingInvalidation, StoreError> {
    let bad = |e: taskward_model::Invalid| StoreError::internal(e);
    Ok(PendingInvalidation {
        tenant: Tenant {
            org: OrgId::parse(org).map_err(bad)?,
            mode: Mode::parse(mode).map_err(bad)?,
        },
        task_id: TaskId::parse(task_id).map_err(bad)?,
        version: version as u64,
    })
}

/// Binds a compiled query's arguments with SQLite's types.
fn bind(sql: &Sql) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sql.args
        .iter()
        .fold(sqlx::query(&sql.text), |q, a| match a {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
            Arg::Float(f) => q.bind(*f),
            Arg::Bool(b) => q.bind(i64::from(*b)),
            Arg::Time(t) => q.bind(time::format(t)),
            Arg::Path(segments) => q.bind(query::sqlite_path(segments)),
            Arg::Json(v) => q.bind(v.to_string()),
        })
}

async fn insert_key<'c, E: sqlx::Executor<'c, Database = sqlx::Sqlite>>(
    exec: E,
    key: &KeyRecord,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (key_id, key_hash, org, mode, scopes, hint, created_at, revoked_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
    )
    .bind(&key.key_id)
    .bind(hash)
    .bind(key.org.as_str())
    .bind(key.mode.as_str())
    .bind(key.scopes.to_string())
    .bind(&key.hint)
    .bind(time::format(&key.created_at))
    .execute(exec)
    .await
    .map_err(map_err)?;
    Ok(())
}
