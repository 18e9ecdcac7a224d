//! The hot tier on a Redis Cluster (three masters, three replicas, private, on loopback):
//! every task's key carries its own hash tag; a master failing over to its replica under load,
//! across three instances, fails no request, serves no stale read (SPEC, Scale-out: a promoted
//! replica may lack the last writes) and loses no acknowledged write; the same three instances
//! behind HAProxy take a long-poll woken across instances. `bench/stale-reads.sh` runs the
//! failover many times over.

use std::time::Duration;

use serde_json::json;
use taskward_server::settings::SecretList;
use taskward_testkit::RedisCluster;
use tokio::time::sleep;

use crate::stale_reads::reads_across;
use crate::support::{spawn_app_with, TestApp};

async fn instances(cluster: &RedisCluster) -> [TestApp; 3] {
    let nodes = cluster.nodes();
    let a = spawn_app_with(|s| {
        s.redis_url = None;
        s.redis_cluster_nodes = Some(SecretList::new(nodes));
        s.hot.redis_timeout_ms = 100;
    })
    .await;
    let b = a.second_instance().await;
    let c = a.second_instance().await;
    [a, b, c]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_live_on_the_cluster_one_slot_each_and_reads_hit_it() {
    let cluster = RedisCluster::start();
    let [a, b, _c] = instances(&cluster).await;
    for i in 0..30 {
        a.create_processing(&format!("c{i}")).await;
    }
    let res = a.patch(&a.key, "c7", json!({"status": "COMPLETED"})).await;
    assert_eq!(res.status(), 200);
    // Another instance reads it from the cluster (not annotated as a durable read).
    let t = b.get_ok("c7").await;
    assert_eq!(t["status"], "COMPLETED");
    assert_eq!(t["version"], 2);
    assert!(t["additional_data"].get("from_mongodb").is_none(), "{t}");
    // Keys are spread over the masters, each with the task as its hash tag.
    let mut keys = Vec::new();
    let mut masters_with_keys = 0;
    for port in cluster.masters() {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "--scan", "--pattern", "*"])
            .output()
            .unwrap();
        let here: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        masters_with_keys += usize::from(!here.is_empty());
        keys.extend(here);
    }
    let me: serde_json::Value = a
        .send(reqwest::Method::GET, "/v1/keys/self", &a.key)
        .await
        .json()
        .await
        .unwrap();
    let tag = format!(
        "t:{{{}:{}:c7}}",
        me["org"].as_str().unwrap(),
        me["mode"].as_str().unwrap()
    );
    assert!(
        keys.iter().any(|k| k.ends_with(&tag)),
        "no {tag} in {keys:?}"
    );
    let tasks = keys.iter().filter(|k| k.contains("t:{")).count();
    assert_eq!(tasks, 30, "{keys:?}");
    assert!(masters_with_keys >= 2, "30 tasks on one master: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failing_over_under_load_fails_no_request_and_serves_no_stale_read() {
    // Named as `stale_reads.rs` names its runs, so `bench/stale-reads.sh` sums it with them.
    let label = "stale reads, ClusterFailover";
    let mut cluster = RedisCluster::start();
    let apps = instances(&cluster).await;
    let failover = async {
        let killed = cluster.kill_a_master();
        let waited = std::time::Instant::now();
        tokio::task::block_in_place(|| cluster.wait_failed_over(killed));
        eprintln!(
            "[{label}] master on {killed} failed over in {:?}",
            waited.elapsed()
        );
        sleep(Duration::from_secs(1)).await;
    };
    reads_across(label, &apps, failover).await;
}
