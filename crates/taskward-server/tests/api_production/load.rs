//! A mixed load of real HTTP clients, and the book-keeping that lets a test check what they
//! saw against what was acknowledged.
//!
//! Each writer owns some tasks and PATCHes them in turn, one request at a time, so the version
//! each acknowledgement carries is exactly that write's. Every write adds one new key
//! (`k<seq>`) to `additional_data`, so a task's version is always 1 + its number of such keys
//! (a refused write that committed anyway shows up as a key, never as a silent version).
//! Readers GET random tasks and check the answer against what had been acknowledged before
//! the request was sent: an older version is a stale read.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{assert_error_shape, TestApp};

/// What a test is doing to the tiers while requests run (a request is counted in the phase
/// it was sent and answered in, or in `DURING` if those differ).
pub const BEFORE: u8 = 0;
pub const DURING: u8 = 1;
pub const AFTER: u8 = 2;
const PHASES: [&str; 3] = ["before", "during", "after"];

/// What clients saw, per kind of request and phase.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: u64,
    /// Answers other than 2xx (or no answer), first few kept in `samples`.
    pub failed: u64,
    /// Failures that were 503 in SPEC's error shape with `Retry-After`.
    pub unavailable: u64,
    /// Reads older than the last write acknowledged before they were sent.
    pub stale: u64,
    pub max_latency: Duration,
    pub samples: Vec<String>,
}

impl Tally {
    fn record(&mut self, latency: Duration) {
        self.max_latency = self.max_latency.max(latency);
    }

    fn sample(&mut self, s: String) {
        if self.samples.len() < 5 {
            self.samples.push(s);
        }
    }
}

/// The last acknowledged state of one task.
#[derive(Debug, Default, Clone)]
pub struct Acked {
    pub version: u64,
    /// Keys added by acknowledged writes.
    pub keys: Vec<String>,
}

/// Shared between the clients and the test.
pub struct Book {
    pub acked: Mutex<HashMap<String, Acked>>,
    /// `[reads, writes]` per phase.
    pub tallies: Mutex<[[Tally; 2]; 3]>,
    pub phase: AtomicU8,
    stop: AtomicBool,
    seq: std::sync::atomic::AtomicU64,
}

impl Book {
    fn acked_version(&self, id: &str) -> u64 {
        self.acked.lock().unwrap().get(id).map_or(0, |a| a.version)
    }

    pub fn tally(&self, phase: u8, write: bool) -> Tally {
        self.tallies.lock().unwrap()[phase as usize][usize::from(write)].clone()
    }

    /// A request sent in one phase and answered in another overlapped the fault: it counts
    /// as sent during it.
    fn straddled(&self, sent_in: u8) -> u8 {
        if self.phase.load(Ordering::SeqCst) == sent_in {
            sent_in
        } else {
            DURING
        }
    }

    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Asserts that in every phase the load ran, and no read or write failed and no read was
    /// stale: the fault was invisible to clients.
    pub fn assert_no_failed_or_stale_request(&self, label: &str) {
        for phase in [BEFORE, DURING, AFTER] {
            let (r, w) = (self.tally(phase, false), self.tally(phase, true));
            assert_eq!(
                r.failed, 0,
                "{label} phase {phase}: failed reads {:?}",
                r.samples
            );
            assert_eq!(
                r.stale, 0,
                "{label} phase {phase}: stale reads {:?}",
                r.samples
            );
            assert_eq!(
                w.failed, 0,
                "{label} phase {phase}: failed writes {:?}",
                w.samples
            );
            assert!(r.ok > 0 && w.ok > 0, "{label} phase {phase}: load ran");
        }
    }

    /// One line per phase, for `--no-capture`.
    pub fn print(&self, label: &str) {
        let t = self.tallies.lock().unwrap();
        for (p, [r, w]) in t.iter().enumerate() {
            eprintln!(
                "[{label}] {:<6} reads ok {:>5} failed {:>3} stale {:>2} max {:>4} ms | writes ok {:>5} failed {:>3} (503 shaped {:>3}) max {:>4} ms",
                PHASES[p],
                r.ok,
                r.failed,
                r.stale,
                r.max_latency.as_millis(),
                w.ok,
                w.failed,
                w.unavailable,
                w.max_latency.as_millis(),
            );
            for s in r.samples.iter().chain(&w.samples) {
                eprintln!("[{label}]        sample failure: {s}");
            }
        }
    }
}

/// Where a load's requests go, and how writers write.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Base URL every write goes to.
    pub writes: String,
    /// Base URLs reads go to, in turn.
    pub reads: Vec<String>,
    /// After each acknowledged write, the writer reads the task back at once through the next
    /// of `reads` (the read most likely to see a stale copy on another instance).
    pub read_after_write: bool,
    /// Writers send `If-Match` with the version they last had acknowledged.
    pub if_match: bool,
}

