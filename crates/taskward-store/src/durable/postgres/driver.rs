//! PostgreSQL under the SQL core: values bound with their native types (timestamptz, jsonb,
//! text[]), and read back the same way.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row};

use super::errors::classify;
use crate::durable::sql::{impl_driver, row_view_plain_columns, Arg, Dialect, RowView, Sql};
use crate::StoreError;

/// Binds a statement's arguments with PostgreSQL's types.
pub(super) fn bind(sql: &Sql) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    sql.args
        .iter()
        .fold(sqlx::query(&sql.text), |q, a| match a {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::Int(i) => q.bind(*i),
            Arg::Float(f) => q.bind(*f),
            Arg::Bool(b) => q.bind(*b),
            Arg::Time(t) => q.bind(*t),
            Arg::OptTime(t) => q.bind(*t),
            Arg::Path(segments) => q.bind(segments.as_slice()),
            Arg::Json(v) => q.bind(Json(v)),
            Arg::Doc(d) => q.bind(d.as_deref().map(Json)),
        })
}

impl_driver!(Postgres, Dialect::Postgres, bind, classify);

fn decoded<T>(r: Result<T, sqlx::Error>) -> Result<T, StoreError> {
    r.map_err(StoreError::internal)
}

impl RowView for PgRow {
    row_view_plain_columns!();

    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        decoded(self.try_get(i))
    }

    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
        decoded(self.try_get(i))
    }

    fn doc<T: DeserializeOwned>(&self, i: usize) -> Result<Option<T>, StoreError> {
        decoded(self.try_get::<Option<Json<T>>, _>(i)).map(|d| d.map(|Json(v)| v))
    }
}
