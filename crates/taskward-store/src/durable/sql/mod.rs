//! The SQL core: the durable tier written once for SQLite and PostgreSQL.
//!
//! [`SqlDurable`] implements [`DurableTier`] and [`KeyStore`] over a [`Backend`]: the
//! statements (`statements.rs`), row codecs (`codec.rs`), listings (`list.rs`, `filter.rs`)
//! and migrations (`migrate.rs`) exist once. A back-end supplies only what really differs:
//! how it connects and pools, how its driver stores values ([`RowView`], [`Driver`]), and
//! what it does better than a plain statement (PostgreSQL groups reads and compare-and-set
//! writes, and relays other instances' changes).

mod codec;
mod driver;
mod filter;
pub(crate) mod list;
mod migrate;
mod retry;
mod statements;
mod text;
mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Pool};
use taskward_model::list::{ListPage, ListQuery};
use taskward_model::{Counts, EventId, KeyRecord, StoredEvent, Task, TaskId, TaskStatus, Tenant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) use codec::{doc, stored_int, task_of, TASK_COLUMNS, TASK_COLUMN_COUNT};
pub(crate) use driver::{impl_driver, row_view_plain_columns, Driver, RowView, Tx};
pub(crate) use filter::sqlite_path;
pub(crate) use migrate::{migrate, Migration};
pub(crate) use retry::retrying;
pub(crate) use statements::CountBy;
pub(crate) use text::{Arg, Dialect, Sql};

use super::{DurableTier, Inserted, KeyStore, PendingInvalidation, WriteId};
use crate::changes::Changes;
use crate::StoreError;

/// Tasks a listing with an `additional_data` equality walks in its order before it asks the
/// tenant-scoped index instead (see `list`): a value on at least one task in ten of the
/// walked part fills a page of 50 within the walk; a rarer one takes the index, which then
/// reads the tasks that have it, at most about a tenth of the tenant's list. Measured at
/// 10,000 tasks per tenant (`bench/listing-scale.sh`): 256 sent a value on 10 % of the tasks
/// to the index (61 ms p99, against 3–5 ms at 512); 1,024 would double a rare value's walk.
pub(crate) const WALK: u32 = 512;

/// Which lock a transaction takes when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// The database's ordinary write locking.
    Plain,
    /// Exclusive against other migrating processes.
    Migrations,
}

/// What a database back-end supplies to the SQL core.
#[async_trait]
pub(crate) trait Backend: Send + Sync + std::fmt::Debug + 'static {
    type Db: Driver;

    /// Short name for logs and /readyz.
    fn name(&self) -> &'static str;

    /// The pool that writes.
    fn writer(&self) -> &Pool<Self::Db>;

    /// The pool that reads (may be the writer).
    fn reader(&self) -> &Pool<Self::Db>;

    /// Notified after a write appended an event (see
    /// [`crate::webhooks::WebhookStore::outbox_queued`]).
    fn outbox(&self) -> &Arc<Notify>;

    /// How often a statement is run again after meeting a dead pooled connection (see
    /// `retry.rs`); 0 where connections do not die.
    fn retries(&self) -> u32 {
        0
    }

    /// A statement that writes; how many rows it changed.
    async fn execute(&self, sql: &Sql) -> Result<u64, StoreError> {
        retrying(self.retries(), || {
            Self::Db::execute_pool(self.writer(), sql)
        })
        .await
    }

    /// A query.
    async fn fetch(&self, sql: &Sql) -> Result<Vec<<Self::Db as Database>::Row>, StoreError> {
        retrying(self.retries(), || Self::Db::fetch_pool(self.reader(), sql)).await
    }

    /// A transaction (rolled back unless committed).
    async fn begin(&self, lock: Lock) -> Result<Tx<Self::Db>, StoreError>;

    /// One task by key. PostgreSQL answers concurrent reads in groups.
    async fn get_task(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let rows = self
            .fetch(&statements::get_task(Self::Db::DIALECT, tenant, id))
            .await?;
        rows.first().map(task_of).transpose()
    }

    /// Compare-and-set of a whole task and its event (see [`DurableTier::replace`]).
    /// PostgreSQL commits concurrent writes in groups.
    async fn replace_task(
        &self,
        tenant: &Tenant,
        task: &Task,
        expected: u64,
        write: WriteId,
        previous: TaskStatus,
    ) -> Result<bool, StoreError> {
        let sql = statements::replace_task(Self::Db::DIALECT, tenant, task, expected, write)?;
        retrying(self.retries(), || async {
            let mut tx = self.begin(Lock::Plain).await?;
            if tx.execute(&sql).await? != 1 {
                return Ok(false);
            }
            let announce = self.announce(tenant, task);
            append_event(&mut tx, announce, tenant, Some(previous), task).await?;
            tx.commit().await?;
            self.outbox().notify_one();
            Ok(true)
        })
        .await
    }

    /// A statement that tells other processes of a committed write, run in its transaction
    /// (PostgreSQL's `pg_notify`); none where one process writes (the embedded file).
    fn announce(&self, tenant: &Tenant, task: &Task) -> Option<Sql> {
        let _ = (tenant, task);
        None
    }

    /// See [`DurableTier::forward_changes`].
    async fn forward_changes(&self, changes: Arc<Changes>, stop: CancellationToken) {
        let _ = (changes, stop);
    }

    /// See [`DurableTier::close`].
    async fn close(&self) {}
}

