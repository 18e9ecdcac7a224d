-- Tasks, API keys, one-time markers and pending hot-tier invalidations of the PostgreSQL
-- durable tier. Released migrations are never edited; add a new numbered file instead.

CREATE TABLE tasks (
    org             TEXT        NOT NULL,
    mode            TEXT        NOT NULL,
    task_id         TEXT        NOT NULL,
    task_type       TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    active          BOOLEAN     NOT NULL,   -- status is not terminal
    -- The document's free-form parts, as JSONB; the rest are typed columns below.
    inputs          JSONB,
    outputs         JSONB,
    additional_data JSONB,
    description     TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    version         BIGINT      NOT NULL,
    -- SHA-256 of the create request's content: tells an idempotent retry from a conflict.
    create_digest   TEXT        NOT NULL,
    PRIMARY KEY (org, mode, task_id)
);

-- Every listing is per tenant; task_id ends each index so keyset cursors are served by it.
CREATE INDEX tasks_by_created  ON tasks (org, mode, created_at, task_id);
CREATE INDEX tasks_by_updated  ON tasks (org, mode, updated_at, task_id);
CREATE INDEX tasks_active      ON tasks (org, mode, created_at, task_id) WHERE active;
CREATE INDEX tasks_by_status   ON tasks (org, mode, status, created_at, task_id);
CREATE INDEX tasks_by_type     ON tasks (org, mode, task_type, created_at, task_id);
-- Retention sweeps terminal tasks by age.
CREATE INDEX tasks_by_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
-- Exact-match filters on additional_data paths compile to containment (@>), served here.
CREATE INDEX tasks_data        ON tasks USING GIN (additional_data jsonb_path_ops);

CREATE TABLE api_keys (
    key_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,   -- hex SHA-256; the key itself is never stored
    org        TEXT NOT NULL,
    mode       TEXT NOT NULL,
    scopes     TEXT NOT NULL,          -- comma-separated
    hint       TEXT NOT NULL,          -- sk_test_AbCd…
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE TABLE markers (
    name       TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);

-- Tasks written while the hot tier could not be; replayed (invalidated there) once it is
-- reachable, so no read returns a version older than the last acknowledged write.
CREATE TABLE pending_invalidations (
    org      TEXT   NOT NULL,
    mode     TEXT   NOT NULL,
    task_id  TEXT   NOT NULL,
    version  BIGINT NOT NULL,
    PRIMARY KEY (org, mode, task_id)
);
