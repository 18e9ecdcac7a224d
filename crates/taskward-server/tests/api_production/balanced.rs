//! Three instances behind a real HAProxy (health checks on `/readyz`), as an operator runs
//! them, over one Redis and over a Redis Cluster: a rolling restart under load — each instance
//! in turn stopped as on SIGTERM (drain delay, then drain) and started again on its address —
//! fails no request, serves no stale read and loses no acknowledged write; a long-poll sent
//! through the balancer is woken by a write sent through it to another instance; a revoked key
//! is refused by every instance once the key cache lifetime (5 s) has passed.

use std::time::{Duration, Instant};

use serde_json::json;
use taskward_server::settings::SecretList;
use taskward_testkit::{Haproxy, RedisCluster};
use tokio::time::sleep;

use crate::load::{check_all, seed, Load, Targets};
use crate::support::{spawn_app_with, TestApp};

/// Longer than HAProxy's two failed checks, so it stops sending before the listener closes.
const DRAIN_DELAY_SECONDS: u64 = 1;

/// Three instances over the machine's Redis, or over `cluster`, behind HAProxy.
async fn three_behind_haproxy(cluster: Option<&RedisCluster>) -> ([TestApp; 3], Haproxy) {
    let nodes = cluster.map(RedisCluster::nodes);
    let a = spawn_app_with(|s| {
        s.server.drain_delay_seconds = DRAIN_DELAY_SECONDS;
        if let Some(nodes) = nodes {
            s.redis_url = None;
            s.redis_cluster_nodes = Some(SecretList::new(nodes));
        }
    })
    .await;
    let b = a.second_instance().await;
    let c = a.second_instance().await;
    let lb = Haproxy::start(&[a.addr, b.addr, c.addr]);
    ([a, b, c], lb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_haproxy_fails_no_request_and_serves_no_stale_read() {
    Box::pin(rolling_restart(None, "rolling restart")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_over_a_redis_cluster_fails_no_request_and_serves_no_stale_read() {
    let cluster = RedisCluster::start();
    Box::pin(rolling_restart(Some(&cluster), "rolling restart, cluster")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_through_the_balancer_is_woken_by_a_write_through_it() {
    long_poll_across(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_through_the_balancer_over_a_redis_cluster_is_woken_by_a_write() {
    let cluster = RedisCluster::start();
    long_poll_across(Some(&cluster)).await;
}

async fn rolling_restart(cluster: Option<&RedisCluster>, label: &str) {
    assert!(Duration::from_secs(DRAIN_DELAY_SECONDS) > Haproxy::CHECK_INTERVAL * 3);
    let ([a, b, c], lb) = three_behind_haproxy(cluster).await;
    let ids = seed(&a, "t", 12).await;
    // Every write and read through the balancer; each write read straight back, most often
    // from another instance (round robin).
    let targets = Targets {
        writes: lb.url(),
        reads: vec![lb.url()],
        read_after_write: true,
        if_match: true,
    };
    let load = Load::start_with(&targets, &a.key, &ids, 4, 4);
    let restarted = load
        .during(async {
            let mut up = Vec::new();
            for app in [a, b, c] {
                let started = Instant::now();
                let app = app.restart_in_place().await;
                eprintln!(
                    "[{label}] instance on {} back after {:?}",
                    app.addr,
                    started.elapsed()
                );
                // Back in rotation after two good checks.
                sleep(Haproxy::CHECK_INTERVAL * 4).await;
                up.push(app);
            }
            up
        })
        .await;
    sleep(Duration::from_millis(500)).await;
    let book = load.stop().await;
    book.print(label);
    book.assert_no_failed_or_stale_request(label);
    for app in &restarted {
        check_all(app, &book, label).await;
    }
}

async fn long_poll_across(cluster: Option<&RedisCluster>) {
    let ([a, _b, _c], lb) = three_behind_haproxy(cluster).await;
    a.create_processing("watched").await;
    let client = reqwest::Client::new();
    // Three long-polls: round robin puts them on three instances, so the write (the fourth
    // request) lands on an instance that is not the one of at least two of them.
    let polls: Vec<_> = (0..3)
        .map(|_| {
            let req = client
                .get(format!("{}/v1/tasks/watched?wait=20", lb.url()))
                .bearer_auth(&a.key)
                .header("If-None-Match", "\"1\"");
            tokio::spawn(async move {
                let sent = Instant::now();
                let res = req.send().await.expect("long-poll answered");
                (
                    res.status(),
                    res.json::<serde_json::Value>().await.unwrap(),
                    sent.elapsed(),
                )
            })
        })
        .collect();
    sleep(Duration::from_millis(300)).await;
    let res = client
        .patch(format!("{}/v1/tasks/watched", lb.url()))
        .bearer_auth(&a.key)
        .json(&json!({"status": "COMPLETED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for p in polls {
        let (status, task, waited) = p.await.unwrap();
        assert_eq!(status, 200, "{task}");
        assert_eq!(task["status"], "COMPLETED");
        // Woken by the write, not by the end of the wait.
        assert!(waited < Duration::from_secs(15), "waited {waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_by_every_instance_once_the_key_cache_lifetime_has_passed() {
    let ([a, b, c], lb) = three_behind_haproxy(None).await;
    let key = a
        .key_for("revoking", taskward_model::Mode::Live, "read,write")
        .await;
    let client = reqwest::Client::new();
    let status = |url: String| {
        let req = client.get(url).bearer_auth(&key);
        async move { req.send().await.expect("answered").status().as_u16() }
    };
    // Each instance has the key in its cache (404: the key is good, the task unknown).
    for app in [&a, &b, &c] {
        assert_eq!(status(app.url("/v1/tasks/none")).await, 404);
    }
    let store = taskward_server::open_store(&a.settings).await.unwrap();
    assert!(store.keys.revoke(&key).await.unwrap());
    let revoked = Instant::now();
    // SPEC: refused by every instance within 5 s of the revocation (auth.key_cache_ttl_ms).
    let ttl = Duration::from_millis(a.settings.auth.key_cache_ttl_ms);
    assert!(ttl <= Duration::from_secs(5));
    tokio::time::sleep_until((revoked + ttl + Duration::from_millis(50)).into()).await;
    for app in [&a, &b, &c] {
        assert_eq!(status(app.url("/v1/tasks/none")).await, 401, "{}", app.base);
    }
    for _ in 0..6 {
        assert_eq!(status(format!("{}/v1/tasks/none", lb.url())).await, 401);
    }
}
