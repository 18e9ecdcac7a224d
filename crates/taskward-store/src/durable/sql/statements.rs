//! Every fixed statement of the durable tier, written once for both databases, and the
//! arguments each one takes.
//!
//! New tables (an event log, a webhook outbox) add their statements here in the same way: a
//! [`Stmt`] with `$n` placeholders and a function that returns it with its [`Arg`]s. Only
//! what really differs between the databases stays in the back-ends.

use chrono::{DateTime, Utc};
use taskward_model::{EventId, KeyRecord, Task, TaskId, TaskStatus, Tenant};

use super::codec::{
    doc, event_columns, key_columns, stored_int, task_columns, task_fields, task_key,
};
use super::text::{Arg, Dialect, Sql, Stmt};
use crate::durable::{PendingInvalidation, WriteId};
use crate::StoreError;

static GET_TASK: Stmt = Stmt::new(concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks t WHERE t.org = $1 AND t.mode = $2 AND t.task_id = $3"
));

/// One task by key.
pub(crate) fn get_task(d: Dialect, tenant: &Tenant, id: &TaskId) -> Sql {
    Sql::fixed(d, &GET_TASK, task_key(tenant, id).into())
}

static EXISTING_TASK: Stmt = Stmt::new(concat!(
    "SELECT ",
    task_columns!(),
    ", t.create_digest, t.write_id FROM tasks t WHERE t.org = $1 AND t.mode = $2 AND t.task_id = $3"
));

/// One task by key with its create digest and last write id (after a create found the id taken).
pub(crate) fn existing_task(d: Dialect, tenant: &Tenant, id: &TaskId) -> Sql {
    Sql::fixed(d, &EXISTING_TASK, task_key(tenant, id).into())
}

static INSERT_TASK: Stmt = Stmt::new(
    "INSERT INTO tasks (org, mode, task_id, task_type, status, active, inputs, outputs, \
     additional_data, description, updated_at, started_at, finished_at, version, progress, \
     created_at, create_digest, write_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
     ON CONFLICT (org, mode, task_id) DO NOTHING",
);

/// A new task, unless its id is taken (then no row changes).
pub(crate) fn insert_task(
    d: Dialect,
    tenant: &Tenant,
    task: &Task,
    digest: &str,
    write: WriteId,
) -> Result<Sql, StoreError> {
    let mut args: Vec<Arg> = task_key(tenant, &task.task_id).into();
    args.extend(task_fields(task)?);
    args.extend([
        Arg::Time(task.created_at),
        Arg::Text(digest.to_owned()),
        Arg::Int(write.0),
    ]);
    Ok(Sql::fixed(d, &INSERT_TASK, args))
}

// The compare-and-set: the version the write was computed from must still be there, in the
// same incarnation (`created_at`), unless this very write already landed (`write_id`): a
// statement re-run after its connection died recognises its own commit instead of losing to
// it.
static REPLACE_TASK: Stmt = Stmt::new(
    "UPDATE tasks SET task_type = $4, status = $5, active = $6, inputs = $7, outputs = $8, \
     additional_data = $9, description = $10, updated_at = $11, started_at = $12, \
     finished_at = $13, version = $14, progress = $15, write_id = $18 \
     WHERE org = $1 AND mode = $2 AND task_id = $3 \
       AND ((version = $16 AND created_at = $17) OR write_id = $18)",
);

/// Compare-and-set of a whole task.
pub(crate) fn replace_task(
    d: Dialect,
    tenant: &Tenant,
    task: &Task,
    expected: u64,
    write: WriteId,
) -> Result<Sql, StoreError> {
    let mut args: Vec<Arg> = task_key(tenant, &task.task_id).into();
    args.extend(task_fields(task)?);
    args.extend([
        Arg::Int(stored_int(expected)),
        Arg::Time(task.created_at),
        Arg::Int(write.0),
    ]);
    Ok(Sql::fixed(d, &REPLACE_TASK, args))
}

