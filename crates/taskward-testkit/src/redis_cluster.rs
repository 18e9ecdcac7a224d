//! A private Redis Cluster: six `redis-server`s on free loopback ports in a temp directory,
//! three masters with one replica each, made a cluster by `redis-cli --cluster create`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, wait_for_port};

/// How long a master may be silent before the cluster fails it over to its replica.
const NODE_TIMEOUT_MS: u64 = 1000;

/// A running cluster; every node is killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<(u16, Option<Child>)>,
    dir: tempfile::TempDir,
}

// Blocking is fine here: a test waits for its own servers before doing anything else.
#[allow(clippy::disallowed_methods)]
impl RedisCluster {
    /// Starts six nodes and forms the cluster; returns once every slot is served.
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..6 {
            let port = free_port();
            let child = cluster.spawn(port);
            cluster.nodes.push((port, Some(child)));
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok(&[]);
        cluster
    }

    fn spawn(&self, port: u16) -> Child {
        let dir = self.dir.path().join(port.to_string());
        std::fs::create_dir_all(&dir).expect("node dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        wait_for_port(port, "redis-server");
        child
    }

    /// `redis://127.0.0.1:<port>` of every node, comma-separated (the seed list).
    pub fn nodes(&self) -> String {
        self.nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn cli(port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The ports of the nodes that are masters now (and not failed), as `port` sees it.
    pub fn masters(&self) -> Vec<u16> {
        let alive = self.alive();
        let view = Self::cli(alive[0], &["cluster", "nodes"]);
        view.lines()
            .filter(|l| {
                let flags = l.split(' ').nth(2).unwrap_or("");
                flags.contains("master") && !flags.contains("fail")
            })
            .filter_map(|l| {
                let addr = l.split(' ').nth(1)?;
                addr.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect()
    }

    fn alive(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Every live node reports `cluster_state:ok` and three masters serve every slot, none of
    /// them one in `gone`.
    fn wait_ok(&self, gone: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self
                .alive()
                .iter()
                .all(|p| Self::cli(*p, &["cluster", "info"]).contains("cluster_state:ok"));
            let masters = self.masters();
            if ok && masters.len() == 3 && masters.iter().all(|m| !gone.contains(m)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle: masters {masters:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs one master (data not yet replicated is lost with it) and returns its port.
    pub fn kill_a_master(&mut self) -> u16 {
        let port = self.masters()[0];
        if let Some((_, child)) = self.nodes.iter_mut().find(|(p, _)| *p == port) {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        port
    }

    /// Waits until the replica of the killed master `port` has taken over its slots.
    pub fn wait_failed_over(&self, port: u16) {
        self.wait_ok(&[port]);
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
