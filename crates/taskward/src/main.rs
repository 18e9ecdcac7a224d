//! `taskward`: serve the Tasks API, manage API keys, print the configuration, and use a
//! running server from the command line (get, list, kill, watch, create, update).
//!
//! Thin on purpose: parsing flags, loading settings and wiring them to the library crates.

mod cli;

use clap::Parser;

/// Requests allocate many small short-lived buffers on two or more worker threads, which
/// mimalloc serves much more cheaply than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args).await {
        Ok(code) => code,
        // The reader went away (`taskward list | head`): nothing left to say to anyone.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("taskward: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