// The deletes of a retention batch, run in one transaction, select the same tasks: the oldest
// finished ones, in a total order. Their webhook deliveries and events go first, then the
// tasks.
static DELETE_FINISHED_DELIVERIES: Stmt = Stmt::new(
    "DELETE FROM webhook_deliveries WHERE (org, mode, task_id) IN (SELECT org, mode, task_id \
     FROM tasks WHERE finished_at IS NOT NULL AND finished_at < $1 \
     ORDER BY finished_at, org, mode, task_id LIMIT $2)",
);

static DELETE_FINISHED_EVENTS: Stmt = Stmt::new(
    "DELETE FROM task_events WHERE (org, mode, task_id) IN (SELECT org, mode, task_id \
     FROM tasks WHERE finished_at IS NOT NULL AND finished_at < $1 \
     ORDER BY finished_at, org, mode, task_id LIMIT $2)",
);

static DELETE_FINISHED: Stmt = Stmt::new(
    "DELETE FROM tasks WHERE (org, mode, task_id) IN (SELECT org, mode, task_id FROM tasks \
     WHERE finished_at IS NOT NULL AND finished_at < $1 \
     ORDER BY finished_at, org, mode, task_id LIMIT $2)",
);

/// The deliveries and events of up to `limit` terminal tasks that finished before `cutoff`,
/// then the tasks.
pub(crate) fn delete_finished(d: Dialect, cutoff: DateTime<Utc>, limit: u32) -> [Sql; 3] {
    let args = || vec![Arg::Time(cutoff), Arg::Int(i64::from(limit))];
    [
        Sql::fixed(d, &DELETE_FINISHED_DELIVERIES, args()),
        Sql::fixed(d, &DELETE_FINISHED_EVENTS, args()),
        Sql::fixed(d, &DELETE_FINISHED, args()),
    ]
}

// Takes `$3` ids from the tenant's counter; returns the last one taken. The counter's row stays
// locked until the writing transaction commits (see the migration).
static TAKE_EVENT_IDS: Stmt = Stmt::new(
    "INSERT INTO event_counters (org, mode, last) VALUES ($1, $2, $3) \
     ON CONFLICT (org, mode) DO UPDATE SET last = event_counters.last + excluded.last \
     RETURNING last",
);

/// The next event id of a tenant.
pub(crate) fn take_event_id(d: Dialect, tenant: &Tenant) -> Sql {
    Sql::fixed(
        d,
        &TAKE_EVENT_IDS,
        vec![
            Arg::Text(tenant.org.as_str().to_owned()),
            Arg::Text(tenant.mode.as_str().to_owned()),
            Arg::Int(1),
        ],
    )
}

// One event per task version: a statement run again adds nothing.
static INSERT_EVENT: Stmt = Stmt::new(
    "INSERT INTO task_events (org, mode, task_id, event_id, version, previous_status, task) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (org, mode, task_id, version) DO NOTHING",
);

/// The event of a change from `previous` (`None` for a create) to `task`.
pub(crate) fn insert_event(
    d: Dialect,
    tenant: &Tenant,
    event_id: i64,
    previous: Option<TaskStatus>,
    task: &Task,
) -> Result<Sql, StoreError> {
    let mut args: Vec<Arg> = task_key(tenant, &task.task_id).into();
    args.extend([
        Arg::Int(event_id),
        Arg::Int(stored_int(task.version)),
        Arg::OptText(previous.map(|s| s.as_str().to_owned())),
        Arg::Doc(doc(&Some(task))?),
    ]);
    Ok(Sql::fixed(d, &INSERT_EVENT, args))
}

static HISTORY: Stmt = Stmt::new(concat!(
    "SELECT ",
    event_columns!(),
    " FROM task_events WHERE org = $1 AND mode = $2 AND task_id = $3 ORDER BY version"
));

/// Every event of a task, oldest first.
pub(crate) fn history(d: Dialect, tenant: &Tenant, id: &TaskId) -> Sql {
    Sql::fixed(d, &HISTORY, task_key(tenant, id).into())
}

static LAST_TASK_EVENT: Stmt = Stmt::new(concat!(
    "SELECT ",
    event_columns!(),
    " FROM task_events WHERE org = $1 AND mode = $2 AND task_id = $3 \
     ORDER BY version DESC LIMIT 1"
));

