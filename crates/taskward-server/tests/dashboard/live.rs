//! Live updates over the tenant's and the task's event streams, without a reload; and the
//! page under a thousand changes a second.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use taskward_testkit::{Shape, TestApp};

use crate::{create, patch, spawn_app, Browser};

/// SPEC: a PATCH shows within 2 s of its response, without a reload.
const LIVE_WITHIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_patch_and_a_new_task_show_in_the_list_within_two_seconds() {
    let app = spawn_app().await;
    create(&app, &app.key, "job", json!({"status": "PENDING"})).await;
    let b = Browser::open(&app.base).await;
    b.sign_in_to_list(&app.key).await;
    b.wait_css("tr[data-task-id=job]").await;
    b.expect(
        "return document.querySelector('#live').textContent === 'Live'",
        "the stream connected",
    )
    .await;
    // Marks the document: a reload would lose it.
    b.js("window.__same_page = true; return null").await;

    let steps = [
        (
            json!({"status": "PROCESSING", "additional_data": {"progress": {"completed": 1, "total": 4}}}),
            "PROCESSING",
            Some(25),
        ),
        (
            json!({"additional_data": {"progress": {"completed": 3, "total": 4}}}),
            "PROCESSING",
            Some(75),
        ),
        (json!({"status": "COMPLETED"}), "COMPLETED", None),
    ];
    for (body, status, percent) in steps {
        patch(&app, &app.key, "job", body).await;
        let acked = Instant::now();
        let progress_ok = match percent {
            Some(p) => format!("(r.querySelector('[data-field=progress]') || {{}}).value === {p}"),
            None => "true".to_owned(),
        };
        let shown = b
            .eventually(
                &format!("const r = document.querySelector('tr[data-task-id=job]'); return !!r && r.querySelector('[data-field=status]').innerText.trim() === '{status}' && {progress_ok}"),
                LIVE_WITHIN,
            )
            .await;
        assert!(
            shown,
            "{status}/{percent:?} not shown within {LIVE_WITHIN:?}"
        );
        println!(
            "{status} {percent:?} shown {:?} after the PATCH response",
            acked.elapsed()
        );
    }

    // A new task appears on top.
    create(&app, &app.key, "newcomer", json!({"status": "PROCESSING"})).await;
    assert!(
        b.eventually(
            "return document.querySelector('tr[data-task-id]').dataset.taskId === 'newcomer'",
            LIVE_WITHIN
        )
        .await,
        "the new task not on top within {LIVE_WITHIN:?}"
    );
    // Counts follow.
    b.expect("return /COMPLETED\\s*1/.test(document.querySelector('.counts').innerText) && /PROCESSING\\s*1/.test(document.querySelector('.counts').innerText)", "counts updated").await;
    assert_eq!(
        b.js("return window.__same_page === true").await,
        json!(true),
        "the page reloaded"
    );
    b.finish().await;
}

#[tokio::test]
async fn the_detail_history_grows_live_while_the_task_runs() {
    let app = spawn_app().await;
    create(&app, &app.key, "job", json!({"status": "PROCESSING"})).await;
    let b = Browser::open(&app.base).await;
    b.sign_in_to_list(&app.key).await;
    b.goto("/dashboard/tasks/job").await;
    b.wait_css("[data-field=history] li").await;
    b.expect(
        "return document.querySelector('#live').textContent === 'Live'",
        "the stream connected",
    )
    .await;

    patch(
        &app,
        &app.key,
        "job",
        json!({"additional_data": {"progress": {"completed": 5, "total": 10}}}),
    )
    .await;
    assert!(b.eventually("return document.querySelectorAll('[data-field=history] > li').length === 2 && document.querySelector('[data-field=progress]').value === 50", LIVE_WITHIN).await,
        "progress event not shown");
    patch(
        &app,
        &app.key,
        "job",
        json!({"status": "COMPLETED", "outputs": ["result_1"]}),
    )
    .await;
    assert!(b.eventually("return document.querySelectorAll('[data-field=history] > li').length === 3 && document.querySelector('[data-field=status]').innerText.trim() === 'COMPLETED'", LIVE_WITHIN).await,
        "completion not shown");
    assert_eq!(b.js("return [...document.querySelectorAll('[data-field=history] > li')].map(li => li.dataset.type)").await,
        json!(["task.created", "task.updated", "task.completed"]));
    assert_eq!(
        b.js("return JSON.parse(document.querySelector('[data-field=outputs]').textContent)")
            .await,
        json!(["result_1"])
    );
    b.finish().await;
}

