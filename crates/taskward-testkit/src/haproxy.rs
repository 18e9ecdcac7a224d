//! A real HAProxy (Debian's package) in front of test instances, configured as an operator
//! would put it in front of taskward: round robin, health checks on `/readyz`, a request
//! whose connection was refused sent to another instance.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `haproxy` on a free loopback port; killed on drop.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// How often HAProxy checks each instance's `/readyz`; two failures in a row take it out
    /// of rotation, two successes put it back. A drain delay must outlast two of these.
    pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

    /// Starts HAProxy balancing over `backends` and waits until it accepts connections.
    // Blocking is fine here: a test waits for its balancer before doing anything else.
    #[allow(clippy::disallowed_methods)]
    pub fn start(backends: &[SocketAddr]) -> Haproxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::free_port();
        let inter = Self::CHECK_INTERVAL.as_millis();
        let mut cfg = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    \
             timeout server 60s\n    retries 3\n    option redispatch 1\n\
             frontend api\n    bind 127.0.0.1:{port}\n    default_backend taskward\n\
             backend taskward\n    balance roundrobin\n    option httpchk GET /readyz\n    \
             http-check expect status 200\n    \
             default-server check inter {inter}ms fall 2 rise 2\n"
        );
        for (i, b) in backends.iter().enumerate() {
            cfg.push_str(&format!("    server t{i} {b}\n"));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("writing haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy is installed (Debian package haproxy)");
        crate::wait_for_port(port, "haproxy");
        Haproxy {
            child,
            port,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