/// The newest event of a task.
pub(crate) fn last_task_event(d: Dialect, tenant: &Tenant, id: &TaskId) -> Sql {
    Sql::fixed(d, &LAST_TASK_EVENT, task_key(tenant, id).into())
}

static EVENTS_AFTER: Stmt = Stmt::new(concat!(
    "SELECT ",
    event_columns!(),
    " FROM task_events WHERE org = $1 AND mode = $2 AND event_id > $3 ORDER BY event_id LIMIT $4"
));

static TASK_EVENTS_AFTER: Stmt = Stmt::new(concat!(
    "SELECT ",
    event_columns!(),
    " FROM task_events WHERE org = $1 AND mode = $2 AND task_id = $5 AND event_id > $3 \
     ORDER BY event_id LIMIT $4"
));

/// Up to `limit` events of a tenant (or of one of its tasks) after `after`, oldest first.
pub(crate) fn events_after(
    d: Dialect,
    tenant: &Tenant,
    task: Option<&TaskId>,
    after: EventId,
    limit: u32,
) -> Sql {
    let mut args = vec![
        Arg::Text(tenant.org.as_str().to_owned()),
        Arg::Text(tenant.mode.as_str().to_owned()),
        Arg::Int(stored_int(after.0)),
        Arg::Int(i64::from(limit)),
    ];
    match task {
        Some(id) => {
            args.push(Arg::Text(id.as_str().to_owned()));
            Sql::fixed(d, &TASK_EVENTS_AFTER, args)
        }
        None => Sql::fixed(d, &EVENTS_AFTER, args),
    }
}

static LAST_EVENT_ID: Stmt =
    Stmt::new("SELECT last FROM event_counters WHERE org = $1 AND mode = $2");

/// The last event id a tenant's counter gave out (no row: none yet).
pub(crate) fn last_event_id(d: Dialect, tenant: &Tenant) -> Sql {
    Sql::fixed(
        d,
        &LAST_EVENT_ID,
        vec![
            Arg::Text(tenant.org.as_str().to_owned()),
            Arg::Text(tenant.mode.as_str().to_owned()),
        ],
    )
}

/// `SELECT <by>, COUNT(*)` of a tenant's tasks, grouped by `by` (`status` or `task_type`),
/// optionally of one task type: each served by an index that starts with the tenant and the
/// grouped (or filtered) columns.
pub(crate) fn count_by(d: Dialect, tenant: &Tenant, by: CountBy, task_type: Option<&str>) -> Sql {
    let column = match by {
        CountBy::Status => "status",
        CountBy::TaskType => "task_type",
    };
    let mut sql = Sql::new(
        d,
        format!("SELECT {column}, COUNT(*) FROM tasks WHERE org = "),
    );
    let org = sql.arg(Arg::Text(tenant.org.as_str().to_owned()));
    sql.push(&org).push(" AND mode = ");
    let mode = sql.arg(Arg::Text(tenant.mode.as_str().to_owned()));
    sql.push(&mode);
    if let Some(t) = task_type {
        sql.push(" AND task_type = ");
        let t = sql.arg(Arg::Text(t.to_owned()));
        sql.push(&t);
    }
    sql.push(&format!(" GROUP BY {column}"));
    sql
}

/// What [`count_by`] groups by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CountBy {
    Status,
    TaskType,
}

static INSERT_KEY: Stmt = Stmt::new(
    "INSERT INTO api_keys (key_id, key_hash, org, mode, scopes, hint, created_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
);

pub(crate) fn insert_key(d: Dialect, key: &KeyRecord, hash: &str) -> Sql {
    Sql::fixed(
        d,
        &INSERT_KEY,
        vec![
            Arg::Text(key.key_id.clone()),
            Arg::Text(hash.to_owned()),
            Arg::Text(key.org.as_str().to_owned()),
            Arg::Text(key.mode.as_str().to_owned()),
            Arg::Text(key.scopes.to_string()),
            Arg::Text(key.hint.clone()),
            Arg::Time(key.created_at),
        ],
    )
}

