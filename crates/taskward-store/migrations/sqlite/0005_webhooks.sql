-- Webhooks: endpoints per tenant, and the outbox of their deliveries. A delivery row is written
-- in the transaction of its event (at least once, never lost); workers claim due rows.

CREATE TABLE webhooks (
    webhook_id            TEXT    NOT NULL PRIMARY KEY,
    org                   TEXT    NOT NULL,
    mode                  TEXT    NOT NULL,
    url                   TEXT    NOT NULL,
    events                TEXT    NOT NULL,  -- the subscription as given (JSON array)
    event_mask            INTEGER NOT NULL,  -- one bit per event type (EventType::ALL order)
    description           TEXT,
    secret                TEXT    NOT NULL,
    -- After a rotation the old secret keeps signing until previous_until.
    previous_secret       TEXT,
    previous_until        TEXT,
    disabled              INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT    NOT NULL
);

CREATE INDEX webhooks_by_tenant ON webhooks (org, mode, created_at);

CREATE TABLE webhook_deliveries (
    delivery_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT    NOT NULL,
    org             TEXT    NOT NULL,
    mode            TEXT    NOT NULL,
    event_id        INTEGER NOT NULL,
    task_id         TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    state           TEXT    NOT NULL,           -- pending | delivered | failed
    attempts        TEXT    NOT NULL,           -- JSON array of attempts, oldest first
    next_attempt_at TEXT,                       -- NULL once delivered or failed
    -- A worker's claim: no other worker takes the row until claimed_until.
    claimed_until   TEXT,
    claim           INTEGER,
    created_at      TEXT    NOT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, delivery_id);
CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries (org, mode, task_id);
