//! A TCP proxy a test puts between one client and a server, to partition that client alone:
//! `stall` holds every byte in both directions (the server and the client stay up, the bytes
//! just do not move: what a congested or flapping network does), `cut` drops every connection
//! and refuses new ones (nothing answers on the address), `heal` ends either.
//!
//! It runs on the test's own runtime; dropping it stops it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Debug, Default)]
struct State {
    stalled: AtomicBool,
    cut: AtomicBool,
    connections: Mutex<Vec<AbortHandle>>,
}

/// A proxy from a free local port to `127.0.0.1:<target>`.
#[derive(Debug)]
pub struct TcpProxy {
    pub port: u16,
    state: Arc<State>,
    accept: AbortHandle,
}

impl TcpProxy {
    /// Starts forwarding to `127.0.0.1:<target_port>`.
    pub async fn start(target_port: u16) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let target = SocketAddr::from(([127, 0, 0, 1], target_port));
        let state = Arc::new(State::default());
        let accept = tokio::spawn(accept_loop(listener, target, state.clone())).abort_handle();
        TcpProxy {
            port,
            state,
            accept,
        }
    }

    /// `redis://127.0.0.1:<port>`
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Holds (`true`) or releases (`false`) every byte in flight, both ways.
    pub fn stall(&self, on: bool) {
        self.state.stalled.store(on, Ordering::SeqCst);
    }

    /// Drops every connection and refuses new ones until [`TcpProxy::heal`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for c in self.state.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Forwards normally again.
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
        self.stall(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: Arc<State>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if state.cut.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let Ok(server) = TcpStream::connect(target).await else {
            continue;
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let mut conns = state.connections.lock().unwrap();
        conns.retain(|c| !c.is_finished());
        conns.push(tokio::spawn(pipe(cr, sw, state.clone())).abort_handle());
        conns.push(tokio::spawn(pipe(sr, cw, state.clone())).abort_handle());
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while state.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
