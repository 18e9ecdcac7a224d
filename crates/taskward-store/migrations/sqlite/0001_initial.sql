-- Tasks, API keys and one-time markers of the embedded durable tier.
-- Released migrations are never edited; add a new numbered file instead.

CREATE TABLE tasks (
    org             TEXT    NOT NULL,
    mode            TEXT    NOT NULL,
    task_id         TEXT    NOT NULL,
    task_type       TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    -- 1 while the status is not terminal: lets GET /v1/tasks read an index, not filter rows.
    active          INTEGER NOT NULL,
    inputs          TEXT,              -- JSON array or NULL
    outputs         TEXT,              -- JSON array or NULL
    additional_data TEXT,              -- JSON object or NULL
    description     TEXT,
    -- Canonical RFC 3339 text (fixed width, UTC), so text order is time order.
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    version         INTEGER NOT NULL,
    -- SHA-256 of the create request's content: tells an idempotent retry from a conflict.
    create_digest   TEXT    NOT NULL,
    PRIMARY KEY (org, mode, task_id)
) WITHOUT ROWID;

-- Every listing is per tenant; task_id ends each index so keyset cursors are served by it.
CREATE INDEX tasks_by_created  ON tasks (org, mode, created_at, task_id);
CREATE INDEX tasks_by_updated  ON tasks (org, mode, updated_at, task_id);
CREATE INDEX tasks_active      ON tasks (org, mode, active, created_at, task_id);
CREATE INDEX tasks_by_status   ON tasks (org, mode, status, created_at, task_id);
CREATE INDEX tasks_by_type     ON tasks (org, mode, task_type, created_at, task_id);
-- Retention sweeps terminal tasks by age.
CREATE INDEX tasks_by_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE api_keys (
    key_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,   -- hex SHA-256; the key itself is never stored
    org        TEXT NOT NULL,
    mode       TEXT NOT NULL,
    scopes     TEXT NOT NULL,          -- comma-separated
    hint       TEXT NOT NULL,          -- sk_test_AbCd…
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- One-time events, e.g. the first start's key, so they happen once per data directory.
CREATE TABLE markers (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
