//! Load generator for event streams (`bench/streams.sh` runs it against two release servers).
//!
//! Holds `STREAMS` tenant streams (`GET /v1/events`) open on instance B and reports B's memory
//! and CPU while they idle; then keeps `FANOUT` of them, writes a task through instance A
//! (other instance) and through B (same instance) in turn, and reports how long after each
//! write's acknowledgement its event reached each stream, and the last of them.
//!
//! Environment: `A_URL`, `B_URL`, `KEY`, `B_PID`, optional `STREAMS` (10000), `FANOUT` (1000),
//! `SAMPLES` (100, half through each instance), `IDLE_SECS` (10).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tokio::sync::mpsc;

mod common;
use common::{env, env_num, percentile, usage};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `"version":N` of an event's data line.
fn version_in(data: &str) -> Option<u64> {
    let rest = &data[data.find("\"version\":")? + 10..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (a, b, key, b_pid) = (env("A_URL")?, env("B_URL")?, env("KEY")?, env("B_PID")?);
    let streams = env_num("STREAMS", 10_000)? as usize;
    let fanout = (env_num("FANOUT", 1_000)? as usize).min(streams);
    let samples = env_num("SAMPLES", 100)? as usize;
    let idle = Duration::from_secs(env_num("IDLE_SECS", 10)?);
    let client = reqwest::Client::new();
    let task = format!("s{}", std::process::id());
    let res = client
        .post(format!("{a}/v1/tasks"))
        .bearer_auth(&key)
        .json(&json!({"task_id": task, "task_type": "thumbnail", "status": "PROCESSING"}))
        .send()
        .await?;
    if res.status() != 201 {
        bail!("create: {}", res.status());
    }

    let (rss_before, _) = usage(&b_pid)?;
    // Each stream reports (stream, version, arrival) for every event it gets.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<(usize, u64, Instant)>();
    let (open_tx, mut open) = mpsc::unbounded_channel::<anyhow::Result<()>>();
    let stream_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let opened = Instant::now();
    let mut readers = Vec::with_capacity(streams);
    for i in 0..streams {
        let (client, url, key) = (stream_client.clone(), format!("{b}/v1/events"), key.clone());
        let (arrived_tx, open_tx) = (arrived_tx.clone(), open_tx.clone());
        readers.push(tokio::spawn(async move {
            let mut res = match client.get(url).bearer_auth(key).send().await {
                Ok(res) if res.status() == 200 => res,
                Ok(res) => {
                    let _ = open_tx.send(Err(anyhow::anyhow!("stream: {}", res.status())));
                    return;
                }
                Err(e) => {
                    let _ = open_tx.send(Err(e.into()));
                    return;
                }
            };
            // The server answers once the stream listens: from here on it gets every event.
            let _ = open_tx.send(Ok(()));
            let mut buf = String::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                let at = Instant::now();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let message: String = buf.drain(..end + 2).collect();
                    if let Some(v) = message
                        .lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .and_then(version_in)
                    {
                        let _ = arrived_tx.send((i, v, at));
                    }
                }
            }
        }));
    }
    for _ in 0..streams {
        open.recv().await.context("opening")??;
    }
    let open_took = opened.elapsed();
    let (rss_open, cpu0) = usage(&b_pid)?;
    tokio::time::sleep(idle).await;
    let (_, cpu1) = usage(&b_pid)?;
    println!(
        "{streams} streams open in {:.1} s; instance B RSS {} MiB before, {} MiB with them \
         ({:.1} KiB per stream); CPU while idle for {} s: {} ms",
        open_took.as_secs_f64(),
        rss_before / 1024,
        rss_open / 1024,
        rss_open.saturating_sub(rss_before) as f64 / streams as f64,
        idle.as_secs(),
        (cpu1 - cpu0).as_millis(),
    );

    // Fan-out: keep `fanout` streams; one warm-up write lets B notice the closed ones.
    for r in readers.drain(fanout..) {
        r.abort();
    }
    let mut version = 1;
    let mut per_stream = Vec::new();
    let mut to_all = [Vec::new(), Vec::new()];
    for i in 0..=samples {
        let through = if i % 2 == 0 { &a } else { &b };
        let res = client
            .patch(format!("{through}/v1/tasks/{task}"))
            .bearer_auth(&key)
            .json(&json!({"additional_data": {"progress": {"completed": i, "total": samples}}}))
            .send()
            .await?;
        let acked = Instant::now();
        if res.status() != 200 {
            bail!("patch: {}", res.status());
        }
        version += 1;
        let mut reached = vec![false; fanout];
        let mut left = fanout;
        let mut last = Duration::ZERO;
        while left > 0 {
            let (s, v, at) = tokio::time::timeout(Duration::from_secs(10), arrived.recv())
                .await
                .with_context(|| format!("version {version}: {left} streams still waiting"))?
                .context("channel closed")?;
            if v != version || s >= fanout || reached[s] {
                continue;
            }
            reached[s] = true;
            left -= 1;
            let d = at.saturating_duration_since(acked);
            last = last.max(d);
            if i > 0 {
                per_stream.push(d);
            }
        }
        if i > 0 {
            to_all[i % 2].push(last);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    per_stream.sort();
    println!(
        "fan-out to {fanout} streams, {samples} writes: each delivery after the write's \
         acknowledgement p50 {:.2} ms p99 {:.2} ms",
        ms(percentile(&per_stream, 0.5)),
        ms(percentile(&per_stream, 0.99)),
    );
    for (label, mut d) in [
        ("through A (other instance)", std::mem::take(&mut to_all[0])),
        ("through B (same instance)", std::mem::take(&mut to_all[1])),
    ] {
        d.sort();
        println!(
            "  until the last stream has it, write {label}: n={} p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            d.len(),
            ms(percentile(&d, 0.5)),
            ms(percentile(&d, 0.99)),
            ms(d.last().copied().unwrap_or_default()),
        );
    }
    Ok(())
}
