//! The API over real HTTP: a real server on a random port over a temp data directory per test.

mod auth;
mod bad_input;
mod concurrency;
mod listing;
mod support;
mod tasks;
