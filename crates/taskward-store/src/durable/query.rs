//! Compiles a validated [`ListQuery`] into SQLite SQL.
//!
//! Only identifiers this file spells itself and fixed SQL keywords enter the SQL text; every
//! value a client sent (filter values, JSON paths, search text, cursor positions) is bound as a
//! parameter. Conditions on columns or JSON that can be NULL are wrapped in `COALESCE(…, 0)` so
//! that every predicate is strictly true or false and `NOT` means what the client meant
//! (a missing field does not equal "x", so `NOT eq "x"` matches it).

use sqlx::{QueryBuilder, Sqlite};
use taskward_model::filter::{Cond, Expr, Field, FieldKind, Op, Operand, Scalar};
use taskward_model::list::{CursorValue, ListQuery, SortField};
use taskward_model::Tenant;

/// The columns a task is read from, in `row_to_task` order.
pub(super) const TASK_COLUMNS: &str = "t.task_id, t.task_type, t.status, t.inputs, t.outputs, \
     t.additional_data, t.description, t.created_at, t.updated_at, t.started_at, t.finished_at, \
     t.version";

/// `SELECT … WHERE … ORDER BY … LIMIT limit+1 OFFSET …`: one row more than the page, to learn
/// whether another page follows.
pub(super) fn select(tenant: &Tenant, q: &ListQuery) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM tasks t"));
    push_where(&mut qb, tenant, q);
    if let Some(c) = &q.after {
        qb.push(" AND (")
            .push(sort_expr(q.sort.field))
            .push(", t.task_id) ");
        qb.push(if q.sort.desc { "< (" } else { "> (" });
        match &c.value {
            CursorValue::Int(i) => qb.push_bind(*i),
            CursorValue::Text(s) => qb.push_bind(s.clone()),
        };
        qb.push(", ").push_bind(c.task_id.clone()).push(")");
    }
    let dir = if q.sort.desc { "DESC" } else { "ASC" };
    qb.push(format!(
        " ORDER BY {} {dir}, t.task_id {dir}",
        sort_expr(q.sort.field)
    ));
    qb.push(" LIMIT ").push_bind(i64::from(q.limit) + 1);
    qb.push(" OFFSET ")
        .push_bind(i64::try_from(q.offset).unwrap_or(i64::MAX));
    qb
}

/// `SELECT COUNT(*)` over the same rows, ignoring paging.
pub(super) fn count(tenant: &Tenant, q: &ListQuery) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM tasks t");
    push_where(&mut qb, tenant, q);
    qb
}

/// Missing timestamps order as the empty string, before every real one; the model's
/// `SortField::key_of` builds cursors the same way.
fn sort_expr(f: SortField) -> &'static str {
    match f {
        SortField::CreatedAt => "t.created_at",
        SortField::UpdatedAt => "t.updated_at",
        SortField::StartedAt => "COALESCE(t.started_at, '')",
        SortField::FinishedAt => "COALESCE(t.finished_at, '')",
        SortField::TaskId => "t.task_id",
        SortField::TaskType => "t.task_type",
        SortField::Status => "t.status",
        SortField::Version => "t.version",
    }
}

fn push_where(qb: &mut QueryBuilder<'static, Sqlite>, tenant: &Tenant, q: &ListQuery) {
    qb.push(" WHERE t.org = ")
        .push_bind(tenant.org.as_str().to_owned());
    qb.push(" AND t.mode = ").push_bind(tenant.mode.as_str());
    if q.active_only {
        qb.push(" AND t.active = 1");
    }
    if !q.statuses.is_empty() {
        qb.push(" AND t.status IN (");
        let mut sep = qb.separated(", ");
        for s in &q.statuses {
            sep.push_bind(s.as_str());
        }
        qb.push(")");
    }
    if !q.task_types.is_empty() {
        qb.push(" AND t.task_type IN (");
        let mut sep = qb.separated(", ");
        for s in &q.task_types {
            sep.push_bind(s.clone());
        }
        qb.push(")");
    }
    if let Some(s) = &q.search {
        qb.push(" AND (");
        for (i, col) in ["t.task_id", "t.task_type", "t.status"]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                qb.push(" OR ");
            }
            qb.push(format!("instr(lower({col}), "))
                .push_bind(s.clone())
                .push(") > 0");
        }
        qb.push(")");
    }
    if let Some(f) = &q.filter {
        qb.push(" AND ");
        push_expr(qb, f);
    }
}

