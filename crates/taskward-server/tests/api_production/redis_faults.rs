//! The hot tier breaks under load: a private redis-server is SIGKILLed (data gone) or
//! SIGSTOPped (a partition: alive, old data kept, no answers), while writers and readers keep
//! going through the real HTTP server over the machine's PostgreSQL, and `/readyz` keeps the
//! instance in rotation (`degraded`).

use std::time::{Duration, Instant};

use taskward_server::settings::Secret;
use taskward_testkit::RedisServer;
use tokio::time::sleep;

use crate::load::{check_all, seed, Load, DURING};
use crate::support::{spawn_app_with, TestApp};

const REDIS_TIMEOUT_MS: u64 = 100;
const LEASE_MS: u64 = 200;

async fn app_over(redis: &RedisServer) -> TestApp {
    let url = redis.url();
    spawn_app_with(|s| {
        s.redis_url = Some(Secret::new(url));
        s.hot.redis_timeout_ms = REDIS_TIMEOUT_MS;
        s.hot.trust_lease_ms = LEASE_MS;
    })
    .await
}

/// `/readyz`'s status code and `status`, its hot tier's `ok` checked against the status.
async fn readiness(app: &TestApp) -> (u16, String) {
    let res = app.get_public("/readyz").await;
    let code = res.status().as_u16();
    let body: serde_json::Value = res.json().await.expect("json");
    let status = body["status"].as_str().expect("status").to_owned();
    assert_eq!(body["tiers"]["hot"]["ok"], status != "degraded", "{body}");
    assert_eq!(body["tiers"]["durable"]["ok"], true, "{body}");
    (code, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_fails_no_request_and_loses_no_acknowledged_write() {
    let mut redis = RedisServer::start();
    let app = app_over(&redis).await;
    let ids = seed(&app, "t", 16).await;
    let load = Load::start(&app.base, &app.key, &ids, 4, 4);
    load.during(async {
        assert_eq!(readiness(&app).await, (200, "ready".into()));
        redis.kill();
        // Still in rotation: a Redis outage must not take every instance out of a balancer.
        let (status, ready) = readiness(&app).await;
        assert_eq!((status, ready.as_str()), (200, "degraded"));
        sleep(Duration::from_secs(2)).await;
        redis.restart();
    })
    .await;
    sleep(Duration::from_secs(2)).await;
    // Back to `ready` once the client has reconnected.
    let back = Instant::now() + Duration::from_secs(10);
    while readiness(&app).await != (200, "ready".into()) {
        assert!(
            Instant::now() < back,
            "/readyz still not ready after Redis came back"
        );
        sleep(Duration::from_millis(100)).await;
    }
    let book = load.stop().await;
    book.print("redis killed");
    book.assert_no_failed_or_stale_request("redis killed");

    let (tasks, extra) = check_all(&app, &book, "same instance").await;
    let second = app.second_instance().await;
    check_all(&second, &book, "second instance").await;
    // The same data behind an empty Redis: every read now comes from PostgreSQL.
    let app = app.with_empty_hot_tier().await;
    check_all(&app, &book, "empty hot tier").await;
    eprintln!("[redis killed] data check: {tasks} tasks at their exact acknowledged versions ({extra} unacknowledged keys)");
    assert_eq!(
        extra, 0,
        "no write failed, so none can have committed unacknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_partitioned_under_load_never_hangs_and_never_serves_an_old_version() {
    let redis = RedisServer::start();
    let app = app_over(&redis).await;
    // Sees none of the failure: it is idle during the partition.
    let bystander = app.second_instance().await;
    let ids = seed(&app, "t", 16).await;
    for id in &ids {
        bystander.get_ok(id).await;
    }
    let load = Load::start(&app.base, &app.key, &ids, 4, 4);
    let healed = load
        .during(async {
            redis.pause();
            sleep(Duration::from_secs(2)).await;
            redis.resume();
            Instant::now()
        })
        .await;

    // An instance that never saw the failure itself must not serve Redis's old entry either:
    // the writes it missed were acknowledged only after its lease made it look for them.
    let (mut bystander_reads, mut bystander_stale, mut last_stale) = (0u64, 0u64, None);
    while healed.elapsed() < Duration::from_secs(2) {
        for id in &ids {
            let floor = load.book.acked.lock().unwrap()[id].version;
            let t = bystander.get_ok(id).await;
            bystander_reads += 1;
            if t["version"].as_u64().unwrap_or(0) < floor {
                bystander_stale += 1;
                last_stale = Some(healed.elapsed());
            }
        }
    }
    let book = load.stop().await;
    book.print("redis partitioned");
    eprintln!(
        "[redis partitioned] bystander after healing: {bystander_reads} reads, {bystander_stale} stale, last stale at {last_stale:?} after healing"
    );
    book.assert_no_failed_or_stale_request("redis partitioned");
    let during = book
        .tally(DURING, false)
        .max_latency
        .max(book.tally(DURING, true).max_latency);
    // A request makes at most two Redis calls (read, then re-warm or write-through), each
    // bounded by the timeout, and a write whose hot write failed waits out the lease (200 ms)
    // before it is acknowledged; the slack covers PostgreSQL and a loaded 2-core machine.
    let bound = Duration::from_millis(2 * REDIS_TIMEOUT_MS + 800);
    assert!(
        during < bound,
        "a request during the partition took {during:?} (bound {bound:?})"
    );
    assert_eq!(
        bystander_stale, 0,
        "the bystander served an old version, last {last_stale:?} after healing"
    );

    let (tasks, extra) = check_all(&app, &book, "same instance").await;
    check_all(&bystander, &book, "bystander").await;
    eprintln!("[redis partitioned] data check: {tasks} tasks at their exact acknowledged versions ({extra} unacknowledged keys)");
    assert_eq!(extra, 0);
}
