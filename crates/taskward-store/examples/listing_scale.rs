//! Tenant listings at scale (issue 15): loads TASKS tasks (default 10 M) over 1,000 tenants
//! into PostgreSQL schema `taskward_bench_l` (kept between runs: loading takes minutes), then
//! times each listing of SPEC through the store — the SQL the server runs — for random tenants,
//! one at a time, and prints p50/p99/max and PostgreSQL's plan for each.
//!
//!   bench/listing-scale.sh            (or: cargo run --release -p taskward-store
//!                                      --example listing_scale; TASKS=…, RUNS=…, DROP=1)
//!
//! Each tenant (`org0000`…`org0999`, mode live) gets TASKS/1000 tasks over ~5 weeks: 70 %
//! COMPLETED, 10 % FAILED, 5 % CANCELED, 7 % PROCESSING, 5 % PENDING, 3 % IN_PROGRESS; 17 task
//! types; `additional_data` `{"batch": "b<0..499>", "n": <0..96>, "kind": "nightly" | "adhoc"}`
//! (a batch value has 20 tasks in each tenant, 20,000 in all; `n` 1 % each; `kind` 90 % / 10 %).

use std::time::{Duration, Instant};

use rand::Rng;
use taskward_model::key::{Mode, OrgId};
use taskward_model::list::{Cursor, ListQuery, ListTasksBody, PagingParams};
use taskward_model::Tenant;
use taskward_store::{DurableTier, PostgresDurable, PostgresOptions};

const TENANTS: u64 = 1000;
const SCHEMA: &str = "taskward_bench_l";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tenant(i: u64) -> Tenant {
    Tenant {
        org: OrgId::parse(&format!("org{i:04}")).expect("org id"),
        mode: Mode::Live,
    }
}

/// A listing as `POST /v1/tasks/list?page_size=50` with `body` builds it.
fn query(body: serde_json::Value) -> ListQuery {
    let params = PagingParams {
        page_size: Some("50".into()),
        ..PagingParams::default()
    };
    let body: ListTasksBody = serde_json::from_value(body).expect("list body");
    ListQuery::from_body(body, &params)
        .expect("valid listing")
        .0
}

