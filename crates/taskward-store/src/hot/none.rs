//! No hot tier: every read goes to the durable tier.
//!
//! For several instances over PostgreSQL without Redis. An in-process cache would be one per
//! instance, and an instance would go on serving its cached copy after another instance
//! acknowledged a newer write (for up to the TTL), which the read-after-write guarantee does
//! not allow; PostgreSQL's grouped reads serve GETs well enough, and Redis is the cache to add.

use async_trait::async_trait;
use taskward_model::{Task, TaskId, Tenant};

use super::{HotError, HotTier, RenderedTask};

/// A hot tier that holds nothing.
#[derive(Debug, Default)]
pub struct NoHot;

#[async_trait]
impl HotTier for NoHot {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn ping(&self) -> Result<(), HotError> {
        Ok(())
    }

    async fn get(&self, _: &Tenant, _: &TaskId) -> Result<Option<Task>, HotError> {
        Ok(None)
    }

    async fn get_rendered(&self, _: &Tenant, _: &TaskId) -> Result<Option<RenderedTask>, HotError> {
        Ok(None)
    }

    async fn put(&self, _: &Tenant, _: &Task) -> Result<(), HotError> {
        Ok(())
    }

    async fn invalidate(&self, _: &Tenant, _: &TaskId, _: u64) -> Result<(), HotError> {
        Ok(())
    }
}
