//! The read-after-write guarantee across instances (SPEC, Scale-out): a read sent after a write
//! was acknowledged never returns an older version, on any instance.
//!
//! Three instances share one PostgreSQL and a private redis-server; instance A reaches Redis
//! through a proxy of its own, so it alone can be partitioned. Writers PATCH through A with
//! `If-Match` and read each acknowledged version straight back through B, C or A; readers read
//! through all three. Every read is compared with the writes acknowledged before it was sent.
//! Each fault runs under that load: none at all, A's link to Redis stalled in bursts or cut,
//! Redis slowed, paused and killed. `bench/stale-reads.sh` runs these many times over.

use std::time::Duration;

use taskward_server::settings::Secret;
use taskward_testkit::{RedisServer, TcpProxy};
use tokio::time::sleep;

use crate::load::{check_all, seed, Load, Targets};
use crate::support::{spawn_app_with, TestApp};

/// What happens to Redis during the middle phase.
#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// A's link holds every byte for 300 ms, every 700 ms.
    StallA,
    /// A's link refuses every connection.
    CutA,
    /// Redis blocks for 150 ms (past the 100 ms timeout), every 400 ms, for everyone.
    SlowRedis,
    /// SIGSTOP: alive, data kept, silent.
    PauseRedis,
    /// SIGKILL, then restarted empty.
    KillRedis,
}

const FAULT: Duration = Duration::from_secs(3);

async fn instances(redis: &RedisServer, proxy: &TcpProxy) -> [TestApp; 3] {
    let url = redis.url();
    let b = spawn_app_with(|s| {
        s.redis_url = Some(Secret::new(url));
        s.hot.redis_timeout_ms = 100;
    })
    .await;
    let a = b
        .second_instance_with(|s| s.redis_url = Some(Secret::new(proxy.redis_url())))
        .await;
    let c = b.second_instance().await;
    [a, b, c]
}

async fn apply(fault: Fault, redis: &mut RedisServer, proxy: &TcpProxy) {
    let until = tokio::time::Instant::now() + FAULT;
    match fault {
        Fault::None => sleep(FAULT).await,
        Fault::StallA => {
            while tokio::time::Instant::now() < until {
                proxy.stall(true);
                sleep(Duration::from_millis(300)).await;
                proxy.stall(false);
                sleep(Duration::from_millis(400)).await;
            }
        }
        Fault::CutA => {
            proxy.cut();
            sleep(FAULT).await;
            proxy.heal();
        }
        Fault::SlowRedis => {
            let client = redis::Client::open(redis.url()).expect("redis url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            while tokio::time::Instant::now() < until {
                let _: Result<String, _> = redis::cmd("DEBUG")
                    .arg("SLEEP")
                    .arg(0.15)
                    .query_async(&mut conn)
                    .await;
                sleep(Duration::from_millis(250)).await;
            }
        }
        Fault::PauseRedis => {
            redis.pause();
            sleep(FAULT).await;
            redis.resume();
        }
        Fault::KillRedis => {
            redis.kill();
            sleep(FAULT).await;
            redis.restart();
        }
    }
}

async fn run(fault: Fault) {
    let mut redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port).await;
    let apps = instances(&redis, &proxy).await;
    let label = format!("stale reads, {fault:?}");
    reads_across(&label, &apps, apply(fault, &mut redis, &proxy)).await;
}

/// The load of this file across instances `[a, b, c]` while `fault` runs (`label` names the
/// printed figures): writers through A with `If-Match`, each acknowledged version read back
/// through B, C or A, readers through all three. Asserts that no request failed and no read
/// was stale, then that every instance serves every task at its last acknowledged version.
pub(crate) async fn reads_across(
    label: &str,
    [a, b, c]: &[TestApp; 3],
    fault: impl std::future::Future<Output = ()>,
) {
    let ids = seed(b, "s", 24).await;
    let targets = Targets {
        writes: a.base.clone(),
        reads: vec![b.base.clone(), c.base.clone(), a.base.clone()],
        read_after_write: true,
        if_match: true,
    };
    let load = Load::start_with(&targets, &b.key, &ids, 8, 3);
    load.during(fault).await;
    sleep(Duration::from_millis(1500)).await;
    let book = load.stop().await;
    book.print(label);
    book.assert_no_failed_or_stale_request(label);
    for (app, name) in [(a, "A"), (b, "B"), (c, "C")] {
        check_all(app, &book, &format!("{label}, instance {name}")).await;
    }
}

/// One test per fault, named for what it shows, each running [`run`] under that fault.
macro_rules! under_each_fault {
    ($($name:ident: $fault:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run($fault).await;
        }
    )*};
}

under_each_fault! {
    no_stale_read_across_instances_without_a_fault: Fault::None;
    no_stale_read_across_instances_while_one_instance_link_to_redis_stalls: Fault::StallA;
    no_stale_read_across_instances_while_one_instance_is_cut_off_from_redis: Fault::CutA;
    no_stale_read_across_instances_while_redis_is_slow: Fault::SlowRedis;
    no_stale_read_across_instances_while_redis_is_paused: Fault::PauseRedis;
    no_stale_read_across_instances_when_redis_is_killed: Fault::KillRedis;
}
