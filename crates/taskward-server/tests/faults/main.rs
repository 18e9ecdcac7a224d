//! Faults injected for real under load, against the real HTTP server: a private redis-server
//! killed or partitioned (SIGSTOP), a private PostgreSQL killed with SIGKILL and restarted,
//! and writers racing on one task. Each test checks what clients saw while it happened
//! (failures, stale reads, latency) and, afterwards, that every acknowledged write is there
//! with its exact version. The figures are printed: run with `--no-capture` to see them.
//!
//! The crash of the embedded binary is in `crates/taskward/tests/crash.rs`.

mod load;
mod postgres_killed;
mod races;
mod redis_faults;
#[allow(dead_code)] // shared with the API suites; this binary uses part of it
#[path = "../api/support.rs"]
mod support;

/// `spawn_app` gives each test a PostgreSQL schema and Redis prefix of its own; tests point
/// either tier at a private server to break.
const SHAPE: support::Shape = support::Shape::Production;
