//! The embedded durable tier: one SQLite file in the data directory.
//!
//! WAL mode with `synchronous=FULL`: a commit is on disk before it is acknowledged, readers
//! never block the writer. Writes go through a pool of one connection, so this process never
//! contends with itself for SQLite's single write lock; other processes on the same file (the
//! `taskward keys` command while `serve` runs) wait on `busy_timeout`. Reads use their own
//! pool. Everything else is the SQL core's ([`SqlDurable`]).

use std::io::ErrorKind;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};
use taskward_model::time;
use tokio::sync::Notify;

use super::sql::{
    impl_driver, row_view_plain_columns, sqlite_path, Arg, Backend, Dialect, Lock, Migration,
    RowView, Sql, SqlDurable, Tx,
};
use crate::StoreError;

/// Migrations in order; applied ones are recorded in `schema_migrations`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/sqlite/0002_pending_invalidations.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/sqlite/0003_write_ids.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/sqlite/0004_events.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/sqlite/0005_webhooks.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/sqlite/0006_webhook_cursors.sql"),
    },
];

/// The durable tier on a SQLite file.
pub type SqliteDurable = SqlDurable<SqliteBackend>;

/// SQLite under the SQL core: a one-connection writer pool and a reader pool.
#[derive(Debug)]
pub struct SqliteBackend {
    writer: SqlitePool,
    reader: SqlitePool,
    outbox: Arc<Notify>,
}

impl SqlDurable<SqliteBackend> {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        check_writable(path)?;
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(StoreError::internal)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(busy_timeout)
            .with_regexp();
        let pool = |size: u32| {
            SqlitePoolOptions::new()
                // A local file connection does not die; a ping per use would only cost a
                // round trip to its worker thread.
                .test_before_acquire(false)
                .max_connections(size)
                .acquire_timeout(busy_timeout)
                .connect_with(opts.clone())
        };
        let writer = pool(1).await.map_err(error)?;
        let reader = pool(4).await.map_err(error)?;
        SqlDurable::over(
            SqliteBackend {
                writer,
                reader,
                outbox: Arc::default(),
            },
            MIGRATIONS,
        )
        .await
    }
}

/// The data directory and the database file must be writable: said plainly at start, rather
/// than as SQLite's "unable to open database file" or "attempt to write a readonly database"
/// on the first write.
fn check_writable(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let what = |e: std::io::Error| -> StoreError {
        let dir = dir.display();
        StoreError::Config(match e.kind() {
            ErrorKind::AlreadyExists | ErrorKind::NotADirectory => format!(
                "the data directory {dir} is not a directory (a file is in the way): remove it, \
                 or choose another directory with --data-dir / TASKWARD_DATA_DIR"
            ),
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => format!(
                "cannot write to the data directory {dir}: permission denied; make it writable \
                 by this user, or choose another with --data-dir / TASKWARD_DATA_DIR"
            ),
            _ => format!(
                "cannot use the data directory {dir}: {e}; choose another with --data-dir / \
                 TASKWARD_DATA_DIR"
            ),
        })
    };
    if dir.exists() && !dir.is_dir() {
        return Err(what(ErrorKind::NotADirectory.into()));
    }
    std::fs::create_dir_all(dir).map_err(what)?;
    // SQLite needs to create its -wal and -shm files beside the database.
    let probe = dir.join(".taskward-write-check");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(what)?;
    let _ = std::fs::remove_file(&probe);
    if path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| match e.kind() {
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                    StoreError::Config(format!(
                        "the database file {} is read-only: make it writable by this user \
                         (chmod u+w), or choose another data directory with --data-dir",
                        path.display()
                    ))
                }
                _ => what(e),
            })?;
    }
    Ok(())
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable {
        tier: "durable",
        source: e.into(),
    }
}

/// Driver errors: the ones a retry later could cure are `Unavailable` (503), the rest internal.
fn error(e: sqlx::Error) -> StoreError {
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
        unavailable(e)
    } else {
        StoreError::internal(e)
    }
}

/// Binds a statement's arguments with SQLite's types: timestamps as canonical text (so text
/// order is time order), documents and JSON paths as text.
fn bind(sql: &Sql) -> sqlx::query::Query<'_, Sqlite, SqliteArguments<'_>> {
    sql.args
        .iter()
        .fold(sqlx::query(&sql.text), |q, a| match a {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::Int(i) => q.bind(*i),
            Arg::Float(f) => q.bind(*f),
            Arg::Bool(b) => q.bind(i64::from(*b)),
            Arg::Time(t) => q.bind(time::format(t)),
            Arg::OptTime(t) => q.bind(t.as_ref().map(time::format)),
            Arg::Path(segments) => q.bind(sqlite_path(segments)),
            Arg::Json(v) => q.bind(v.to_string()),
            Arg::Doc(d) => q.bind(d.as_deref().map(|raw| raw.get())),
        })
}

impl_driver!(Sqlite, Dialect::Sqlite, bind, error);

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    time::parse(s).ok_or_else(|| StoreError::internal(format!("bad stored timestamp {s:?}")))
}

impl RowView for SqliteRow {
    row_view_plain_columns!();

    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        parse_time(&self.text(i)?)
    }

    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_text(i)?.as_deref().map(parse_time).transpose()
    }

    fn doc<T: DeserializeOwned>(&self, i: usize) -> Result<Option<T>, StoreError> {
        self.opt_text(i)?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(StoreError::internal)
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    type Db = Sqlite;

    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn outbox(&self) -> &Arc<Notify> {
        &self.outbox
    }

    async fn begin(&self, lock: Lock) -> Result<Tx<Sqlite>, StoreError> {
        // IMMEDIATE takes the write lock at once, for migrations (two processes opening a
        // fresh file migrate it once) and plain transactions alike (no lock upgrade that could
        // fail half-way with SQLITE_BUSY).
        let _ = lock;
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map(Tx)
            .map_err(error)
    }
}
