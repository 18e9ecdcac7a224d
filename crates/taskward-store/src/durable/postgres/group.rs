//! Grouped execution: concurrent requests of one kind go to PostgreSQL as one statement (one
//! round trip, and for writes one commit and one WAL flush) instead of one each.
//!
//! A few workers share one queue; each takes everything queued (up to [`MAX_GROUP`]), runs it
//! as one statement while the others take what queues meanwhile, so statements overlap. What
//! a group does is a [`Statement`]; the queue, the workers, their connections and the retry
//! policy are here, once, for every kind (compare-and-set writes and reads by key today).
//!
//! Each worker keeps its connection for good ([`Held`]): sqlx pings a connection (a round trip)
//! every time it goes back to a pool, which would double the statements of every group.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::errors::{classify, each_error, unavailable};
use crate::durable::sql::retrying;
use crate::StoreError;

/// Most requests in one group.
pub(crate) const MAX_GROUP: usize = 128;

/// A worker's connection idle longer than this is exchanged for a checked one, as a pooled
/// connection would be retired: firewalls and NATs drop quiet connections without telling
/// either end.
const HELD_IDLE: Duration = Duration::from_secs(60);

/// What one group of requests does: one statement, one answer per request, in order.
pub(crate) trait Statement: Send + Sync + 'static {
    type Request: Send + Sync + 'static;
    type Answer: Send + 'static;

    fn run<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        group: &'a [Self::Request],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send + 'a;

    /// The order a group is run in, if it matters (writes lock rows in key order so that
    /// concurrent groups wait for each other instead of deadlocking); `None`: as queued.
    fn order(&self, a: &Self::Request, b: &Self::Request) -> Option<std::cmp::Ordering> {
        let _ = (a, b);
        None
    }
}

type Reply<S> = oneshot::Sender<Result<<S as Statement>::Answer, StoreError>>;

/// The queue the workers of one kind share.
type Queue<S> = Arc<tokio::sync::Mutex<mpsc::Receiver<(<S as Statement>::Request, Reply<S>)>>>;

/// The queue and workers of one kind of grouped request.
pub(crate) struct Groups<S: Statement> {
    queue: mpsc::Sender<(S::Request, Reply<S>)>,
    stop: CancellationToken,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl<S: Statement> std::fmt::Debug for Groups<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").finish_non_exhaustive()
    }
}

impl<S: Statement> Groups<S> {
    /// Starts `workers` workers running `statement`, each on a connection from `pool`; a
    /// statement gets `limit` to answer before its connection is given up.
    pub(crate) fn start(statement: S, pool: PgPool, workers: usize, limit: Duration) -> Self {
        let (queue, rx) = mpsc::channel(4 * MAX_GROUP);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let (statement, stop) = (Arc::new(statement), CancellationToken::new());
        let workers = (0..workers)
            .map(|_| {
                let held = Held {
                    pool: pool.clone(),
                    conn: Mutex::new(None),
                    limit,
                };
                tokio::spawn(work(statement.clone(), held, rx.clone(), stop.clone()))
            })
            .collect();
        Groups {
            queue,
            stop,
            workers: Mutex::new(workers),
        }
    }

    /// Queues `request` and waits for its group's answer.
    pub(crate) async fn submit(&self, request: S::Request) -> Result<S::Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((request, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stops the workers after the group each is running, and waits for them. Requests still
    /// queued are answered with 503.
    pub(crate) async fn close(&self) {
        self.stop.cancel();
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for w in workers {
            let _ = w.await;
        }
    }
}

fn stopped() -> StoreError {
    unavailable("the durable tier is shutting down")
}

/// One worker: group after group until stopped.
async fn work<S: Statement>(
    statement: Arc<S>,
    held: Held,
    queue: Queue<S>,
    stop: CancellationToken,
) {
    loop {
        let group = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            group = next_group(&queue) => group,
        };
        let Some(mut group) = group else { return };
        if group.len() > 1 && statement.order(&group[0].0, &group[1].0).is_some() {
            group.sort_by(|a, b| {
                statement
                    .order(&a.0, &b.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        let (requests, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let result = retrying(held.pool.options().get_max_connections(), || {
            held.run(&*statement, &requests)
        })
        .await;
        match result {
            Ok(answers) if answers.len() == replies.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Ok(_) => {
                for reply in replies {
                    let _ = reply.send(Err(StoreError::internal(
                        "a group statement answered for the wrong number of requests",
                    )));
                }
            }
            Err(e) => {
                let unreachable = matches!(e, StoreError::Unavailable { .. });
                let err = each_error(e);
                for reply in replies {
                    let _ = reply.send(Err(err()));
                }
                // PostgreSQL just could not be reached (the retries included): what queued
                // meanwhile would only wait for the same answer, a connection timeout each, so
                // it gets it now and its clients can retry (503, Retry-After).
                if unreachable {
                    let mut rx = queue.lock().await;
                    while let Ok((_, reply)) = rx.try_recv() {
                        let _ = reply.send(Err(err()));
                    }
                }
            }
        }
    }
}

/// The next group: waits for one request, then takes whatever else is queued, up to
/// [`MAX_GROUP`]; `None` once every sender is gone.
async fn next_group<T>(queue: &tokio::sync::Mutex<mpsc::Receiver<T>>) -> Option<Vec<T>> {
    let mut rx = queue.lock().await;
    let mut group = vec![rx.recv().await?];
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    Some(group)
}

/// The connection a worker keeps between groups. It comes from a pool of the workers' own
/// that checks it before handing it out; after any failure the next statement starts on a
/// freshly checked one.
struct Held {
    pool: PgPool,
    /// Behind a lock only so that a retried attempt can borrow it; one worker uses it.
    conn: Mutex<Option<(PoolConnection<Postgres>, Instant)>>,
    /// How long a statement may take before the connection is given up: the server's
    /// `statement_timeout` and then some, so this only fires when the server is cut off
    /// without the socket noticing.
    limit: Duration,
}

impl Held {
    async fn run<S: Statement>(
        &self,
        statement: &S,
        group: &[S::Request],
    ) -> Result<Vec<S::Answer>, StoreError> {
        let kept = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|(_, used)| used.elapsed() < HELD_IDLE);
        let mut conn = match kept {
            Some((conn, _)) => conn,
            None => self.pool.acquire().await.map_err(classify)?,
        };
        let answers = tokio::time::timeout(self.limit, statement.run(&mut conn, group))
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(format!(
                    "no answer from PostgreSQL within {:?}",
                    self.limit
                )))
            })?;
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some((conn, Instant::now()));
        Ok(answers)
    }
}
