//! The API over real HTTP, embedded shape: a real server on a random port over a temp data
//! directory per test. `tests/api_production` runs the same tests against Redis + PostgreSQL.

mod auth;
mod bad_input;
mod concurrency;
mod listing;
mod long_poll;
mod support;
mod tasks;

/// The tiers these tests run against.
const SHAPE: support::Shape = support::Shape::Embedded;
