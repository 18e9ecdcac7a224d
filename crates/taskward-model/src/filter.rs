//! The filter language of `POST /v1/tasks/list`, parsed into a validated tree.
//!
//! Clients send `{AND?, OR?, NOT?, case_sensitive?}` groups whose items are conditions
//! `{field, operator, value, case_sensitive?}` or nested groups. Parsing checks every field,
//! operator and value against the field's kind here, once, so that the SQL compilers of the
//! durable back-ends only translate a tree that is already known to be meaningful. Values
//! stay values: the compilers bind them, never splice them.

use serde_json::{Map, Value};

use crate::task::{truncate, TaskStatus};
use crate::{time, Invalid};

/// Deepest nesting of groups accepted.
pub const MAX_DEPTH: usize = 8;
/// Most conditions in one filter.
pub const MAX_CONDITIONS: usize = 100;
/// Most values in `in`/`nin` lists, all conditions together (bounds the bound parameters).
pub const MAX_LIST: usize = 1000;
/// Most segments in an `additional_data.<path>`.
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Largest magnitude of an integer comparison value: 2^53 - 1, the integers every JSON reader
/// holds exactly.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;
/// Largest compiled regex, in bytes: big enough for real patterns, too small for a DoS.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A validated filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every item matches (an empty list matches everything).
    All(Vec<Expr>),
    /// At least one item matches (an empty list matches nothing).
    Any(Vec<Expr>),
    /// The item does not match.
    Not(Box<Expr>),
    /// One condition.
    Cond(Cond),
}

/// One condition, checked against its field's kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub field: Field,
    pub op: Op,
    pub operand: Operand,
    /// Applies to text comparisons; numbers and timestamps ignore it.
    pub case_sensitive: bool,
}

/// A field a condition can test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    TaskId,
    TaskType,
    Status,
    Description,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
    Version,
    Inputs,
    Outputs,
    /// `additional_data.<segments>`
    Data(Vec<String>),
}

/// How a field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text columns.
    Text,
    /// Timestamp columns (compared as canonical text, which sorts in time order).
    Time,
    /// The integer `version`.
    Int,
    /// `inputs` / `outputs` arrays.
    List,
    /// Any JSON value under `additional_data`.
    Json,
}

impl Field {
    /// Own fields a filter may name, for error messages.
    pub const NAMES: [&'static str; 11] = [
        "task_id",
        "task_type",
        "status",
        "description",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "version",
        "inputs",
        "outputs",
    ];

    fn parse(s: &str, at: &str) -> Result<Field, Invalid> {
        let f = match s {
            "task_id" => Field::TaskId,
            "task_type" => Field::TaskType,
            "status" => Field::Status,
            "description" => Field::Description,
            "created_at" => Field::CreatedAt,
            "updated_at" => Field::UpdatedAt,
            "started_at" => Field::StartedAt,
            "finished_at" => Field::FinishedAt,
            "version" => Field::Version,
            "inputs" => Field::Inputs,
            "outputs" => Field::Outputs,
            _ => match s.strip_prefix("additional_data.") {
                Some(path) => Field::Data(parse_path(path, at)?),
                None => {
                    let mut accepted: Vec<String> = Self::NAMES.map(String::from).to_vec();
                    accepted.push("additional_data.<path>".into());
                    return Err(Invalid::one_of(
                        at,
                        format!("unknown field `{}`", truncate(s, 80)),
                        accepted,
                    ));
                }
            },
        };
        Ok(f)
    }

    /// How this field's values compare.
    pub fn kind(&self) -> FieldKind {
        match self {
            Field::TaskId | Field::TaskType | Field::Status | Field::Description => FieldKind::Text,
            Field::CreatedAt | Field::UpdatedAt | Field::StartedAt | Field::FinishedAt => {
                FieldKind::Time
            }
            Field::Version => FieldKind::Int,
            Field::Inputs | Field::Outputs => FieldKind::List,
            Field::Data(_) => FieldKind::Json,
        }
    }
}

