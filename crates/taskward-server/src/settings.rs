//! Configuration: one serde tree whose `Default` is the embedded shape.
//!
//! Layers, later wins: defaults → TOML file (`--config` / `TASKWARD_CONFIG`) → `TASKWARD_…`
//! environment (`__` nests: `TASKWARD_HOT__TTL_SECS`) → command-line flags. Loading never
//! writes a file. Tests build `Settings` in code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Everything taskward can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded durable tier (SQLite file `taskward.db`).
    pub data_dir: PathBuf,
    /// Task types accepted in addition to the reference API's built-ins.
    pub task_types: Vec<String>,
    /// Redis URL (`redis://host:6379/0`): selects the Redis hot tier instead of the in-process
    /// cache.
    pub redis_url: Option<Secret>,
    /// Redis Cluster seed nodes, comma-separated (`redis://h1:p1,redis://h2:p2`): selects a
    /// Redis Cluster as the hot tier instead of `redis_url` (setting both is an error).
    pub redis_cluster_nodes: Option<SecretList>,
    /// PostgreSQL URL (`postgres://user:pass@host/db`): selects the PostgreSQL durable tier
    /// instead of SQLite in `data_dir`.
    pub database_url: Option<Secret>,
    pub hot: HotSettings,
    pub durable: DurableSettings,
    pub limits: LimitSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub events: EventSettings,
    pub webhooks: WebhookSettings,
    pub server: ServerSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("taskward-data"),
            task_types: Vec::new(),
            redis_url: None,
            redis_cluster_nodes: None,
            database_url: None,
            hot: HotSettings::default(),
            durable: DurableSettings::default(),
            limits: LimitSettings::default(),
            auth: AuthSettings::default(),
            log: LogSettings::default(),
            events: EventSettings::default(),
            webhooks: WebhookSettings::default(),
            server: ServerSettings::default(),
        }
    }
}

/// How the server stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Seconds between SIGTERM and the listener closing: `/readyz` answers 503 (`draining`)
    /// and every response closes its connection, while requests are still served, so load
    /// balancers take the instance out before it stops accepting.
    pub drain_delay_seconds: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            drain_delay_seconds: 5,
        }
    }
}

/// The hot tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotSettings {
    /// Seconds an entry lives after its last write.
    pub ttl_secs: u64,
    /// Most entries the in-process hot tier holds.
    pub memory_capacity: usize,
    /// Milliseconds a Redis call may take before a read falls back to the durable tier (and a
    /// write records a pending invalidation).
    pub redis_timeout_ms: u64,
    /// Prefix of every Redis key (lets deployments or tests share one Redis).
    pub redis_prefix: String,
    /// On a Redis Cluster: how many replicas must have each hot write (`WAIT`) before it
    /// counts; otherwise the write takes the pending-invalidation path, so a master failing
    /// over to a replica that lacks the write cannot serve the version before it. 0 for a
    /// cluster without replicas.
    pub cluster_wait_replicas: u32,
    /// Milliseconds an instance reads the hot tier after it last checked the durable tier for
    /// pending invalidations (it checks four times in that span). A write whose hot write
    /// failed is acknowledged only this long after recording its invalidation, so that no
    /// instance can still read the older copy: the same value on every instance.
    pub trust_lease_ms: u64,
}

impl Default for HotSettings {
    fn default() -> Self {
        HotSettings {
            ttl_secs: 24 * 60 * 60,
            memory_capacity: 100_000,
            redis_timeout_ms: 100,
            redis_prefix: "taskward:".into(),
            cluster_wait_replicas: 1,
            trust_lease_ms: 400,
        }
    }
}

/// The durable tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurableSettings {
    /// Milliseconds a query waits for a connection, a lock or a statement before the request
    /// answers 503.
    pub timeout_ms: u64,
    /// Most PostgreSQL connections per instance.
    pub pool_size: u32,
    /// PostgreSQL schema to use (created if missing); unset: the server's `search_path`.
    pub schema: Option<String>,
    /// Days a terminal task is kept after it finished.
    pub retention_days: u64,
    /// Seconds between retention sweeps.
    pub sweep_interval_secs: u64,
    /// Tasks deleted per statement by a sweep.
    pub sweep_batch: u32,
}

