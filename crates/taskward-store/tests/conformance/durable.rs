//! The `DurableTier` story on SQLite and PostgreSQL, and PostgreSQL's plans.

use chrono::Duration as ChronoDuration;
use serde_json::json;
use taskward_model::list::{ListQuery, ListTasksBody, PagingParams};
use taskward_model::{time, EventId, EventType, Mode, OrgId, Scopes, TaskStatus};
use taskward_store::{Inserted, PendingInvalidation, WriteId};

use crate::support::{acme, durables, id, postgres, task, tenant};

#[tokio::test]
async fn tasks_insert_get_and_compare_and_set() {
    for (name, d) in durables().await {
        let t = task("t1", 1);
        assert!(
            matches!(
                d.insert_as_new_write(&acme(), &t, "digest-1").await,
                Inserted::Created
            ),
            "{name}"
        );
        assert_eq!(
            d.acme_copy("t1").await,
            Some(t.clone()),
            "{name}: round trip"
        );
        match d
            .insert_as_new_write(&acme(), &task("t1", 1), "digest-2")
            .await
        {
            Inserted::Exists { task, digest } => {
                assert_eq!((*task, digest.as_str()), (t.clone(), "digest-1"), "{name}");
            }
            Inserted::Created => panic!("{name}: duplicate insert"),
        }
        // Another tenant neither sees it nor collides with it.
        let other = tenant("acme", Mode::Live);
        assert_eq!(d.tier.get(&other, &id("t1")).await.unwrap(), None, "{name}");
        assert!(
            matches!(
                d.insert_as_new_write(&other, &t, "x").await,
                Inserted::Created
            ),
            "{name}"
        );

        let mut next = t.clone();
        next.version = 2;
        next.status = TaskStatus::Failed;
        next.additional_data = Some(
            json!({"error": "boom", "nested": {"k": [1, "two"]}})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(
            !d.replace_as_new_write(&next, 7).await,
            "{name}: stale version must lose"
        );
        // The same id and version from another incarnation of the task (deleted and created
        // again; a stale cached copy) must lose too.
        let mut other_life = next.clone();
        other_life.created_at -= chrono::Duration::microseconds(1);
        assert!(
            !d.replace_as_new_write(&other_life, 1).await,
            "{name}: another incarnation must lose"
        );
        assert!(d.replace_as_new_write(&next, 1).await, "{name}");
        assert!(
            !d.replace_as_new_write(&next, 1).await,
            "{name}: the race is lost twice"
        );
        assert_eq!(d.acme_copy("t1").await, Some(next), "{name}");
        assert_eq!(
            d.tier.get(&other, &id("t1")).await.unwrap(),
            Some(t),
            "{name}: the other tenant's copy untouched"
        );
    }
}

#[tokio::test]
async fn concurrent_reads_each_get_their_own_task() {
    // PostgreSQL answers concurrent reads in groups (one statement for many keys): every
    // caller must still get exactly its own answer, absent ids and other tenants included.
    for (name, d) in durables().await {
        for i in 0..50 {
            let mut t = task(&format!("t{i}"), 1);
            t.description = Some(format!("task {i}"));
            d.insert_as_new_write(&acme(), &t, "d").await;
        }
        let live = tenant("acme", Mode::Live);
        d.insert_as_new_write(&live, &task("t7", 1), "d").await;
        let reads = (0..400).map(|n| {
            let tier = d.tier.clone();
            // Ids 0..60: the last ten do not exist; every id is asked for several times.
            let (i, who) = (n % 60, if n % 7 == 0 { live.clone() } else { acme() });
            tokio::spawn(async move {
                let got = tier.get(&who, &id(&format!("t{i}"))).await.unwrap();
                (i, who, got)
            })
        });
        for read in reads.collect::<Vec<_>>() {
            let (i, who, got) = read.await.unwrap();
            let expected = match (who.mode, i) {
                (Mode::Live, 7) => Some(None),
                (Mode::Live, _) => None,
                (_, 0..50) => Some(Some(format!("task {i}"))),
                _ => None,
            };
            assert_eq!(
                got.map(|t| t.description),
                expected,
                "{name}: t{i} for {:?}",
                who.mode
            );
        }
    }
}

#[tokio::test]
async fn listing_filters_sorts_and_pages_alike() {
    for (name, d) in durables().await {
        for i in 0..12 {
            let mut t = task(&format!("l{i:02}"), 1);
            t.additional_data = Some(
                json!({"n": i, "tag": if i % 2 == 0 { "Even" } else { "odd" }})
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            d.insert_as_new_write(&acme(), &t, "d").await;
        }
        let body: ListTasksBody = serde_json::from_value(json!({
            "filters": {"AND": [{"field": "additional_data.tag", "operator": "eq", "value": "even"}],
                        "NOT": [{"field": "additional_data.n", "operator": "gte", "value": 8}]},
            "sort": {"field": "task_id", "direction": "asc"}
        }))
        .unwrap();
        let params = PagingParams {
            page_size: Some("2".into()),
            include_total: Some("true".into()),
            ..Default::default()
        };
        let (q, _) = ListQuery::from_body(body.clone(), &params).unwrap();
        let page = d.tier.list(&acme(), &q).await.unwrap();
        let ids: Vec<&str> = page.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(
            (ids, page.has_more, page.total),
            (vec!["l00", "l02"], true, Some(4)),
            "{name}"
        );

        let cursor =
            taskward_model::list::Cursor::after(q.sort, page.tasks.last().unwrap()).encode();
        let params = PagingParams {
            page_size: Some("2".into()),
            cursor: Some(cursor),
            ..Default::default()
        };
        let (q, _) = ListQuery::from_body(body, &params).unwrap();
        let page = d.tier.list(&acme(), &q).await.unwrap();
        let ids: Vec<&str> = page.tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!((ids, page.has_more), (vec!["l04", "l06"], false), "{name}");
    }
}

#[tokio::test]
async fn keys_are_found_by_hash_listed_and_revoked() {
    for (name, d) in durables().await {
        let store = taskward_store::Keys::new(d.keys.clone());
        let (key, rec) = store
            .create(
                OrgId::parse("acme").unwrap(),
                Mode::Live,
                Scopes::parse("read,write").unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(store.find(&key).await.unwrap(), Some(rec.clone()), "{name}");
        assert!(
            store.create_first().await.unwrap().is_some(),
            "{name}: the first key, once"
        );
        assert!(
            store.create_first().await.unwrap().is_none(),
            "{name}: never twice"
        );
        assert_eq!(store.list().await.unwrap().len(), 2, "{name}");
        assert!(store.revoke(&rec.key_id).await.unwrap(), "{name}");
        assert!(
            store
                .find(&key)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some(),
            "{name}"
        );
        assert!(
            !store.revoke(key.expose()).await.unwrap(),
            "{name}: already revoked"
        );
    }
}

#[tokio::test]
async fn pending_invalidations_keep_the_highest_version() {
    for (name, d) in durables().await {
        let p = |v| PendingInvalidation {
            tenant: acme(),
            task_id: id("t1"),
            version: v,
        };
        d.tier.add_pending_invalidation(&p(3)).await.unwrap();
        d.tier.add_pending_invalidation(&p(2)).await.unwrap();
        assert_eq!(
            d.tier.pending_invalidations(10).await.unwrap(),
            vec![p(3)],
            "{name}"
        );
        d.tier.add_pending_invalidation(&p(5)).await.unwrap();
        // Clearing what was replayed (3) must not forget a newer write (5).
        d.tier.clear_pending_invalidation(&p(3)).await.unwrap();
        assert_eq!(
            d.tier.pending_invalidations(10).await.unwrap().len(),
            1,
            "{name}"
        );
        d.tier.clear_pending_invalidation(&p(5)).await.unwrap();
        assert_eq!(
            d.tier.pending_invalidations(10).await.unwrap().len(),
            0,
            "{name}"
        );
    }
}

#[tokio::test]
async fn retention_deletes_only_old_terminal_tasks_in_batches() {
    for (name, d) in durables().await {
        let long_ago = time::now() - ChronoDuration::days(40);
        for i in 0..5 {
            let mut t = task(&format!("old{i}"), 1);
            t.status = TaskStatus::Completed;
            t.finished_at = Some(long_ago);
            d.insert_as_new_write(&acme(), &t, "d").await;
        }
        let mut recent = task("recent", 1);
        recent.status = TaskStatus::Failed;
        recent.finished_at = Some(time::now());
        d.insert_as_new_write(&acme(), &recent, "d").await;
        let mut active = task("active", 1);
        active.created_at = long_ago;
        d.insert_as_new_write(&acme(), &active, "d").await;

        let cutoff = time::now() - ChronoDuration::days(30);
        let stop = tokio_util::sync::CancellationToken::new();
        let deleted = taskward_store::retention::sweep(d.tier.as_ref(), cutoff, 2, &stop)
            .await
            .unwrap();
        assert_eq!(deleted, 5, "{name}");
        assert!(d.acme_copy("old0").await.is_none(), "{name}");
        assert!(d.acme_copy("recent").await.is_some(), "{name}");
        assert!(
            d.acme_copy("active").await.is_some(),
            "{name}: non-terminal tasks stay"
        );
        assert!(
            d.tier
                .history(&acme(), &id("old0"))
                .await
                .unwrap()
                .is_empty(),
            "{name}: events leave with their task"
        );
        assert_eq!(
            d.tier.history(&acme(), &id("recent")).await.unwrap().len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_write_appends_one_event_in_tenant_order() {
    for (name, d) in durables().await {
        let other = tenant("acme", Mode::Live);
        let a = task("a", 1);
        let b = task("b", 1);
        d.insert_as_new_write(&acme(), &a, "d").await;
        d.insert_as_new_write(&other, &a, "d").await;
        d.insert_as_new_write(&acme(), &b, "d").await;
        let mut a2 = a.clone();
        a2.version = 2;
        a2.status = TaskStatus::Processing;
        assert!(
            d.tier
                .replace(&acme(), &a2, 1, WriteId::new(), TaskStatus::Pending)
                .await
                .unwrap(),
            "{name}"
        );
        let mut a3 = a2.clone();
        a3.version = 3;
        a3.status = TaskStatus::Completed;
        assert!(
            d.tier
                .replace(&acme(), &a3, 2, WriteId::new(), TaskStatus::Processing)
                .await
                .unwrap(),
            "{name}"
        );
        // A lost race appends nothing.
        assert!(!d.replace_as_new_write(&a3, 1).await, "{name}");

        let all = d
            .tier
            .events_after(&acme(), None, EventId(0), 100)
            .await
            .unwrap();
        let seen: Vec<_> = all
            .iter()
            .map(|e| {
                (
                    e.event_id.0,
                    e.task.task_id.as_str().to_owned(),
                    e.task.version,
                    e.kind(),
                    e.previous_status,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "a".into(), 1, EventType::Created, None),
                (2, "b".into(), 1, EventType::Created, None),
                (
                    3,
                    "a".into(),
                    2,
                    EventType::Updated,
                    Some(TaskStatus::Pending)
                ),
                (
                    4,
                    "a".into(),
                    3,
                    EventType::Completed,
                    Some(TaskStatus::Processing)
                ),
            ],
            "{name}: ids count per tenant, in commit order"
        );
        assert_eq!(
            all[3].task, a3,
            "{name}: the event keeps the task as written"
        );
        assert_eq!(
            d.tier.last_event_id(&acme()).await.unwrap(),
            EventId(4),
            "{name}"
        );
        let after = d
            .tier
            .events_after(&acme(), None, EventId(2), 1)
            .await
            .unwrap();
        assert_eq!(after.len(), 1, "{name}: limit");
        assert_eq!(after[0].event_id, EventId(3), "{name}");
        let of_b = d
            .tier
            .events_after(&acme(), Some(&id("b")), EventId(0), 100)
            .await
            .unwrap();
        assert_eq!(of_b.len(), 1, "{name}: one task's events");
        let history = d.tier.history(&acme(), &id("a")).await.unwrap();
        assert_eq!(
            history.iter().map(|e| e.event_id.0).collect::<Vec<_>>(),
            [1, 3, 4],
            "{name}"
        );
        // The other tenant has its own log and counter.
        let theirs = d
            .tier
            .events_after(&other, None, EventId(0), 100)
            .await
            .unwrap();
        assert_eq!(theirs.len(), 1, "{name}");
        assert_eq!(theirs[0].event_id, EventId(1), "{name}");
        assert_eq!(
            d.tier
                .last_event_id(&tenant("nobody", Mode::Test))
                .await
                .unwrap(),
            EventId(0),
            "{name}"
        );

        let counts = d.tier.counts(&acme(), None).await.unwrap();
        assert_eq!(
            counts.by_status,
            [("COMPLETED".to_owned(), 1), ("PENDING".to_owned(), 1)].into(),
            "{name}"
        );
        assert_eq!(
            counts.by_task_type,
            [("thumbnail".to_owned(), 2)].into(),
            "{name}"
        );
        let none = d.tier.counts(&acme(), Some("other")).await.unwrap();
        assert!(
            none.by_status.is_empty() && none.by_task_type.is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn postgres_serves_tenant_listings_from_indexes() {
    let d = postgres().await;
    let pg = d.pg.as_ref().unwrap();
    // Enough rows, over several tenants, for the planner to prefer an index to a scan.
    sqlx::raw_sql(
        "INSERT INTO tasks (org, mode, task_id, task_type, status, active, additional_data, created_at, updated_at, version, create_digest) \
         SELECT 'org' || (i % 50), 'test', 't' || i, CASE WHEN i % 3 = 0 THEN 'thumbnail' ELSE 'materialize' END, \
                CASE WHEN i % 4 = 0 THEN 'COMPLETED' ELSE 'PENDING' END, i % 4 <> 0, jsonb_build_object('n', i), \
                now() - (i || ' seconds')::interval, now(), 1, 'd' \
         FROM generate_series(1, 20000) i; ANALYZE tasks",
    )
    .execute(pg.pool())
    .await
    .unwrap();
    let t = tenant("org7", Mode::Test);
    for (what, body, active) in [
        ("created_at", json!({}), false),
        ("status", json!({"status": "PENDING"}), false),
        ("task_type", json!({"task_type": "thumbnail"}), false),
        ("active", json!({}), true),
        (
            "additional_data eq",
            json!({"filters": {"AND": [{"field": "additional_data.n", "operator": "eq", "value": 7}]}}),
            false,
        ),
    ] {
        let (mut q, _) = ListQuery::from_body(
            serde_json::from_value(body).unwrap(),
            &PagingParams::default(),
        )
        .unwrap();
        q.active_only = active;
        let plan = pg.explain_list(&t, &q).await.unwrap();
        assert!(
            !plan.contains("Seq Scan"),
            "{what} listing scans the table:\n{plan}"
        );
        assert!(plan.contains("Index"), "{what}:\n{plan}");
        // An equality on additional_data has a second step, also served by an index (which
        // one is the planner's choice: at this size, 400 tasks per tenant, it walks the
        // tenant's index; at 10 M tasks, `bench/listing-scale.sh` shows tasks_data_by_tenant).
        let probed = pg.explain_list_probed(&t, &q).await.unwrap();
        assert_eq!(probed.is_some(), what == "additional_data eq", "{what}");
        if let Some(plan) = probed {
            assert!(
                !plan.contains("Seq Scan") && plan.contains("Index"),
                "{what}:\n{plan}"
            );
        }
    }
}

#[tokio::test]
async fn a_write_run_again_after_it_landed_recognises_itself() {
    // A statement whose connection died after it committed is run again: it must find its own
    // write (by its write id), not take it for another writer's.
    for (name, d) in durables().await {
        let t = task("w1", 1);
        let create = WriteId::new();
        assert!(
            matches!(
                d.tier.insert(&acme(), &t, "d", create).await.unwrap(),
                Inserted::Created
            ),
            "{name}"
        );
        assert!(
            matches!(
                d.tier.insert(&acme(), &t, "d", create).await.unwrap(),
                Inserted::Created
            ),
            "{name}: the same insert again is its own"
        );
        assert!(
            matches!(
                d.insert_as_new_write(&acme(), &t, "d").await,
                Inserted::Exists { .. }
            ),
            "{name}: another create of the id is not"
        );
        let mut next = t.clone();
        next.version = 2;
        next.status = TaskStatus::Processing;
        let write = WriteId::new();
        assert!(
            d.tier
                .replace(&acme(), &next, 1, write, TaskStatus::Pending)
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            d.tier
                .replace(&acme(), &next, 1, write, TaskStatus::Pending)
                .await
                .unwrap(),
            "{name}: the same write again finds its own commit"
        );
        assert!(
            !d.replace_as_new_write(&next, 1).await,
            "{name}: another write from version 1 loses"
        );
        assert_eq!(d.acme_copy("w1").await, Some(next), "{name}");
        let history = d.tier.history(&acme(), &id("w1")).await.unwrap();
        assert_eq!(
            history.iter().map(|e| e.task.version).collect::<Vec<_>>(),
            [1, 2],
            "{name}: a write run again adds no second event"
        );
    }
}

/// A listing with an `additional_data` equality answers the same however common the value:
/// found by walking the list (common), or by the tenant-scoped index (rarer than the walk
/// can settle), with pages, cursors and totals exact either way.
#[tokio::test]
async fn postgres_lists_additional_data_equalities_exactly_common_or_rare() {
    let d = postgres().await;
    let pg = d.pg.as_ref().unwrap();
    // 2,000 tasks of one tenant (t1 newest) and 500 of another: every task has c = "yes";
    // one in twenty has m = "mid" (too rare for the walk to fill a page of 50); t100, t900
    // and t1500 have x = "Rare"; n = i.
    sqlx::raw_sql(
        "INSERT INTO tasks (org, mode, task_id, task_type, status, active, additional_data, created_at, updated_at, version, create_digest) \
         SELECT CASE WHEN i <= 2000 THEN 'acme' ELSE 'other' END, 'test', 't' || i, 'thumbnail', 'PENDING', TRUE, \
                jsonb_build_object('c', 'yes', 'n', i) \
                || CASE WHEN i % 20 = 0 THEN '{\"m\": \"mid\"}'::jsonb ELSE '{}'::jsonb END \
                || CASE WHEN i IN (100, 900, 1500, 2100) THEN '{\"x\": \"Rare\"}'::jsonb ELSE '{}'::jsonb END, \
                now() - (i || ' seconds')::interval, now(), 1, 'd' \
         FROM generate_series(1, 2500) i; ANALYZE tasks",
    )
    .execute(pg.pool())
    .await
    .unwrap();
    let t = tenant("acme", Mode::Test);
    let list = |cond: serde_json::Value, page_size: u32, cursor: Option<String>| {
        let tier = d.tier.clone();
        let t = t.clone();
        async move {
            let params = PagingParams {
                page_size: Some(page_size.to_string()),
                cursor,
                include_total: Some("true".into()),
                ..PagingParams::default()
            };
            let (q, _) = ListQuery::from_body(
                serde_json::from_value(json!({"filters": cond})).unwrap(),
                &params,
            )
            .unwrap();
            let page = tier.list(&t, &q).await.unwrap();
            let ids: Vec<String> = page.tasks.iter().map(|x| x.task_id.to_string()).collect();
            let next = page
                .tasks
                .last()
                .map(|l| taskward_model::list::Cursor::after(q.sort, l).encode());
            (ids, page.has_more, page.total, next)
        }
    };
    let eq = |field: &str, value: serde_json::Value| json!({"AND": [{"field": format!("additional_data.{field}"), "operator": "eq", "value": value}]});
    let ids = |r: std::ops::RangeInclusive<u32>, step: usize| -> Vec<String> {
        r.step_by(step).map(|i| format!("t{i}")).collect()
    };

    // Common: the first page is the 50 newest.
    let (got, more, total, _) = list(eq("c", json!("yes")), 50, None).await;
    assert_eq!((got, more, total), (ids(1..=50, 1), true, Some(2000)));
    // One in twenty: the walk finds too few, the index the rest, in order; then the next page.
    let (got, more, total, next) = list(eq("m", json!("MID")), 50, None).await;
    assert_eq!((got, more, total), (ids(20..=1000, 20), true, Some(100)));
    let (got, more, _, _) = list(eq("m", json!("mid")), 50, next).await;
    assert_eq!((got, more), (ids(1020..=2000, 20), false));
    // Rare, case-insensitive by default, and exact with case_sensitive; the other tenant's
    // t2100 never shows.
    let (got, more, total, next) = list(eq("x", json!("rare")), 2, None).await;
    assert_eq!(
        (got, more, total),
        (vec!["t100".into(), "t900".into()], true, Some(3))
    );
    let (got, more, _, _) = list(eq("x", json!("rare")), 2, next).await;
    assert_eq!((got, more), (vec!["t1500".to_owned()], false));
    let mut exact = eq("x", json!("Rare"));
    exact["case_sensitive"] = json!(true);
    assert_eq!(list(exact.clone(), 50, None).await.2, Some(3));
    exact["AND"][0]["value"] = json!("RARE");
    assert_eq!(list(exact, 50, None).await.0, Vec::<String>::new());
    // A number, and a value nobody has.
    assert_eq!(list(eq("n", json!(1999)), 50, None).await.0, vec!["t1999"]);
    assert_eq!(list(eq("n", json!(2100)), 50, None).await.2, Some(0));
}