/// Appends the event of a change from `previous` (`None`: a create) to `task` in the
/// transaction of the change, and runs the change's announcement there. The event is also the
/// webhook outbox's record: endpoints are given their deliveries from the log (see
/// `webhooks.rs`), so a write adds one row however many endpoints want it.
pub(crate) async fn append_event<DB: Driver>(
    tx: &mut Tx<DB>,
    announce: Option<Sql>,
    tenant: &Tenant,
    previous: Option<TaskStatus>,
    task: &Task,
) -> Result<(), StoreError> {
    let rows = tx
        .fetch(&statements::take_event_id(DB::DIALECT, tenant))
        .await?;
    let id = rows
        .first()
        .ok_or_else(|| StoreError::internal("the event counter returned no row"))?
        .int(0)?;
    tx.execute(&statements::insert_event(
        DB::DIALECT,
        tenant,
        id,
        previous,
        task,
    )?)
    .await?;
    if let Some(announce) = announce {
        tx.fetch(&announce).await?;
    }
    Ok(())
}

/// The durable tier on a SQL database: [`super::SqliteDurable`] or [`super::PostgresDurable`].
#[derive(Debug)]
pub struct SqlDurable<B> {
    backend: Arc<B>,
}

impl<B> Clone for SqlDurable<B> {
    fn clone(&self) -> Self {
        SqlDurable {
            backend: self.backend.clone(),
        }
    }
}

// The bound names a crate-private trait on purpose: the back-ends are this crate's own (a sealed
// set), and these methods are crate-private too.
#[allow(private_bounds)]
impl<B: Backend> SqlDurable<B> {
    /// Applies the back-end's migrations, then serves over it.
    pub(crate) async fn over(backend: B, migrations: &[Migration]) -> Result<Self, StoreError> {
        migrate(backend.begin(Lock::Migrations).await?, migrations).await?;
        Ok(SqlDurable {
            backend: Arc::new(backend),
        })
    }

    pub(crate) fn backend(&self) -> &B {
        &self.backend
    }

    fn dialect(&self) -> Dialect {
        B::Db::DIALECT
    }
}

