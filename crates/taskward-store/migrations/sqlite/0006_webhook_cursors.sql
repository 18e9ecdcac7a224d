-- The event log is the webhook outbox: an endpoint's deliveries are made from the tenant's
-- events in order, as the dispatcher has room to attempt them, and `queued_through` is the
-- last event id the endpoint has been given a delivery for (or passed over, when its
-- selection did not want it). Writes no longer add delivery rows in their transaction: the
-- event they add is the durable record, and an endpoint that cannot keep up costs no write
-- anything.
ALTER TABLE webhooks ADD COLUMN queued_through BIGINT NOT NULL DEFAULT 0;

-- Endpoints created before this migration had a delivery row queued with every event so far.
UPDATE webhooks SET queued_through = COALESCE(
    (SELECT c.last FROM event_counters c WHERE c.org = webhooks.org AND c.mode = webhooks.mode), 0);

-- An endpoint's pending deliveries are counted before it is given more.
CREATE INDEX webhook_deliveries_pending_by_webhook ON webhook_deliveries (webhook_id)
    WHERE state = 'pending';