/// Running clients; [`Load::stop`] ends them.
pub struct Load {
    pub book: Arc<Book>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// A client that never waits forever: a hung request is a failure, not a hung test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Creates `n` PROCESSING tasks through `app` and reads each once (so the hot tier has it).
pub async fn seed(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}{i}");
        app.create_processing(&id).await;
        app.get_ok(&id).await;
        ids.push(id);
    }
    ids
}

impl Load {
    /// Starts `writers` writers (task `i` belongs to writer `i % writers`) and `readers`
    /// readers, all against `base` with `key`.
    pub fn start(base: &str, key: &str, ids: &[String], writers: usize, readers: usize) -> Load {
        let targets = Targets {
            writes: base.to_owned(),
            reads: vec![base.to_owned()],
            read_after_write: false,
            if_match: false,
        };
        Self::start_with(&targets, key, ids, writers, readers)
    }

    /// [`Load::start`] with writes and reads sent where `targets` says.
    pub fn start_with(
        targets: &Targets,
        key: &str,
        ids: &[String],
        writers: usize,
        readers: usize,
    ) -> Load {
        let book = Arc::new(Book {
            acked: Mutex::new(
                ids.iter()
                    .map(|id| {
                        (
                            id.clone(),
                            Acked {
                                version: 1,
                                keys: Vec::new(),
                            },
                        )
                    })
                    .collect(),
            ),
            tallies: Mutex::default(),
            phase: AtomicU8::new(BEFORE),
            stop: AtomicBool::new(false),
            seq: Default::default(),
        });
        let mut handles = Vec::new();
        for w in 0..writers {
            let owned: Vec<String> = ids.iter().skip(w).step_by(writers).cloned().collect();
            handles.push(tokio::spawn(writer(
                client(),
                targets.clone(),
                key.to_owned(),
                owned,
                book.clone(),
            )));
        }
        for r in 0..readers {
            handles.push(tokio::spawn(reader(
                client(),
                targets.reads.clone(),
                key.to_owned(),
                ids.to_vec(),
                r,
                book.clone(),
            )));
        }
        Load { book, handles }
    }

    /// Stops the clients and waits for their last requests.
    /// Lets the load run for a while (`BEFORE`), then runs `fault` as the `DURING` phase, and
    /// moves to `AFTER` once it returns; returns what `fault` returned.
    pub async fn during<T>(&self, fault: impl std::future::Future<Output = T>) -> T {
        tokio::time::sleep(Duration::from_millis(800)).await;
        self.book.set_phase(DURING);
        let out = fault.await;
        self.book.set_phase(AFTER);
        out
    }

    pub async fn stop(self) -> Arc<Book> {
        self.book.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            h.await.expect("client task");
        }
        self.book
    }
}

async fn writer(
    client: reqwest::Client,
    targets: Targets,
    key: String,
    owned: Vec<String>,
    book: Arc<Book>,
) {
    let base = &targets.writes;
    let mut i = 0usize;
    while !book.stop.load(Ordering::SeqCst) {
        let id = &owned[i % owned.len()];
        i += 1;
        let seq = book.seq.fetch_add(1, Ordering::Relaxed);
        let k = format!("k{seq}");
        let phase = book.phase.load(Ordering::SeqCst);
        let started = Instant::now();
        let mut req = client
            .patch(format!("{base}/v1/tasks/{id}"))
            .bearer_auth(&key)
            .json(&json!({"status": "PROCESSING", "additional_data": {&k: seq}}));
        if targets.if_match {
            req = req.header("if-match", format!("\"{}\"", book.acked_version(id)));
        }
        let res = req.send().await;
        let outcome = match res {
            Ok(res) => {
                let status = res.status();
                let retry_after = res.headers().contains_key("retry-after");
                let body: Value = res.json().await.unwrap_or(Value::Null);
                Some((status, retry_after, body))
            }
            Err(e) => {
                let mut t = book.tallies.lock().unwrap();
                let tally = &mut t[book.straddled(phase) as usize][1];
                tally.failed += 1;
                tally.sample(format!("PATCH {id}: {e}"));
                None
            }
        };
        let latency = started.elapsed();
        let phase = book.straddled(phase);
        let acknowledged = {
            let mut t = book.tallies.lock().unwrap();
            let tally = &mut t[phase as usize][1];
            tally.record(latency);
            let Some((status, retry_after, body)) = outcome else {
                continue;
            };
            acknowledge(&book, tally, id, k, status, retry_after, &body)
        };
        if acknowledged && targets.read_after_write {
            let read_base = &targets.reads[seq as usize % targets.reads.len()];
            checked_read(&client, read_base, &key, id, &book).await;
        }
    }
}

