//! The two statements PostgreSQL runs in groups (see `group.rs`): compare-and-set writes and
//! reads of one task by key, each as one statement over `unnest`ed arrays.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::PgConnection;
use taskward_model::{Task, TaskId, TaskStatus, Tenant};
use tokio::sync::Notify;

use super::errors::classify;
use super::group::Statement;
use crate::durable::sql::{doc, stored_int, task_of, RowView, TASK_COLUMNS, TASK_COLUMN_COUNT};
use crate::durable::WriteId;
use crate::StoreError;

/// One compare-and-set write.
#[derive(Debug)]
pub(crate) struct Replace {
    pub tenant: Tenant,
    pub task: Task,
    pub expected: u64,
    pub write: WriteId,
    /// The status of the version the write was computed from, for its event.
    pub previous: TaskStatus,
}

/// Group commit: one `UPDATE … FROM unnest(…)` for the whole group, one commit and one WAL
/// flush. `RETURNING v.idx` names the writes that won; the rest lost their race (the version
/// moved), exactly as they would have alone. Two writes to the same task in one group expect
/// the same version, so at most one wins, and `RETURNING` says which. A write whose own
/// earlier attempt committed (its connection died before the answer) wins by its write id.
///
/// The same statement appends the won writes' events: it takes ids from each tenant's counter
/// (tenants in key order, so groups never deadlock on counters either; the counter row stays
/// locked until the commit, which keeps ids visible in the order given) and numbers the events
/// in the order of the group. Those events are also the webhook outbox's record; endpoints are
/// given their deliveries from the log, off the write path.
#[derive(Debug)]
pub(crate) struct CommitGroup {
    /// `LISTEN/NOTIFY` channel of this schema's task changes.
    pub channel: Arc<str>,
    /// Notified when a group appended events (the webhook dispatcher looks for new work).
    pub outbox: Arc<Notify>,
}

fn key(r: &Replace) -> (&str, &str, &str) {
    (
        r.tenant.org.as_str(),
        r.tenant.mode.as_str(),
        r.task.task_id.as_str(),
    )
}

type Docs = Vec<Option<Json<Box<RawValue>>>>;

fn docs<T: serde::Serialize>(
    group: &[Replace],
    field: impl Fn(&Task) -> &Option<T>,
) -> Result<Docs, StoreError> {
    group
        .iter()
        .map(|r| doc(field(&r.task)).map(|d| d.map(Json)))
        .collect()
}

/// How long the next commit group waits for the one in flight before it starts beside it. A
/// group's rows, events and WAL flush take a few milliseconds under load, and two groups in
/// flight mostly wait for each other anyway (the event counter's row lock, held until the
/// commit, and the same two cores): one at a time, twice as many writes go in each group for
/// about the same time, and a PATCH costs the machine less. A group stuck longer (a row another
/// client holds locked, a stalled disk) holds up the writes queued after it only this long.
pub(crate) const COMMIT_OVERLAP_AFTER: Duration = Duration::from_millis(20);

impl Statement for CommitGroup {
    type Request = Replace;
    type Answer = bool;

    const OVERLAP_AFTER: Option<Duration> = Some(COMMIT_OVERLAP_AFTER);

    // Every group locks its rows in key order, so concurrent groups wait for one another
    // instead of deadlocking.
    fn order(&self, a: &Replace, b: &Replace) -> Option<Ordering> {
        Some(key(a).cmp(&key(b)))
    }