impl Default for DurableSettings {
    fn default() -> Self {
        DurableSettings {
            timeout_ms: 5_000,
            pool_size: 16,
            schema: None,
            retention_days: 30,
            sweep_interval_secs: 600,
            sweep_batch: 500,
        }
    }
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a body (deeper: 422).
    pub max_json_depth: usize,
    /// Longest long-poll a client may ask for with `GET /v1/tasks/{id}?wait=<seconds>`, in
    /// seconds; longer requests are cut to it.
    pub max_wait_secs: u64,
    /// Requests per second one API key may make on average (GCRA, per key hash); 0 turns the
    /// limit off. Over it: 429 with `Retry-After`.
    pub rate_per_sec: u32,
    /// Requests one API key may make at once before `rate_per_sec` applies.
    pub burst: u32,
    /// Milliseconds a request may take before it answers 503; a long-poll (`?wait=`) gets
    /// `max_wait_secs` on top.
    pub request_timeout_ms: u64,
    /// Milliseconds a client has to send a request's headers, counted from their first byte;
    /// then the connection is closed.
    pub header_read_timeout_ms: u64,
    /// Milliseconds a connection with no request in flight (an idle keep-alive connection)
    /// stays open; then it is closed.
    pub idle_timeout_ms: u64,
    /// Most connections served at once; further connections wait to be accepted.
    pub max_connections: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            max_wait_secs: 60,
            rate_per_sec: 0,
            burst: 200,
            request_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            max_connections: 10_000,
        }
    }
}

/// Authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Milliseconds a successful key lookup is cached; also how long a revoked key may still
    /// work on a running server.
    pub key_cache_ttl_ms: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            key_cache_ttl_ms: 5_000,
        }
    }
}

/// Events and progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Seconds without progress after which a task that has not ended is `stalled`.
    pub stall_after_seconds: u64,
    /// Events a stream's client may fall behind (not reading) before the stream is ended; the
    /// client resumes with `Last-Event-ID`. Bounds what the server holds per tenant.
    pub stream_lag_limit: usize,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            stall_after_seconds: 300,
            stream_lag_limit: 1024,
        }
    }
}

/// Webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Seconds from each failed attempt to the next (±10 % jitter); after the last, the
    /// delivery fails. One attempt more than the schedule has entries.
    pub retry_schedule_seconds: Vec<f64>,
    /// Milliseconds an attempt may take, connecting and reading the answer included.
    pub timeout_ms: u64,
    /// Lets endpoints resolve to loopback, private, link-local, unique-local and metadata
    /// addresses (tests, on-premise receivers). Off: such endpoints are refused at creation
    /// and at connect time.
    pub allow_private_networks: bool,
    /// Most attempts in flight per instance.
    pub max_concurrency: usize,
    /// Most attempts in flight per endpoint per instance.
    pub per_endpoint_concurrency: usize,
    /// An endpoint is given no new delivery while it has this many pending (in flight or
    /// awaiting a retry): one that fails everything holds this many, its backlog waits in the
    /// event log, and a few events it keeps refusing do not hold up the others.
    pub max_pending_per_endpoint: usize,
    /// Milliseconds between looks for due deliveries and new events; a write on this instance
    /// wakes the dispatcher sooner (within 20 ms).
    pub poll_interval_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            // About 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (SPEC).
            retry_schedule_seconds: vec![5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0],
            timeout_ms: 10_000,
            allow_private_networks: false,
            max_concurrency: 64,
            per_endpoint_concurrency: 8,
            max_pending_per_endpoint: 128,
            poll_interval_ms: 1_000,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `taskward_server=debug` (`RUST_LOG` wins if set).
    pub filter: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret setting (a URL with a password): shown masked by `Debug` and when printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value itself, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value with any password in a URL's authority replaced by `***`.
    pub fn masked(&self) -> String {
        let s = &self.0;
        let Some(scheme_end) = s.find("://").map(|i| i + 3) else {
            return "***".into();
        };
        let authority_end = s[scheme_end..]
            .find('/')
            .map_or(s.len(), |i| scheme_end + i);
        match s[scheme_end..authority_end].rfind('@') {
            Some(at) => {
                let userinfo = &s[scheme_end..scheme_end + at];
                let user = userinfo.split(':').next().unwrap_or("");
                let masked = if userinfo.contains(':') {
                    format!("{user}:***")
                } else {
                    "***".into()
                };
                format!("{}{masked}{}", &s[..scheme_end], &s[scheme_end + at..])
            }
            None => s.clone(),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// A comma-separated list of secret URLs (Redis Cluster seed nodes): each masked as
/// [`Secret`] masks one.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretList(String);

impl SecretList {
    /// Wraps a comma-separated list.
    pub fn new(s: impl Into<String>) -> Self {
        SecretList(s.into())
    }

    /// The URLs themselves, for connecting (blank entries dropped).
    pub fn expose(&self) -> Vec<String> {
        self.0
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Each URL masked.
    pub fn masked(&self) -> String {
        self.expose()
            .into_iter()
            .map(|n| Secret(n).masked())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl std::fmt::Debug for SecretList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretList({})", self.masked())
    }
}

impl Serialize for SecretList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// Flags that override every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

/// `TASKWARD_…` variables that are not settings (read elsewhere, or by clients).
const NOT_SETTINGS: [&str; 3] = ["config", "url", "api_key"];

impl Settings {
    /// Loads the layers. `config` is the TOML file, if one was named.
    pub fn load(
        config: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Settings, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config {
            if !path.is_file() {
                return Err(Box::new(figment::Error::from(format!(
                    "configuration file {} does not exist",
                    path.display()
                ))));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(Env::prefixed("TASKWARD_").ignore(&NOT_SETTINGS).split("__"));
        if let Some(listen) = overrides.listen {
            fig = fig.merge(("listen", listen));
        }
        if let Some(dir) = &overrides.data_dir {
            fig = fig.merge(("data_dir", dir));
        }
        let settings: Settings = fig.extract().map_err(Box::new)?;
        settings
            .validate()
            .map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(settings)
    }

    /// Checks what the types cannot: a retention shorter than the hot TTL would let a swept
    /// task live on in the hot tier.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.redis_url, &self.redis_cluster_nodes) {
            (Some(_), Some(_)) => {
                return Err(
                    "set redis_url (one Redis) or redis_cluster_nodes (a Redis Cluster), not both"
                        .into(),
                )
            }
            (None, Some(nodes)) if nodes.expose().is_empty() => {
                return Err("redis_cluster_nodes names no node".into())
            }
            _ => {}
        }
        let w = &self.webhooks;
        if let Some(bad) = w
            .retry_schedule_seconds
            .iter()
            .find(|s| !s.is_finite() || **s < 0.0 || **s > 30.0 * 86_400.0)
        {
            return Err(format!(
                "webhooks.retry_schedule_seconds: {bad} is not a number of seconds from 0 to 30 days"
            ));
        }
        if w.timeout_ms == 0
            || w.max_concurrency == 0
            || w.per_endpoint_concurrency == 0
            || w.max_pending_per_endpoint == 0
        {
            return Err(
                "webhooks.timeout_ms, max_concurrency, per_endpoint_concurrency and max_pending_per_endpoint must be at least 1"
                    .into(),
            );
        }
        if self.durable.retention_days.saturating_mul(86_400) <= self.hot.ttl_secs {
            return Err(format!(
                "durable.retention_days ({} days) must be longer than hot.ttl_secs ({} s)",
                self.durable.retention_days, self.hot.ttl_secs
            ));
        }
        if self.durable.sweep_batch == 0 || self.durable.sweep_interval_secs == 0 {
            return Err("durable.sweep_batch and sweep_interval_secs must be positive".into());
        }
        if !(50..=60_000).contains(&self.hot.trust_lease_ms) {
            return Err("hot.trust_lease_ms must be between 50 and 60000".into());
        }
        let l = &self.limits;
        if l.request_timeout_ms == 0
            || l.header_read_timeout_ms == 0
            || l.idle_timeout_ms == 0
            || l.max_connections == 0
        {
            return Err(
                "limits.request_timeout_ms, header_read_timeout_ms, idle_timeout_ms and max_connections must be positive"
                    .into(),
            );
        }
        if l.max_wait_secs > 3_600 {
            return Err("limits.max_wait_secs must be at most 3600 (one hour)".into());
        }
        if l.rate_per_sec > 0 && l.burst == 0 {
            return Err("limits.burst must be positive when limits.rate_per_sec is set".into());
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_shape_and_round_trip_through_toml() {
        let s = Settings::default();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.hot.ttl_secs, 86_400);
        let back: Settings = toml::from_str(&s.to_toml()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "tw.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\n[hot]\nttl_secs = 60\n",
            )?;
            jail.set_env("TASKWARD_DATA_DIR", "/from/env");
            jail.set_env("TASKWARD_HOT__MEMORY_CAPACITY", "7");
            jail.set_env("TASKWARD_LIMITS__IDLE_TIMEOUT_MS", "1234");
            jail.set_env("TASKWARD_CONFIG", "ignored-here");
            let s = Settings::load(Some(Path::new("tw.toml")), &Overrides::default())
                .map_err(|e| *e)?;
            assert_eq!(s.listen.port(), 9000);
            assert_eq!(s.data_dir, PathBuf::from("/from/env"));
            assert_eq!((s.hot.ttl_secs, s.hot.memory_capacity), (60, 7));
            assert_eq!(s.limits.idle_timeout_ms, 1234);
            let flags = Overrides {
                data_dir: Some("/from/flag".into()),
                ..Default::default()
            };
            let s = Settings::load(Some(Path::new("tw.toml")), &flags).map_err(|e| *e)?;
            assert_eq!(s.data_dir, PathBuf::from("/from/flag"));
            Ok(())
        });
    }

    #[test]
    fn secrets_are_masked_when_printed() {
        let s = Settings {
            database_url: Some(Secret::new("postgres://app:hunter2@db:5432/tasks")),
            redis_url: Some(Secret::new("redis://:s3cret@cache:6379/0")),
            ..Settings::default()
        };
        let shown = format!("{}\n{s:?}", s.to_toml());
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://app:***@db:5432/tasks"),
            "{shown}"
        );
        assert_eq!(
            Secret::new("redis://cache:6379").masked(),
            "redis://cache:6379"
        );
    }

    #[test]
    fn cluster_nodes_come_from_the_environment_masked_and_exclude_redis_url() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "TASKWARD_REDIS_CLUSTER_NODES",
                "redis://:pw1@h1:7000, redis://:pw2@h2:7001,",
            );
            let s = Settings::load(None, &Overrides::default()).map_err(|e| *e)?;
            let nodes = s.redis_cluster_nodes.clone().expect("nodes");
            assert_eq!(
                nodes.expose(),
                ["redis://:pw1@h1:7000", "redis://:pw2@h2:7001"]
            );
            let shown = format!("{}\n{s:?}", s.to_toml());
            assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
            assert!(shown.contains("redis://:***@h2:7001"), "{shown}");
            jail.set_env("TASKWARD_REDIS_URL", "redis://cache:6379");
            let both = Settings::load(None, &Overrides::default());
            assert!(
                both.is_err_and(|e| e.to_string().contains("not both")),
                "redis_url and redis_cluster_nodes together are refused"
            );
            Ok(())
        });
        let s = Settings {
            redis_cluster_nodes: Some(SecretList::new(" , ")),
            ..Settings::default()
        };
        assert!(s.validate().is_err(), "a list of no node");
    }

    #[test]
    fn retention_must_outlive_the_hot_ttl() {
        let mut s = Settings::default();
        assert!(s.validate().is_ok());
        s.durable.retention_days = 1;
        assert!(s.validate().is_err());
    }

    #[test]
    fn limits_that_would_stop_serving_are_refused() {
        let mut s = Settings::default();
        s.limits.max_connections = 0;
        assert!(s.validate().is_err());
        let mut s = Settings::default();
        s.limits.idle_timeout_ms = 0;
        assert!(s.validate().is_err());
        let mut s = Settings::default();
        s.limits.rate_per_sec = 10;
        s.limits.burst = 0;
        assert!(s.validate().is_err());
        s.limits.burst = 1;
        assert!(s.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tw.toml", "lisen = \"127.0.0.1:9000\"\n")?;
            assert!(Settings::load(Some(Path::new("tw.toml")), &Overrides::default()).is_err());
            assert!(Settings::load(Some(Path::new("nope.toml")), &Overrides::default()).is_err());
            Ok(())
        });
    }
}