fn push_expr(qb: &mut QueryBuilder<'static, Sqlite>, e: &Expr) {
    match e {
        Expr::All(items) | Expr::Any(items) if items.is_empty() => {
            qb.push(if matches!(e, Expr::All(_)) { "1" } else { "0" });
        }
        Expr::All(items) | Expr::Any(items) => {
            let joiner = if matches!(e, Expr::All(_)) {
                " AND "
            } else {
                " OR "
            };
            qb.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    qb.push(joiner);
                }
                push_expr(qb, item);
            }
            qb.push(")");
        }
        Expr::Not(inner) => {
            qb.push("NOT ");
            push_expr(qb, inner);
        }
        Expr::Cond(c) => match c.field.kind() {
            FieldKind::Json => {
                qb.push("COALESCE((");
                push_json_cond(qb, c);
                qb.push("), 0)");
            }
            FieldKind::List => push_list_cond(qb, c),
            _ => {
                let (col, nullable) = column(&c.field);
                if nullable {
                    qb.push("COALESCE((");
                }
                push_column_cond(qb, c, col);
                if nullable {
                    qb.push("), 0)");
                }
            }
        },
    }
}

/// The column of an own scalar field, and whether it can be NULL.
fn column(f: &Field) -> (&'static str, bool) {
    match f {
        Field::TaskId => ("t.task_id", false),
        Field::TaskType => ("t.task_type", false),
        Field::Status => ("t.status", false),
        Field::Description => ("t.description", true),
        Field::CreatedAt => ("t.created_at", false),
        Field::UpdatedAt => ("t.updated_at", false),
        Field::StartedAt => ("t.started_at", true),
        Field::FinishedAt => ("t.finished_at", true),
        Field::Version => ("t.version", false),
        Field::Inputs => ("t.inputs", true),
        Field::Outputs => ("t.outputs", true),
        Field::Data(_) => ("t.additional_data", true),
    }
}

fn bind_scalar(qb: &mut QueryBuilder<'static, Sqlite>, s: &Scalar) {
    match s {
        Scalar::Text(s) => qb.push_bind(s.clone()),
        Scalar::Int(i) => qb.push_bind(*i),
        Scalar::Float(f) => qb.push_bind(*f),
        Scalar::Bool(b) => qb.push_bind(i64::from(*b)),
        Scalar::Null => qb.push("NULL"),
    };
}

/// Pushes `?` (or `lower(?)` when folding case) bound to `s`.
fn push_rhs(qb: &mut QueryBuilder<'static, Sqlite>, s: &Scalar, fold: bool) {
    if fold {
        qb.push("lower(");
        bind_scalar(qb, s);
        qb.push(")");
    } else {
        bind_scalar(qb, s);
    }
}

fn text_of(o: &Operand) -> &str {
    match o {
        Operand::One(Scalar::Text(s)) => s,
        _ => "",
    }
}

fn compare_op(op: Op) -> &'static str {
    match op {
        Op::Eq => " = ",
        Op::Gt => " > ",
        Op::Gte => " >= ",
        Op::Lt => " < ",
        Op::Lte => " <= ",
        _ => " <> ",
    }
}

/// A condition on an own column. `lhs` is the column, case-folded for case-insensitive text.
fn push_column_cond(qb: &mut QueryBuilder<'static, Sqlite>, c: &Cond, col: &'static str) {
    let fold = !c.case_sensitive && c.field.kind() == FieldKind::Text;
    let lhs = if fold {
        format!("lower({col})")
    } else {
        col.to_owned()
    };
    match (&c.op, &c.operand) {
        (Op::Exists, Operand::Flag(b)) | (Op::IsNull, Operand::Flag(b)) => {
            let present = (c.op == Op::Exists) == *b;
            qb.push(format!(
                "{col} IS {}NULL",
                if present { "NOT " } else { "" }
            ));
        }
        (Op::Eq | Op::Gt | Op::Gte | Op::Lt | Op::Lte, Operand::One(v)) => {
            qb.push(lhs).push(compare_op(c.op));
            push_rhs(qb, v, fold);
        }
        (Op::Ne, Operand::One(v)) => {
            // IS NOT is SQLite's null-safe inequality: a NULL description is "not x".
            qb.push(lhs).push(" IS NOT ");
            push_rhs(qb, v, fold);
        }
        (Op::In | Op::Nin, Operand::Many(vs)) => {
            if vs.is_empty() {
                qb.push(if c.op == Op::In { "0" } else { "1" });
                return;
            }
            if c.op == Op::Nin {
                qb.push(format!("{col} IS NULL OR "));
            }
            qb.push(lhs)
                .push(if c.op == Op::In { " IN (" } else { " NOT IN (" });
            for (i, v) in vs.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                push_rhs(qb, v, fold);
            }
            qb.push(")");
        }
        (Op::Contains | Op::StartsWith | Op::EndsWith | Op::Regex, operand) => {
            push_text_match(qb, c, &lhs, col, text_of(operand), fold);
        }
        // The parser pairs operators and operands; anything else matches nothing.
        _ => {
            qb.push("0");
        }
    }
}

