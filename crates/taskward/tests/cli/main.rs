//! End-to-end tests of the real `taskward` binary, one test binary (link once):
//! - `serve_and_keys`: `serve` start-up, the first-start key, restart, `keys`, configuration
//!   layers;
//! - `client`: the client commands (`get`, `list`, `kill`, `watch`, `create`, `update`),
//!   `watch` under a pseudo-terminal;
//! - `deploy`: the recipes in `deploy/` validated, and the image's runtime exercised;
//! - `crash`: SIGKILL of the embedded default during a write burst loses nothing acknowledged;
//! - `sigterm_and_logs`: SIGTERM drains in-flight requests; no secret in any log line;
//! - `webhook_crash`: deliveries in flight at a SIGKILL are delivered after the restart.
//!
//! Each test owns a temp directory, a free port and its server processes (`support::Serve`:
//! the binary as a child process; in-process servers come from `taskward_testkit::TestApp`).

mod client;
mod crash;
mod deploy;
mod serve_and_keys;
mod sigterm_and_logs;
mod support;
mod webhook_crash;