    async fn run(
        &self,
        conn: &mut PgConnection,
        group: &[Replace],
    ) -> Result<Vec<bool>, StoreError> {
        {
            let col = |f: fn(&Replace) -> &str| group.iter().map(f).collect::<Vec<_>>();
            // Each won write is announced on the channel in the same transaction, so other
            // instances' waiters hear of exactly the committed writes, as they commit.
            let rows: Vec<(i32,)> = sqlx::query_as(
                "WITH won AS (UPDATE tasks AS t SET task_type = v.task_type, status = v.status, \
                 active = v.active, inputs = v.inputs, outputs = v.outputs, \
                 additional_data = v.additional_data, description = v.description, \
                 updated_at = v.updated_at, started_at = v.started_at, \
                 finished_at = v.finished_at, version = v.version, progress = v.progress, \
                 write_id = v.write_id \
                 FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], \
                             $6::text[], $7::bool[], $8::jsonb[], $9::jsonb[], $10::jsonb[], \
                             $11::text[], $12::timestamptz[], $13::timestamptz[], \
                             $14::timestamptz[], $15::int8[], $16::int8[], $17::timestamptz[], \
                             $18::int8[], $19::jsonb[], $20::text[], $21::jsonb[]) \
                   AS v(idx, org, mode, task_id, task_type, status, active, inputs, outputs, \
                        additional_data, description, updated_at, started_at, finished_at, \
                        version, expected, created_at, write_id, progress, \
                        previous_status, event_task) \
                 WHERE t.org = v.org AND t.mode = v.mode AND t.task_id = v.task_id \
                   AND ((t.version = v.expected AND t.created_at = v.created_at) \
                        OR t.write_id = v.write_id) \
                 RETURNING v.idx, t.org, t.mode, t.task_id, t.version, v.previous_status, \
                           v.event_task), \
                 per_tenant AS (SELECT org, mode, count(*) AS n FROM won GROUP BY org, mode), \
                 taken AS (INSERT INTO event_counters AS c (org, mode, last) \
                   SELECT org, mode, n FROM per_tenant ORDER BY org, mode \
                   ON CONFLICT (org, mode) DO UPDATE SET last = c.last + excluded.last \
                   RETURNING c.org, c.mode, c.last), \
                 events AS (INSERT INTO task_events \
                   (org, mode, task_id, event_id, version, previous_status, task) \
                   SELECT w.org, w.mode, w.task_id, \
                     k.last - p.n + row_number() OVER (PARTITION BY w.org, w.mode ORDER BY w.idx), \
                     w.version, w.previous_status, w.event_task \
                   FROM won w JOIN taken k ON k.org = w.org AND k.mode = w.mode \
                   JOIN per_tenant p ON p.org = w.org AND p.mode = w.mode \
                   ON CONFLICT (org, mode, task_id, version) DO NOTHING) \
                 SELECT won.idx FROM won, \
                   pg_notify($22, won.org || ' ' || won.mode || ' ' || won.task_id || ' ' || won.version) AS n",
            )
            .bind((0..group.len() as i32).collect::<Vec<i32>>())
            .bind(col(|r| r.tenant.org.as_str()))
            .bind(col(|r| r.tenant.mode.as_str()))
            .bind(col(|r| r.task.task_id.as_str()))
            .bind(col(|r| r.task.task_type.as_str()))
            .bind(col(|r| r.task.status.as_str()))
            .bind(group.iter().map(|r| !r.task.status.is_terminal()).collect::<Vec<_>>())
            .bind(docs(group, |t| &t.inputs)?)
            .bind(docs(group, |t| &t.outputs)?)
            .bind(docs(group, |t| &t.additional_data)?)
            .bind(group.iter().map(|r| r.task.description.as_deref()).collect::<Vec<_>>())
            .bind(group.iter().map(|r| r.task.updated_at).collect::<Vec<_>>())
            .bind(group.iter().map(|r| r.task.started_at).collect::<Vec<_>>())
            .bind(group.iter().map(|r| r.task.finished_at).collect::<Vec<_>>())
            .bind(group.iter().map(|r| stored_int(r.task.version)).collect::<Vec<_>>())
            .bind(group.iter().map(|r| stored_int(r.expected)).collect::<Vec<_>>())
            .bind(group.iter().map(|r| r.task.created_at).collect::<Vec<_>>())
            .bind(group.iter().map(|r| r.write.0).collect::<Vec<_>>())
            .bind(docs(group, |t| &t.progress)?)
            .bind(col(|r| r.previous.as_str()))
            .bind(
                group
                    .iter()
                    .map(|r| doc(&Some(&r.task)).map(|d| d.map(Json)))
                    .collect::<Result<Docs, _>>()?,
            )
            .bind(&*self.channel)
            .fetch_all(conn)
            .await
            .map_err(classify)?;
            if !rows.is_empty() {
                self.outbox.notify_one();
            }
            let mut answers = vec![false; group.len()];
            for (i,) in rows {
                if let Some(a) = usize::try_from(i).ok().and_then(|i| answers.get_mut(i)) {
                    *a = true;
                }
            }
            Ok(answers)
        }
    }
}

/// One read of a task by key.
#[derive(Debug)]
pub(crate) struct Read {
    pub tenant: Tenant,
    pub id: TaskId,
}

/// How long the next group read waits for the one in flight before it starts beside it. A read
/// by key takes a fraction of a millisecond; with one in flight at a time, what queues meanwhile
/// goes as one larger statement (a miss costs PostgreSQL about a third of the CPU it does with
/// four overlapping). A read taking longer (a slow disk, a connection cut off) does not hold up
/// the next group past this.
pub(crate) const READ_OVERLAP_AFTER: Duration = Duration::from_millis(2);

/// Group read: one `SELECT … JOIN unnest(…)` for the whole group, one round trip.
#[derive(Debug)]
pub(crate) struct ReadGroup;

impl Statement for ReadGroup {
    type Request = Read;
    type Answer = Option<Task>;

    const OVERLAP_AFTER: Option<Duration> = Some(READ_OVERLAP_AFTER);

    async fn run(
        &self,
        conn: &mut PgConnection,
        group: &[Read],
    ) -> Result<Vec<Option<Task>>, StoreError> {
        {
            let col = |f: fn(&Read) -> &str| group.iter().map(f).collect::<Vec<_>>();
            let rows = sqlx::query(&format!(
                "SELECT {TASK_COLUMNS}, k.idx::int8 \
                 FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[]) AS k(idx, org, mode, task_id) \
                 JOIN tasks t ON t.org = k.org AND t.mode = k.mode AND t.task_id = k.task_id"
            ))
            .bind((0..group.len() as i32).collect::<Vec<i32>>())
            .bind(col(|r| r.tenant.org.as_str()))
            .bind(col(|r| r.tenant.mode.as_str()))
            .bind(col(|r| r.id.as_str()))
            .fetch_all(conn)
            .await
            .map_err(classify)?;
            let mut found: Vec<Option<Task>> = group.iter().map(|_| None).collect();
            for row in &rows {
                let slot = usize::try_from(row.int(TASK_COLUMN_COUNT)?)
                    .ok()
                    .and_then(|i| found.get_mut(i))
                    .ok_or_else(|| StoreError::internal("group read returned an unknown index"))?;
                *slot = Some(task_of(row)?);
            }
            Ok(found)
        }
    }
}
