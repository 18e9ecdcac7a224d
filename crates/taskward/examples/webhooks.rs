//! Load generator for webhooks (`bench/webhooks.sh` runs it against two release servers).
//!
//! 1. Throughput: `ENDPOINTS` endpoints (events `task.created`) on a receiver in this process
//!    that answers 200; `TASKS` tasks created through A and B, 64 at a time; reports how many
//!    deliveries per second reached the receiver, from the first create to the last delivery.
//! 2. Hanging receivers: PATCH load (64 clients, `SECS` seconds, through A and B) with no
//!    endpoint, then with `HANGING` endpoints (events `*`) on a receiver that accepts and never
//!    answers, then with none again (the endpoints deleted); reports requests/s and p99 of the
//!    three runs, and the hanging run against the mean of the two without. Each run is slower
//!    than the one before (the tables and the event log grow: `HANGING=0` shows 0.87–0.92 for
//!    a second run with nothing changed), so the runs before and after bracket it.
//!
//! Environment: `A_URL`, `B_URL`, `KEY` (scopes read, write, admin), optional `ENDPOINTS` (4),
//! `TASKS` (2500), `HANGING` (100), `SECS` (10).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::net::TcpListener;

// Not every generator uses every helper.
#[allow(dead_code)]
mod common;
use common::{env, env_num, percentile};

const CLIENTS: usize = 64;

/// A receiver that answers 200 and counts; its URL.
async fn counting_receiver(
    count: Arc<AtomicU64>,
    last: Arc<std::sync::Mutex<Instant>>,
) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (count, last) = (count.clone(), last.clone());
            async move {
                count.fetch_add(1, Ordering::Relaxed);
                *last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// A receiver that accepts connections and never answers; its URL.
async fn hanging_receiver() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    Ok(url)
}

async fn create_endpoint(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    url: &str,
    events: Value,
) -> anyhow::Result<String> {
    let res = client
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(key)
        .json(&json!({"url": url, "events": events}))
        .send()
        .await?;
    if res.status() != 201 {
        bail!("create webhook: {} {}", res.status(), res.text().await?);
    }
    let body: Value = res.json().await?;
    Ok(body["webhook_id"]
        .as_str()
        .context("webhook_id")?
        .to_owned())
}

/// `CLIENTS` clients sending `f(i)` for i in 0..n, through A and B in turn.
async fn creates(
    client: &reqwest::Client,
    urls: &[String; 2],
    key: &str,
    prefix: &str,
    n: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..CLIENTS {
        let (client, base, key, prefix, next) = (
            client.clone(),
            urls[w % 2].clone(),
            key.to_owned(),
            prefix.to_owned(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let res = client
                    .post(format!("{base}/v1/tasks"))
                    .bearer_auth(&key)
                    .json(&json!({"task_id": format!("{prefix}{i}"), "task_type": "thumbnail", "status": "PROCESSING"}))
                    .send()
                    .await?;
                if res.status() != 201 {
                    bail!("create: {}", res.status());
                }
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// PATCH load for `secs`: requests/s and p99.
async fn patch_load(
    client: &reqwest::Client,
    urls: &[String; 2],
    key: &str,
    prefix: &str,
    tasks: usize,
    secs: u64,
) -> anyhow::Result<(f64, Duration, u64)> {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for w in 0..CLIENTS {
        let (client, base, key, prefix) = (
            client.clone(),
            urls[w % 2].clone(),
            key.to_owned(),
            prefix.to_owned(),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = w;
            while Instant::now() < end {
                i = (i + CLIENTS) % tasks;
                let t0 = Instant::now();
                let res = client
                    .patch(format!("{base}/v1/tasks/{prefix}{i}"))
                    .bearer_auth(&key)
                    .json(&json!({"additional_data": {"n": t0.elapsed().as_nanos() as u64}}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => lat.push(t0.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (lat, e) = w.await?;
        all.extend(lat);
        errors += e;
    }
    let took = started.elapsed().as_secs_f64();
    all.sort();
    Ok((all.len() as f64 / took, percentile(&all, 0.99), errors))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let urls = [env("A_URL")?, env("B_URL")?];
    let key = env("KEY")?;
    let endpoints = env_num("ENDPOINTS", 4)? as usize;
    let tasks = env_num("TASKS", 2500)? as usize;
    let hanging = env_num("HANGING", 100)? as usize;
    let secs = env_num("SECS", 10)?;
    let client = reqwest::Client::new();
    let run = std::process::id();

    // 1. Throughput.
    let count = Arc::new(AtomicU64::new(0));
    let last = Arc::new(std::sync::Mutex::new(Instant::now()));
    let receiver = counting_receiver(count.clone(), last.clone()).await?;
    let mut ids = Vec::new();
    for _ in 0..endpoints {
        ids.push(
            create_endpoint(&client, &urls[0], &key, &receiver, json!(["task.created"])).await?,
        );
    }
    let expected = (tasks * endpoints) as u64;
    let started = Instant::now();
    creates(&client, &urls, &key, &format!("w{run}-"), tasks).await?;
    let created = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < expected {
        if Instant::now() > deadline {
            bail!(
                "only {} of {expected} deliveries arrived",
                count.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = *last.lock().unwrap_or_else(|p| p.into_inner()) - started;
    println!(
        "throughput: {tasks} creates ({:.0}/s) x {endpoints} endpoints = {expected} deliveries in {:.2} s: {:.0} deliveries/s",
        tasks as f64 / created.as_secs_f64(),
        took.as_secs_f64(),
        expected as f64 / took.as_secs_f64()
    );
    for id in &ids {
        client
            .delete(format!("{}/v1/webhooks/{id}", urls[0]))
            .bearer_auth(&key)
            .send()
            .await?;
    }

    // 2. PATCH with no endpoint, then with `hanging` endpoints that never answer.
    let prefix = format!("w{run}-");
    let (rps0, p99_0, e0) = patch_load(&client, &urls, &key, &prefix, tasks, secs).await?;
    let sink = hanging_receiver().await?;
    let mut sinks = Vec::new();
    for _ in 0..hanging {
        sinks.push(create_endpoint(&client, &urls[0], &key, &sink, json!(["*"])).await?);
    }
    let (rps1, p99_1, e1) = patch_load(&client, &urls, &key, &prefix, tasks, secs).await?;
    for id in &sinks {
        client
            .delete(format!("{}/v1/webhooks/{id}", urls[0]))
            .bearer_auth(&key)
            .send()
            .await?;
    }
    let (rps2, p99_2, e2) = patch_load(&client, &urls, &key, &prefix, tasks, secs).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "PATCH, no webhooks:                {rps0:>8.0} req/s  p99 {:>7.2} ms  errors {e0}",
        ms(p99_0)
    );
    println!(
        "PATCH, {hanging} hanging endpoints:     {rps1:>8.0} req/s  p99 {:>7.2} ms  errors {e1}",
        ms(p99_1)
    );
    println!(
        "PATCH, no webhooks again:          {rps2:>8.0} req/s  p99 {:>7.2} ms  errors {e2}",
        ms(p99_2)
    );
    println!(
        "hanging against the mean of the runs before and after: ratio {:.2}, p99 ratio {:.2}",
        rps1 / ((rps0 + rps2) / 2.0),
        ms(p99_1) / ((ms(p99_0) + ms(p99_2)) / 2.0)
    );
    Ok(())
}