#[async_trait]
impl<B: Backend> DurableTier for SqlDurable<B> {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.backend
            .fetch(&Sql::new(self.dialect(), "SELECT 1"))
            .await
            .map(drop)
    }

    async fn get(&self, tenant: &Tenant, id: &TaskId) -> Result<Option<Task>, StoreError> {
        self.backend.get_task(tenant, id).await
    }

    async fn insert(
        &self,
        tenant: &Tenant,
        task: &Task,
        digest: &str,
        write: WriteId,
    ) -> Result<Inserted, StoreError> {
        let d = self.dialect();
        let insert = statements::insert_task(d, tenant, task, digest, write)?;
        let created = || async {
            let mut tx = self.backend.begin(Lock::Plain).await?;
            if tx.execute(&insert).await? == 0 {
                return Ok(false);
            }
            let announce = self.backend.announce(tenant, task);
            append_event(&mut tx, announce, tenant, None, task).await?;
            tx.commit().await?;
            self.backend.outbox().notify_one();
            Ok(true)
        };
        // Twice at most: the task that took the id may be deleted (retention) before we read it.
        for _ in 0..2 {
            if retrying(self.backend.retries(), created).await? {
                return Ok(Inserted::Created);
            }
            let rows = self
                .backend
                .fetch(&statements::existing_task(d, tenant, &task.task_id))
                .await?;
            let Some(row) = rows.first() else { continue };
            // Our own insert, run again after its connection died before it answered.
            if row.opt_int(TASK_COLUMN_COUNT + 1)? == Some(write.0) {
                return Ok(Inserted::Created);
            }
            return Ok(Inserted::Exists {
                task: Box::new(task_of(row)?),
                digest: row.text(TASK_COLUMN_COUNT)?,
            });
        }
        Err(StoreError::Contention)
    }

    async fn replace(
        &self,
        tenant: &Tenant,
        task: &Task,
        expected: u64,
        write: WriteId,
        previous: TaskStatus,
    ) -> Result<bool, StoreError> {
        self.backend
            .replace_task(tenant, task, expected, write, previous)
            .await
    }

    async fn list(&self, tenant: &Tenant, q: &ListQuery) -> Result<ListPage, StoreError> {
        let d = self.dialect();
        let limit = q.limit as usize;
        let rows = if list::probed(d, q) {
            // An equality on an `additional_data` path (PostgreSQL). Walking the listing's
            // order and testing each task finds a common value at once but reads the whole
            // list for a rare one; the tenant-scoped index finds a rare value's few tasks but
            // reads every task that has a common one, then sorts them. So: a bounded walk
            // first, which settles it when it fills the page, then the index.
            let wanted = q.offset.saturating_add(u64::from(q.limit) + 1);
            let walked = if wanted <= u64::from(WALK / 4) {
                let bounded = list::select_bounded(d, tenant, q, WALK);
                Some(self.backend.fetch(&bounded).await?)
            } else {
                None
            };
            match walked {
                Some(rows) if rows.len() > limit => rows,
                _ => {
                    let probed = list::select_probed(d, tenant, q);
                    self.backend.fetch(&probed).await?
                }
            }
        } else {
            self.backend.fetch(&list::select(d, tenant, q)).await?
        };
        let tasks = rows
            .iter()
            .take(limit)
            .map(task_of)
            .collect::<Result<Vec<_>, _>>()?;
        let total = if q.include_total {
            let rows = self.backend.fetch(&list::count(d, tenant, q)).await?;
            let n = rows
                .first()
                .ok_or_else(|| StoreError::internal("COUNT(*) returned no row"))?
                .int(0)?;
            Some(u64::try_from(n).map_err(StoreError::internal)?)
        } else {
            None
        };
        Ok(ListPage {
            tasks,
            has_more: rows.len() > limit,
            total,
        })
    }

    async fn add_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError> {
        self.backend
            .execute(&statements::add_pending(self.dialect(), p))
            .await
            .map(drop)
    }

    async fn pending_invalidations(
        &self,
        limit: u32,
    ) -> Result<Vec<PendingInvalidation>, StoreError> {
        let rows = self
            .backend
            .fetch(&statements::list_pending(self.dialect(), limit))
            .await?;
        rows.iter().map(codec::pending_of).collect()
    }

    async fn clear_pending_invalidation(&self, p: &PendingInvalidation) -> Result<(), StoreError> {
        self.backend
            .execute(&statements::clear_pending(self.dialect(), p))
            .await
            .map(drop)
    }

    async fn delete_finished_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let [deliveries, events, tasks] =
            statements::delete_finished(self.dialect(), cutoff, limit);
        retrying(self.backend.retries(), || async {
            let mut tx = self.backend.begin(Lock::Plain).await?;
            tx.execute(&deliveries).await?;
            tx.execute(&events).await?;
            let n = tx.execute(&tasks).await?;
            tx.commit().await?;
            Ok(n)
        })
        .await
    }

    async fn history(&self, tenant: &Tenant, id: &TaskId) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self
            .backend
            .fetch(&statements::history(self.dialect(), tenant, id))
            .await?;
        rows.iter().map(codec::event_of).collect()
    }

    async fn last_event(
        &self,
        tenant: &Tenant,
        id: &TaskId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let rows = self
            .backend
            .fetch(&statements::last_task_event(self.dialect(), tenant, id))
            .await?;
        rows.first().map(codec::event_of).transpose()
    }

    async fn events_after(
        &self,
        tenant: &Tenant,
        task: Option<&TaskId>,
        after: EventId,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = statements::events_after(self.dialect(), tenant, task, after, limit);
        let rows = self.backend.fetch(&sql).await?;
        rows.iter().map(codec::event_of).collect()
    }

    async fn last_event_id(&self, tenant: &Tenant) -> Result<EventId, StoreError> {
        let rows = self
            .backend
            .fetch(&statements::last_event_id(self.dialect(), tenant))
            .await?;
        let last = rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
        Ok(EventId(u64::try_from(last).map_err(StoreError::internal)?))
    }

    async fn counts(&self, tenant: &Tenant, task_type: Option<&str>) -> Result<Counts, StoreError> {
        let d = self.dialect();
        let mut counts = Counts::default();
        for (by, into) in [
            (CountBy::Status, &mut counts.by_status),
            (CountBy::TaskType, &mut counts.by_task_type),
        ] {
            let rows = self
                .backend
                .fetch(&statements::count_by(d, tenant, by, task_type))
                .await?;
            for row in &rows {
                let n = u64::try_from(row.int(1)?).map_err(StoreError::internal)?;
                into.insert(row.text(0)?, n);
            }
        }
        Ok(counts)
    }

    async fn forward_changes(&self, changes: Arc<Changes>, stop: CancellationToken) {
        self.backend.forward_changes(changes, stop).await;
    }

    async fn close(&self) {
        self.backend.close().await;
    }
}

#[async_trait]
impl<B: Backend> KeyStore for SqlDurable<B> {
    async fn insert_key(&self, key: &KeyRecord, hash: &str) -> Result<(), StoreError> {
        self.backend
            .execute(&statements::insert_key(self.dialect(), key, hash))
            .await
            .map(drop)
    }

    async fn insert_first_key(&self, key: &KeyRecord, hash: &str) -> Result<bool, StoreError> {
        let d = self.dialect();
        let mut tx = self.backend.begin(Lock::Plain).await?;
        if tx
            .execute(&statements::mark_first_key(d, key.created_at))
            .await?
            == 0
        {
            return Ok(false);
        }
        tx.execute(&statements::insert_key(d, key, hash)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_key(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let rows = self
            .backend
            .fetch(&statements::find_key(self.dialect(), hash))
            .await?;
        rows.first().map(codec::key_of).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .backend
            .fetch(&statements::list_keys(self.dialect()))
            .await?;
        rows.iter().map(codec::key_of).collect()
    }

    async fn revoke_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self
            .backend
            .execute(&statements::revoke_key(self.dialect(), key_id, at))
            .await?;
        Ok(n == 1)
    }
}
