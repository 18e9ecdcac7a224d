//! What the SQL core asks of a database driver: run a statement, fetch rows, hold a
//! transaction, read typed values out of a row.
//!
//! The core is written once against [`Driver`]; SQLite and PostgreSQL implement it (the
//! statement plumbing by one macro, so it exists once in the source too). sqlx's own generic
//! executor bounds do not survive being passed through generic code, so the driver takes the
//! concrete pool or connection and the core never names an executor.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::{Database, Pool};

use super::text::{Dialect, Sql};
use crate::StoreError;

/// A sqlx database the SQL core runs on.
pub(crate) trait Driver: Database<Row: RowView> {
    const DIALECT: Dialect;

    /// Driver errors: what a retry later could cure is `Unavailable` (503); the rest, the
    /// back-end decides.
    fn error(e: sqlx::Error) -> StoreError;

    fn execute_pool<'a>(
        pool: &'a Pool<Self>,
        sql: &'a Sql,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a;

    fn fetch_pool<'a>(
        pool: &'a Pool<Self>,
        sql: &'a Sql,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send + 'a;

    fn execute_conn<'a>(
        conn: &'a mut Self::Connection,
        sql: &'a Sql,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a;

    fn fetch_conn<'a>(
        conn: &'a mut Self::Connection,
        sql: &'a Sql,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send + 'a;

    /// Runs SQL text with no arguments, several statements allowed (migrations).
    fn script<'a>(
        conn: &'a mut Self::Connection,
        text: &'a str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

/// Implements [`Driver`] for a sqlx database: `$dialect`, arguments bound by `$bind`,
/// errors classified by `$error`. Written once here; the executor is concrete in each
/// expansion, which is what sqlx's generic executors need.
macro_rules! impl_driver {
    ($db:ty, $dialect:expr, $bind:path, $error:path) => {
        async fn execute_on<'e, E: sqlx::Executor<'e, Database = $db>>(
            exec: E,
            sql: &'e $crate::durable::sql::Sql,
        ) -> Result<u64, $crate::StoreError> {
            $bind(sql)
                .execute(exec)
                .await
                .map(|done| done.rows_affected())
                .map_err($error)
        }

        async fn fetch_on<'e, E: sqlx::Executor<'e, Database = $db>>(
            exec: E,
            sql: &'e $crate::durable::sql::Sql,
        ) -> Result<Vec<<$db as sqlx::Database>::Row>, $crate::StoreError> {
            $bind(sql).fetch_all(exec).await.map_err($error)
        }

        impl $crate::durable::sql::Driver for $db {
            const DIALECT: $crate::durable::sql::Dialect = $dialect;

            fn error(e: sqlx::Error) -> $crate::StoreError {
                $error(e)
            }

            fn execute_pool<'a>(
                pool: &'a sqlx::Pool<$db>,
                sql: &'a $crate::durable::sql::Sql,
            ) -> impl std::future::Future<Output = Result<u64, $crate::StoreError>> + Send + 'a
            {
                execute_on(pool, sql)
            }

            fn fetch_pool<'a>(
                pool: &'a sqlx::Pool<$db>,
                sql: &'a $crate::durable::sql::Sql,
            ) -> impl std::future::Future<
                Output = Result<Vec<<$db as sqlx::Database>::Row>, $crate::StoreError>,
            > + Send
                   + 'a {
                fetch_on(pool, sql)
            }

            fn execute_conn<'a>(
                conn: &'a mut <$db as sqlx::Database>::Connection,
                sql: &'a $crate::durable::sql::Sql,
            ) -> impl std::future::Future<Output = Result<u64, $crate::StoreError>> + Send + 'a
            {
                execute_on(conn, sql)
            }

            fn fetch_conn<'a>(
                conn: &'a mut <$db as sqlx::Database>::Connection,
                sql: &'a $crate::durable::sql::Sql,
            ) -> impl std::future::Future<
                Output = Result<Vec<<$db as sqlx::Database>::Row>, $crate::StoreError>,
            > + Send
                   + 'a {
                fetch_on(conn, sql)
            }

            fn script<'a>(
                conn: &'a mut <$db as sqlx::Database>::Connection,
                text: &'a str,
            ) -> impl std::future::Future<Output = Result<(), $crate::StoreError>> + Send + 'a {
                async move {
                    sqlx::Executor::execute(conn, sqlx::raw_sql(text))
                        .await
                        .map(drop)
                        .map_err($error)
                }
            }
        }
    };
}
pub(crate) use impl_driver;

/// The [`RowView`] methods every driver decodes alike (text and integers), for a row type
/// with sqlx's `try_get`.
macro_rules! row_view_plain_columns {
    () => {
        fn text(&self, i: usize) -> Result<String, $crate::StoreError> {
            sqlx::Row::try_get(self, i).map_err($crate::StoreError::internal)
        }

        fn opt_text(&self, i: usize) -> Result<Option<String>, $crate::StoreError> {
            sqlx::Row::try_get(self, i).map_err($crate::StoreError::internal)
        }

        fn int(&self, i: usize) -> Result<i64, $crate::StoreError> {
            sqlx::Row::try_get(self, i).map_err($crate::StoreError::internal)
        }

        fn opt_int(&self, i: usize) -> Result<Option<i64>, $crate::StoreError> {
            sqlx::Row::try_get(self, i).map_err($crate::StoreError::internal)
        }
    };
}
pub(crate) use row_view_plain_columns;

/// Typed values out of a row, decoded by the back-end that knows how each is stored.
pub(crate) trait RowView {
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError>;
    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// A stored JSON document.
    fn doc<T: DeserializeOwned>(&self, i: usize) -> Result<Option<T>, StoreError>;
}

/// A transaction; dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub(crate) struct Tx<DB: Database>(pub(crate) sqlx::Transaction<'static, DB>);

impl<DB: Driver> Tx<DB> {
    pub(crate) async fn execute(&mut self, sql: &Sql) -> Result<u64, StoreError> {
        DB::execute_conn(&mut *self.0, sql).await
    }

    pub(crate) async fn fetch(&mut self, sql: &Sql) -> Result<Vec<DB::Row>, StoreError> {
        DB::fetch_conn(&mut *self.0, sql).await
    }

    pub(crate) async fn script(&mut self, text: &str) -> Result<(), StoreError> {
        DB::script(&mut *self.0, text).await
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await.map_err(DB::error)
    }
}