/// Splits and checks `a.b.c`: each segment 1–64 characters from `[A-Za-z0-9_-]`.
pub fn parse_path(path: &str, at: &str) -> Result<Vec<String>, Invalid> {
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    let ok = |seg: &String| {
        !seg.is_empty()
            && seg.len() <= 64
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if segments.len() > MAX_PATH_SEGMENTS || !segments.iter().all(ok) {
        return Err(Invalid::new(
            at,
            format!(
                "additional_data path must be up to {MAX_PATH_SEGMENTS} dot-separated segments of 1 to 64 characters from A-Z a-z 0-9 _ -"
            ),
        ));
    }
    Ok(segments)
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
    Exists,
    IsNull,
}

impl Op {
    /// Every operator, as spelled on the wire.
    pub const NAMES: [&'static str; 14] = [
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "nin",
        "contains",
        "starts_with",
        "ends_with",
        "regex",
        "exists",
        "is_null",
    ];
    const ALL: [Op; 14] = [
        Op::Eq,
        Op::Ne,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::In,
        Op::Nin,
        Op::Contains,
        Op::StartsWith,
        Op::EndsWith,
        Op::Regex,
        Op::Exists,
        Op::IsNull,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[Self::ALL.iter().position(|o| *o == self).unwrap_or(0)]
    }

    fn parse(s: &str, at: &str) -> Result<Op, Invalid> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| {
                Invalid::one_of(
                    at,
                    format!("unknown operator `{}`", truncate(s, 40)),
                    Self::NAMES,
                )
            })
    }

    /// The operators that make sense for a kind of field.
    fn allowed_for(kind: FieldKind) -> &'static [Op] {
        use Op::*;
        match kind {
            FieldKind::Text | FieldKind::Json => &Self::ALL,
            FieldKind::Time | FieldKind::Int => {
                &[Eq, Ne, Gt, Gte, Lt, Lte, In, Nin, Exists, IsNull]
            }
            FieldKind::List => &[Contains, Exists, IsNull],
        }
    }
}

/// A JSON scalar a condition compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// The checked right-hand side of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// eq, ne, gt, gte, lt, lte, contains, starts_with, ends_with, regex
    One(Scalar),
    /// in, nin
    Many(Vec<Scalar>),
    /// exists, is_null: whether the field should exist / be null
    Flag(bool),
}

/// Parses and validates a `filters` object.
pub fn parse(v: &Value) -> Result<Expr, Invalid> {
    let mut budget = Budget {
        conditions: MAX_CONDITIONS,
        values: MAX_LIST,
    };
    parse_group(v, "filters", false, 1, &mut budget)
}

/// What is left of the size limits while parsing.
struct Budget {
    conditions: usize,
    values: usize,
}

fn parse_group(
    v: &Value,
    at: &str,
    inherited_cs: bool,
    depth: usize,
    budget: &mut Budget,
) -> Result<Expr, Invalid> {
    let Value::Object(m) = v else {
        return Err(Invalid::new(at, "must be an object with AND, OR or NOT"));
    };
    if depth > MAX_DEPTH {
        return Err(Invalid::new(
            at,
            format!("groups nest at most {MAX_DEPTH} deep"),
        ));
    }
    const KEYS: [&str; 4] = ["AND", "OR", "NOT", "case_sensitive"];
    check_keys(m, at, &KEYS)?;
    let cs = opt_bool(m, "case_sensitive", at)?.unwrap_or(inherited_cs);
    let mut parts = Vec::new();
    for key in ["AND", "OR", "NOT"] {
        let Some(items) = m.get(key) else { continue };
        let here = format!("{at}.{key}");
        let Value::Array(items) = items else {
            return Err(Invalid::new(
                here,
                "must be an array of conditions or groups",
            ));
        };
        let mut exprs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            exprs.push(parse_node(
                item,
                &format!("{here}[{i}]"),
                cs,
                depth,
                budget,
            )?);
        }
        parts.push(match key {
            "AND" => Expr::All(exprs),
            "OR" => Expr::Any(exprs),
            // NOT [a, b]: none of the items matches.
            _ => Expr::Not(Box::new(Expr::Any(exprs))),
        });
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Expr::All(parts)
    })
}

