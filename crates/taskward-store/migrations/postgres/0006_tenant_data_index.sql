-- Equality filters on additional_data paths within one tenant, for values few of its tasks
-- have. A listing walks the tenant's tasks in listing order testing each one's data, which is
-- fast when the value is common and reads the whole list when it is rare (110 ms p99 at
-- 10,000 tasks per tenant); the GIN index of 0001 held every tenant's tasks, so the planner
-- left it alone. This one indexes each task's data keyed by its tenant and lowercased: a
-- probe ({"t": tenant, "d": {path: lowercased value}}) intersects the tenant's posting list
-- with the value's, and the exact condition then rechecks the few candidates. The store uses
-- it when a bounded walk in listing order found too few matches (src/durable/sql/mod.rs).
-- The expression must stay identical to tenant_data() in src/durable/sql/filter.rs, or the
-- planner will not match it. On a large existing table, create it beforehand with
-- CREATE INDEX CONCURRENTLY under this name: this file then skips it.
CREATE INDEX IF NOT EXISTS tasks_data_by_tenant ON tasks USING GIN (
    (CAST('{"t":"' || org || ':' || mode || '","d":' || lower(CAST(additional_data AS TEXT)) || '}' AS jsonb))
    jsonb_path_ops
);
DROP INDEX IF EXISTS tasks_data;
