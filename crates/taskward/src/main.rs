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

fn main() -> std::process::ExitCode {
    // No transparent huge pages: a huge page is resident whole once a byte of it is touched,
    // and a held connection touches a little of much memory, so with them it cost 22 KiB
    // instead of 14 (ARCHITECTURE.md, "No transparent huge pages"). mimalloc's `no_thp` stops
    // it asking for them from its first allocation; this stops a kernel set to `always` from
    // giving them unasked. Not fatal: a kernel without THP has nothing to disable.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(run())
}

async fn run() -> std::process::ExitCode {
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