/// contains / starts_with / ends_with / regex on a text expression `lhs` (already case-folded
/// when `fold`); `raw` is the unfolded expression, for regex (which folds with `(?i)`).
fn push_text_match(
    qb: &mut QueryBuilder<'static, Sqlite>,
    c: &Cond,
    lhs: &str,
    raw: &str,
    needle: &str,
    fold: bool,
) {
    let v = Scalar::Text(needle.to_owned());
    if needle.is_empty() && c.op != Op::Regex {
        qb.push(format!("{raw} IS NOT NULL"));
        return;
    }
    match c.op {
        Op::Contains => {
            qb.push(format!("instr({lhs}, "));
            push_rhs(qb, &v, fold);
            qb.push(") > 0");
        }
        Op::StartsWith => {
            qb.push(format!("substr({lhs}, 1, length("));
            push_rhs(qb, &v, fold);
            qb.push(")) = ");
            push_rhs(qb, &v, fold);
        }
        Op::EndsWith => {
            qb.push(format!("substr({lhs}, -length("));
            push_rhs(qb, &v, fold);
            qb.push(")) = ");
            push_rhs(qb, &v, fold);
        }
        _ => {
            let pattern = if c.case_sensitive {
                needle.to_owned()
            } else {
                format!("(?i){needle}")
            };
            qb.push(format!("{raw} REGEXP ")).push_bind(pattern);
        }
    }
}

/// contains / exists / is_null on `inputs` or `outputs`: `contains` is membership of a string.
fn push_list_cond(qb: &mut QueryBuilder<'static, Sqlite>, c: &Cond) {
    let (col, _) = column(&c.field);
    match (&c.op, &c.operand) {
        (Op::Exists, Operand::Flag(b)) | (Op::IsNull, Operand::Flag(b)) => {
            let present = (c.op == Op::Exists) == *b;
            qb.push(format!(
                "{col} IS {}NULL",
                if present { "NOT " } else { "" }
            ));
        }
        (Op::Contains, Operand::One(v)) => {
            let fold = !c.case_sensitive;
            let value = if fold { "lower(je.value)" } else { "je.value" };
            qb.push(format!(
                "EXISTS (SELECT 1 FROM json_each({col}) je WHERE je.type = 'text' AND {value} = "
            ));
            push_rhs(qb, v, fold);
            qb.push(")");
        }
        _ => {
            qb.push("0");
        }
    }
}

