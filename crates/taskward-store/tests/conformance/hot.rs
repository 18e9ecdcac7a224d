//! The `HotTier` story on the in-process cache and on Redis.

use std::time::Duration;

use taskward_model::Mode;

use crate::support::{acme, hots, id, task, tenant};

#[tokio::test]
async fn put_get_version_guard_and_tombstones() {
    for (name, h) in hots() {
        let hot = h.tier.as_ref();
        assert_eq!(hot.get(&acme(), &id("t1")).await.unwrap(), None, "{name}");
        assert_eq!(
            hot.get_rendered(&acme(), &id("t1")).await.unwrap(),
            None,
            "{name}"
        );
        let t2 = task("t1", 2);
        hot.put(&acme(), &t2).await.unwrap();
        assert_eq!(
            hot.get(&acme(), &id("t1")).await.unwrap(),
            Some(t2.clone()),
            "{name}: round trip"
        );
        // The rendered form is exactly what the API would send for the task.
        let rendered = hot.get_rendered(&acme(), &id("t1")).await.unwrap().unwrap();
        assert_eq!(rendered.version, 2, "{name}");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&rendered.body).unwrap(),
            serde_json::to_value(taskward_model::TaskResponse::new(t2, false)).unwrap(),
            "{name}: rendered body"
        );

        hot.put(&acme(), &task("t1", 1)).await.unwrap();
        assert_eq!(
            hot.get(&acme(), &id("t1")).await.unwrap().unwrap().version,
            2,
            "{name}: older never replaces newer"
        );
        hot.put(&acme(), &task("t1", 3)).await.unwrap();
        assert_eq!(
            hot.get(&acme(), &id("t1")).await.unwrap().unwrap().version,
            3,
            "{name}"
        );

        // Tenants are separate namespaces.
        for other in [tenant("acme", Mode::Live), tenant("globex", Mode::Test)] {
            assert_eq!(hot.get(&other, &id("t1")).await.unwrap(), None, "{name}");
        }

        // An invalidation at version 5 drops the entry and refuses anything older.
        hot.invalidate(&acme(), &id("t1"), 5).await.unwrap();
        assert_eq!(hot.get(&acme(), &id("t1")).await.unwrap(), None, "{name}");
        assert_eq!(
            hot.get_rendered(&acme(), &id("t1")).await.unwrap(),
            None,
            "{name}: a tombstone renders nothing"
        );
        hot.put(&acme(), &task("t1", 4)).await.unwrap();
        assert_eq!(
            hot.get(&acme(), &id("t1")).await.unwrap(),
            None,
            "{name}: stale re-warm refused"
        );
        hot.put(&acme(), &task("t1", 5)).await.unwrap();
        assert_eq!(
            hot.get(&acme(), &id("t1")).await.unwrap().unwrap().version,
            5,
            "{name}"
        );
        // An invalidation older than what is cached changes nothing.
        hot.invalidate(&acme(), &id("t1"), 4).await.unwrap();
        assert_eq!(
            hot.get(&acme(), &id("t1")).await.unwrap().unwrap().version,
            5,
            "{name}"
        );
        hot.ping().await.unwrap();
    }
}

/// A Redis hot tier (1 h TTL) in a namespace of its own, a raw connection to the same Redis,
/// and the key of acme's task `t1`.
async fn redis_and_raw() -> (
    taskward_testkit::RedisPrefix,
    taskward_store::RedisHot,
    redis::aio::MultiplexedConnection,
    String,
) {
    let ns = taskward_testkit::RedisPrefix::new();
    let hot = taskward_store::RedisHot::new(
        &taskward_store::RedisTarget::Server(ns.url.clone()),
        &ns.prefix,
        Duration::from_secs(3600),
        Duration::from_secs(2),
    )
    .unwrap();
    let client = redis::Client::open(ns.url.as_str()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}t:acme:test:t1", ns.prefix);
    (ns, hot, conn, key)
}

#[tokio::test]
async fn redis_entries_carry_the_ttl_and_every_write_restarts_it() {
    use taskward_store::HotTier;
    let (_ns, hot, mut conn, key) = redis_and_raw().await;
    hot.put(&acme(), &task("t1", 1)).await.unwrap();
    let pttl = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        let key = key.clone();
        async move {
            redis::cmd("PTTL")
                .arg(&key)
                .query_async::<i64>(&mut c)
                .await
                .unwrap()
        }
    };
    let first = pttl(&mut conn).await;
    assert!(first > 3_500_000 && first <= 3_600_000, "{first}");
    redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(1000)
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
    hot.put(&acme(), &task("t1", 2)).await.unwrap();
    assert!(
        pttl(&mut conn).await > 3_500_000,
        "a write restarts the TTL"
    );
}
