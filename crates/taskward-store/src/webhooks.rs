//! The webhook outbox as the durable tier keeps it: endpoints, each with a cursor in its
//! tenant's event log, and delivery rows. The event a write appends in its transaction (see
//! `durable::sql::append_event`) is the durable record; an endpoint's deliveries are made from
//! the log in order, claimed as they are made, as the dispatcher has room to attempt them
//! (`claim_due`), and a delivery row then keeps its attempts, retries and outcome. Delivering
//! is the server's work; this is what it claims and records.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use taskward_model::webhook::{
    Attempt, Delivery, DeliveryId, DeliveryState, EventSelection, Webhook, WebhookId,
};
use taskward_model::{StoredEvent, Tenant};
use tokio::sync::Notify;

use crate::StoreError;

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub webhook_id: WebhookId,
    pub tenant: Tenant,
    pub url: String,
    pub events: EventSelection,
    pub description: Option<String>,
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// A page of an endpoint's deliveries, newest first.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryQuery {
    /// Only deliveries older than this one.
    pub before: Option<DeliveryId>,
    pub state: Option<DeliveryState>,
    pub limit: u32,
}

/// A delivery a worker claimed: what it needs to make one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub tenant: Tenant,
    pub url: String,
    /// The secrets that sign the attempt: the current one first, then the one it replaced while
    /// that still signs.
    pub secrets: Vec<String>,
    /// The event, unless retention removed it meanwhile.
    pub event: Option<StoredEvent>,
}

/// How many new deliveries from the log one endpoint may be given.
#[derive(Debug, Clone, Copy)]
pub struct EndpointRoom {
    /// At most this many in one claim (its attempts in flight are limited to as many).
    pub per_claim: u32,
    /// None while the endpoint has this many pending deliveries (in flight or awaiting a
    /// retry): an endpoint that fails everything holds this many rows, and its backlog waits
    /// in the event log until they resolve.
    pub pending: u32,
}

/// What became of an attempt.
#[derive(Debug, Clone)]
pub enum Finished {
    Delivered,
    /// Tried again at `next`.
    Retry {
        next: DateTime<Utc>,
    },
    /// No attempt is left.
    Failed,
}

/// The outbox's size, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxStats {
    /// Pending deliveries, due or not, and events past endpoints' cursors (at most this many:
    /// an endpoint's selection may pass some over).
    pub pending: u64,
    /// When the oldest pending delivery became due (none pending: `None`).
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Endpoints and deliveries, in the durable tier.
#[async_trait]
pub trait WebhookStore: Send + Sync + std::fmt::Debug + 'static {
    async fn create_webhook(&self, w: &NewWebhook) -> Result<Webhook, StoreError>;

    /// The tenant's endpoints, newest first.
    async fn list_webhooks(&self, tenant: &Tenant) -> Result<Vec<Webhook>, StoreError>;

    async fn get_webhook(
        &self,
        tenant: &Tenant,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, StoreError>;

    /// Deletes the endpoint and its deliveries; `false` if the tenant has no such endpoint.
    async fn delete_webhook(&self, tenant: &Tenant, id: &WebhookId) -> Result<bool, StoreError>;

    /// Makes `secret` the endpoint's signing secret; the one it replaces keeps signing until
    /// `old_until`. `None` if the tenant has no such endpoint.
    async fn rotate_secret(
        &self,
        tenant: &Tenant,
        id: &WebhookId,
        secret: &str,
        old_until: DateTime<Utc>,
    ) -> Result<Option<Webhook>, StoreError>;

    /// A page of the endpoint's deliveries, newest first (one more than `limit` when more
    /// exist).
    async fn deliveries(
        &self,
        tenant: &Tenant,
        id: &WebhookId,
        q: &DeliveryQuery,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Queues a new delivery (a new id) of the event of `delivery`, due at `now`. `None` if the
    /// tenant's endpoint has no such delivery.
    async fn redeliver(
        &self,
        tenant: &Tenant,
        id: &WebhookId,
        delivery: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError>;

    /// Claims up to `limit` deliveries due at `now` for `claim` until `until`, skipping the
    /// endpoints in `skip` and disabled ones: first rows already due (retries, redeliveries;
    /// oldest due first), then, with the room left, new deliveries from the event log, as
    /// `room` allows each endpoint. Every instance claims from the same rows and cursors; a row
    /// is claimed by one claim at a time, and an event becomes an endpoint's delivery once.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        claim: i64,
        limit: u32,
        skip: &[WebhookId],
        room: EndpointRoom,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Records an attempt of a claimed delivery and what follows; `false` if the claim was
    /// lost (it outlived `until` and another worker took the row) or the endpoint is gone.
    async fn finish(
        &self,
        delivery: DeliveryId,
        claim: i64,
        attempts: &[Attempt],
        outcome: Finished,
    ) -> Result<bool, StoreError>;

    /// Makes the endpoint's deliveries waiting for a retry due at `now`: it answered again, so
    /// they need not wait out their backoff.
    async fn pull_forward(&self, id: &WebhookId, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Gives a claimed delivery back untried, due at once.
    async fn release(&self, delivery: DeliveryId, claim: i64) -> Result<(), StoreError>;

    /// Disables an endpoint (it answered 410 Gone): its pending deliveries fail, and no new
    /// ones are queued for it.
    async fn disable_webhook(&self, id: &WebhookId) -> Result<(), StoreError>;

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;

    /// Notified after a write of this process appended events, so its workers need not wait
    /// for their next poll.
    fn outbox_queued(&self) -> Arc<Notify>;
}