async fn load(pg: &PostgresDurable, tasks: u64) -> anyhow::Result<()> {
    let pool = pg.pool();
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(pool)
        .await?;
    if have as u64 == tasks {
        println!("{have} tasks already loaded in schema {SCHEMA}");
        return Ok(());
    }
    println!("loading {tasks} tasks over {TENANTS} tenants into schema {SCHEMA} …");
    let started = Instant::now();
    sqlx::query("TRUNCATE tasks").execute(pool).await?;
    // As a bulk load does: indexes dropped, rows in, indexes built once.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 \
         AND tablename = 'tasks' AND indexname <> 'tasks_pkey'",
    )
    .bind(SCHEMA)
    .fetch_all(pool)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {SCHEMA}.{name}"))
            .execute(pool)
            .await?;
    }
    let chunk = 1_000_000u64;
    let mut from = 0;
    while from < tasks {
        let to = (from + chunk).min(tasks);
        sqlx::query(
            "INSERT INTO tasks (org, mode, task_id, task_type, status, active, additional_data, \
             created_at, updated_at, started_at, finished_at, version, create_digest) \
             SELECT 'org' || lpad((i % 1000)::text, 4, '0'), 'live', 'task-' || i, \
                    (ARRAY['thumbnail','transcode','ingest','embed','cluster','classify', \
                      'summarize','translate','ocr','index','export','import','backup', \
                      'restore','notify','resize','train'])[1 + (i / 1000) % 17], \
                    s.status, s.status IN ('PROCESSING','PENDING','IN_PROGRESS'), \
                    jsonb_build_object('batch', 'b' || (i / 1000) % 500, 'n', i % 97, \
                                       'kind', CASE WHEN (i / 1000) % 10 = 0 THEN 'adhoc' \
                                                    ELSE 'nightly' END), \
                    c, c + interval '1 minute', c + interval '5 seconds', \
                    CASE WHEN s.status IN ('PROCESSING','PENDING','IN_PROGRESS') THEN NULL \
                         ELSE c + interval '1 minute' END, \
                    1, '' \
             FROM generate_series($1::bigint, $2::bigint - 1) AS i, \
             LATERAL (SELECT CASE WHEN ((i / 1000) * 7919 + i) % 100 < 70 THEN 'COMPLETED' \
                                   WHEN ((i / 1000) * 7919 + i) % 100 < 80 THEN 'FAILED' \
                                   WHEN ((i / 1000) * 7919 + i) % 100 < 85 THEN 'CANCELED' \
                                   WHEN ((i / 1000) * 7919 + i) % 100 < 92 THEN 'PROCESSING' \
                                   WHEN ((i / 1000) * 7919 + i) % 100 < 97 THEN 'PENDING' \
                                   ELSE 'IN_PROGRESS' END AS status) s, \
             LATERAL (SELECT timestamptz '2026-10-01 00:00:00+00' \
                             + (i * interval '300 milliseconds') AS c) t",
        )
        .bind(from as i64)
        .bind(to as i64)
        .execute(pool)
        .await?;
        from = to;
        println!("  {from} rows ({:.0} s)", started.elapsed().as_secs_f64());
    }
    for (name, def) in &indexes {
        let t = Instant::now();
        sqlx::query(def).execute(pool).await?;
        println!("  index {name} ({:.0} s)", t.elapsed().as_secs_f64());
    }
    sqlx::query("ANALYZE tasks").execute(pool).await?;
    println!("loaded in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tasks = env_num("TASKS", 10_000_000);
    let runs = env_num("RUNS", 300) as usize;
    let url = std::env::var("TASKWARD_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pg = PostgresDurable::open(&PostgresOptions {
        url,
        schema: Some(SCHEMA.into()),
        pool_size: 4,
        timeout: Duration::from_secs(60),
    })
    .await?;
    load(&pg, tasks).await?;
    let size: String = sqlx::query_scalar(
        "SELECT pg_size_pretty(pg_total_relation_size('tasks')) || ' (table ' || \
         pg_size_pretty(pg_relation_size('tasks')) || ')'",
    )
    .fetch_one(pg.pool())
    .await?;
    println!("tasks: {size}\n");

    let listings: Vec<(&str, ListQuery)> = vec![
        (
            "newest first (created_at desc)",
            query(serde_json::json!({})),
        ),
        (
            "by status PROCESSING",
            query(serde_json::json!({"status": ["PROCESSING"]})),
        ),
        (
            "by status COMPLETED",
            query(serde_json::json!({"status": ["COMPLETED"]})),
        ),
        (
            "by type transcode",
            query(serde_json::json!({"task_type": ["transcode"]})),
        ),
        ("active (GET /v1/tasks)", {
            let mut q = query(serde_json::json!({}));
            q.active_only = true;
            q
        }),
        (
            "additional_data.batch eq",
            query(serde_json::json!({"filters": {"AND": [
                {"field": "additional_data.batch", "operator": "eq", "value": "b123"}]}})),
        ),
        (
            "additional_data.batch eq, case-sens.",
            query(
                serde_json::json!({"filters": {"case_sensitive": true, "AND": [
                {"field": "additional_data.batch", "operator": "eq", "value": "b123"}]}}),
            ),
        ),
        (
            "additional_data.kind eq (90 %)",
            query(serde_json::json!({"filters": {"AND": [
                {"field": "additional_data.kind", "operator": "eq", "value": "nightly"}]}})),
        ),
        (
            "additional_data.kind eq (10 %)",
            query(serde_json::json!({"filters": {"AND": [
                {"field": "additional_data.kind", "operator": "eq", "value": "adhoc"}]}})),
        ),
        (
            "additional_data.n eq 7 (number)",
            query(serde_json::json!({"filters": {"AND": [
                {"field": "additional_data.n", "operator": "eq", "value": 7}]}})),
        ),
        (
            "created_at asc",
            query(serde_json::json!({"sort": {"field": "created_at", "direction": "asc"}})),
        ),
    ];
    let mut rng = rand::rng();
    println!(
        "{:<34} {:>8} {:>8} {:>8}   ({runs} runs, random tenants, one at a time)",
        "listing (page of 50)", "p50 ms", "p99 ms", "max ms"
    );
    let mut plans = Vec::new();
    for (name, q) in &listings {
        time(&pg, name, q, runs, &mut rng).await?;
        plans.push((name.to_string(), pg.explain_list(&tenant(7), q).await?));
        if let Some(plan) = pg.explain_list_probed(&tenant(7), q).await? {
            plans.push((format!("{name}, when the walk falls short"), plan));
        }
    }
    // Deep paging: the cursor of the task 5,000 rows into a tenant's newest-first list.
    let mut deep = query(serde_json::json!({}));
    let mut lat = Vec::new();
    for _ in 0..runs {
        let t = tenant(rng.random_range(0..TENANTS));
        let mut at = deep.clone();
        at.after = None;
        at.offset = 4_999;
        at.limit = 1;
        let page = pg.list(&t, &at).await?;
        let last = page.tasks.last().expect("a tenant has 5,000 tasks");
        deep.after = Some(Cursor::after(deep.sort, last));
        let started = Instant::now();
        let page = pg.list(&t, &deep).await?;
        lat.push(started.elapsed());
        assert_eq!(page.tasks.len(), 50);
    }
    report("cursor 5,000 rows deep", &mut lat);
    plans.push((
        "cursor 5,000 rows deep".into(),
        pg.explain_list(&tenant(7), &deep).await?,
    ));

    println!();
    for (name, plan) in plans {
        println!("-- {name}\n{plan}\n");
    }
    if std::env::var_os("DROP").is_some() {
        sqlx::query(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
            .execute(pg.pool())
            .await?;
    }
    Ok(())
}

async fn time(
    pg: &PostgresDurable,
    name: &str,
    q: &ListQuery,
    runs: usize,
    rng: &mut impl Rng,
) -> anyhow::Result<()> {
    let mut lat = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = tenant(rng.random_range(0..TENANTS));
        let started = Instant::now();
        let page = pg.list(&t, q).await?;
        lat.push(started.elapsed());
        assert!(
            !page.tasks.is_empty(),
            "{name}: an empty page measures nothing"
        );
    }
    report(name, &mut lat);
    Ok(())
}

fn report(name: &str, lat: &mut [Duration]) {
    lat.sort();
    println!(
        "{name:<34} {:>8.2} {:>8.2} {:>8.2}",
        pct(lat, 0.5),
        pct(lat, 0.99),
        pct(lat, 1.0)
    );
}
