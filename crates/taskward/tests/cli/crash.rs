//! The embedded default survives a crash: `taskward serve` (in-process cache + SQLite with
//! `synchronous=FULL`) is SIGKILLed in the middle of a burst of creates and PATCHes, restarted
//! on the same data directory, and every write it acknowledged is there with its exact version.
//! Run with `--no-capture` to see the figures.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::Serve;

/// `taskward serve` on a free port over `data` (also its working directory).
fn start(data: &Path) -> Serve {
    Serve::start(data, data, |_| {})
}

/// What the clients know of one task.
#[derive(Debug, Default, Clone)]
struct Acked {
    version: u64,
    keys: Vec<String>,
    /// A request for it got no answer (the crash): it may or may not have committed.
    in_doubt: bool,
}

/// Sends a write and returns the version it acknowledged, asserting `status`; `None` once the
/// server no longer answers (the crash).
async fn acked_version(write: reqwest::RequestBuilder, status: u16, id: &str) -> Option<u64> {
    let res = write.send().await.ok()?;
    assert_eq!(res.status(), status, "write of {id}");
    let t: Value = res.json().await.expect("json");
    Some(t["version"].as_u64().expect("version"))
}

/// Records that a write of `id` was acknowledged at `version`, having added `key` (a PATCH).
fn acknowledge(book: &Mutex<HashMap<String, Acked>>, id: &str, version: u64, key: Option<String>) {
    let mut b = book.lock().unwrap();
    let a = b.get_mut(id).expect("known");
    a.version = version;
    a.keys.extend(key);
    a.in_doubt = false;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_embedded_server_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut serve = start(dir.path());
    serve.wait_healthy(Duration::from_secs(10)).await;
    let key = serve.first_key().await;
    let base = serve.url("");

    let book: Arc<Mutex<HashMap<String, Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (book, stop, seq, key, base) = (
            book.clone(),
            stop.clone(),
            seq.clone(),
            key.clone(),
            base.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut mine: Vec<String> = Vec::new();
            let mut i = 0u64;
            // Until the server is gone (the first request without an answer) or told to stop.
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let n = seq.fetch_add(1, Ordering::Relaxed);
                // Every third request creates a task, the others PATCH one of this client's.
                if mine.is_empty() || i % 3 == 0 {
                    let id = format!("c{c}n{n}");
                    book.lock().unwrap().insert(
                        id.clone(),
                        Acked {
                            in_doubt: true,
                            ..Acked::default()
                        },
                    );
                    let create = http
                        .post(format!("{base}/v1/tasks"))
                        .bearer_auth(&key)
                        .json(&json!({"task_id": id, "task_type": "thumbnail", "status": "PROCESSING"}));
                    let Some(version) = acked_version(create, 201, &id).await else {
                        return;
                    };
                    acknowledge(&book, &id, version, None);
                    mine.push(id);
                } else {
                    let id = mine[(n as usize) % mine.len()].clone();
                    let k = format!("k{n}");
                    book.lock().unwrap().get_mut(&id).expect("known").in_doubt = true;
                    let patch = http
                        .patch(format!("{base}/v1/tasks/{id}"))
                        .bearer_auth(&key)
                        .json(&json!({"additional_data": {&k: n}}));
                    let Some(version) = acked_version(patch, 200, &id).await else {
                        return;
                    };
                    acknowledge(&book, &id, version, Some(k));
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    serve.kill();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("client");
    }

    let mut serve = start(dir.path());
    serve.wait_healthy(Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let book = book.lock().unwrap().clone();
    let (mut created, mut patches, mut doubtful, mut doubtful_committed) = (0, 0, 0, 0);
    for (id, a) in &book {
        let res = http
            .get(serve.url(&format!("/v1/tasks/{id}")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("GET");
        if a.version == 0 {
            // A create that got no answer: either outcome is allowed, nothing in between.
            doubtful += 1;
            if res.status() == 200 {
                doubtful_committed += 1;
            } else {
                assert_eq!(res.status(), 404, "{id}");
            }
            continue;
        }
        assert_eq!(res.status(), 200, "acknowledged create of {id} lost");
        created += 1;
        patches += a.keys.len();
        let t: Value = res.json().await.expect("json");
        let version = t["version"].as_u64().expect("version");
        let data = t["additional_data"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for k in &a.keys {
            assert!(data.contains_key(k), "{id}: acknowledged {k} lost: {t}");
        }
        let stored = data.keys().filter(|k| k.starts_with('k')).count() as u64;
        assert_eq!(
            version,
            1 + stored,
            "{id}: one version per stored write: {t}"
        );
        if a.in_doubt {
            doubtful += 1;
            assert!(
                version == a.version || version == a.version + 1,
                "{id}: {t}"
            );
            doubtful_committed += usize::from(version == a.version + 1);
        } else {
            assert_eq!(version, a.version, "{id}: exact acknowledged version: {t}");
        }
    }
    eprintln!(
        "[embedded crash] acknowledged before SIGKILL: {created} creates, {patches} PATCHes — all present at their exact versions; {doubtful} requests cut off by the kill, {doubtful_committed} of them had committed"
    );
    assert!(created > 0 && patches > 0, "the burst ran");
}
