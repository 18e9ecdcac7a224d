//! The API over real HTTP, embedded shape: a real server on a random port over a temp data
//! directory per test. `tests/api_production` runs the same tests against Redis + PostgreSQL.
//!
//! Besides the API suite shared with `api_production` (auth … tasks): hostile input at scale
//! and limits, which need only one shape — generated requests on every route (`generated`,
//! proptest), raw-socket attacks (`attacks`, `raw`: deep JSON, huge bodies and headers,
//! slowloris, thousands of idle connections, the connection cap), the idle and header-read
//! timeouts and the drain of connections (`keep_alive`), the rate limit and request timeout
//! (`limits`), and cross-tenant probes (`security`).

mod attacks;
mod auth;
mod bad_input;
mod concurrency;
mod dashboard;
mod events;
mod generated;
mod keep_alive;
mod limits;
mod listing;
mod long_poll;
mod metrics;
mod raw;
mod security;
mod support;
mod tasks;
mod webhooks;

/// The tiers these tests run against.
const SHAPE: support::Shape = support::Shape::Embedded;
