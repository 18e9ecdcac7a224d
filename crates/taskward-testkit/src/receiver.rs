//! [`Receiver`]: a webhook receiver, a real HTTP server on a random port inside the test, that
//! records every request and answers as the test says (a status, or never).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Hit {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status, with a short body.
    Status(u16),
    /// The statuses in turn, then the last one for good.
    Sequence(Vec<u16>),
    /// 500 to the first request of each `webhook-id`, 200 to the others.
    FirstOfEachFails,
    /// Never: the request hangs until the sender gives up.
    Hang,
}

#[derive(Debug)]
struct Shared {
    hits: Mutex<Vec<Hit>>,
    answer: Mutex<Answer>,
}

/// A running receiver; stopped when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>/hook`
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver that answers `answer`.
    pub async fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared {
            hits: Mutex::default(),
            answer: Mutex::new(answer),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, shared, task }
    }

    /// Changes how later requests are answered.
    pub fn answer(&self, answer: Answer) {
        *self
            .shared
            .answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = answer;
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.shared
            .hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `n` requests arrived; panics after `within`.
    pub async fn wait_hits(&self, n: usize, within: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + within;
        loop {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} requests within {within:?}, not {n}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = {
        let mut hits = shared.hits.lock().unwrap_or_else(PoisonError::into_inner);
        hits.push(Hit {
            headers,
            body,
            at: Instant::now(),
        });
        let n = hits.len();
        let id = hits[n - 1].header("webhook-id").to_owned();
        let seen = hits.iter().filter(|h| h.header("webhook-id") == id).count();
        match &*shared.answer.lock().unwrap_or_else(PoisonError::into_inner) {
            Answer::Status(s) => Some(*s),
            Answer::Sequence(seq) => seq.get(n - 1).or(seq.last()).copied(),
            Answer::FirstOfEachFails => Some(if seen == 1 { 500 } else { 200 }),
            Answer::Hang => None,
        }
    };
    match answer {
        Some(s) => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, format!("answered {s}")).into_response()
        }
        None => std::future::pending().await,
    }
}
