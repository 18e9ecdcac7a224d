//! The dispatcher: claims due deliveries from the outbox and makes their attempts, off the
//! request path.
//!
//! Each instance runs one. It claims what it has room for (at most `max_concurrency` attempts
//! in flight, `per_endpoint_concurrency` per endpoint; endpoints at their limit are left out of
//! the claim), for a lease of twice the attempt timeout plus [`LEASE_MARGIN`]: a crash mid-attempt
//! leaves the row due again when the lease runs out, and an attempt cannot outlive its lease
//! (the client's timeout ends it first), so no two instances make the same attempt. New
//! deliveries come from the event log (`claim_due`): an endpoint is given only as many as it
//! has room for, so one that hangs holds a few rows, not one per event. It wakes when a write
//! of this process appended events, when an attempt ends (room for more), and every
//! `poll_interval_ms` for what other instances wrote or what became due.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use serde::Serialize;
use taskward_model::webhook::{Attempt, WebhookId};
use taskward_model::{EventId, EventType, TaskResponse};
use taskward_store::webhooks::{Claimed, EndpointRoom, Finished, WebhookStore};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::guard::{self, GuardedResolver};
use super::sign;
use crate::settings::WebhookSettings;

/// A claim lasts twice the attempt's timeout and this much more: an attempt ends at its
/// timeout, its record takes one statement, and instances' clocks may differ a little.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// Most deliveries claimed by one statement.
const CLAIM_BATCH: usize = 64;
/// Most bytes of a receiver's answer kept with the attempt.
const KEPT_BODY: usize = 1024;
/// How often the queue gauges are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// How long the dispatcher lets attempts end after one ends, before it looks for more.
const ENDED_SETTLE: Duration = Duration::from_millis(5);
/// How long the dispatcher lets writes accumulate after one wakes it.
const WRITES_SETTLE: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The dispatcher's metrics, registered with the server's.
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    attempts: Family<OutcomeLabels, Counter>,
    duration: Histogram,
    pending: Gauge,
    oldest_due_age: Gauge,
}

impl WebhookMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = WebhookMetrics {
            attempts: Family::default(),
            // 5 ms to ~20 s.
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            pending: Gauge::default(),
            oldest_due_age: Gauge::default(),
        };
        registry.register(
            "taskward_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered, retry (will be tried again), failed (no attempt left), gone (410: endpoint disabled)",
            m.attempts.clone(),
        );
        registry.register(
            "taskward_webhook_attempt_duration_seconds",
            "Time from sending a webhook attempt to its answer (or timeout)",
            m.duration.clone(),
        );
        registry.register(
            "taskward_webhook_pending",
            "Webhook deliveries not yet delivered or failed, due or not, and events not yet given to their endpoints (at most)",
            m.pending.clone(),
        );
        registry.register(
            "taskward_webhook_oldest_due_age_seconds",
            "How long the oldest pending delivery has been due (0 when none is)",
            m.oldest_due_age.clone(),
        );
        m
    }
}

/// What is sent: SPEC's `{"type", "timestamp", "data"}`; `data` is the task response after the
/// change with `event_id` and `type`, as the event streams send it.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: EventType,
    timestamp: String,
    data: PayloadData<'a>,
}

#[derive(Serialize)]
struct PayloadData<'a> {
    #[serde(flatten)]
    task: &'a TaskResponse,
    event_id: EventId,
    #[serde(rename = "type")]
    kind: EventType,
}

