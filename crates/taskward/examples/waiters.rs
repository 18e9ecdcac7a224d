//! Load generator for long-poll (`bench/waiters.sh` runs it against two release servers).
//!
//! Holds `WAITERS` long-polls open on instance B, reports B's memory and CPU while they idle,
//! then writes tasks through instance A (cross-instance wakes) and through B (local wakes) and
//! reports how long after each write's acknowledgement its waiter was answered.
//!
//! Environment: `A_URL`, `B_URL`, `KEY`, `B_PID`, optional `WAITERS` (10000), `SAMPLES`
//! (400, half through each instance), `IDLE_SECS` (10).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tokio::sync::mpsc;

mod common;
use common::{env, env_num, percentile, usage};

async fn long_poll_tasks(client: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("taskward_long_poll_tasks "))
        .and_then(|v| v.trim().parse().ok())
        .context("taskward_long_poll_tasks missing from /metrics")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (a, b, key, b_pid) = (env("A_URL")?, env("B_URL")?, env("KEY")?, env("B_PID")?);
    let waiters = env_num("WAITERS", 10_000)? as usize;
    let samples = (env_num("SAMPLES", 400)? as usize).min(waiters);
    let idle = Duration::from_secs(env_num("IDLE_SECS", 10)?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    let run = std::process::id();

    // Tasks, 32 creates in flight.
    let ids: Vec<String> = (0..waiters).map(|i| format!("w{run}-{i}")).collect();
    let mut creates = tokio::task::JoinSet::new();
    for chunk in ids.chunks(waiters.div_ceil(32)) {
        let (client, a, key, chunk) = (client.clone(), a.clone(), key.clone(), chunk.to_vec());
        creates.spawn(async move {
            for id in chunk {
                let res = client
                    .post(format!("{a}/v1/tasks"))
                    .bearer_auth(&key)
                    .json(&json!({"task_id": id, "task_type": "thumbnail", "status": "PROCESSING"}))
                    .send()
                    .await?;
                if res.status() != 201 {
                    bail!("create {id}: {}", res.status());
                }
            }
            Ok(())
        });
    }
    while let Some(r) = creates.join_next().await {
        r??;
    }

    let (rss_before, _) = usage(&b_pid)?;
    // One long-poll per task on B; each reports when it was answered.
    let (answered_tx, mut answered) = mpsc::unbounded_channel::<(usize, Instant, u16)>();
    let wait_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()?;
    let opened = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let (client, url, key, tx) = (
            wait_client.clone(),
            format!("{b}/v1/tasks/{id}?wait=60"),
            key.clone(),
            answered_tx.clone(),
        );
        tokio::spawn(async move {
            let status = match client
                .get(url)
                .bearer_auth(key)
                .header("if-none-match", "\"1\"")
                .send()
                .await
            {
                Ok(res) => res.status().as_u16(),
                Err(_) => 0,
            };
            let _ = tx.send((i, Instant::now(), status));
        });
    }
    loop {
        let n = long_poll_tasks(&client, &b).await? as usize;
        if n >= waiters {
            break;
        }
        if opened.elapsed() > Duration::from_secs(40) {
            bail!("only {n} of {waiters} waiters registered after 40 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open_took = opened.elapsed();
    let (rss_waiting, cpu0) = usage(&b_pid)?;
    tokio::time::sleep(idle).await;
    let (_, cpu1) = usage(&b_pid)?;
    if let Ok((i, _, status)) = answered.try_recv() {
        bail!("waiter {i} answered {status} while idle");
    }
    println!(
        "{waiters} waiters registered in {:.1} s; instance B RSS {} MiB before, {} MiB with them \
         ({:.1} KiB per waiter); CPU while idle for {} s: {} ms",
        open_took.as_secs_f64(),
        rss_before / 1024,
        rss_waiting / 1024,
        (rss_waiting.saturating_sub(rss_before)) as f64 / waiters as f64,
        idle.as_secs(),
        (cpu1 - cpu0).as_millis(),
    );

    // Wake latency: write task i, note its acknowledgement, match its waiter's answer.
    let mut cross = Vec::new();
    let mut local = Vec::new();
    for (i, id) in ids.iter().take(samples).enumerate() {
        let through = if i % 2 == 0 { &a } else { &b };
        let res = client
            .patch(format!("{through}/v1/tasks/{id}"))
            .bearer_auth(&key)
            .json(&json!({"additional_data": {"progress": {"completed": 1, "total": 2}}}))
            .send()
            .await?;
        let acked = Instant::now();
        if res.status() != 200 {
            bail!("patch {id}: {}", res.status());
        }
        let (j, at, status) = tokio::time::timeout(Duration::from_secs(5), answered.recv())
            .await
            .with_context(|| format!("waiter of {id} not answered within 5 s"))?
            .context("channel closed")?;
        if j != i || status != 200 {
            bail!("expected waiter {i} answered 200, got waiter {j} with {status}");
        }
        let delay = at.saturating_duration_since(acked);
        if i % 2 == 0 {
            cross.push(delay);
        } else {
            local.push(delay);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (label, mut d) in [
        ("through A (other instance)", cross),
        ("through B (same instance)", local),
    ] {
        d.sort();
        println!(
            "wake after acknowledgement, write {label}: n={} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            d.len(),
            percentile(&d, 0.5).as_secs_f64() * 1e3,
            percentile(&d, 0.99).as_secs_f64() * 1e3,
            d.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
