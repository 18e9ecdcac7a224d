//! Webhooks (SPEC: Webhooks): the management API (`api`), where deliveries may go (`guard`),
//! Standard Webhooks signatures (`sign`) and the dispatcher that makes the attempts
//! (`deliver`). The outbox itself is the store's (`taskward_store::webhooks`): a delivery row
//! is written in the transaction of its event, so an acknowledged change is never without its
//! deliveries, and delivering never holds up a request.

pub mod api;
pub mod deliver;
pub mod guard;
pub mod sign;

pub use deliver::{Dispatcher, WebhookMetrics};