/// The running dispatcher; [`Dispatcher::stop`] ends it.
#[derive(Debug)]
pub struct Dispatcher {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Dispatcher {
    /// Starts claiming and delivering.
    pub fn start(
        store: Arc<dyn WebhookStore>,
        settings: &WebhookSettings,
        metrics: WebhookMetrics,
    ) -> anyhow::Result<Dispatcher> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: settings.allow_private_networks,
            }))
            .user_agent(concat!("taskward-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let stop = CancellationToken::new();
        let worker = Arc::new(Worker {
            store,
            client,
            settings: settings.clone(),
            lease: timeout * 2 + LEASE_MARGIN,
            metrics,
            slots: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
            in_flight: Mutex::new(HashMap::new()),
            backing_off: Mutex::new(HashSet::new()),
            ended: Notify::new(),
        });
        let task = tokio::spawn(worker.run(stop.clone()));
        Ok(Dispatcher { stop, task })
    }

    /// Stops claiming, lets the attempts in flight finish (each ends within its timeout), and
    /// returns.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

struct Worker {
    store: Arc<dyn WebhookStore>,
    client: reqwest::Client,
    settings: WebhookSettings,
    lease: Duration,
    metrics: WebhookMetrics,
    /// One permit per attempt in flight.
    slots: Arc<Semaphore>,
    /// Attempts in flight per endpoint.
    in_flight: Mutex<HashMap<WebhookId, usize>>,
    /// Endpoints whose attempts from this instance failed and are to be retried: the first
    /// delivery one of them accepts brings its retries forward.
    backing_off: Mutex<HashSet<WebhookId>>,
    /// Notified when an attempt ends.
    ended: Notify,
}

impl Worker {
    async fn run(self: Arc<Self>, stop: CancellationToken) {
        let attempts = TaskTracker::new();
        let queued = self.store.outbox_queued();
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        let mut stats_at = Instant::now() - STATS_EVERY;
        while !stop.is_cancelled() {
            self.claim_and_start(&attempts).await;
            if stats_at.elapsed() >= STATS_EVERY {
                stats_at = Instant::now();
                self.refresh_stats().await;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = queued.notified() => {
                    // Every write wakes the dispatcher; under a stream of writes it looks at
                    // most once per WRITES_SETTLE, so a deployment without endpoints pays a
                    // few cheap queries a second, not one per write.
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(WRITES_SETTLE) => {}
                    }
                }
                () = self.ended.notified() => {
                    // Attempts end one by one; a look after each would give every endpoint one
                    // delivery per look, several statements each. A few milliseconds gather
                    // the ends of a burst into one look.
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(ENDED_SETTLE) => {}
                    }
                }
                () = tokio::time::sleep(poll) => {}
            }
        }
        attempts.close();
        attempts.wait().await;
    }

    /// Claims due deliveries while there is room and the claims find some.
    async fn claim_and_start(self: &Arc<Self>, attempts: &TaskTracker) {
        loop {
            let room = self.slots.available_permits().min(CLAIM_BATCH);
            if room == 0 {
                return;
            }
            let skip = self.saturated();
            let per_endpoint = self.per_endpoint();
            let claim: i64 = rand::random();
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
            let claimed = match self
                .store
                .claim_due(
                    now,
                    until,
                    claim,
                    room as u32,
                    &skip,
                    EndpointRoom {
                        per_claim: per_endpoint as u32,
                        pending: self.settings.max_pending_per_endpoint.max(1) as u32,
                    },
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed");
                    return;
                }
            };
            let found = claimed.len();
            for c in claimed {
                let Some(slot) = self.take_room(&c.delivery.webhook_id) else {
                    // The claim went over an endpoint's limit: give the row back untried.
                    if let Err(e) = self.store.release(c.delivery.delivery_id, claim).await {
                        tracing::warn!(error = %e, "releasing a webhook delivery failed");
                    }
                    continue;
                };
                let this = self.clone();
                attempts.spawn(async move {
                    this.attempt(c, claim).await;
                    this.give_back(slot);
                });
            }
            if found < room {
                return;
            }
        }
    }

    /// Most attempts in flight per endpoint (at least one).
    fn per_endpoint(&self) -> usize {
        self.settings.per_endpoint_concurrency.max(1)
    }

    /// Endpoints with as many attempts in flight as they may have.
    fn saturated(&self) -> Vec<WebhookId> {
        let per = self.per_endpoint();
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, n)| **n >= per)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn take_room(&self, id: &WebhookId) -> Option<(WebhookId, tokio::sync::OwnedSemaphorePermit)> {
        let per = self.per_endpoint();
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = in_flight.entry(id.clone()).or_default();
        if *n >= per {
            return None;
        }
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        *n += 1;
        Some((id.clone(), permit))
    }

    fn give_back(&self, (id, permit): (WebhookId, tokio::sync::OwnedSemaphorePermit)) {
        {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = in_flight.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    in_flight.remove(&id);
                }
            }
        }
        drop(permit);
        self.ended.notify_one();
    }

    /// One attempt, and its record.
    async fn attempt(&self, c: Claimed, claim: i64) {
        let delivery = c.delivery.delivery_id;
        let at = Utc::now();
        let started = Instant::now();
        let result = match &c.event {
            Some(event) => self.send(&c, event).await,
            None => Err(Sent::failed(
                "the event is no longer kept (retention removed its task)",
            )),
        };
        let elapsed = started.elapsed();
        self.metrics.duration.observe(elapsed.as_secs_f64());
        let (status_code, response_body, error) = match &result {
            Ok(answer) => (
                Some(answer.status),
                answer.body.clone(),
                (!answer.taken()).then(|| format!("the receiver answered {}", answer.status)),
            ),
            Err(e) => (None, None, Some(e.error.clone())),
        };
        let mut attempts = c.delivery.attempts.clone();
        attempts.push(Attempt {
            at,
            status_code,
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            error,
            response_body,
        });
        let gone = status_code == Some(410);
        let (outcome, label) = match (&result, gone) {
            (Ok(a), _) if a.taken() => (Finished::Delivered, "delivered"),
            (_, true) => (Finished::Failed, "gone"),
            (Err(e), _) if e.final_ => (Finished::Failed, "failed"),
            _ => match self.next_attempt(attempts.len(), at) {
                Some(next) => (Finished::Retry { next }, "retry"),
                None => (Finished::Failed, "failed"),
            },
        };
        self.metrics
            .attempts
            .get_or_create(&OutcomeLabels { outcome: label })
            .inc();
        let id = &c.delivery.webhook_id;
        let recovered = {
            let mut backing_off = self
                .backing_off
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match outcome {
                Finished::Retry { .. } => {
                    backing_off.insert(id.clone());
                    false
                }
                Finished::Delivered => backing_off.remove(id),
                Finished::Failed => false,
            }
        };
        match self.store.finish(delivery, claim, &attempts, outcome).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                %delivery,
                "a webhook attempt outlived its claim; the delivery was taken by another worker"
            ),
            Err(e) => tracing::warn!(%delivery, error = %e, "recording a webhook attempt failed"),
        }
        if recovered {
            if let Err(e) = self.store.pull_forward(id, Utc::now()).await {
                tracing::warn!(error = %e, "bringing webhook retries forward failed");
            }
            self.ended.notify_one();
        }
        if gone {
            tracing::info!(webhook_id = %c.delivery.webhook_id, "the receiver answered 410 Gone: disabling the endpoint");
            if let Err(e) = self.store.disable_webhook(&c.delivery.webhook_id).await {
                tracing::warn!(error = %e, "disabling a webhook endpoint failed");
            }
        }
    }

    /// When attempt number `made + 1` is due, after `made` attempts, the last at `at`; `None`
    /// when the schedule is used up.
    fn next_attempt(&self, made: usize, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let delay = *self
            .settings
            .retry_schedule_seconds
            .get(made.checked_sub(1)?)?;
        // ±10 % so that deliveries that failed together do not all come back together.
        let jitter = 0.9 + 0.2 * rand::random::<f64>();
        let ms = (delay * jitter * 1000.0).round() as i64;
        Some(at + chrono::Duration::milliseconds(ms))
    }

    async fn send(&self, c: &Claimed, event: &taskward_model::StoredEvent) -> Result<Answer, Sent> {
        let url = reqwest::Url::parse(&c.url).map_err(|e| Sent::failed(format!("bad URL: {e}")))?;
        if let Some(refused) = guard::literal_forbidden(&url, self.settings.allow_private_networks)
        {
            return Err(Sent::failed(refused));
        }
        let task = TaskResponse::at(event.task.clone(), event.task.updated_at);
        let kind = event.kind();
        let body = serde_json::to_vec(&Payload {
            kind,
            timestamp: taskward_model::time::format(&event.task.updated_at),
            data: PayloadData {
                task: &task,
                event_id: event.event_id,
                kind,
            },
        })
        .map_err(|e| Sent::failed(format!("rendering the payload: {e}")))?;
        let id = c.delivery.delivery_id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = sign::signature_header(&c.secrets, &id, timestamp, &body);
        let res = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| Sent::retry(describe(&e)))?;
        let status = res.status().as_u16();
        Ok(Answer {
            status,
            body: kept_body(res).await,
        })
    }

    async fn refresh_stats(&self) {
        match self.store.outbox_stats().await {
            Ok(s) => {
                self.metrics
                    .pending
                    .set(i64::try_from(s.pending).unwrap_or(i64::MAX));
                let age = s
                    .oldest_due
                    .map_or(0, |due| (Utc::now() - due).num_seconds().max(0));
                self.metrics.oldest_due_age.set(age);
            }
            Err(e) => tracing::debug!(error = %e, "reading the webhook outbox size failed"),
        }
    }
}

/// The receiver's answer.
struct Answer {
    status: u16,
    body: Option<String>,
}

impl Answer {
    /// A 2xx: delivered.
    fn taken(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An attempt that got no answer.
struct Sent {
    error: String,
    /// No later attempt could do better.
    final_: bool,
}

impl Sent {
    fn retry(error: impl Into<String>) -> Self {
        Sent {
            error: error.into(),
            final_: false,
        }
    }

    fn failed(error: impl Into<String>) -> Self {
        Sent {
            error: error.into(),
            final_: true,
        }
    }
}

/// The client's error in words, with its cause (reqwest's own message is only its kind).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// The first [`KEPT_BODY`] bytes of the answer, read no further.
async fn kept_body(mut res: reqwest::Response) -> Option<String> {
    let mut kept = Vec::new();
    while kept.len() < KEPT_BODY {
        match res.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    if kept.is_empty() {
        return None;
    }
    kept.truncate(KEPT_BODY);
    Some(String::from_utf8_lossy(&kept).into_owned())
}
