//! Hostile input at scale, limits and security, over real HTTP against a real server (embedded
//! shape): generated requests on every route (proptest), raw-socket attacks (deep JSON, huge
//! bodies and headers, slowloris, thousands of idle connections, the connection cap), the
//! rate limit and request timeout, and cross-tenant probes. Shares `tests/api/support.rs`.

mod attacks;
mod generated;
mod limits;
mod raw;
mod security;
// Shared with the API suites; not every helper is used here.
#[allow(dead_code)]
#[path = "../api/support.rs"]
mod support;

/// The tiers these tests run against.
const SHAPE: support::Shape = support::Shape::Embedded;
