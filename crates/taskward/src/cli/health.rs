//! `taskward health`: the container health check. A runtime image without a shell or curl
//! (distroless) can still ask the server it runs whether it is ready.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// What to ask: an `http://host:port/path` URL (plain HTTP, as probes on the pod's or
    /// container's own address are).
    #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
    url: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// Succeeds when the answer is 2xx; prints the body either way.
pub fn run(args: &HealthArgs) -> anyhow::Result<()> {
    let Some(rest) = args.url.strip_prefix("http://") else {
        bail!("--url must start with http://");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let timeout = Duration::from_millis(args.timeout_ms);
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority} (host:port)"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let mut conn = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    // HTTP/1.0: the server closes after the answer, so reading to the end reads it all.
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .with_context(|| format!("reading the answer of {}", args.url))?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP answer from {}", args.url))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    println!("{status} {body}");
    if !(200..300).contains(&status) {
        bail!("{} answered {status}", args.url);
    }
    Ok(())
}
