//! Compiles a validated filter tree ([`Expr`]) into a SQL condition for SQLite or PostgreSQL.
//!
//! Conditions on anything that can be NULL are wrapped in `COALESCE(…, false)` so that every
//! predicate is strictly true or false and `NOT` means what the client meant: a missing field
//! does not equal "x", so `NOT eq "x"` matches it. JSON paths and values are bound, never
//! spliced; comparisons are type-bracketed (a string never equals a number, as in MongoDB).

use serde_json::Value;
use taskward_model::filter::{Cond, Expr, Field, FieldKind, Op, Operand, Scalar};
use taskward_model::time;

use super::list::pg_no_time;
use super::text::{Arg, Dialect, Sql};

/// `(a OP b OP …)` nested as a balanced tree: SQLite parses a flat chain as one level per
/// operand and refuses expressions deeper than 1000 (an `in` of 1000 values, or a group of
/// 1000 empty groups, answered 500). Same meaning, logarithmic depth.
fn balanced(parts: &[String], op: &str) -> String {
    match parts {
        [one] => format!("({one})"),
        _ if parts.len() <= 8 => format!("({})", parts.join(op)),
        _ => {
            let (a, b) = parts.split_at(parts.len() / 2);
            format!("({}{op}{})", balanced(a, op), balanced(b, op))
        }
    }
}

/// The condition `e`, its values added to `sql` as arguments.
pub(crate) fn expr(sql: &mut Sql, e: &Expr) -> String {
    match e {
        Expr::All(items) | Expr::Any(items) => {
            let all = matches!(e, Expr::All(_));
            if items.is_empty() {
                return sql.bool_lit(all).to_owned();
            }
            let parts: Vec<String> = items.iter().map(|i| expr(sql, i)).collect();
            balanced(&parts, if all { " AND " } else { " OR " })
        }
        Expr::Not(inner) => format!("NOT {}", expr(sql, inner)),
        Expr::Cond(c) => {
            let (p, nullable) = match c.field.kind() {
                FieldKind::Json => (json_cond(sql, c), true),
                FieldKind::List => (list_cond(sql, c), false),
                _ => {
                    let (col, nullable) = column(&c.field);
                    (column_cond(sql, c, col), nullable)
                }
            };
            if nullable {
                format!("COALESCE(({p}), {})", sql.bool_lit(false))
            } else {
                p
            }
        }
    }
}

