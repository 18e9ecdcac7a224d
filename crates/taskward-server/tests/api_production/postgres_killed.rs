//! The durable tier crashes under load: a private PostgreSQL (fsync on) is SIGKILLed with all
//! its backends and restarted (crash recovery), while writers and readers keep going through
//! the real HTTP server over the machine's Redis.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use taskward_server::settings::Secret;
use taskward_server::Settings;
use taskward_testkit::PostgresServer;
use tokio::time::sleep;

use crate::load::{check_all, seed, Load, AFTER, BEFORE, DURING};
use crate::support::{assert_error, spawn_app_with, TestApp};

const DURABLE_TIMEOUT_MS: u64 = 1_000;

/// A server whose durable tier is the private PostgreSQL `pg`, waiting on it at most
/// [`DURABLE_TIMEOUT_MS`]; `tweak` adjusts the rest.
async fn app_over(pg: &PostgresServer, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let url = pg.url();
    spawn_app_with(|s| {
        s.database_url = Some(Secret::new(url));
        s.durable.timeout_ms = DURABLE_TIMEOUT_MS;
        tweak(s);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_under_load_keeps_cached_reads_refuses_writes_and_loses_nothing() {
    let mut pg = PostgresServer::start();
    let app = app_over(&pg, |s| {
        s.hot.trust_lease_ms = 200;
        // Shorter than the outage, so the key must be trusted past its cache lifetime.
        s.auth.key_cache_ttl_ms = 300;
    })
    .await;
    let ids = seed(&app, "t", 16).await;
    let load = Load::start(&app.base, &app.key, &ids, 4, 4);
    load.during(async {
        pg.kill();
        sleep(Duration::from_secs(3)).await;
        // A create while it is down: refused in the error shape, not hung.
        let res = app
            .create(
                &app.key,
                json!({"task_id": "during", "task_type": "thumbnail"}),
            )
            .await;
        assert_error(res, StatusCode::SERVICE_UNAVAILABLE).await;
        // Out of rotation: it can serve cached reads, but no write.
        let res = app.get_public("/readyz").await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let ready: serde_json::Value = res.json().await.unwrap();
        assert_eq!(ready["status"], "unavailable", "{ready}");
        assert_eq!(ready["tiers"]["durable"]["ok"], false, "{ready}");
        pg.restart();
    })
    .await;
    sleep(Duration::from_secs(2)).await;
    let book = load.stop().await;
    book.print("postgres killed");

    // Bounded by the durable timeout twice at worst: the key lookup (once per key cache TTL,
    // then the cached key is trusted) and the write itself.
    let bound = Duration::from_millis(2 * DURABLE_TIMEOUT_MS + 1_000);
    for phase in [BEFORE, DURING, AFTER] {
        let r = book.tally(phase, false);
        assert_eq!(
            r.failed + r.stale,
            0,
            "phase {phase}: cached reads keep working: {:?}",
            r.samples
        );
        assert!(
            r.max_latency < bound,
            "phase {phase}: a read took {:?}",
            r.max_latency
        );
    }
    for phase in [BEFORE, AFTER] {
        let w = book.tally(phase, true);
        assert_eq!(
            w.failed, 0,
            "phase {phase}: writes succeed: {:?}",
            w.samples
        );
        assert!(w.ok > 0);
    }
    let w = book.tally(DURING, true);
    assert!(
        w.failed > 0,
        "writes were refused while PostgreSQL was down"
    );
    assert_eq!(
        w.unavailable, w.failed,
        "every refused write is a 503 in the error shape: {:?}",
        w.samples
    );
    assert!(
        w.max_latency < bound,
        "a refused write took {:?} (bound {bound:?})",
        w.max_latency
    );

    // One more acknowledged write per task, so its exact last version is known even where a
    // refused write committed after all (its key is then stored, and counted).
    for id in &ids {
        let res = app
            .patch(&app.key, id, json!({"additional_data": {"kfinal": true}}))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let t: serde_json::Value = res.json().await.expect("json");
        let mut acked = book.acked.lock().unwrap();
        let a = acked.get_mut(id).expect("known");
        a.version = t["version"].as_u64().expect("version");
        a.keys.push("kfinal".into());
    }
    let (tasks, extra) = check_all(&app, &book, "after restart").await;
    let second = app.second_instance().await;
    check_all(&second, &book, "second instance").await;
    eprintln!("[postgres killed] data check: {tasks} tasks with every acknowledged write at its exact version ({extra} refused writes had committed)");
}

/// After a restart nobody noticed (no request while it was down), the pool still holds
/// connections to the dead server; the first writes must not pay for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_succeed_at_once_after_a_quiet_postgres_restart() {
    let mut pg = PostgresServer::start();
    let app = app_over(&pg, |_| {}).await;
    let ids = seed(&app, "q", 8).await;
    // Fill the pool: concurrent writes each hold a connection.
    let warm = ids
        .iter()
        .map(|id| app.patch(&app.key, id, json!({"additional_data": {"warm": 1}})));
    for res in futures_util::future::join_all(warm).await {
        assert_eq!(res.status(), StatusCode::OK);
    }
    pg.restart();

    let writes = ids
        .iter()
        .map(|id| app.patch(&app.key, id, json!({"additional_data": {"after": 1}})));
    let results = futures_util::future::join_all(writes).await;
    let mut failed = Vec::new();
    for (id, res) in ids.iter().zip(results) {
        if res.status() != StatusCode::OK {
            failed.push(format!(
                "{id}: {} {}",
                res.status(),
                res.text().await.unwrap_or_default()
            ));
        }
    }
    eprintln!(
        "[postgres quiet restart] {} of {} first writes failed: {failed:?}",
        failed.len(),
        ids.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    for id in &ids {
        assert_eq!(app.get_ok(id).await["version"], 3, "{id}");
    }
}
