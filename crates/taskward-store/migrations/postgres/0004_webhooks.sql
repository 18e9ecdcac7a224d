-- Webhooks: endpoints per tenant, and the outbox of their deliveries. A delivery row is written
-- in the transaction of its event (at least once, never lost); workers claim due rows.

CREATE TABLE webhooks (
    webhook_id            TEXT    NOT NULL PRIMARY KEY,
    org                   TEXT    NOT NULL,
    mode                  TEXT    NOT NULL,
    url                   TEXT    NOT NULL,
    events                JSONB   NOT NULL,  -- the subscription as given (JSON array)
    event_mask            BIGINT  NOT NULL,  -- one bit per event type (EventType::ALL order)
    description           TEXT,
    secret                TEXT    NOT NULL,
    -- After a rotation the old secret keeps signing until previous_until.
    previous_secret       TEXT,
    previous_until        TIMESTAMPTZ,
    disabled              BOOLEAN NOT NULL DEFAULT FALSE,
    created_at            TIMESTAMPTZ NOT NULL
);

CREATE INDEX webhooks_by_tenant ON webhooks (org, mode, created_at);

CREATE TABLE webhook_deliveries (
    delivery_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      TEXT    NOT NULL,
    org             TEXT    NOT NULL,
    mode            TEXT    NOT NULL,
    event_id        BIGINT  NOT NULL,
    task_id         TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    state           TEXT    NOT NULL,           -- pending | delivered | failed
    attempts        JSONB   NOT NULL,           -- JSON array of attempts, oldest first
    next_attempt_at TIMESTAMPTZ,                       -- NULL once delivered or failed
    -- A worker's claim: no other worker takes the row until claimed_until.
    claimed_until   TIMESTAMPTZ,
    claim           BIGINT,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, delivery_id);
CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries (org, mode, task_id);
