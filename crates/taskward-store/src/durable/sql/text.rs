//! SQL text and the values bound to it, in either dialect.
//!
//! Statements are written once, in PostgreSQL's numbered-placeholder form (`$1`); SQLite gets
//! the same text with `?1` (which it reads the same way: by number, so a value used twice is
//! bound once). Values travel as [`Arg`]s and each back-end binds them with its own column
//! types (a timestamp is `timestamptz` on PostgreSQL and canonical text on SQLite), so no
//! statement says anything about how a value is stored. Only identifiers and keywords written
//! in this crate ever enter SQL text; every value a client sent is an `Arg`.

use std::borrow::Cow;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::Value;

/// Which SQL a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A timestamp column value (SQLite: canonical text; PostgreSQL: timestamptz).
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
    /// A path under `additional_data` (SQLite: JSON path text; PostgreSQL: text[]).
    Path(Vec<String>),
    /// A JSON value a filter compares with (PostgreSQL containment).
    Json(Value),
    /// A stored JSON document, already serialised (SQLite: text; PostgreSQL: jsonb).
    Doc(Option<Box<RawValue>>),
}

/// SQL text and its arguments, in placeholder order.
#[derive(Debug)]
pub(crate) struct Sql {
    pub text: Cow<'static, str>,
    pub args: Vec<Arg>,
    pub(crate) d: Dialect,
    /// The placeholders of the tenant (org, mode) a listing is scoped to, once bound: filters
    /// on `additional_data` probe PostgreSQL's tenant-scoped index with them.
    pub(crate) tenant: Option<(String, String)>,
}

impl Sql {
    /// A statement built at run time (listings), arguments added with [`Sql::arg`].
    pub(crate) fn new(d: Dialect, text: impl Into<String>) -> Sql {
        Sql {
            text: Cow::Owned(text.into()),
            args: Vec::new(),
            d,
            tenant: None,
        }
    }

    /// A fixed statement with its arguments.
    pub(crate) fn fixed(d: Dialect, stmt: &'static Stmt, args: Vec<Arg>) -> Sql {
        Sql {
            text: Cow::Borrowed(stmt.text(d)),
            args,
            d,
            tenant: None,
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.to_mut().push_str(s);
        self
    }

    /// Adds an argument and returns its placeholder (with a cast where PostgreSQL needs one:
    /// in expressions, unlike in column assignments, it cannot infer the type).
    pub(crate) fn arg(&mut self, a: Arg) -> String {
        let cast = match (&a, self.d) {
            (Arg::Path(_), Dialect::Postgres) => "::text[]",
            (Arg::Json(_), Dialect::Postgres) => "::jsonb",
            (Arg::Float(_), Dialect::Postgres) => "::float8",
            (Arg::Int(_), Dialect::Postgres) => "::int8",
            _ => "",
        };
        self.args.push(a);
        match self.d {
            Dialect::Sqlite => format!("?{}", self.args.len()),
            Dialect::Postgres => format!("${}{cast}", self.args.len()),
        }
    }

    /// Adds each argument; returns their placeholders, comma-separated (for `IN (…)`).
    pub(crate) fn list(&mut self, args: impl IntoIterator<Item = Arg>) -> String {
        args.into_iter()
            .map(|a| self.arg(a))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn bool_lit(&self, b: bool) -> &'static str {
        match (self.d, b) {
            (Dialect::Sqlite, true) => "1",
            (Dialect::Sqlite, false) => "0",
            (Dialect::Postgres, true) => "TRUE",
            (Dialect::Postgres, false) => "FALSE",
        }
    }
}

/// A statement whose text is fixed: written with `$n` placeholders, rendered for SQLite once.
#[derive(Debug)]
pub(crate) struct Stmt {
    text: &'static str,
    sqlite: OnceLock<String>,
}

impl Stmt {
    pub(crate) const fn new(text: &'static str) -> Stmt {
        Stmt {
            text,
            sqlite: OnceLock::new(),
        }
    }

    pub(crate) fn text(&'static self, d: Dialect) -> &'static str {
        match d {
            Dialect::Postgres => self.text,
            Dialect::Sqlite => self.sqlite.get_or_init(|| numbered_to_sqlite(self.text)),
        }
    }
}

/// `$12` → `?12`. Fixed statements hold no `$` but in placeholders (a test checks).
fn numbered_to_sqlite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_for_sqlite_and_nothing_else_changes() {
        assert_eq!(
            numbered_to_sqlite("a = $1 AND (b = $12 OR c = $1) AND d = 'x'"),
            "a = ?1 AND (b = ?12 OR c = ?1) AND d = 'x'"
        );
    }
}