static MARK_FIRST_KEY: Stmt = Stmt::new(
    "INSERT INTO markers (name, created_at) VALUES ('first_key', $1) ON CONFLICT DO NOTHING",
);

/// The one-time marker of the first-start key; changes no row if it was ever set.
pub(crate) fn mark_first_key(d: Dialect, at: DateTime<Utc>) -> Sql {
    Sql::fixed(d, &MARK_FIRST_KEY, vec![Arg::Time(at)])
}

static FIND_KEY: Stmt = Stmt::new(concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE key_hash = $1"
));

pub(crate) fn find_key(d: Dialect, hash: &str) -> Sql {
    Sql::fixed(d, &FIND_KEY, vec![Arg::Text(hash.to_owned())])
}

static LIST_KEYS: Stmt = Stmt::new(concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys ORDER BY created_at DESC, key_id"
));

pub(crate) fn list_keys(d: Dialect) -> Sql {
    Sql::fixed(d, &LIST_KEYS, Vec::new())
}

static REVOKE_KEY: Stmt =
    Stmt::new("UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL");

pub(crate) fn revoke_key(d: Dialect, key_id: &str, at: DateTime<Utc>) -> Sql {
    Sql::fixed(
        d,
        &REVOKE_KEY,
        vec![Arg::Time(at), Arg::Text(key_id.to_owned())],
    )
}

// Keeps the highest version recorded for a task.
static ADD_PENDING: Stmt = Stmt::new(
    "INSERT INTO pending_invalidations (org, mode, task_id, version) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (org, mode, task_id) DO UPDATE SET version = excluded.version \
     WHERE pending_invalidations.version < excluded.version",
);

pub(crate) fn add_pending(d: Dialect, p: &PendingInvalidation) -> Sql {
    let mut args: Vec<Arg> = task_key(&p.tenant, &p.task_id).into();
    args.push(Arg::Int(stored_int(p.version)));
    Sql::fixed(d, &ADD_PENDING, args)
}

static LIST_PENDING: Stmt = Stmt::new(
    "SELECT org, mode, task_id, version FROM pending_invalidations \
     ORDER BY org, mode, task_id LIMIT $1",
);

pub(crate) fn list_pending(d: Dialect, limit: u32) -> Sql {
    Sql::fixed(d, &LIST_PENDING, vec![Arg::Int(i64::from(limit))])
}

// Unless a newer version was recorded since the replay read it.
static CLEAR_PENDING: Stmt = Stmt::new(
    "DELETE FROM pending_invalidations \
     WHERE org = $1 AND mode = $2 AND task_id = $3 AND version <= $4",
);

pub(crate) fn clear_pending(d: Dialect, p: &PendingInvalidation) -> Sql {
    let mut args: Vec<Arg> = task_key(&p.tenant, &p.task_id).into();
    args.push(Arg::Int(stored_int(p.version)));
    Sql::fixed(d, &CLEAR_PENDING, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Placeholders are rewritten mechanically for SQLite, so no fixed statement may hold a
    /// `$` anywhere else.
    #[test]
    fn fixed_statements_hold_no_dollar_but_placeholders() {
        for stmt in [
            &GET_TASK,
            &EXISTING_TASK,
            &INSERT_TASK,
            &REPLACE_TASK,
            &DELETE_FINISHED,
            &DELETE_FINISHED_DELIVERIES,
            &DELETE_FINISHED_EVENTS,
            &TAKE_EVENT_IDS,
            &INSERT_EVENT,
            &HISTORY,
            &LAST_TASK_EVENT,
            &EVENTS_AFTER,
            &TASK_EVENTS_AFTER,
            &LAST_EVENT_ID,
            &INSERT_KEY,
            &MARK_FIRST_KEY,
            &FIND_KEY,
            &LIST_KEYS,
            &REVOKE_KEY,
            &ADD_PENDING,
            &LIST_PENDING,
            &CLEAR_PENDING,
        ] {
            let sqlite = stmt.text(Dialect::Sqlite);
            assert!(!sqlite.contains('$'), "{sqlite}");
        }
    }
}