/// A condition on `additional_data.<path>`, type-aware: a string compares only with strings, a
/// number only with numbers (as MongoDB does), so `"5"` never equals `5`.
fn push_json_cond(qb: &mut QueryBuilder<'static, Sqlite>, c: &Cond) {
    let Field::Data(segments) = &c.field else {
        return;
    };
    // Segments are [A-Za-z0-9_-] (checked by the parser); quoting keeps '-' literal. The path
    // is bound anyway.
    let path: String = std::iter::once("$".to_owned())
        .chain(segments.iter().map(|s| format!(".\"{s}\"")))
        .collect();
    let fold = !c.case_sensitive;
    match (&c.op, &c.operand) {
        (Op::Exists, Operand::Flag(b)) => {
            push_ty(qb, &path);
            qb.push(if *b { " IS NOT NULL" } else { " IS NULL" });
        }
        (Op::IsNull, Operand::Flag(b)) => {
            if !*b {
                qb.push("NOT ");
            }
            push_json_is_null(qb, &path);
        }
        (Op::Eq, Operand::One(v)) => push_json_eq(qb, &path, v, fold),
        (Op::Ne, Operand::One(v)) => {
            qb.push("NOT COALESCE((");
            push_json_eq(qb, &path, v, fold);
            qb.push("), 0)");
        }
        (Op::In | Op::Nin, Operand::Many(vs)) => {
            if c.op == Op::Nin {
                qb.push("NOT ");
            }
            qb.push("COALESCE((0");
            for v in vs {
                qb.push(" OR COALESCE((");
                push_json_eq(qb, &path, v, fold);
                qb.push("), 0)");
            }
            qb.push("), 0)");
        }
        (Op::Gt | Op::Gte | Op::Lt | Op::Lte, Operand::One(v)) => {
            let folds = push_json_type_guard(qb, &path, v) && fold;
            qb.push(" AND ");
            push_x(qb, &path, folds);
            qb.push(compare_op(c.op));
            push_rhs(qb, v, folds);
        }
        (Op::Contains, Operand::One(Scalar::Text(needle))) => {
            // A string contains a substring; an array contains an element.
            let v = Scalar::Text(needle.clone());
            qb.push("CASE ");
            push_ty(qb, &path);
            qb.push(" WHEN 'text' THEN ");
            if needle.is_empty() {
                qb.push("1");
            } else {
                qb.push("instr(");
                push_x(qb, &path, fold);
                qb.push(", ");
                push_rhs(qb, &v, fold);
                qb.push(") > 0");
            }
            let value = if fold { "lower(je.value)" } else { "je.value" };
            qb.push(" WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(t.additional_data, ")
                .push_bind(path.clone())
                .push(format!(") je WHERE je.type = 'text' AND {value} = "));
            push_rhs(qb, &v, fold);
            qb.push(") ELSE 0 END");
        }
        (Op::StartsWith | Op::EndsWith | Op::Regex, Operand::One(Scalar::Text(needle))) => {
            push_ty(qb, &path);
            qb.push(" = 'text' AND ");
            // The extracted value goes through a one-row sub-select so that the text-match
            // helper can name it (`x.v`) however often it needs it, with the path bound once.
            qb.push("(SELECT ");
            let x = if fold && c.op != Op::Regex {
                "lower(x.v)"
            } else {
                "x.v"
            };
            push_text_match(qb, c, x, "x.v", needle, fold);
            qb.push(" FROM (SELECT json_extract(t.additional_data, ")
                .push_bind(path.clone())
                .push(") AS v) x)");
        }
        _ => {
            qb.push("0");
        }
    }
}

fn push_ty(qb: &mut QueryBuilder<'static, Sqlite>, path: &str) {
    qb.push("json_type(t.additional_data, ")
        .push_bind(path.to_owned())
        .push(")");
}

fn push_x(qb: &mut QueryBuilder<'static, Sqlite>, path: &str, fold: bool) {
    qb.push(if fold {
        "lower(json_extract(t.additional_data, "
    } else {
        "json_extract(t.additional_data, "
    })
    .push_bind(path.to_owned())
    .push(if fold { "))" } else { ")" });
}

fn push_json_is_null(qb: &mut QueryBuilder<'static, Sqlite>, path: &str) {
    qb.push("COALESCE(");
    push_ty(qb, path);
    qb.push(", 'null') = 'null'");
}

/// Pushes the JSON type check for comparing with `v`; returns whether `v` is text (the only
/// kind that case-folds).
fn push_json_type_guard(qb: &mut QueryBuilder<'static, Sqlite>, path: &str, v: &Scalar) -> bool {
    push_ty(qb, path);
    match v {
        Scalar::Text(_) => {
            qb.push(" = 'text'");
            true
        }
        _ => {
            qb.push(" IN ('integer', 'real')");
            false
        }
    }
}

fn push_json_eq(qb: &mut QueryBuilder<'static, Sqlite>, path: &str, v: &Scalar, fold: bool) {
    match v {
        Scalar::Null => push_json_is_null(qb, path),
        Scalar::Bool(b) => {
            push_ty(qb, path);
            qb.push(if *b { " = 'true'" } else { " = 'false'" });
        }
        _ => {
            let folds = push_json_type_guard(qb, path, v) && fold;
            qb.push(" AND ");
            push_x(qb, path, folds);
            qb.push(" = ");
            push_rhs(qb, v, folds);
        }
    }
}
