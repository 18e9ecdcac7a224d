//! Rows to values and values to arguments: how a task, a key and a pending invalidation are
//! laid out in either database. The column lists here and the `SELECT`s in `statements.rs`
//! are one agreement; each back-end only decodes single values ([`RowView`]).

use serde_json::value::RawValue;
use taskward_model::{
    EventId, KeyRecord, Mode, OrgId, Scopes, StoredEvent, Task, TaskId, TaskStatus, Tenant,
};

use super::driver::RowView;
use super::text::Arg;
use crate::durable::PendingInvalidation;
use crate::StoreError;

/// The columns a task is read from, in [`task_of`] order (a macro, so fixed statements can
/// `concat!` it).
macro_rules! task_columns {
    () => {
        "t.task_id, t.task_type, t.status, t.inputs, t.outputs, t.additional_data, \
         t.description, t.created_at, t.updated_at, t.started_at, t.finished_at, t.version, \
         t.progress"
    };
}
pub(crate) use task_columns;

/// [`task_columns!`] as a value, for statements built at run time.
pub(crate) const TASK_COLUMNS: &str = task_columns!();

/// How many columns [`TASK_COLUMNS`] names: extra columns of a select follow them.
pub(crate) const TASK_COLUMN_COUNT: usize = 13;

/// The columns a key is read from, in [`key_of`] order.
macro_rules! key_columns {
    () => {
        "key_id, org, mode, scopes, hint, created_at, revoked_at"
    };
}
pub(crate) use key_columns;

fn bad(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::internal(e)
}

/// A task from a row selected with [`TASK_COLUMNS`].
pub(crate) fn task_of(row: &impl RowView) -> Result<Task, StoreError> {
    let status = row.text(2)?;
    Ok(Task {
        task_id: TaskId::parse(&row.text(0)?).map_err(bad)?,
        task_type: row.text(1)?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| bad(format!("bad stored status {status:?}")))?,
        inputs: row.doc(3)?,
        outputs: row.doc(4)?,
        additional_data: row.doc(5)?,
        description: row.opt_text(6)?,
        created_at: row.time(7)?,
        updated_at: row.time(8)?,
        started_at: row.opt_time(9)?,
        finished_at: row.opt_time(10)?,
        version: version_of(row.int(11)?)?,
        progress: row.doc(12)?,
    })
}

fn version_of(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| bad(format!("bad stored version {v}")))
}

/// A key from a row selected with [`KEY_COLUMNS`].
pub(crate) fn key_of(row: &impl RowView) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        key_id: row.text(0)?,
        org: OrgId::parse(&row.text(1)?).map_err(bad)?,
        mode: Mode::parse(&row.text(2)?).map_err(bad)?,
        scopes: Scopes::parse(&row.text(3)?).map_err(bad)?,
        hint: row.text(4)?,
        created_at: row.time(5)?,
        revoked_at: row.opt_time(6)?,
    })
}

/// A pending invalidation from `org, mode, task_id, version`.
pub(crate) fn pending_of(row: &impl RowView) -> Result<PendingInvalidation, StoreError> {
    Ok(PendingInvalidation {
        tenant: Tenant {
            org: OrgId::parse(&row.text(0)?).map_err(bad)?,
            mode: Mode::parse(&row.text(1)?).map_err(bad)?,
        },
        task_id: TaskId::parse(&row.text(2)?).map_err(bad)?,
        version: version_of(row.int(3)?)?,
    })
}

/// The columns an event is read from, in [`event_of`] order.
macro_rules! event_columns {
    () => {
        "event_id, previous_status, task"
    };
}
pub(crate) use event_columns;

/// An event from a row selected with [`event_columns!`].
pub(crate) fn event_of(row: &impl RowView) -> Result<StoredEvent, StoreError> {
    event_of_at(row, 0)
}

/// An event from the columns of [`event_columns!`] starting at column `at`.
pub(crate) fn event_of_at(row: &impl RowView, at: usize) -> Result<StoredEvent, StoreError> {
    let status =
        |s: String| TaskStatus::parse(&s).ok_or_else(|| bad(format!("bad stored status {s:?}")));
    Ok(StoredEvent {
        event_id: EventId(version_of(row.int(at)?)?),
        previous_status: row.opt_text(at + 1)?.map(status).transpose()?,
        task: row
            .doc(at + 2)?
            .ok_or_else(|| bad("an event without its task"))?,
    })
}

/// A document as stored: serialised JSON, or NULL.
pub(crate) fn doc<T: serde::Serialize>(v: &Option<T>) -> Result<Option<Box<RawValue>>, StoreError> {
    v.as_ref()
        .map(serde_json::value::to_raw_value)
        .transpose()
        .map_err(bad)
}

/// The stored form of a task's fields, in the order of every statement that writes them all:
/// `task_type, status, active, inputs, outputs, additional_data, description, updated_at,
/// started_at, finished_at, version, progress`.
pub(crate) fn task_fields(task: &Task) -> Result<Vec<Arg>, StoreError> {
    Ok(vec![
        Arg::Text(task.task_type.clone()),
        Arg::Text(task.status.as_str().to_owned()),
        Arg::Bool(!task.status.is_terminal()),
        Arg::Doc(doc(&task.inputs)?),
        Arg::Doc(doc(&task.outputs)?),
        Arg::Doc(doc(&task.additional_data)?),
        Arg::OptText(task.description.clone()),
        Arg::Time(task.updated_at),
        Arg::OptTime(task.started_at),
        Arg::OptTime(task.finished_at),
        Arg::Int(stored_int(task.version)),
        Arg::Doc(doc(&task.progress)?),
    ])
}

/// A `u64` as the `BIGINT` it is stored as (versions never get near 2^63).
pub(crate) fn stored_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The key of a task row: `org, mode, task_id`.
pub(crate) fn task_key(tenant: &Tenant, id: &TaskId) -> [Arg; 3] {
    [
        Arg::Text(tenant.org.as_str().to_owned()),
        Arg::Text(tenant.mode.as_str().to_owned()),
        Arg::Text(id.as_str().to_owned()),
    ]
}
