-- Tasks written while the hot tier could not be (the SQLite tier can be paired with Redis);
-- replayed (invalidated there) once it is reachable, so no read returns a version older than
-- the last acknowledged write.
CREATE TABLE pending_invalidations (
    org      TEXT    NOT NULL,
    mode     TEXT    NOT NULL,
    task_id  TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (org, mode, task_id)
) WITHOUT ROWID;
