//! Races `tests/api/concurrency.rs` does not cover: writers with and without `If-Match` on one
//! task at once (the conditional ones retrying on 412), and several terminal transitions, a
//! kill and ordinary updates racing while readers watch the status; and a write stuck on a row
//! another client holds locked, beside writes to other tasks. Production shape (group commit
//! on PostgreSQL, Redis write-through).

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{spawn_app, spawn_app_with, TestApp};

/// SPEC's terminal statuses.
const TERMINAL: [&str; 4] = ["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"];

/// PATCH with `If-Match`, re-reading and retrying on 412, until it is applied; returns the
/// acknowledged version and the number of 412s.
async fn conditional_merge(app: &TestApp, id: &str, key: &str) -> (u64, u32) {
    let mut lost = 0;
    loop {
        let current = app.get_ok(id).await["version"].as_u64().expect("version");
        let if_match = format!("\"{current}\"");
        let res = app
            .patch_if_match(id, &if_match, json!({"additional_data": {key: current}}))
            .await;
        match res.status() {
            StatusCode::OK => {
                let t: Value = res.json().await.expect("json");
                let v = t["version"].as_u64().expect("version");
                assert_eq!(v, current + 1, "applied to exactly the version it named");
                return (v, lost);
            }
            StatusCode::PRECONDITION_FAILED => lost += 1,
            other => panic!("{key}: {other} {}", res.text().await.unwrap_or_default()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_and_blind_writers_on_one_task_get_distinct_increasing_versions() {
    let app = spawn_app().await;
    app.create_processing("t1").await;
    const EACH: usize = 16;
    let conditional = (0..EACH).map(|i| {
        let app = &app;
        async move { conditional_merge(app, "t1", &format!("c{i}")).await }
    });
    let blind = (0..EACH).map(|i| {
        let app = &app;
        async move {
            let res = app
                .patch(
                    &app.key,
                    "t1",
                    json!({"additional_data": {format!("b{i}"): i}}),
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK);
            let t: Value = res.json().await.expect("json");
            t["version"].as_u64().expect("version")
        }
    });
    let (conditional, blind) = tokio::join!(join_all(conditional), join_all(blind));
    let lost: u32 = conditional.iter().map(|(_, l)| l).sum();
    let versions: BTreeSet<u64> = conditional.iter().map(|(v, _)| *v).chain(blind).collect();
    eprintln!(
        "[races] {} writers on one task, {lost} conditional attempts lost a race and retried",
        2 * EACH
    );
    assert_eq!(
        versions.len(),
        2 * EACH,
        "every acknowledged write got its own version"
    );
    assert_eq!(
        versions,
        (2..2 + 2 * EACH as u64).collect(),
        "versions 2..=33, no gap"
    );

    let t = app.get_ok("t1").await;
    assert_eq!(t["version"].as_u64(), Some(1 + 2 * EACH as u64));
    let data = t["additional_data"].as_object().expect("data");
    for i in 0..EACH {
        assert!(
            data.contains_key(&format!("c{i}")) && data.contains_key(&format!("b{i}")),
            "{t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_terminal_transitions_have_one_winner_that_never_changes() {
    let app = spawn_app().await;
    for round in 0..8 {
        let id = format!("r{round}");
        app.create_processing(&id).await;
        let path = format!("/v1/tasks/{id}");
        let terminal = TERMINAL.map(|s| {
            let (app, id) = (&app, &id);
            async move {
                let res = app.patch(&app.key, id, json!({"status": s})).await;
                let status = res.status();
                (s, status, res.json::<Value>().await.unwrap_or(Value::Null))
            }
        });
        let kills = (0..2).map(|_| app.req(Method::DELETE, &path, &app.key).send());
        let updates = (0..4).map(|i| {
            app.patch(
                &app.key,
                &id,
                json!({"additional_data": {format!("u{i}"): i}}),
            )
        });
        // A reader watching throughout: once it sees a terminal status, it must never change.
        let watch = async {
            let mut seen: Vec<(String, u64)> = Vec::new();
            for _ in 0..20 {
                let t = app.get_ok(&id).await;
                seen.push((
                    t["status"].as_str().unwrap_or_default().to_owned(),
                    t["version"].as_u64().unwrap_or(0),
                ));
            }
            seen
        };
        let (terminal, kills, updates, seen) = tokio::join!(
            join_all(terminal),
            join_all(kills),
            join_all(updates),
            watch
        );

        for (s, st, body) in &terminal {
            assert!(
                *st == StatusCode::OK || *st == StatusCode::CONFLICT,
                "{id} {s}: {st} {body}"
            );
        }
        // A 200 is a win, or a repeat of the winning terminal write (an idempotent no-op,
        // e.g. PATCH CANCELED after a kill won): either way it answers the final task.
        let answered: BTreeSet<(String, u64)> = terminal
            .iter()
            .filter(|(_, st, _)| *st == StatusCode::OK)
            .map(|(_, _, b)| {
                (
                    b["status"].as_str().unwrap_or_default().to_owned(),
                    b["version"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        for k in kills {
            assert_eq!(k.expect("kill").status(), StatusCode::OK);
        }
        let mut applied = 0;
        for u in updates {
            // Before the terminal write: applied; after it: refused.
            assert!(
                matches!(u.status(), StatusCode::OK | StatusCode::CONFLICT),
                "{id}: {}",
                u.status()
            );
            applied += u64::from(u.status() == StatusCode::OK);
        }
        let t = app.get_ok(&id).await;
        let last = t["status"].as_str().expect("status").to_owned();
        let final_state = (last.clone(), t["version"].as_u64().expect("version"));
        assert!(TERMINAL.contains(&last.as_str()), "{id}: ended {last}");
        assert_eq!(
            final_state.1,
            2 + applied,
            "{id}: exactly one terminal write committed"
        );
        assert!(
            answered.iter().all(|a| *a == final_state),
            "{id}: 200s for different terminal outcomes {answered:?}, final {final_state:?}"
        );
        for pair in seen.windows(2) {
            assert!(pair[0].1 <= pair[1].1, "{id}: versions went back: {seen:?}");
        }
        if let Some(first) = seen
            .iter()
            .position(|(s, _)| TERMINAL.contains(&s.as_str()))
        {
            assert!(
                seen[first..].iter().all(|s| *s == seen[first]),
                "{id}: the terminal state changed: {seen:?}"
            );
            assert_eq!(seen[first].0, last, "{id}");
        }

        // Afterwards nothing moves it.
        let before = app.get_ok(&id).await;
        let res = app
            .patch(&app.key, &id, json!({"status": "PROCESSING"}))
            .await;
        assert_eq!(res.status(), StatusCode::CONFLICT);
        app.send(Method::DELETE, &path, &app.key).await;
        assert_eq!(app.get_ok(&id).await, before, "{id}");
    }
}

/// Commit groups run one at a time while they are quick, but a group stuck in PostgreSQL (here
/// on a row another client holds locked) holds up the writes queued after it only briefly: the
/// next group waits a little for it, then starts beside it on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stuck_on_a_locked_row_does_not_hold_up_writes_to_other_tasks() {
    // Long enough that the stuck write waits for the lock for the whole test, not a timeout.
    let app = spawn_app_with(|s| s.durable.timeout_ms = 60_000).await;
    app.create_processing("stuck").await;
    app.create_processing("free").await;
    let lock = app.lock_task_row("stuck").await;

    let mut stuck =
        std::pin::pin!(app.patch(&app.key, "stuck", json!({"additional_data": {"n": 1}})));
    tokio::select! {
        res = &mut stuck => panic!("the write to the locked row was answered: {}", res.status()),
        () = lock.wait_for_a_waiter() => {}
    }
    let free = tokio::time::timeout(
        Duration::from_secs(10),
        app.patch(&app.key, "free", json!({"additional_data": {"n": 1}})),
    );
    let res = tokio::select! {
        res = &mut stuck => panic!("the write to the locked row was answered: {}", res.status()),
        res = free => res.expect("a write to another task waited for the stuck one"),
    };
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.get_ok("free").await["version"], 2);

    lock.release().await;
    let res = stuck.await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.get_ok("stuck").await["version"], 2);
}
