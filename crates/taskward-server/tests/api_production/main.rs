//! The same API tests as `tests/api`, unchanged, against the production shape: Redis and
//! PostgreSQL (the machine's), each test in its own schema and key prefix.
//!
//! Also faults injected for real under load, which only the production shape has: a private
//! redis-server killed or partitioned (`redis_faults`), a private PostgreSQL killed with
//! SIGKILL and restarted (`postgres_killed`), writers racing on one task (`races`), over the
//! load driver and bookkeeping in `load`. They print what clients saw: run with
//! `--no-capture` to see the figures. `stale_reads` checks the read-after-write guarantee across
//! three instances under each fault; `balanced` puts three behind HAProxy for a rolling
//! restart under load; `redis_cluster` runs the hot tier on a Redis Cluster and fails a
//! master over under load. (The crash of the embedded binary is in
//! `crates/taskward/tests/cli/crash.rs`.)

#[path = "../api/auth.rs"]
mod auth;
#[path = "../api/bad_input.rs"]
mod bad_input;
mod balanced;
#[path = "../api/concurrency.rs"]
mod concurrency;
#[path = "../api/events.rs"]
mod events;
#[path = "../api/listing.rs"]
mod listing;
mod load;
#[path = "../api/long_poll.rs"]
mod long_poll;
#[path = "../api/metrics.rs"]
mod metrics;
mod postgres_killed;
mod races;
mod redis_cluster;
mod redis_faults;
mod stale_reads;
#[path = "../api/support.rs"]
mod support;
#[path = "../api/tasks.rs"]
mod tasks;
#[path = "../api/webhooks.rs"]
mod webhooks;
mod webhooks_instances;

/// The tiers these tests run against.
const SHAPE: support::Shape = support::Shape::Production;
