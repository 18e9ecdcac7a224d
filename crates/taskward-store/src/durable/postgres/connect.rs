//! Reaching PostgreSQL: connection settings, the schema, and the pools.
//!
//! Every connection gets `statement_timeout` and `lock_timeout` equal to the durable timeout,
//! so a stalled database turns into a 503 instead of a hung request. Four pools, so that no
//! kind of work can starve another: requests (`durable.pool_size`), the group committers and
//! group readers (one connection per worker, held), and `LISTEN` (one).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::errors::classify;
use crate::StoreError;

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:pass@host:port/db`
    pub url: String,
    /// Schema to use (created if missing); `None` keeps the server's `search_path`.
    pub schema: Option<String>,
    /// Largest number of connections serving requests.
    pub pool_size: u32,
    /// Wait for a connection, a lock or a statement before giving up with 503.
    pub timeout: Duration,
}

/// The pools of one instance, and its change channel.
#[derive(Debug)]
pub(crate) struct Pools {
    pub request: PgPool,
    pub listen: PgPool,
    pub committers: PgPool,
    pub readers: PgPool,
    /// `LISTEN/NOTIFY` channel of this schema's task changes.
    pub channel: Arc<str>,
}

/// Connects the request pool (creating the schema first if asked) and prepares the others,
/// which connect when first used.
pub(crate) async fn connect(
    opts: &PostgresOptions,
    committers: u32,
    readers: u32,
) -> Result<Pools, StoreError> {
    let base: PgConnectOptions = opts.url.parse().map_err(|e: sqlx::Error| {
        StoreError::Config(format!("the PostgreSQL URL does not parse: {e}"))
    })?;
    let ms = opts.timeout.as_millis().to_string();
    let mut settings = vec![("statement_timeout", ms.clone()), ("lock_timeout", ms)];
    if let Some(schema) = &opts.schema {
        check_schema_name(schema)?;
        settings.push(("search_path", schema.clone()));
    }
    let connect = base.clone().options(settings);
    if let Some(schema) = &opts.schema {
        // Before the pools exist: their connections' search_path names this schema.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(opts.timeout)
            .connect_with(base)
            .await
            .map_err(classify)?;
        sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&pool)
            .await
            .map_err(classify)?;
        pool.close().await;
    }
    let request = PgPoolOptions::new()
        // No ping before every use: it doubles the round trips of every query. A statement
        // that meets a connection that died is run again on another (`errors::retrying`).
        .test_before_acquire(false)
        .max_connections(opts.pool_size.max(1))
        .acquire_timeout(opts.timeout)
        .connect_with(connect.clone())
        .await
        .map_err(classify)?;
    // Checked before use: these are taken rarely (once per worker, or per LISTEN reconnect),
    // and after a PostgreSQL restart they reconnect at once instead of failing on each stale
    // connection in turn.
    let checked = |n: u32| {
        PgPoolOptions::new()
            .max_connections(n)
            .test_before_acquire(true)
            .acquire_timeout(opts.timeout)
            .connect_lazy_with(connect.clone())
    };
    // Channels are database-wide: one per schema keeps instances of separate deployments
    // (and parallel tests) sharing a database out of each other's wake-ups.
    let channel: Arc<str> = match &opts.schema {
        Some(schema) => format!("taskward_changes:{schema}").into(),
        None => "taskward_changes".into(),
    };
    Ok(Pools {
        request,
        listen: checked(1),
        committers: checked(committers),
        readers: checked(readers),
        channel,
    })
}

/// Schema names are spliced into DDL, so they are held to a safe identifier shape.
fn check_schema_name(s: &str) -> Result<(), StoreError> {
    // 46: the change channel `taskward_changes:<schema>` must fit PostgreSQL's 63-byte names.
    let ok = !s.is_empty()
        && s.len() <= 46
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(
            "the PostgreSQL schema (durable.schema) must match [a-z_][a-z0-9_]{0,45}".into(),
        ))
    }
}
