//! `taskward config`: the effective configuration, for checking what a deployment will use.

use std::io::Write;
use std::net::SocketAddr;

use clap::Args;

use super::StoreArgs;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on [env: TASKWARD_LISTEN]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    let settings = args.store.settings(args.listen)?;
    std::io::stdout().write_all(settings.to_toml().as_bytes())?;
    Ok(())
}
