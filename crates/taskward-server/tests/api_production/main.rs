//! The same API tests as `tests/api`, unchanged, against the production shape: Redis and
//! PostgreSQL (the machine's), each test in its own schema and key prefix.

#[path = "../api/auth.rs"]
mod auth;
#[path = "../api/bad_input.rs"]
mod bad_input;
#[path = "../api/concurrency.rs"]
mod concurrency;
#[path = "../api/listing.rs"]
mod listing;
#[path = "../api/long_poll.rs"]
mod long_poll;
#[path = "../api/support.rs"]
mod support;
#[path = "../api/tasks.rs"]
mod tasks;

/// The tiers these tests run against.
const SHAPE: support::Shape = support::Shape::Production;
