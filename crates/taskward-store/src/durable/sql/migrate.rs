//! The one migration runner: numbered SQL files per dialect, embedded in the binary, applied
//! in order inside one transaction that holds the dialect's lock, so instances (or processes)
//! starting together migrate once. A database written by a newer release is refused rather
//! than guessed at. Released migrations are never edited; a change is a new file.

use taskward_model::time;

use super::driver::{RowView, Tx};
use super::text::{Arg, Dialect, Sql, Stmt};
use super::Driver;
use crate::StoreError;

/// One numbered migration.
#[derive(Debug)]
pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

static RECORD: Stmt =
    Stmt::new("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)");

/// Applies every migration not yet recorded in `schema_migrations`. `tx` must hold the
/// dialect's migration lock (see the back-ends' `begin`).
pub(crate) async fn migrate<DB: Driver>(
    mut tx: Tx<DB>,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    // The bookkeeping table predates this runner; its shape per dialect is kept as released.
    tx.script(match DB::DIALECT {
        Dialect::Sqlite => {
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        }
        Dialect::Postgres => {
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        }
    })
    .await?;
    let applied = tx
        .fetch(&Sql::new(
            DB::DIALECT,
            "SELECT version FROM schema_migrations",
        ))
        .await?
        .iter()
        .map(|row| row.int(0))
        .collect::<Result<Vec<i64>, _>>()?;
    let known = migrations.last().map_or(0, |m| m.version);
    if applied.iter().any(|v| *v > known) {
        return Err(StoreError::internal(
            "the database was written by a newer taskward (it has a schema migration this \
             release does not know): run the newer release, or restore a backup",
        ));
    }
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        tx.script(m.sql).await?;
        tx.execute(&Sql::fixed(
            DB::DIALECT,
            &RECORD,
            vec![Arg::Int(m.version), Arg::Time(time::now())],
        ))
        .await?;
    }
    tx.commit().await
}
