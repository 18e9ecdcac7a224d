//! taskward's HTTP server: bind, report the address, serve until told to stop.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = taskward_server::Server::bind(Default::default()).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! The caller owns the socket address (port 0 in tests) and the stop signal; `run` returns
//! after in-flight requests have drained.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod router;
mod serve;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

pub use router::router;
pub use settings::Settings;
pub use state::{open_store, AppState, Storage};

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Opens the tiers (running migrations) and binds `settings.listen`.
    pub async fn bind(settings: Settings) -> anyhow::Result<Server> {
        let store = open_store(&settings).await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let state = AppState::new(settings, store)?;
        Ok(Server { listener, state })
    }

    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state, e.g. to issue the first-start key before serving.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains in-flight requests and
    /// stops the store's background work (joined before returning).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let background = self
            .state
            .store
            .start_background(state::maintenance(&self.state.settings));
        let dispatcher = webhooks::Dispatcher::start(
            self.state.webhooks.clone(),
            &self.state.settings.webhooks,
            self.state.metrics.webhooks.clone(),
        )
        .context("starting webhook delivery")?;
        let limits = self.state.settings.limits.clone();
        let delay = Duration::from_secs(self.state.settings.server.drain_delay_seconds);
        let draining = self.state.draining.clone();
        let store = self.state.store.clone();
        // The stop as a load balancer needs it: first out of rotation (`/readyz` 503, each
        // response closing its connection) while still serving, for as long as balancers take
        // to notice; only then the listener closes. Long-polls and streams answer at once
        // then, so draining does not wait them out.
        let shutdown = async move {
            shutdown.await;
            draining.store(true, Ordering::Relaxed);
            tracing::info!(
                delay_seconds = delay.as_secs(),
                "draining: /readyz answers 503; serving on until the drain delay ends"
            );
            tokio::time::sleep(delay).await;
            store.end_waits();
            tracing::info!("drain delay over: no longer accepting; finishing in-flight requests");
        };
        let draining = self.state.draining.clone();
        let app = router(self.state);
        serve::serve(self.listener, app, &limits, draining, shutdown).await;
        dispatcher.stop().await;
        background.stop().await.context("store background task")
    }
}