fn parse_node(
    v: &Value,
    at: &str,
    cs: bool,
    depth: usize,
    budget: &mut Budget,
) -> Result<Expr, Invalid> {
    match v {
        Value::Object(m) if m.contains_key("field") => {
            if budget.conditions == 0 {
                return Err(Invalid::new(
                    at,
                    format!("a filter has at most {MAX_CONDITIONS} conditions"),
                ));
            }
            budget.conditions -= 1;
            parse_cond(m, at, cs, budget).map(Expr::Cond)
        }
        Value::Object(_) => parse_group(v, at, cs, depth + 1, budget),
        _ => Err(Invalid::new(
            at,
            "must be a condition {field, operator, value} or a group",
        )),
    }
}

fn parse_cond(
    m: &Map<String, Value>,
    at: &str,
    inherited_cs: bool,
    budget: &mut Budget,
) -> Result<Cond, Invalid> {
    check_keys(m, at, &["field", "operator", "value", "case_sensitive"])?;
    let field_at = format!("{at}.field");
    let field = match m.get("field") {
        Some(Value::String(s)) => Field::parse(s, &field_at)?,
        _ => return Err(Invalid::new(field_at, "must be a string")),
    };
    let op_at = format!("{at}.operator");
    let op = match m.get("operator") {
        Some(Value::String(s)) => Op::parse(s, &op_at)?,
        None => Op::Eq,
        _ => return Err(Invalid::one_of(op_at, "must be a string", Op::NAMES)),
    };
    let kind = field.kind();
    if !Op::allowed_for(kind).contains(&op) {
        return Err(Invalid::one_of(
            op_at,
            format!("operator `{}` does not apply to this field", op.as_str()),
            Op::allowed_for(kind).iter().map(|o| o.as_str()),
        ));
    }
    let case_sensitive = opt_bool(m, "case_sensitive", at)?.unwrap_or(inherited_cs);
    let value_at = format!("{at}.value");
    let value = m.get("value").unwrap_or(&Value::Null);
    let operand = match op {
        Op::Exists | Op::IsNull => match value {
            Value::Null => Operand::Flag(true),
            Value::Bool(b) => Operand::Flag(*b),
            _ => return Err(Invalid::new(value_at, "must be true or false")),
        },
        Op::In | Op::Nin => {
            let Value::Array(items) = value else {
                return Err(Invalid::new(value_at, "must be an array"));
            };
            if items.len() > budget.values {
                return Err(Invalid::new(
                    value_at,
                    format!("in/nin lists hold at most {MAX_LIST} values in all"),
                ));
            }
            budget.values -= items.len();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(scalar_for(&field, op, item, &format!("{value_at}[{i}]"))?);
            }
            Operand::Many(out)
        }
        Op::Contains | Op::StartsWith | Op::EndsWith => match value {
            Value::String(s) => Operand::One(Scalar::Text(s.clone())),
            _ => return Err(Invalid::new(value_at, "must be a string")),
        },
        Op::Regex => match value {
            Value::String(s) => {
                check_regex(s, case_sensitive, &value_at)?;
                Operand::One(Scalar::Text(s.clone()))
            }
            _ => {
                return Err(Invalid::new(
                    value_at,
                    "must be a string (a regular expression)",
                ))
            }
        },
        Op::Eq | Op::Ne | Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let s = scalar_for(&field, op, value, &value_at)?;
            if matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte)
                && matches!(s, Scalar::Null | Scalar::Bool(_))
            {
                return Err(Invalid::new(
                    value_at,
                    "must be a number, a string or a timestamp",
                ));
            }
            Operand::One(s)
        }
    };
    Ok(Cond {
        field,
        op,
        operand,
        case_sensitive,
    })
}

