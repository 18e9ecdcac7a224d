-- The event log: one row per accepted change of a task, written in the transaction of the
-- change, removed with the task by retention.

-- The rate estimate behind a task's derived progress (JSON {rate_per_second, updated_at}).
ALTER TABLE tasks ADD COLUMN progress TEXT;

-- The last event id given out per tenant. Taken in the writing transaction, so event ids
-- become visible in the order they were given: a reader that has seen id n has seen every
-- event before it.
CREATE TABLE event_counters (
    org  TEXT    NOT NULL,
    mode TEXT    NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (org, mode)
) WITHOUT ROWID;

CREATE TABLE task_events (
    org             TEXT    NOT NULL,
    mode            TEXT    NOT NULL,
    event_id        INTEGER NOT NULL,
    task_id         TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    -- With the task's status after the change, this says the event's type.
    previous_status TEXT,              -- NULL for task.created
    task            TEXT    NOT NULL,  -- the task after the change (JSON), for streams
    PRIMARY KEY (org, mode, event_id)
) WITHOUT ROWID;

-- History, and the one event per version (a statement run again cannot add a second).
CREATE UNIQUE INDEX task_events_by_task ON task_events (org, mode, task_id, version);

-- Counts by type and status with a task_type filter.
CREATE INDEX tasks_by_type_status ON tasks (org, mode, task_type, status);
