//! `spawn_app()`: a real server on a random port (`taskward_testkit::TestApp`), in the shape
//! the test binary was built for (`crate::SHAPE`), and the wire-contract assertions tests use.
//!
//! Embedded: a temp data directory. Production: the machine's Redis and PostgreSQL, each test
//! in its own namespace (a fresh PostgreSQL schema and Redis key prefix), dropped when the test
//! ends. `TASKWARD_TEST_DATABASE_URL` / `TASKWARD_TEST_REDIS_URL` point elsewhere.

use taskward_server::Settings;
pub use taskward_testkit::{
    assert_error, assert_error_shape, assert_task_shape, ids, Shape, TestApp,
};

/// A server with default settings.
pub async fn spawn_app() -> TestApp {
    TestApp::spawn(crate::SHAPE).await
}

/// A server whose settings `tweak` adjusted.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::spawn_with(crate::SHAPE, tweak).await
}
