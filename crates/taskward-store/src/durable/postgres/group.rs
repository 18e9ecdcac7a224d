//! Grouped execution: concurrent requests of one kind go to PostgreSQL as one statement (one
//! round trip, and for writes one commit and one WAL flush) instead of one each.
//!
//! A few workers share one queue; each takes everything queued (up to [`MAX_GROUP`]) and runs
//! it as one statement, while the next worker gathers what queues meanwhile. What a group does is a [`Statement`]; the queue, the workers, their connections and the retry
//! policy are here, once, for every kind (compare-and-set writes and reads by key today).
//!
//! A kind may also say how long the next group waits for the statement in flight to end before
//! it starts beside it ([`Statement::OVERLAP_AFTER`]): reads and commits both wait, so that
//! under load one statement is in flight and the next group forms behind it (fewer, larger
//! statements: PostgreSQL spends less per row), while a statement that is slow or stuck does
//! not hold up the requests queued after it.
//!
//! Each worker keeps its connection for good ([`Held`]): sqlx pings a connection (a round trip)
//! every time it goes back to a pool, which would double the statements of every group.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, OwnedMutexGuard};
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

    /// How long the next group of this kind waits for the statement in flight to end before it
    /// starts beside it; `None`: it does not wait (each worker takes a group as soon as one is
    /// queued).
    const OVERLAP_AFTER: Option<Duration> = None;

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

/// Held by the statement in flight of a kind that waits for it ([`Statement::OVERLAP_AFTER`]);
/// a statement that started beside it, after the wait, runs without.
type Lane = Arc<tokio::sync::Mutex<()>>;

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
        let lane = Lane::default();
        let workers = (0..workers)
            .map(|_| {
                let held = Held {
                    pool: pool.clone(),
                    conn: Mutex::new(None),
                    limit,
                };
                tokio::spawn(work(
                    statement.clone(),
                    held,
                    rx.clone(),
                    lane.clone(),
                    stop.clone(),
                ))
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
    lane: Lane,
    stop: CancellationToken,
) {
    loop {
        let group = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            group = next_group(&queue, &lane, S::OVERLAP_AFTER) => group,
        };
        let Some((mut group, in_lane)) = group else {
            return;
        };
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
        // Left before the answers go out, so a worker waiting to start the next group (and
        // holding the queue) does not wait on them.
        drop(in_lane);
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

/// The next group: waits for one request and, with `overlap_after`, up to that long for the
/// statement in flight to end (what queues meanwhile joins the group); then takes whatever else
/// is queued, up to [`MAX_GROUP`]. With the lane, if the wait ended in time. `None` once every
/// sender is gone.
async fn next_group<T>(
    queue: &tokio::sync::Mutex<mpsc::Receiver<T>>,
    lane: &Lane,
    overlap_after: Option<Duration>,
) -> Option<(Vec<T>, Option<OwnedMutexGuard<()>>)> {
    let mut rx = queue.lock().await;
    let mut group = vec![rx.recv().await?];
    let in_lane = match overlap_after {
        Some(after) => tokio::time::timeout(after, lane.clone().lock_owned())
            .await
            .ok(),
        None => None,
    };
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    Some((group, in_lane))
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A statement that answers each request with its group's size after `hold` (or, for the
    /// request `stuck`, after `stuck_for`), counting how many of its statements ran at once.
    struct Probe {
        hold: Duration,
        stuck_for: Duration,
        in_flight: AtomicUsize,
        most_at_once: AtomicUsize,
    }

    impl Probe {
        fn new(hold: Duration, stuck_for: Duration) -> Self {
            Probe {
                hold,
                stuck_for,
                in_flight: AtomicUsize::new(0),
                most_at_once: AtomicUsize::new(0),
            }
        }
    }

    /// Reads' rule, with a wait long enough that a test's statements never reach it unless
    /// one is stuck.
    const TEST_OVERLAP_AFTER: Duration = Duration::from_millis(300);

    impl Statement for Arc<Probe> {
        type Request = &'static str;
        type Answer = usize;
        const OVERLAP_AFTER: Option<Duration> = Some(TEST_OVERLAP_AFTER);

        async fn run(
            &self,
            _: &mut PgConnection,
            group: &[&'static str],
        ) -> Result<Vec<usize>, StoreError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            let stuck = group.contains(&"stuck");
            tokio::time::sleep(if stuck { self.stuck_for } else { self.hold }).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(vec![group.len(); group.len()])
        }
    }

    /// Waits until a statement of `probe` is running.
    async fn running(probe: &Probe) {
        while probe.in_flight.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// `workers` workers running `probe`.
    fn start(probe: &Arc<Probe>, workers: usize) -> Arc<Groups<Arc<Probe>>> {
        let pool = PgPool::connect_lazy(&taskward_testkit::database_url()).expect("database url");
        Arc::new(Groups::start(
            probe.clone(),
            pool,
            workers,
            Duration::from_secs(60),
        ))
    }

    /// Submits `request` on a task of its own.
    fn submit(
        groups: &Arc<Groups<Arc<Probe>>>,
        request: &'static str,
    ) -> tokio::task::JoinHandle<Result<usize, StoreError>> {
        let groups = groups.clone();
        tokio::spawn(async move { groups.submit(request).await })
    }

    #[tokio::test]
    async fn reads_run_one_statement_at_a_time_and_group_what_queues_behind_it() {
        let probe = Arc::new(Probe::new(Duration::from_millis(200), Duration::ZERO));
        let groups = start(&probe, 4);
        // The first request starts a statement; the rest arrive while it runs.
        let first = submit(&groups, "first");
        running(&probe).await;
        let rest: Vec<_> = (0..30).map(|_| submit(&groups, "later")).collect();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for r in rest {
            // Four idle workers, yet all thirty went as one statement after the first.
            assert_eq!(r.await.unwrap().unwrap(), 30);
        }
        assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1);
        groups.close().await;
    }

    #[tokio::test]
    async fn a_stuck_read_does_not_hold_up_the_reads_queued_after_it() {
        let probe = Arc::new(Probe::new(
            Duration::from_millis(10),
            Duration::from_secs(30),
        ));
        let groups = start(&probe, 2);
        let stuck = submit(&groups, "stuck");
        running(&probe).await;
        // Answered on the other worker once it has waited its while for the stuck statement,
        // long before that ends.
        let answered = tokio::time::timeout(Duration::from_secs(10), groups.submit("next"))
            .await
            .expect("a read queued behind a stuck statement waited for it");
        assert_eq!(answered.unwrap(), 1);
        assert!(!stuck.is_finished());
        assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 2);
        stuck.abort();
    }
}
