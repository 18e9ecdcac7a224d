//! `TieredStore` over every pairing: memory or Redis over SQLite or PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use taskward_model::list::{ListQuery, Paging, PagingParams, Sort};
use taskward_model::{TaskStatus, UpdateTask};
use taskward_store::{HotTier, Killed, MemoryHot, RenderedTask, Source, StoreError, TieredStore};

use crate::support::{acme, create_t1, id, memory, postgres, redis, sqlite};

#[tokio::test]
async fn the_same_story_on_every_pairing() {
    let ttl = Duration::from_secs(60);
    let pairings = vec![
        ("memory+sqlite", memory(ttl), sqlite().await),
        ("memory+postgres", memory(ttl), postgres().await),
        ("redis+sqlite", redis(ttl), sqlite().await),
        ("redis+postgres", redis(ttl), postgres().await),
    ];
    for (name, hot, durable) in pairings {
        let store = TieredStore::new(hot.tier.clone(), durable.tier.clone())
            .await
            .unwrap();
        let created = create_t1(&store).await;
        assert!(created.new, "{name}");
        let (got, source) = store.get(&acme(), &id("t1")).await.unwrap();
        assert_eq!(
            (got, source),
            (created.task.clone(), Source::Hot),
            "{name}: written through"
        );

        let update: UpdateTask =
            serde_json::from_value(json!({"status": "PROCESSING", "additional_data": {"p": 1}}))
                .unwrap();
        let v2 = store
            .update(&acme(), &id("t1"), &update, Some(1))
            .await
            .unwrap();
        assert_eq!(v2.version, 2, "{name}");
        assert!(
            matches!(
                store.update(&acme(), &id("t1"), &update, Some(1)).await,
                Err(StoreError::VersionMismatch {
                    expected: 1,
                    current: 2
                })
            ),
            "{name}"
        );
        assert_eq!(store.get(&acme(), &id("t1")).await.unwrap().0, v2, "{name}");
        let rendered = store.get_rendered(&acme(), &id("t1")).await.unwrap();
        assert_eq!(
            (rendered.version, rendered.body),
            (2, RenderedTask::new(&v2).unwrap().body),
            "{name}: a hot GET answers with the stored rendering"
        );

        // Writes start from the hot copy, but a stale one (here: the hot tier kept version 1,
        // as after a lost hot write) only costs a retry from the durable tier: the result
        // builds on version 2, never on the stale copy.
        let mut stale = created.task.clone();
        stale.additional_data = Some(json!({"stale": true}).as_object().unwrap().clone());
        let stale_hot = Arc::new(MemoryHot::new(ttl, 10));
        stale_hot.put(&acme(), &stale).await.unwrap();
        let stale_store = TieredStore::new(stale_hot, durable.tier.clone())
            .await
            .unwrap();
        let merge: UpdateTask =
            serde_json::from_value(json!({"additional_data": {"q": 2}})).unwrap();
        let v3 = stale_store
            .update(&acme(), &id("t1"), &merge, None)
            .await
            .unwrap();
        assert_eq!(v3.version, 3, "{name}");
        assert_eq!(
            v3.additional_data,
            json!({"p": 1, "q": 2}).as_object().cloned(),
            "{name}: built on the durable version 2, not the stale hot copy"
        );
        assert_eq!(
            durable.tier.get(&acme(), &id("t1")).await.unwrap(),
            Some(v3.clone()),
            "{name}"
        );
        // If-Match naming the stale copy's version is a 412 reporting the durable version, and
        // the lost race leaves that store's hot tier at the durable version.
        let behind = Arc::new(MemoryHot::new(ttl, 10));
        behind.put(&acme(), &stale).await.unwrap();
        let behind_store = TieredStore::new(behind.clone(), durable.tier.clone())
            .await
            .unwrap();
        assert!(
            matches!(
                behind_store
                    .update(&acme(), &id("t1"), &merge, Some(1))
                    .await,
                Err(StoreError::VersionMismatch {
                    expected: 1,
                    current: 3
                })
            ),
            "{name}"
        );
        assert_eq!(
            behind.get(&acme(), &id("t1")).await.unwrap(),
            Some(v3.clone()),
            "{name}: brought up to date after the lost race"
        );
        let v2 = v3;

        // A cold read comes from the durable tier and warms the hot one.
        hot.tier.invalidate(&acme(), &id("t1"), 2).await.unwrap();
        assert_eq!(
            store.get(&acme(), &id("t1")).await.unwrap(),
            (v2.clone(), Source::Durable),
            "{name}"
        );
        assert_eq!(
            store.get(&acme(), &id("t1")).await.unwrap(),
            (v2, Source::Hot),
            "{name}"
        );

        assert!(
            matches!(
                store.kill(&acme(), &id("t1")).await.unwrap(),
                Killed::Canceled
            ),
            "{name}"
        );
        assert!(
            matches!(
                store.kill(&acme(), &id("t1")).await.unwrap(),
                Killed::Unchanged
            ),
            "{name}"
        );
        assert_eq!(
            store.get(&acme(), &id("t1")).await.unwrap().0.status,
            TaskStatus::Canceled,
            "{name}"
        );

        let paging = Paging::parse(&PagingParams::default(), Sort::default()).unwrap();
        let page = store
            .list(&acme(), &ListQuery::active(&paging))
            .await
            .unwrap();
        assert!(page.tasks.is_empty(), "{name}: nothing active");
        assert!(
            matches!(
                store.get(&acme(), &id("nope")).await,
                Err(StoreError::NotFound)
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_instance_cut_off_from_the_hot_tier_never_leaves_another_reading_the_old_copy() {
    // Instance A cannot reach Redis; instance B can, and has the task cached. Once A's write is
    // acknowledged, B must not answer with the copy Redis still holds.
    let ttl = Duration::from_secs(60);
    let lease = Duration::from_millis(300);
    let durable = postgres().await;
    let hot = redis(ttl);
    let b = TieredStore::with_lease(hot.tier.clone(), durable.tier.clone(), lease)
        .await
        .unwrap();
    let mut gone = taskward_testkit::RedisServer::start();
    gone.kill();
    let unreachable = taskward_store::RedisHot::new(
        &taskward_store::RedisTarget::Server(gone.url()),
        "unused:",
        ttl,
        Duration::from_millis(50),
    )
    .unwrap();
    let a = TieredStore::with_lease(Arc::new(unreachable), durable.tier.clone(), lease)
        .await
        .unwrap();
    let v1 = create_t1(&b).await.task;
    assert_eq!(
        b.get(&acme(), &id("t1")).await.unwrap(),
        (v1.clone(), Source::Hot)
    );
    let update: UpdateTask = serde_json::from_value(json!({"status": "PROCESSING"})).unwrap();
    let v2 = a
        .update(&acme(), &id("t1"), &update, Some(1))
        .await
        .unwrap();
    assert_eq!(
        hot.tier.get(&acme(), &id("t1")).await.unwrap(),
        Some(v1),
        "Redis still holds the old copy"
    );
    assert_eq!(
        b.get(&acme(), &id("t1")).await.unwrap(),
        (v2.clone(), Source::Durable),
        "B reads past it"
    );
    // B heals the hot tier for A.
    b.replay_pending().await.unwrap();
    assert_eq!(hot.tier.get(&acme(), &id("t1")).await.unwrap(), None);
    assert_eq!(b.get(&acme(), &id("t1")).await.unwrap().0, v2);
    assert_eq!(
        b.get(&acme(), &id("t1")).await.unwrap(),
        (v2, Source::Hot),
        "re-warmed"
    );
}
