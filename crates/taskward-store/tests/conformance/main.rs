//! One story per trait, told to every back-end: SQLite and PostgreSQL for the durable tier,
//! the in-process cache and Redis for the hot tier, every pairing for `TieredStore`; then the
//! hot-tier outages (a private redis-server killed, and paused with its data to stand for a
//! partition) and PostgreSQL's query plans.

mod durable;
mod hot;
mod outage;
mod support;
mod tiered;
