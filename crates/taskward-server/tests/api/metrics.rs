//! `/metrics` as a Prometheus scraper reads it: every metric named once with its type, the
//! store's counters and gauges among them, and values that follow what the server did.

use reqwest::StatusCode;

use crate::support::{spawn_app, TestApp};

const STORE_COUNTERS: [&str; 6] = [
    "taskward_hot_hits",
    "taskward_hot_misses",
    "taskward_hot_fallbacks",
    "taskward_hot_errors",
    "taskward_durable_errors",
    "taskward_retention_deleted",
];
const STORE_GAUGES: [&str; 3] = [
    "taskward_pending_invalidations",
    "taskward_hot_suspect",
    "taskward_long_poll_tasks",
];

async fn scrape(app: &TestApp) -> String {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    res.text().await.unwrap()
}

/// The value of the sample `name` (with its labels, if any, as the text shows them).
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Each of `expected` is named once by a `# TYPE` line, with its type.
fn assert_types<'a>(text: &str, expected: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let types: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    for (name, kind) in expected {
        let found: Vec<_> = types.iter().filter(|(n, _)| *n == name).collect();
        assert_eq!(found, [&(name, kind)], "{name} once, as a {kind}:\n{text}");
    }
}

fn store_metrics() -> impl Iterator<Item = (&'static str, &'static str)> {
    STORE_COUNTERS
        .iter()
        .map(|n| (*n, "counter"))
        .chain(STORE_GAUGES.iter().map(|n| (*n, "gauge")))
}

#[tokio::test]
async fn metrics_name_each_metric_once_with_its_type_and_values_follow_the_traffic() {
    let app = spawn_app().await;
    // The store's metrics are there from the start; the HTTP ones from the first request.
    let before = scrape(&app).await;
    assert_types(&before, store_metrics());
    for name in STORE_COUNTERS {
        sample(&before, &format!("{name}_total"));
    }
    assert_eq!(sample(&before, "taskward_hot_suspect"), 0);
    assert_eq!(sample(&before, "taskward_long_poll_tasks"), 0);
    assert!(before.ends_with("# EOF\n"), "{before}");

    app.create_processing("m1").await;
    app.get_ok("m1").await;
    app.get_ok("m1").await;
    let after = scrape(&app).await;
    assert_types(
        &after,
        store_metrics().chain([
            ("taskward_http_requests", "counter"),
            ("taskward_http_request_duration_seconds", "histogram"),
        ]),
    );
    let hits = |t: &str| sample(t, "taskward_hot_hits_total");
    assert!(hits(&after) >= hits(&before) + 2, "{before}\n{after}");
    assert_eq!(
        sample(
            &after,
            "taskward_http_requests_total{method=\"GET\",route=\"/v1/tasks/{task_id}\",status=\"200\"}"
        ),
        2
    );
    assert_eq!(sample(&after, "taskward_hot_errors_total"), 0);
    assert!(after.ends_with("# EOF\n"), "{after}");
}

/// Made-up methods are answered (405 or 404) and counted, but under one `other` label: a
/// client sending a new method per request must not grow the metrics (and the server's
/// memory) without bound.
#[tokio::test]
async fn made_up_methods_are_counted_under_one_label() {
    let app = spawn_app().await;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let res = app
            .client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = scrape(&app).await;
    assert!(!text.contains("BREW"), "{text}");
    assert_eq!(
        sample(
            &text,
            "taskward_http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"}"
        ),
        5
    );
}
