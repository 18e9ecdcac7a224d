//! Command-line interface: one module per subcommand.

mod config;
mod keys;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use taskward_server::settings::Overrides;
use taskward_server::Settings;

/// taskward — a task-status service wire-compatible with the reference Tasks API.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (embedded default: in-process cache + SQLite in --data-dir).
    Serve(serve::ServeArgs),
    /// Create, list and revoke API keys (works while `serve` runs on the same data).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print the effective configuration (all layers applied) as TOML.
    Config(config::ConfigArgs),
}

/// Where the configuration and the data live; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "TASKWARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory of the embedded store [env: TASKWARD_DATA_DIR] [default: ./taskward-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// Loads settings: defaults → file → TASKWARD_* → these flags (and `listen`).
    fn settings(&self, listen: Option<SocketAddr>) -> anyhow::Result<Settings> {
        let overrides = Overrides {
            listen,
            data_dir: self.data_dir.clone(),
        };
        Settings::load(self.config.as_deref(), &overrides)
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))
    }
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Keys(cmd) => keys::run(cmd).await,
        Command::Config(args) => config::run(&args),
    }
}