/// Checks one comparison value against the field's kind and normalises it (timestamps to the
/// canonical form, statuses to their spelling).
fn scalar_for(field: &Field, op: Op, v: &Value, at: &str) -> Result<Scalar, Invalid> {
    match field.kind() {
        FieldKind::Text => {
            let Value::String(s) = v else {
                return Err(Invalid::new(at, "must be a string"));
            };
            if *field == Field::Status && matches!(op, Op::Eq | Op::Ne | Op::In | Op::Nin) {
                let status = TaskStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                    Invalid::one_of(
                        at,
                        format!("unknown status `{}`", truncate(s, 40)),
                        TaskStatus::ALL.map(|s| s.as_str()),
                    )
                })?;
                return Ok(Scalar::Text(status.as_str().to_owned()));
            }
            Ok(Scalar::Text(s.clone()))
        }
        FieldKind::Time => match v {
            Value::String(s) => time::parse(s)
                .map(|t| Scalar::Text(time::format(&t)))
                .ok_or_else(|| Invalid::new(at, "must be an RFC 3339 timestamp")),
            _ => Err(Invalid::new(at, "must be an RFC 3339 timestamp")),
        },
        // `3.0` is the integer 3 in JSON (and in JSON Schema, which the OpenAPI document uses).
        // Bounded to the integers every JSON reader holds exactly (RFC 7493), so that a number
        // too large for that cannot round into range.
        FieldKind::Int => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .filter(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER as u64)
            .map(Scalar::Int)
            .ok_or_else(|| {
                Invalid::new(
                    at,
                    format!("must be an integer from -{MAX_SAFE_INTEGER} to {MAX_SAFE_INTEGER}"),
                )
            }),
        FieldKind::List => Err(Invalid::new(
            at,
            "lists only support contains, exists and is_null",
        )),
        FieldKind::Json => match v {
            Value::Null => Ok(Scalar::Null),
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            Value::Number(n) => Ok(match n.as_i64() {
                Some(i) => Scalar::Int(i),
                None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Value::String(s) => Ok(Scalar::Text(s.clone())),
            _ => Err(Invalid::new(
                at,
                "must be a string, number, boolean or null",
            )),
        },
    }
}

/// Compiles the pattern once to reject bad syntax and oversized automata up front; the
/// back-end compiles it again where it runs.
pub fn check_regex(pattern: &str, case_sensitive: bool, at: &str) -> Result<(), Invalid> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| {
            let msg = match e {
                regex::Error::CompiledTooBig(_) => "regular expression is too large".to_owned(),
                other => format!(
                    "invalid regular expression: {}",
                    truncate(&other.to_string(), 300)
                ),
            };
            Invalid::new(at, msg)
        })
}

fn check_keys(m: &Map<String, Value>, at: &str, accepted: &[&str]) -> Result<(), Invalid> {
    match m.keys().find(|k| !accepted.contains(&k.as_str())) {
        Some(k) => Err(Invalid::one_of(
            at,
            format!("unknown key `{}`", truncate(k, 40)),
            accepted,
        )),
        None => Ok(()),
    }
}