/// `v` as a JSON value (null for what has none).
fn json_leaf(v: &Scalar) -> Value {
    match v {
        Scalar::Text(s) => Value::String(s.clone()),
        Scalar::Int(i) => Value::from(*i),
        Scalar::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// `data` (a task's `additional_data`) keyed by its tenant (`org`, `mode`) and lowercased, as
/// PostgreSQL's index `tasks_data_by_tenant` (migration 0006) has it. The migration must hold
/// the same expression, or the planner will not match it; org and mode need no JSON escaping
/// (`[A-Za-z0-9._-]`, `live|test`).
fn tenant_data(org: &str, mode: &str, data: &str) -> String {
    format!(
        "CAST('{{\"t\":\"' || {org} || ':' || {mode} || '\",\"d\":' || lower(CAST({data} AS TEXT)) || '}}' AS jsonb)"
    )
}

/// PostgreSQL: for each equality on an `additional_data` path (string or number) that every
/// match of `e` must meet (a condition of the top-level `AND`), a test of the tenant-scoped
/// index that every such task passes: keys and strings lowercased on both sides by the same
/// `lower`, so it holds for case-insensitive and exact equality alike. Put beside the filter
/// (not inside its null guards, where the planner looks for no index condition), these let
/// the index find the candidates; the filter decides. None outside a tenant's listing.
pub(crate) fn index_probes(sql: &mut Sql, e: &Expr) -> Vec<String> {
    let Some((org, mode)) = sql.tenant.clone() else {
        return Vec::new();
    };
    if sql.d != Dialect::Postgres {
        return Vec::new();
    }
    let mut probes = Vec::new();
    for (segments, v) in probed_equalities(e) {
        let p = sql.arg(Arg::Json(nest(segments, json_leaf(v))));
        let row = tenant_data("t.org", "t.mode", "t.additional_data");
        let probe = tenant_data(&org, &mode, &p);
        probes.push(format!("{row} @> {probe}"));
    }
    probes
}

/// The equalities [`index_probes`] probes for: on an `additional_data` path, with a string or
/// a number, as a condition of the top-level `AND` (or the whole filter).
pub(crate) fn probed_equalities(e: &Expr) -> impl Iterator<Item = (&[String], &Scalar)> {
    let required: &[Expr] = match e {
        Expr::All(items) => items,
        Expr::Cond(_) => std::slice::from_ref(e),
        _ => &[],
    };
    required.iter().filter_map(|i| match i {
        Expr::Cond(Cond {
            field: Field::Data(segments),
            op: Op::Eq,
            operand: Operand::One(v @ (Scalar::Text(_) | Scalar::Int(_) | Scalar::Float(_))),
            ..
        }) => Some((segments.as_slice(), v)),
        _ => None,
    })
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

/// The argument for a scalar compared with a column of `kind`.
fn scalar_arg(d: Dialect, kind: FieldKind, s: &Scalar) -> Arg {
    match s {
        Scalar::Text(t) if kind == FieldKind::Time && d == Dialect::Postgres => {
            Arg::Time(time::parse(t).unwrap_or_else(pg_no_time))
        }
        Scalar::Text(t) => Arg::Text(t.clone()),
        Scalar::Int(i) => Arg::Int(*i),
        Scalar::Float(f) => Arg::Float(*f),
        Scalar::Bool(b) => Arg::Bool(*b),
        Scalar::Null => Arg::Text(String::new()),
    }
}

fn fold(expr: &str, yes: bool) -> String {
    if yes {
        format!("lower({expr})")
    } else {
        expr.to_owned()
    }
}

fn compare_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Gt => ">",
        Op::Gte => ">=",
        Op::Lt => "<",
        Op::Lte => "<=",
        _ => "<>",
    }
}

pub(crate) fn contains_expr(d: Dialect, hay: &str, needle: &str) -> String {
    match d {
        Dialect::Sqlite => format!("instr({hay}, {needle}) > 0"),
        Dialect::Postgres => format!("strpos({hay}, {needle}) > 0"),
    }
}

/// contains / starts_with / ends_with / regex of `hay` (a text expression).
fn text_match(sql: &mut Sql, c: &Cond, hay: &str, needle: &str) -> String {
    let ci = !c.case_sensitive;
    if needle.is_empty() && c.op != Op::Regex {
        return format!("{hay} IS NOT NULL");
    }
    if c.op == Op::Regex {
        return match sql.d {
            Dialect::Sqlite => {
                let pattern = if ci {
                    format!("(?i){needle}")
                } else {
                    needle.to_owned()
                };
                let p = sql.arg(Arg::Text(pattern));
                format!("{hay} REGEXP {p}")
            }
            Dialect::Postgres => {
                let p = sql.arg(Arg::Text(needle.to_owned()));
                format!("{hay} {} {p}", if ci { "~*" } else { "~" })
            }
        };
    }
    let p = sql.arg(Arg::Text(needle.to_owned()));
    let (h, n) = (fold(hay, ci), fold(&p, ci));
    match (c.op, sql.d) {
        (Op::Contains, d) => contains_expr(d, &h, &n),
        (Op::StartsWith, Dialect::Sqlite) => format!("substr({h}, 1, length({n})) = {n}"),
        (Op::StartsWith, Dialect::Postgres) => format!("starts_with({h}, {n})"),
        (Op::EndsWith, Dialect::Sqlite) => format!("substr({h}, -length({n})) = {n}"),
        (_, Dialect::Postgres) => format!("right({h}, length({n})) = {n}"),
        (_, Dialect::Sqlite) => format!("substr({h}, -length({n})) = {n}"),
    }
}

/// A condition on an own column.
fn column_cond(sql: &mut Sql, c: &Cond, col: &str) -> String {
    let kind = c.field.kind();
    let ci = !c.case_sensitive && kind == FieldKind::Text;
    let lhs = fold(col, ci);
    match (&c.op, &c.operand) {
        (Op::Exists | Op::IsNull, Operand::Flag(b)) => {
            let present = (c.op == Op::Exists) == *b;
            format!("{col} IS {}NULL", if present { "NOT " } else { "" })
        }
        (Op::Eq | Op::Gt | Op::Gte | Op::Lt | Op::Lte, Operand::One(v)) => {
            let p = sql.arg(scalar_arg(sql.d, kind, v));
            format!("{lhs} {} {}", compare_op(c.op), fold(&p, ci))
        }
        (Op::Ne, Operand::One(v)) => {
            // Null-safe: a NULL description is "not x".
            let p = sql.arg(scalar_arg(sql.d, kind, v));
            let ne = if sql.d == Dialect::Sqlite {
                "IS NOT"
            } else {
                "IS DISTINCT FROM"
            };
            format!("{lhs} {ne} {}", fold(&p, ci))
        }
        (Op::In | Op::Nin, Operand::Many(vs)) => {
            if vs.is_empty() {
                return sql.bool_lit(c.op == Op::Nin).to_owned();
            }
            let list: Vec<String> = vs
                .iter()
                .map(|v| fold(&sql.arg(scalar_arg(sql.d, kind, v)), ci))
                .collect();
            if c.op == Op::In {
                format!("{lhs} IN ({})", list.join(", "))
            } else {
                format!("({col} IS NULL OR {lhs} NOT IN ({}))", list.join(", "))
            }
        }
        (
            Op::Contains | Op::StartsWith | Op::EndsWith | Op::Regex,
            Operand::One(Scalar::Text(n)),
        ) => text_match(sql, c, col, n),
        // The parser pairs operators with operands; nothing else reaches here.
        _ => sql.bool_lit(false).to_owned(),
    }
}

/// Elements of a JSON array expression, as a row source with a `value` text column for string
/// elements only.
fn string_elements(d: Dialect, array: &str) -> String {
    match d {
        Dialect::Sqlite => format!("(SELECT je.value AS v FROM json_each({array}) je WHERE je.type = 'text')"),
        Dialect::Postgres => format!(
            "(SELECT e #>> '{{}}' AS v FROM jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' \
             THEN {array} END) e WHERE jsonb_typeof(e) = 'string')"
        ),
    }
}

/// contains / exists / is_null on `inputs` or `outputs`: `contains` is membership of a string.
fn list_cond(sql: &mut Sql, c: &Cond) -> String {
    let (col, _) = column(&c.field);
    match (&c.op, &c.operand) {
        (Op::Exists | Op::IsNull, Operand::Flag(b)) => {
            let present = (c.op == Op::Exists) == *b;
            format!("{col} IS {}NULL", if present { "NOT " } else { "" })
        }
        (Op::Contains, Operand::One(v)) => {
            let ci = !c.case_sensitive;
            let p = sql.arg(scalar_arg(sql.d, FieldKind::Text, v));
            format!(
                "EXISTS (SELECT 1 FROM {} x WHERE {} = {})",
                string_elements(sql.d, col),
                fold("x.v", ci),
                fold(&p, ci)
            )
        }
        _ => sql.bool_lit(false).to_owned(),
    }
}

/// SQL for the JSON value at a bound path: its type name, its text, its number.
struct JsonAt {
    ty: String,
    text: String,
    num: String,
    node: String,
}

impl JsonAt {
    fn new(sql: &mut Sql, segments: &[String]) -> JsonAt {
        let p = sql.arg(Arg::Path(segments.to_vec()));
        match sql.d {
            Dialect::Sqlite => JsonAt {
                ty: format!("json_type(t.additional_data, {p})"),
                text: format!("json_extract(t.additional_data, {p})"),
                num: format!("json_extract(t.additional_data, {p})"),
                node: format!("t.additional_data, {p}"),
            },
            Dialect::Postgres => JsonAt {
                ty: format!("jsonb_typeof(t.additional_data #> {p})"),
                text: format!("(t.additional_data #>> {p})"),
                num: format!(
                    "(CASE WHEN jsonb_typeof(t.additional_data #> {p}) = 'number' THEN (t.additional_data #>> {p})::numeric END)"
                ),
                node: format!("t.additional_data #> {p}"),
            },
        }
    }

    fn is_text(&self, d: Dialect) -> String {
        format!(
            "{} = '{}'",
            self.ty,
            if d == Dialect::Sqlite {
                "text"
            } else {
                "string"
            }
        )
    }

    fn is_number(&self, d: Dialect) -> String {
        match d {
            Dialect::Sqlite => format!("{} IN ('integer', 'real')", self.ty),
            Dialect::Postgres => format!("{} = 'number'", self.ty),
        }
    }

    fn is_bool(&self, d: Dialect, b: bool) -> String {
        match d {
            Dialect::Sqlite => format!("{} = '{b}'", self.ty),
            Dialect::Postgres => format!("({} = 'boolean' AND {} = '{b}')", self.ty, self.text),
        }
    }

    fn is_null(&self) -> String {
        format!("COALESCE({}, 'null') = 'null'", self.ty)
    }

    fn array(&self, d: Dialect) -> String {
        match d {
            Dialect::Sqlite => self.node.clone(),
            Dialect::Postgres => format!("({})", self.node),
        }
    }
}

/// `{"a": {"b": value}}` for containment.
fn nest(segments: &[String], leaf: Value) -> Value {
    segments.iter().rev().fold(leaf, |acc, seg| {
        let mut m = serde_json::Map::new();
        m.insert(seg.clone(), acc);
        Value::Object(m)
    })
}

/// A condition on `additional_data.<path>`, type-aware: a string compares only with strings, a
/// number only with numbers (as MongoDB does), so `"5"` never equals `5`.
fn json_cond(sql: &mut Sql, c: &Cond) -> String {
    let Field::Data(segments) = &c.field else {
        return sql.bool_lit(false).to_owned();
    };
    let d = sql.d;
    let at = JsonAt::new(sql, segments);
    let ci = !c.case_sensitive;
    match (&c.op, &c.operand) {
        (Op::Exists, Operand::Flag(b)) => {
            format!("{} IS {}NULL", at.ty, if *b { "NOT " } else { "" })
        }
        (Op::IsNull, Operand::Flag(b)) => {
            format!("{}{}", if *b { "" } else { "NOT " }, at.is_null())
        }
        (Op::Eq, Operand::One(v)) => json_eq(sql, &at, segments, v, ci),
        (Op::Ne, Operand::One(v)) => {
            let eq = json_eq(sql, &at, segments, v, ci);
            format!("NOT COALESCE(({eq}), {})", sql.bool_lit(false))
        }
        (Op::In | Op::Nin, Operand::Many(vs)) => {
            let f = sql.bool_lit(false);
            let mut parts = Vec::with_capacity(vs.len());
            for v in vs {
                let eq = json_eq(sql, &at, segments, v, ci);
                parts.push(format!("COALESCE(({eq}), {f})"));
            }
            let any = if parts.is_empty() {
                f.to_owned()
            } else {
                balanced(&parts, " OR ")
            };
            if c.op == Op::In {
                any
            } else {
                format!("NOT {any}")
            }
        }
        (Op::Gt | Op::Gte | Op::Lt | Op::Lte, Operand::One(v)) => {
            let op = compare_op(c.op);
            match v {
                Scalar::Text(_) => {
                    let p = sql.arg(scalar_arg(d, FieldKind::Json, v));
                    format!(
                        "{} AND {} {op} {}",
                        at.is_text(d),
                        fold(&at.text, ci),
                        fold(&p, ci)
                    )
                }
                _ => {
                    let p = sql.arg(scalar_arg(d, FieldKind::Json, v));
                    format!("{} AND {} {op} {p}", at.is_number(d), at.num)
                }
            }
        }
        (Op::Contains, Operand::One(Scalar::Text(needle))) => {
            // A string contains a substring; an array contains an element.
            let substring = if needle.is_empty() {
                sql.bool_lit(true).to_owned()
            } else {
                let p = sql.arg(Arg::Text(needle.clone()));
                contains_expr(d, &fold(&at.text, ci), &fold(&p, ci))
            };
            let p = sql.arg(Arg::Text(needle.clone()));
            let element = format!(
                "EXISTS (SELECT 1 FROM {} x WHERE {} = {})",
                string_elements(d, &at.array(d)),
                fold("x.v", ci),
                fold(&p, ci)
            );
            let is_array = format!("{} = 'array'", at.ty);
            format!(
                "CASE WHEN {} THEN {substring} WHEN {is_array} THEN {element} ELSE {} END",
                at.is_text(d),
                sql.bool_lit(false)
            )
        }
        (Op::StartsWith | Op::EndsWith | Op::Regex, Operand::One(Scalar::Text(needle))) => {
            let m = text_match(sql, c, &at.text, needle);
            format!("{} AND {m}", at.is_text(d))
        }
        _ => sql.bool_lit(false).to_owned(),
    }
}

fn json_eq(sql: &mut Sql, at: &JsonAt, segments: &[String], v: &Scalar, ci: bool) -> String {
    let d = sql.d;
    match v {
        Scalar::Null => at.is_null(),
        Scalar::Bool(b) => at.is_bool(d, *b),
        Scalar::Text(_) if ci => {
            let p = sql.arg(scalar_arg(d, FieldKind::Json, v));
            format!("{} AND lower({}) = lower({p})", at.is_text(d), at.text)
        }
        // PostgreSQL: exact equality as containment. jsonb compares numbers by value
        // (2.5 = 2.50) and never a string with a number.
        _ if d == Dialect::Postgres => {
            let p = sql.arg(Arg::Json(nest(segments, json_leaf(v))));
            format!("t.additional_data @> {p}")
        }
        Scalar::Text(_) => {
            let p = sql.arg(scalar_arg(d, FieldKind::Json, v));
            format!("{} AND {} = {p}", at.is_text(d), at.text)
        }
        _ => {
            let p = sql.arg(scalar_arg(d, FieldKind::Json, v));
            format!("{} AND {} = {p}", at.is_number(d), at.num)
        }
    }
}

/// The SQLite JSON path for `segments`: `$."a"."b"`. Segments are `[A-Za-z0-9_-]` (checked by
/// the parser); quoting keeps `-` literal.
pub(crate) fn sqlite_path(segments: &[String]) -> String {
    std::iter::once("$".to_owned())
        .chain(segments.iter().map(|s| format!(".\"{s}\"")))
        .collect()
}
