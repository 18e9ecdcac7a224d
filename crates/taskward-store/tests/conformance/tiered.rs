//! `TieredStore` over every pairing: memory or Redis over SQLite or PostgreSQL.

use std::time::Duration;

use serde_json::json;
use taskward_model::list::{ListQuery, Paging, PagingParams, Sort};
use taskward_model::{TaskStatus, UpdateTask};
use taskward_store::{Killed, Source, StoreError, TieredStore};

use crate::support::{acme, create_req, id, memory, postgres, redis, sqlite};

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
        let created = store
            .create(
                &acme(),
                create_req(json!({"task_id": "t1", "task_type": "thumbnail"})),
            )
            .await
            .unwrap();
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
