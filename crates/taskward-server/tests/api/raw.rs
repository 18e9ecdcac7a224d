//! Plain TCP for what an HTTP client library will not send: requests byte by byte, bodies
//! that never end, headers of any size. Responses are parsed just enough to read the status.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::TestApp;

/// A connection to `app`'s port.
pub async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// What came back on a connection.
#[derive(Debug)]
pub enum Reply {
    /// A whole response: status and body.
    Response(u16, Vec<u8>),
    /// The server closed the connection without (completing) a response.
    Closed,
    /// Nothing conclusive within the deadline.
    Silent,
}

/// Reads one response (headers, then `Content-Length` bytes of body) within `within`.
pub async fn read_reply<R: AsyncReadExt + Unpin>(r: &mut R, within: Duration) -> Reply {
    let deadline = Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok());
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if let Some(status) = status {
                if buf.len() >= end + 4 + len {
                    return Reply::Response(status, buf[end + 4..end + 4 + len].to_vec());
                }
            }
        }
        match tokio::time::timeout_at(deadline, r.read(&mut chunk)).await {
            Err(_) => return Reply::Silent,
            Ok(Ok(0)) | Ok(Err(_)) => return Reply::Closed,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `bytes` on a new connection and reads the reply.
pub async fn exchange(app: &TestApp, bytes: &[u8], within: Duration) -> Reply {
    let mut s = connect(app).await;
    if s.write_all(bytes).await.is_err() {
        return Reply::Closed;
    }
    read_reply(&mut s, within).await
}

/// A normal client's GET of task `t1` that must succeed promptly while an attack is under
/// way; returns how long it took.
pub async fn served_promptly(app: &TestApp) -> Duration {
    let started = Instant::now();
    let res = reqwest::Client::new()
        .get(app.url("/v1/tasks/t1"))
        .bearer_auth(&app.key)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("a normal GET is answered within 3 s during the attack");
    assert_eq!(res.status(), 200);
    started.elapsed()
}