fn opt_bool(m: &Map<String, Value>, key: &str, at: &str) -> Result<Option<bool>, Invalid> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Invalid::new(format!("{at}.{key}"), "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(field: Field, op: Op, operand: Operand, case_sensitive: bool) -> Expr {
        Expr::Cond(Cond {
            field,
            op,
            operand,
            case_sensitive,
        })
    }

    #[test]
    fn nested_groups_parse_with_inherited_case_sensitivity() {
        let e = parse(&json!({
            "case_sensitive": true,
            "AND": [
                {"field": "status", "operator": "in", "value": ["pending", "FAILED"]},
                {"OR": [{"field": "additional_data.job.id", "operator": "eq", "value": 5, "case_sensitive": false}]},
            ],
            "NOT": [{"field": "task_id", "operator": "starts_with", "value": "x"}]
        }))
        .unwrap();
        let expected = Expr::All(vec![
            Expr::All(vec![
                cond(
                    Field::Status,
                    Op::In,
                    Operand::Many(vec![
                        Scalar::Text("PENDING".into()),
                        Scalar::Text("FAILED".into()),
                    ]),
                    true,
                ),
                Expr::Any(vec![cond(
                    Field::Data(vec!["job".into(), "id".into()]),
                    Op::Eq,
                    Operand::One(Scalar::Int(5)),
                    false,
                )]),
            ]),
            Expr::Not(Box::new(Expr::Any(vec![cond(
                Field::TaskId,
                Op::StartsWith,
                Operand::One(Scalar::Text("x".into())),
                true,
            )]))),
        ]);
        assert_eq!(e, expected);
    }

    #[test]
    fn every_operator_parses_on_additional_data() {
        for op in Op::NAMES {
            let value = match op {
                "in" | "nin" => json!(["a", 1]),
                "exists" | "is_null" => json!(true),
                _ => json!("a"),
            };
            parse(
                &json!({"AND": [{"field": "additional_data.k", "operator": op, "value": value}]}),
            )
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        }
    }

    #[test]
    fn bad_filters_name_what_is_accepted() {
        let e = parse(&json!({"AND": [{"field": "status", "operator": "like", "value": "x"}]}))
            .unwrap_err();
        assert_eq!(e.field, "filters.AND[0].operator");
        assert!(e.accepted.unwrap().contains(&"starts_with".to_owned()));

        let e = parse(&json!({"AND": [{"field": "nope", "operator": "eq", "value": "x"}]}))
            .unwrap_err();
        assert_eq!(e.field, "filters.AND[0].field");

        let e = parse(&json!({"XOR": []})).unwrap_err();
        assert_eq!(e.accepted.unwrap(), ["AND", "OR", "NOT", "case_sensitive"]);

        for bad in [
            json!({"AND": [{"field": "status", "operator": "eq", "value": "DONE"}]}),
            json!({"AND": [{"field": "version", "operator": "gt", "value": "x"}]}),
            json!({"AND": [{"field": "created_at", "operator": "gt", "value": "yesterday"}]}),
            json!({"AND": [{"field": "created_at", "operator": "regex", "value": "x"}]}),
            json!({"AND": [{"field": "task_id", "operator": "regex", "value": "("}]}),
            json!({"AND": [{"field": "task_id", "operator": "regex", "value": "\\w{1000}{1000}"}]}),
            json!({"AND": [{"field": "additional_data.a..b", "operator": "eq", "value": 1}]}),
            json!({"AND": [{"field": "additional_data.a'b", "operator": "eq", "value": 1}]}),
            json!({"AND": [{"field": "additional_data.a", "operator": "eq", "value": {"x": 1}}]}),
            json!({"AND": [{"field": "task_id", "operator": "in", "value": "x"}]}),
            json!({"AND": "x"}),
            json!([1]),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut v = json!({"field": "task_id", "operator": "eq", "value": "x"});
        for _ in 0..MAX_DEPTH + 1 {
            v = json!({"AND": [v]});
        }
        assert!(parse(&v).is_err());
        let many: Vec<Value> = (0..=MAX_CONDITIONS)
            .map(|_| json!({"field": "task_id", "operator": "eq", "value": "x"}))
            .collect();
        assert!(parse(&json!({"OR": many})).is_err());
    }

    #[test]
    fn integral_numbers_are_integers_for_version() {
        for (value, ok) in [
            (json!(3), true),
            (json!(3.0), true),
            (json!(3.5), false),
            (json!(1e19), false),
            (json!("3"), false),
            (json!(9007199254740991i64), true),
            (json!(9007199254740992i64), false),
            (json!(-9007199254740992.0), false),
            (json!(i64::MIN), false),
        ] {
            let got =
                parse(&json!({"AND": [{"field": "version", "operator": "eq", "value": value}]}));
            assert_eq!(got.is_ok(), ok, "{value}");
        }
    }

    #[test]
    fn timestamps_are_normalised() {
        let e = parse(&json!({"AND": [{"field": "created_at", "operator": "gte", "value": "2026-01-01T01:00:00+01:00"}]})).unwrap();
        let Expr::All(items) = e else { panic!() };
        let Expr::Cond(c) = &items[0] else { panic!() };
        assert_eq!(
            c.operand,
            Operand::One(Scalar::Text("2026-01-01T00:00:00.000000Z".into()))
        );
    }
}