/// Books one write's answer; `true` if it was acknowledged.
fn acknowledge(
    book: &Book,
    tally: &mut Tally,
    id: &str,
    k: String,
    status: StatusCode,
    retry_after: bool,
    body: &Value,
) -> bool {
    {
        if status == StatusCode::OK {
            let version = body["version"].as_u64().expect("version");
            let mut acked = book.acked.lock().unwrap();
            let a = acked.get_mut(id).expect("known task");
            if version <= a.version {
                tally.failed += 1;
                tally.sample(format!(
                    "PATCH {id}: version {version} not above acknowledged {}",
                    a.version
                ));
            } else {
                tally.ok += 1;
                a.version = version;
                a.keys.push(k);
                return true;
            }
        } else {
            tally.failed += 1;
            if status == StatusCode::SERVICE_UNAVAILABLE && retry_after {
                assert_error_shape(body, 503);
                tally.unavailable += 1;
            }
            tally.sample(format!("PATCH {id}: {status} {body}"));
        }
    }
    false
}

async fn reader(
    client: reqwest::Client,
    bases: Vec<String>,
    key: String,
    ids: Vec<String>,
    salt: usize,
    book: Arc<Book>,
) {
    // A cheap deterministic walk over the tasks, different per reader.
    let mut i = salt * 7;
    while !book.stop.load(Ordering::SeqCst) {
        let id = &ids[i % ids.len()];
        let base = &bases[(i + salt) % bases.len()];
        i += 3;
        checked_read(&client, base, &key, id, &book).await;
    }
}

/// GETs `id` through `base` and books the answer against what had been acknowledged before
/// the request was sent.
async fn checked_read(client: &reqwest::Client, base: &str, key: &str, id: &str, book: &Book) {
    {
        let floor = book.acked_version(id);
        let phase = book.phase.load(Ordering::SeqCst);
        let started = Instant::now();
        let res = client
            .get(format!("{base}/v1/tasks/{id}"))
            .bearer_auth(key)
            .send()
            .await;
        let answer = match res {
            Ok(res) => {
                let status = res.status();
                Ok((status, res.json::<Value>().await.unwrap_or(Value::Null)))
            }
            Err(e) => Err(e),
        };
        let phase = book.straddled(phase);
        let mut t = book.tallies.lock().unwrap();
        let tally = &mut t[phase as usize][0];
        tally.record(started.elapsed());
        match answer {
            Ok((StatusCode::OK, body)) => {
                let version = body["version"].as_u64().unwrap_or(0);
                if version < floor {
                    tally.stale += 1;
                    tally.sample(format!(
                        "GET {id} via {base}: version {version} < acknowledged {floor}"
                    ));
                } else {
                    tally.ok += 1;
                }
            }
            Ok((status, body)) => {
                tally.failed += 1;
                tally.sample(format!("GET {id}: {status} {body}"));
            }
            Err(e) => {
                tally.failed += 1;
                tally.sample(format!("GET {id}: {e}"));
            }
        }
    }
}

/// Checks every task against the book through `app`'s HTTP API: the exact last acknowledged
/// version, every acknowledged key, and one version per stored key. Returns the number of
/// tasks checked and of keys found that no acknowledgement covered (refused writes that
/// committed anyway).
pub async fn check_all(app: &TestApp, book: &Book, label: &str) -> (usize, usize) {
    let acked: BTreeMap<String, Acked> = book
        .acked
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut unacked_keys = 0;
    for (id, a) in &acked {
        let t = app.get_ok(id).await;
        assert_eq!(
            t["version"].as_u64(),
            Some(a.version),
            "{label}: {id} must read back its last acknowledged version: {t}"
        );
        let data = t["additional_data"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for k in &a.keys {
            assert!(
                data.contains_key(k),
                "{label}: {id} lost acknowledged {k}: {t}"
            );
        }
        let stored = data.keys().filter(|k| k.starts_with('k')).count();
        assert_eq!(
            a.version,
            1 + stored as u64,
            "{label}: {id}: one version per write: {t}"
        );
        unacked_keys += stored - a.keys.len();
    }
    // Lists read the durable tier alone: the same versions must be there.
    let listed: HashMap<String, u64> = app
        .snapshot()
        .await
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap_or_default().to_owned(),
                t["version"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for (id, a) in &acked {
        assert_eq!(listed.get(id), Some(&a.version), "{label}: {id} as listed");
    }
    (acked.len(), unacked_keys)
}
