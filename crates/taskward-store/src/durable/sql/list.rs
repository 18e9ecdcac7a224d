//! Compiles a validated [`ListQuery`] into SQL for SQLite or PostgreSQL: the tenant,
//! selectors, search, keyset, order and page. Filter trees are compiled by `filter.rs`.
//!
//! One compiler, two dialects: the structure of a listing is the same; only fragments differ
//! (JSON functions, type names, placeholders). Every value a client sent (filter values, JSON
//! paths, search text, cursor positions) is an [`Arg`], never SQL text.

use chrono::{DateTime, TimeZone, Utc};
use taskward_model::list::{CursorValue, ListQuery, SortField};
use taskward_model::{time, Tenant};

use super::codec::TASK_COLUMNS;
use super::filter::{contains_expr, expr, index_probes, probed_equalities};
use super::text::{Arg, Dialect, Sql};

/// Where missing `started_at`/`finished_at` sort in PostgreSQL: before every real time, as the
/// empty string does in SQLite (and in cursors).
const PG_NO_TIME: &str = "'0001-01-01 00:00:00+00'::timestamptz";

pub(crate) fn pg_no_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `SELECT … WHERE … ORDER BY … LIMIT limit+1 OFFSET …`: one row more than the page, to learn
/// whether another page follows.
pub(crate) fn select(d: Dialect, tenant: &Tenant, q: &ListQuery) -> Sql {
    listing(d, tenant, q, false)
}

fn listing(d: Dialect, tenant: &Tenant, q: &ListQuery, probes: bool) -> Sql {
    let mut sql = Sql::new(d, format!("SELECT {TASK_COLUMNS} FROM tasks t"));
    push_scope(&mut sql, tenant, q);
    push_filter(&mut sql, q, probes);
    push_keyset(&mut sql, q);
    push_order_and_page(&mut sql, q);
    sql
}

/// Whether the listing has index probes (PostgreSQL, a filter with a required equality on an
/// `additional_data` path): then [`SqlDurable::list`](super::SqlDurable) runs
/// [`select_bounded`], then [`select_probed`] when that falls short, instead of [`select`].
pub(crate) fn probed(d: Dialect, q: &ListQuery) -> bool {
    d == Dialect::Postgres
        && q.filter
            .as_ref()
            .is_some_and(|f| probed_equalities(f).next().is_some())
}

/// [`select`] with the filter's index probes beside it (see [`probed`]): the tenant-scoped
/// index finds the tasks that have the value, however few, in the tenant's whole list.
pub(crate) fn select_probed(d: Dialect, tenant: &Tenant, q: &ListQuery) -> Sql {
    listing(d, tenant, q, true)
}

/// [`select`] over only the first `scan` tasks of the listing's order that its selectors
/// keep, the filter tested on those: exact when it fills the page (those are the first
/// matches), and bounded however rare the filter's value.
pub(crate) fn select_bounded(d: Dialect, tenant: &Tenant, q: &ListQuery, scan: u32) -> Sql {
    let mut sql = Sql::new(d, "SELECT * FROM tasks t");
    push_scope(&mut sql, tenant, q);
    push_keyset(&mut sql, q);
    push_order(&mut sql, q);
    let scan = sql.arg(Arg::Int(i64::from(scan)));
    let inner = format!("{} LIMIT {scan}", sql.text);
    sql.text = format!("SELECT {TASK_COLUMNS} FROM ({inner}) t WHERE TRUE").into();
    push_filter(&mut sql, q, false);
    push_order_and_page(&mut sql, q);
    sql
}

/// `AND (key, task_id) < (…)`: the cursor's position.
fn push_keyset(sql: &mut Sql, q: &ListQuery) {
    let d = sql.d;
    let key = sort_expr(d, q.sort.field);
    if let Some(c) = &q.after {
        let value = match (&c.value, d, c.field) {
            (CursorValue::Int(i), _, _) => Arg::Int(*i),
            (CursorValue::Text(s), Dialect::Postgres, f) if is_time(f) => {
                Arg::Time(if s.is_empty() {
                    pg_no_time()
                } else {
                    time::parse(s).unwrap_or_else(pg_no_time)
                })
            }
            (CursorValue::Text(s), _, _) => Arg::Text(s.clone()),
        };
        let v = sql.arg(value);
        let id = sql.arg(Arg::Text(c.task_id.clone()));
        let cmp = if q.sort.desc { "<" } else { ">" };
        sql.push(&format!(" AND ({key}, t.task_id) {cmp} ({v}, {id})"));
    }
}

