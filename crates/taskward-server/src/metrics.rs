//! `/metrics` in Prometheus (OpenMetrics text) format.
//!
//! HTTP request counts and latency histograms by method, route template and status, recorded
//! by the request middleware ([`crate::telemetry::Observe`]); the store's own counters (hot
//! hits, misses, fallbacks, errors, durable errors, retention deletions) and gauges (pending invalidations, hot tier suspect, tasks
//! long-polled) read at scrape time from [`TieredStore`] by a registered collector, so the
//! store needs no metrics library. Everything is written by prometheus_client's encoder: one
//! registry, one renderer, names and types checked in one place.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use taskward_store::TieredStore;

use crate::state::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// The method as a label: the standard ones by name, any other as `other`, so a client
/// cannot grow the metrics without bound by sending made-up methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The registry behind `/metrics`, and the HTTP metrics the middleware records.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    /// The webhook dispatcher's, recorded by it.
    pub webhooks: crate::webhooks::WebhookMetrics,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    /// Registers the HTTP metrics, and `store`'s, read at each scrape.
    pub fn new(store: TieredStore) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StoreCollector { store }));
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "taskward_http_requests",
            "HTTP requests answered",
            requests.clone(),
        );
        registry.register(
            "taskward_http_request_duration_seconds",
            "Time to answer HTTP requests",
            latency.clone(),
        );
        let webhooks = crate::webhooks::WebhookMetrics::register(&mut registry);
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            webhooks,
        }
    }

    /// Counts and times one answered request by its route template (never the raw path, so
    /// label cardinality stays bounded), called by [`crate::telemetry::Observe`].
    pub(crate) fn record(&self, method: &Method, route: &str, status: u16, latency: Duration) {
        let labels = RequestLabels {
            method: method_label(method),
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }
}

/// `GET /metrics`
pub async fn render(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let encoded = {
        let registry = state
            .metrics
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
    };
    if encoded.is_err() {
        return crate::error::ApiError::Internal.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The store's counters and gauges, read from [`TieredStore`] at each scrape: the store
/// keeps plain atomics and needs no metrics library.
#[derive(Debug)]
struct StoreCollector {
    store: TieredStore,
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.store.stats();
        let counters = [
            (
                "taskward_hot_hits",
                "Reads answered by the hot tier.",
                &s.hot_hits,
            ),
            (
                "taskward_hot_misses",
                "Reads the hot tier did not have.",
                &s.hot_misses,
            ),
            (
                "taskward_hot_fallbacks",
                "Reads served by the durable tier because the hot tier failed or was suspect.",
                &s.hot_fallbacks,
            ),
            (
                "taskward_hot_errors",
                "Failed hot-tier calls.",
                &s.hot_errors,
            ),
            (
                "taskward_durable_errors",
                "Failed durable-tier calls.",
                &s.durable_errors,
            ),
            (
                "taskward_retention_deleted",
                "Terminal tasks removed by retention.",
                &s.retention_deleted,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "taskward_pending_invalidations",
                "Hot-tier invalidations waiting for the hot tier.",
                s.pending_invalidations.load(Ordering::Relaxed),
            ),
            (
                "taskward_hot_suspect",
                "1 while reads bypass the hot tier.",
                u64::from(self.store.hot_suspect()),
            ),
            (
                "taskward_long_poll_tasks",
                "Tasks that long-poll requests are waiting on.",
                self.store.changes().watched_tasks() as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
