//! Command-line interface: one module per subcommand.

mod client_cmds;
mod config;
mod health;
mod keys;
mod render;
mod serve;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Ask a running server whether it is ready (GET /readyz): exit 0 if so, 1 if not. For
    /// container health checks.
    Health(health::HealthArgs),
    /// Show one task (--wait: until it ends; exit codes as for `watch`).
    Get(client_cmds::GetArgs),
    /// List tasks as a table (or JSON lines), newest first.
    List(client_cmds::ListArgs),
    /// Cancel a task (idempotent).
    Kill(client_cmds::KillArgs),
    /// Follow a task until it ends: exit 0 COMPLETED, 3 FAILED, 4 CANCELED,
    /// 5 COMPLETED_WITH_ERRORS, 6 timed out, 1 error.
    Watch(client_cmds::WatchArgs),
    /// Show every change of a task, oldest first.
    History(client_cmds::HistoryArgs),
    /// Record a task (producers); prints its id.
    Create(client_cmds::CreateArgs),
    /// Update a task (producers), optionally only at a given version (--if-match).
    Update(client_cmds::UpdateArgs),
    /// Manage webhook endpoints and their deliveries (a key with scope `admin`).
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
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

/// Runs the chosen subcommand; the exit code tells scripts how a watched task ended.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Serve(args) => done(serve::run(args).await),
        Command::Keys(cmd) => done(keys::run(cmd).await),
        Command::Config(args) => done(config::run(&args)),
        Command::Health(args) => done(health::run(&args)),
        // A client command that cannot reach the server says what to check, the same for all.
        Command::Get(a) => a.conn.explain(client_cmds::get(&a).await),
        Command::List(a) => a.conn.explain(client_cmds::list(&a).await),
        Command::Kill(a) => a.conn.explain(client_cmds::kill(&a).await),
        Command::Watch(a) => a.conn.explain(client_cmds::watch(&a).await),
        Command::History(a) => a.conn.explain(client_cmds::history(&a).await),
        Command::Create(a) => a.conn.explain(client_cmds::create(&a).await),
        Command::Update(a) => a.conn.explain(client_cmds::update(&a).await),
        Command::Webhooks(cmd) => webhooks::run(cmd).await,
    }
}
