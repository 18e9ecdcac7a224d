//! What the load generators (`waiters.rs`, `streams.rs`) share: their environment, the
//! server's resource use, percentiles.

use std::time::Duration;

use anyhow::Context;

pub fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

pub fn env_num(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}

/// (resident set in KiB, CPU time of user + system) of a process.
pub fn usage(pid: &str) -> anyhow::Result<(u64, Duration)> {
    let rss = taskward_testkit::resident_kib(pid.parse().context("pid")?)?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok((rss, Duration::from_millis(ticks * 10)))
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