fn push_order(sql: &mut Sql, q: &ListQuery) {
    let key = sort_expr(sql.d, q.sort.field);
    let dir = if q.sort.desc { "DESC" } else { "ASC" };
    sql.push(&format!(" ORDER BY {key} {dir}, t.task_id {dir}"));
}

fn push_order_and_page(sql: &mut Sql, q: &ListQuery) {
    push_order(sql, q);
    let limit = sql.arg(Arg::Int(i64::from(q.limit) + 1));
    let offset = sql.arg(Arg::Int(i64::try_from(q.offset).unwrap_or(i64::MAX)));
    sql.push(&format!(" LIMIT {limit} OFFSET {offset}"));
}

/// `SELECT COUNT(*)` over the same rows, ignoring paging.
/// The index probes stand beside the filter when there are some: the count then reads only
/// the tasks that have the value, never more than without them.
pub(crate) fn count(d: Dialect, tenant: &Tenant, q: &ListQuery) -> Sql {
    let mut sql = Sql::new(d, "SELECT COUNT(*) FROM tasks t");
    push_scope(&mut sql, tenant, q);
    push_filter(&mut sql, q, true);
    sql
}

fn is_time(f: SortField) -> bool {
    matches!(
        f,
        SortField::CreatedAt | SortField::UpdatedAt | SortField::StartedAt | SortField::FinishedAt
    )
}

/// The ORDER BY expression; the model's `SortField::key_of` builds cursors to match.
fn sort_expr(d: Dialect, f: SortField) -> String {
    let nullable_time = |col: &str| match d {
        Dialect::Sqlite => format!("COALESCE({col}, '')"),
        Dialect::Postgres => format!("COALESCE({col}, {PG_NO_TIME})"),
    };
    match f {
        SortField::CreatedAt => "t.created_at".into(),
        SortField::UpdatedAt => "t.updated_at".into(),
        SortField::StartedAt => nullable_time("t.started_at"),
        SortField::FinishedAt => nullable_time("t.finished_at"),
        SortField::TaskId => "t.task_id".into(),
        SortField::TaskType => "t.task_type".into(),
        SortField::Status => "t.status".into(),
        SortField::Version => "t.version".into(),
    }
}

/// The tenant and the selectors (active, statuses, types, search).
fn push_scope(sql: &mut Sql, tenant: &Tenant, q: &ListQuery) {
    let org = sql.arg(Arg::Text(tenant.org.as_str().to_owned()));
    let mode = sql.arg(Arg::Text(tenant.mode.as_str().to_owned()));
    sql.push(&format!(" WHERE t.org = {org} AND t.mode = {mode}"));
    sql.tenant = Some((org, mode));
    if q.active_only {
        let t = sql.bool_lit(true);
        sql.push(&format!(" AND t.active = {t}"));
    }
    if !q.statuses.is_empty() {
        let list = sql.list(q.statuses.iter().map(|s| Arg::Text(s.as_str().to_owned())));
        sql.push(&format!(" AND t.status IN ({list})"));
    }
    if !q.task_types.is_empty() {
        let list = sql.list(q.task_types.iter().cloned().map(Arg::Text));
        sql.push(&format!(" AND t.task_type IN ({list})"));
    }
    if let Some(s) = &q.search {
        let p = sql.arg(Arg::Text(s.clone()));
        let hits: Vec<String> = ["t.task_id", "t.task_type", "t.status"]
            .iter()
            .map(|col| contains_expr(sql.d, &format!("lower({col})"), &p))
            .collect();
        sql.push(&format!(" AND ({})", hits.join(" OR ")));
    }
}

/// The filter, if any; with `probes`, its index probes beside it.
fn push_filter(sql: &mut Sql, q: &ListQuery, probes: bool) {
    let Some(f) = &q.filter else {
        return;
    };
    if probes {
        for probe in index_probes(sql, f) {
            sql.push(" AND ").push(&probe);
        }
    }
    sql.push(" AND ");
    let e = expr(sql, f);
    sql.push(&e);
}
