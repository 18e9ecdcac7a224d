//! Hot-tier outages with a private redis-server: killed (data gone) and paused with its data
//! (a partition). Writes keep succeeding; afterwards no read returns a version older than the
//! last acknowledged write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use taskward_model::{Task, UpdateTask};
use taskward_store::{HotTier, RedisHot, RedisTarget, Source, TieredStore};
use taskward_testkit::RedisServer;

use crate::support::{acme, create_t1, id, sqlite, Durable};

const TIMEOUT: Duration = Duration::from_millis(200);

async fn store_over(server: &RedisServer, durable: &Durable) -> (TieredStore, Arc<RedisHot>) {
    let hot = Arc::new(
        RedisHot::new(
            &RedisTarget::Server(server.url()),
            "tw:",
            Duration::from_secs(3600),
            TIMEOUT,
        )
        .unwrap(),
    );
    let store = TieredStore::new(hot.clone(), durable.tier.clone())
        .await
        .unwrap();
    (store, hot)
}

async fn bump(store: &TieredStore, n: u64) -> Task {
    let update: UpdateTask =
        serde_json::from_value(json!({"status": "PROCESSING", "additional_data": {"n": n}}))
            .unwrap();
    store
        .update(&acme(), &id("t1"), &update, None)
        .await
        .expect("writes succeed during the outage")
}

/// Redis still holds `t1` at a version from `first` up to, but not including, `last`.
async fn assert_redis_kept_a_copy_older_than_the_last_write(
    hot: &RedisHot,
    first: &Task,
    last: &Task,
) {
    let stale = hot
        .get(&acme(), &id("t1"))
        .await
        .unwrap()
        .expect("Redis kept the task");
    assert!(
        stale.version < last.version && stale.version >= first.version,
        "{stale:?}"
    );
}

#[tokio::test]
async fn a_killed_redis_loses_nothing_acknowledged() {
    let mut server = RedisServer::start();
    let durable = sqlite().await;
    let (store, _) = store_over(&server, &durable).await;
    create_t1(&store).await;
    assert_eq!(store.get(&acme(), &id("t1")).await.unwrap().1, Source::Hot);

    server.kill();
    bump(&store, 1).await;
    let last = bump(&store, 2).await;
    assert!(store.hot_suspect());
    assert_eq!(
        store.get(&acme(), &id("t1")).await.unwrap(),
        (last.clone(), Source::Durable)
    );
    assert!(
        store.replay_pending().await.is_err(),
        "cannot replay while Redis is down"
    );

    server.restart();
    store.replay_pending().await.unwrap();
    assert!(!store.hot_suspect());
    assert_eq!(store.get(&acme(), &id("t1")).await.unwrap().0, last);
    assert_eq!(
        store.get(&acme(), &id("t1")).await.unwrap(),
        (last, Source::Hot),
        "re-warmed"
    );
}

#[tokio::test]
async fn a_partition_that_kept_old_data_never_serves_it_after_healing() {
    let server = RedisServer::start();
    let durable = sqlite().await;
    let (store, hot) = store_over(&server, &durable).await;
    let v1 = create_t1(&store).await.task;

    server.pause();
    let started = Instant::now();
    let v2 = bump(&store, 1).await;
    let v3 = bump(&store, 2).await;
    let read = store.get(&acme(), &id("t1")).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "requests during the partition must not hang: {:?}",
        started.elapsed()
    );
    assert_eq!(read, (v3.clone(), Source::Durable));
    assert!(v2.version < v3.version);

    server.resume();
    // Redis kept its old data through the partition (and may have applied the write that timed
    // out, late): either way it holds a version older than the last acknowledged one.
    assert_redis_kept_a_copy_older_than_the_last_write(&hot, &v1, &v3).await;
    assert_eq!(
        store.get(&acme(), &id("t1")).await.unwrap(),
        (v3.clone(), Source::Durable),
        "suspect until replayed"
    );
    store.replay_pending().await.unwrap();
    assert_eq!(
        hot.get(&acme(), &id("t1")).await.unwrap(),
        None,
        "invalidated"
    );
    assert_eq!(store.get(&acme(), &id("t1")).await.unwrap().0, v3);
    assert_eq!(hot.get(&acme(), &id("t1")).await.unwrap(), Some(v3));
}

#[tokio::test]
async fn pending_invalidations_survive_a_restart_of_the_instance() {
    let server = RedisServer::start();
    let durable = sqlite().await;
    let (store, hot) = store_over(&server, &durable).await;
    let v1 = create_t1(&store).await.task;
    server.pause();
    bump(&store, 1).await;
    let v3 = bump(&store, 2).await;
    drop(store);
    server.resume();

    // A new instance over the same durable tier starts suspect: Redis holds an older version.
    let (store, _) = store_over(&server, &durable).await;
    assert!(store.hot_suspect());
    assert_redis_kept_a_copy_older_than_the_last_write(&hot, &v1, &v3).await;
    assert_eq!(
        store.get(&acme(), &id("t1")).await.unwrap(),
        (v3.clone(), Source::Durable)
    );
    store.replay_pending().await.unwrap();
    assert!(!store.hot_suspect());
    assert_eq!(store.get(&acme(), &id("t1")).await.unwrap().0, v3);
}
