//! `taskward serve`: bind, issue the first-start key if this data directory never had one,
//! serve until SIGINT/SIGTERM, drain.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;

use clap::Args;
use taskward_server::settings::{LogFormat, LogSettings};
use taskward_server::Server;
use tracing_subscriber::EnvFilter;

use super::render;
use super::StoreArgs;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on [env: TASKWARD_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.store.settings(args.listen)?;
    init_logging(&settings.log);
    let data_dir = settings.data_dir.clone();
    // Only the embedded shape mints a key by itself: a production deployment's stdout usually
    // ends up in a log pipeline, and its operators mint keys with `taskward keys create`.
    let embedded = settings.database_url.is_none();
    let server = Server::bind(settings).await?;
    let first_key = if embedded {
        server.state().key_store.create_first().await?
    } else {
        None
    };
    if let Some(key) = first_key {
        // On stdout, not in the log: keys never go into log lines.
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "First start of {}: an all-scopes test key for organisation \"default\".\n\
             It is shown only this once; keep it:\n\n    {}\n",
            data_dir.display(),
            key.expose()
        )?;
        out.flush()?;
    }
    tracing::info!(addr = %server.local_addr(), data_dir = %data_dir.display(), "taskward listening on http://{}", server.local_addr());
    server.run(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    // Colour only for a person at a terminal: stderr redirected to a file or a log collector
    // gets plain lines (escape codes break grep and log parsers), and `NO_COLOR` wins.
    let colour = render::colour_for(std::io::stderr().is_terminal());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
