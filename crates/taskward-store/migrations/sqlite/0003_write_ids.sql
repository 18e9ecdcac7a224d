-- The id of the last write of each task: a compare-and-set re-run after its connection died
-- recognises its own commit by it. NULL for tasks last written before this migration.
ALTER TABLE tasks ADD COLUMN write_id INTEGER;
