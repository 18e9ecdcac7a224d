-- The event log: one row per accepted change of a task, written in the transaction of the
-- change, removed with the task by retention.

-- The rate estimate behind a task's derived progress ({rate_per_second, updated_at}).
ALTER TABLE tasks ADD COLUMN progress JSONB;

-- The last event id given out per tenant. Its row is locked by the writing transaction until
-- it commits, so event ids become visible in the order they were given: a reader that has
-- seen id n has seen every event before it (what lets a stream resume without a gap).
CREATE TABLE event_counters (
    org  TEXT   NOT NULL,
    mode TEXT   NOT NULL,
    last BIGINT NOT NULL,
    PRIMARY KEY (org, mode)
);

CREATE TABLE task_events (
    org             TEXT   NOT NULL,
    mode            TEXT   NOT NULL,
    event_id        BIGINT NOT NULL,
    task_id         TEXT   NOT NULL,
    version         BIGINT NOT NULL,
    -- With the task's status after the change, this says the event's type.
    previous_status TEXT,             -- NULL for task.created
    task            JSONB  NOT NULL,  -- the task after the change, for streams
    PRIMARY KEY (org, mode, event_id)
);

-- History, and the one event per version (a statement run again cannot add a second).
CREATE UNIQUE INDEX task_events_by_task ON task_events (org, mode, task_id, version);

-- Counts by type and status with a task_type filter.
CREATE INDEX tasks_by_type_status ON tasks (org, mode, task_type, status);