/// A thousand status changes a second on the tenant stream, with the list open: the page keeps
/// up (every row ends at its task's last state) and stays responsive. Prints what the browser
/// measured: long tasks (main-thread work over 50 ms), frames drawn and the rate reached; the
/// issue asks for these figures, and a shared machine makes them a report, not a bar.
#[tokio::test]
async fn a_thousand_changes_a_second_keep_the_list_responsive() {
    // The production shape: its group commit takes a thousand PATCHes a second on this machine
    // while a browser runs beside it; the embedded shape syncs each write to disk alone.
    let app = TestApp::spawn(Shape::Production).await;
    let tasks: Vec<String> = (0..100).map(|i| format!("load-{i:03}")).collect();
    for id in &tasks {
        create(&app, &app.key, id, json!({"status": "PROCESSING"})).await;
    }
    let b = Browser::open(&app.base).await;
    b.sign_in_to_list(&app.key).await;
    b.expect(
        "return document.querySelectorAll('tr[data-task-id]').length === 100",
        "100 rows",
    )
    .await;
    b.expect(
        "return document.querySelector('#live').textContent === 'Live'",
        "the stream connected",
    )
    .await;
    b.js("window.__long = []; new PerformanceObserver(l => window.__long.push(...l.getEntries().map(e => e.duration))).observe({type: 'longtask'});
          window.__frames = 0; const tick = () => { window.__frames++; requestAnimationFrame(tick); }; requestAnimationFrame(tick);
          window.__t0 = performance.now(); return null").await;

    b.cdp("Performance.enable", json!({})).await;
    let before = b.main_thread_metrics().await;

    // 20 writers, each owning 5 tasks and paced at 50 changes a second (1,000 a second in
    // all) for 3 s, each change moving a task's progress.
    const WRITERS: usize = 20;
    const PER_WRITER_PER_SEC: u64 = 50;
    let started = Instant::now();
    let writers = (0..WRITERS).map(|w| {
        let app = &app;
        let mine: Vec<&String> = tasks.iter().skip(w).step_by(WRITERS).collect();
        async move {
            let mut last = vec![0u32; mine.len()];
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(3) {
                let k = (n as usize) % mine.len();
                last[k] += 1;
                patch(
                    app,
                    &app.key,
                    mine[k],
                    json!({"additional_data": {"progress": {"completed": last[k], "total": 1000}}}),
                )
                .await;
                n += 1;
                let due = Duration::from_micros(n * 1_000_000 / PER_WRITER_PER_SEC);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            (mine, last, n)
        }
    });
    // The last progress sent to each task: what its row must end showing.
    let mut last = vec![0u32; tasks.len()];
    let mut sent = 0u64;
    for (mine, l, n) in join_all(writers).await {
        sent += n;
        for (id, done) in mine.into_iter().zip(l) {
            last[id[5..].parse::<usize>().unwrap()] = done;
        }
    }
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    let after = b.main_thread_metrics().await;
    let m = b.js("const ms = performance.now() - window.__t0; return {ms, frames: window.__frames, long: window.__long}").await;
    // Every row ends showing its task's last progress.
    let check = format!(
        "const want = {}; return [...document.querySelectorAll('tr[data-task-id]')].every(r => {{
            const i = Number(r.dataset.taskId.slice(5)); const p = r.querySelector('[data-field=progress]');
            return want[i] === 0 ? !p : !!p && Math.abs(p.value - want[i] / 10) < 1e-9; }})",
        serde_json::to_string(&last).unwrap()
    );
    assert!(
        b.eventually(&check, Duration::from_secs(5)).await,
        "rows did not settle on the last progress"
    );
    let long: Vec<f64> = serde_json::from_value(m["long"].clone()).unwrap();
    let ms = m["ms"].as_f64().unwrap();
    println!(
        "{sent} changes at {rate:.0}/s over {:.1} s: the page drew {} frames ({:.0}/s); long tasks: {} totalling {:.0} ms (longest {:.0} ms)",
        ms / 1000.0,
        m["frames"],
        m["frames"].as_f64().unwrap() / (ms / 1000.0),
        long.len(),
        long.iter().sum::<f64>(),
        long.iter().cloned().fold(0.0, f64::max),
    );
    let busy =
        |name: &str| (after.get(name).unwrap_or(&0.0) - before.get(name).unwrap_or(&0.0)) * 1000.0;
    println!(
        "main thread busy {:.0} ms of {:.0} ms ({:.0}%): scripts {:.0} ms, style {:.0} ms, layout {:.0} ms",
        busy("TaskDuration"),
        ms,
        100.0 * busy("TaskDuration") / ms,
        busy("ScriptDuration"),
        busy("RecalcStyleDuration"),
        busy("LayoutDuration"),
    );
    b.finish().await;
}

