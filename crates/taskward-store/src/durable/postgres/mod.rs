//! The production durable tier: PostgreSQL under the SQL core.
//!
//! Typed columns for everything that is listed, filtered or sorted, JSONB for the document's
//! free-form parts (`inputs`, `outputs`, `additional_data`), indexes for every tenant listing
//! (see the migration). What PostgreSQL does beyond the core's plain statements lives in rooms
//! of its own: `connect.rs` (settings, schema, pools), `errors.rs` (classification and the
//! one retry policy), `driver.rs` (its value types), `group.rs` and `grouped.rs` (concurrent
//! compare-and-set writes and reads by key run as one statement per group), `listen.rs`
//! (other instances' writes, heard through `LISTEN`).

mod connect;
mod driver;
mod errors;
mod group;
mod grouped;
mod listen;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgPool, Postgres};
use taskward_model::list::ListQuery;
use taskward_model::{Task, TaskId, TaskStatus, Tenant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use connect::PostgresOptions;

use super::sql::{
    list, retrying, Arg, Backend, Dialect, Lock, Migration, RowView, Sql, SqlDurable, Tx,
};
use super::WriteId;
use crate::changes::Changes;
use crate::StoreError;
use errors::classify;
use group::Groups;
use grouped::{CommitGroup, Read, ReadGroup, Replace};

/// Migrations in order; applied ones are recorded in `schema_migrations`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../../migrations/postgres/0002_write_ids.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../../migrations/postgres/0003_events.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../../migrations/postgres/0004_webhooks.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../../migrations/postgres/0005_webhook_cursors.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../../migrations/postgres/0006_tenant_data_index.sql"),
    },
];

/// Arbitrary, fixed key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x7461_736b_7761_7264; // "taskward"

/// Group-commit workers: two, one group in flight while groups are quick (why:
/// `grouped::COMMIT_OVERLAP_AFTER`), the second taking the next group beside a statement that
/// is stuck. Four overlapping freely did worse than two: 0.91x and 0.83x the PATCH throughput
/// of the build before events, against 1.00x and 0.93x.
const COMMITTERS: u32 = 2;

/// Group-read workers for reads of one task by key. One runs at a time while it is quick (see
/// `grouped::READ_OVERLAP_AFTER`); the others take the next groups when statements are slow.
const READERS: u32 = 4;

/// The durable tier on PostgreSQL.
pub type PostgresDurable = SqlDurable<PgBackend>;

/// PostgreSQL under the SQL core: pools, grouped reads and writes, `LISTEN`.
#[derive(Debug)]
pub struct PgBackend {
    pool: PgPool,
    listen: PgPool,
    channel: Arc<str>,
    commits: Groups<CommitGroup>,
    reads: Groups<ReadGroup>,
    outbox: Arc<Notify>,
}

impl SqlDurable<PgBackend> {
    /// Connects, creates the schema if asked, applies migrations and starts the group workers
    /// (stopped by [`crate::DurableTier::close`]).
    pub async fn open(opts: &PostgresOptions) -> Result<Self, StoreError> {
        let pools = connect::connect(opts, COMMITTERS, READERS).await?;
        let limit = opts.timeout + Duration::from_secs(1);
        let outbox = Arc::new(Notify::new());
        let commit = CommitGroup {
            channel: pools.channel.clone(),
            outbox: outbox.clone(),
        };
        let backend = PgBackend {
            commits: Groups::start(commit, pools.committers, COMMITTERS as usize, limit),
            reads: Groups::start(ReadGroup, pools.readers, READERS as usize, limit),
            pool: pools.request,
            listen: pools.listen,
            channel: pools.channel,
            outbox,
        };
        SqlDurable::over(backend, MIGRATIONS).await
    }

    /// The plan PostgreSQL chooses for a listing (`EXPLAIN` text), for operators and tests:
    /// its first (often only) statement.
    pub async fn explain_list(&self, tenant: &Tenant, q: &ListQuery) -> Result<String, StoreError> {
        let d = Dialect::Postgres;
        self.explain(if list::probed(d, q) {
            list::select_bounded(d, tenant, q, super::sql::WALK)
        } else {
            list::select(d, tenant, q)
        })
        .await
    }

    /// The plan of a listing's second step when it has one (an equality on an
    /// `additional_data` path: the tenant-scoped index, taken when a bounded walk in listing
    /// order did not fill the page; see `SqlDurable::list`).
    pub async fn explain_list_probed(
        &self,
        tenant: &Tenant,
        q: &ListQuery,
    ) -> Result<Option<String>, StoreError> {
        let d = Dialect::Postgres;
        if !list::probed(d, q) {
            return Ok(None);
        }
        self.explain(list::select_probed(d, tenant, q))
            .await
            .map(Some)
    }

    async fn explain(&self, mut select: Sql) -> Result<String, StoreError> {
        select.text = format!("EXPLAIN {}", select.text).into();
        let rows = self.backend().fetch(&select).await?;
        let lines = rows
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines.join("\n"))
    }

    /// The request pool, for tests that inspect stored rows.
    pub fn pool(&self) -> &PgPool {
        &self.backend().pool
    }
}

#[async_trait]
impl Backend for PgBackend {
    type Db = Postgres;

    fn name(&self) -> &'static str {
        "postgres"
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn outbox(&self) -> &Arc<Notify> {
        &self.outbox
    }

    // Each stale connection fails once, so at most the pool's size of retries.
    fn retries(&self) -> u32 {
        self.pool.options().get_max_connections()
    }

    async fn begin(&self, lock: Lock) -> Result<Tx<Postgres>, StoreError> {
        let mut tx = retrying(self.retries(), || async {
            self.pool.begin().await.map(Tx).map_err(classify)
        })
        .await?;
        if lock == Lock::Migrations {
            let mut sql = Sql::new(Dialect::Postgres, "SELECT pg_advisory_xact_lock(");
            let key = sql.arg(Arg::Int(MIGRATION_LOCK));
            sql.push(&key).push(")");
            tx.fetch(&sql).await?;
        }
        Ok(tx)
    }

    async fn get_task(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError> {
        self.reads
            .submit(Read {
                tenant: tenant.clone(),
                id: id.clone(),
            })
            .await
    }

    async fn replace_task(
        &self,
        tenant: &Tenant,
        task: &Task,
        expected: u64,
        write: WriteId,
        previous: TaskStatus,
    ) -> Result<bool, StoreError> {
        self.commits
            .submit(Replace {
                tenant: tenant.clone(),
                task: task.clone(),
                expected,
                write,
                previous,
            })
            .await
    }

    // The same message the group commit sends for each won write.
    fn announce(&self, tenant: &Tenant, task: &Task) -> Option<Sql> {
        let mut sql = Sql::new(Dialect::Postgres, "SELECT pg_notify(");
        let channel = sql.arg(Arg::Text(self.channel.to_string()));
        sql.push(&channel).push(", ");
        let message = sql.arg(Arg::Text(format!(
            "{} {}",
            crate::changes::change_key(tenant, &task.task_id),
            task.version
        )));
        sql.push(&message).push(")");
        Some(sql)
    }

    async fn forward_changes(&self, changes: Arc<Changes>, stop: CancellationToken) {
        listen::forward(&self.listen, &self.channel, changes, stop).await;
    }

    async fn close(&self) {
        self.commits.close().await;
        self.reads.close().await;
    }
}
