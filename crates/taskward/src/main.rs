//! `taskward`: serve the Tasks API, manage API keys, print the configuration, and use a
//! running server from the command line (get, list, kill, watch, create, update).
//!
//! Thin on purpose: parsing flags, loading settings and wiring them to the library crates.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("taskward: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