/// With a filter set, a task that changes into it is announced ("1 new or changed task
/// matches: show"), and shown on request.
#[tokio::test]
async fn a_filtered_list_announces_a_task_that_comes_to_match() {
    let app = spawn_app().await;
    create(&app, &app.key, "ok-1", json!({"status": "PROCESSING"})).await;
    patch(&app, &app.key, "ok-1", json!({"status": "FAILED"})).await;
    create(&app, &app.key, "later", json!({"status": "PROCESSING"})).await;
    let b = Browser::open(&app.base).await;
    b.sign_in_to_list(&app.key).await;
    b.wait_css("select[data-filter=status]")
        .await
        .select_by_value("FAILED")
        .await
        .unwrap();
    b.expect(
        "return document.querySelectorAll('tr[data-task-id]').length === 1",
        "one FAILED row",
    )
    .await;
    b.expect(
        "return document.querySelector('#live').textContent === 'Live'",
        "the stream connected",
    )
    .await;
    patch(&app, &app.key, "later", json!({"status": "FAILED"})).await;
    assert!(
        b.eventually("const n = document.querySelector('.notice'); return !n.hidden && n.textContent.startsWith('1 ')", LIVE_WITHIN).await,
        "no notice of the task that came to match"
    );
    b.client
        .find(fantoccini::Locator::Css(".notice"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.expect("return document.querySelectorAll('tr[data-task-id]').length === 2 && document.querySelector('.notice').hidden", "both FAILED rows").await;
    assert_eq!(b.row_ids().await, ["later", "ok-1"]);
    b.finish().await;
}

/// A task that ended between the page's reads: the detail follows the stream to the end once,
/// then stops (no reconnecting to a stream that is over).
#[tokio::test]
async fn the_detail_of_an_ended_task_does_not_keep_reconnecting() {
    let app = spawn_app().await;
    create(&app, &app.key, "done", json!({"status": "PROCESSING"})).await;
    patch(&app, &app.key, "done", json!({"status": "COMPLETED"})).await;
    let b = Browser::open(&app.base).await;
    b.sign_in_to_list(&app.key).await;
    b.goto("/dashboard/tasks/done").await;
    b.wait_css("[data-field=history] li").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let streams = b.js("return performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/tasks/done/events')).length").await;
    assert!(
        streams.as_u64().unwrap() <= 1,
        "{streams} connections to the ended task's stream"
    );
    assert_ne!(
        b.js("return document.querySelector('#live').textContent")
            .await,
        json!("Reconnecting…")
    );
    b.finish().await;
}
