//! `cairn testnet --soak`: real nodes, each on a data directory of its own, in worker
//! processes, under a steady load of puts, gets, deletes and watches, while a chaos loop kills
//! workers with SIGKILL and starts them again on their data directories, and stops and starts
//! single nodes. The load keeps a ledger of every acknowledged write ([`ledger`]) and checks
//! gets against it.
//!
//! What counts as lost. A get that fails (its node stopped, its worker was killed) is a failed
//! operation, not a loss. A get that answers but does not find what the ledger allows is
//! retried on other nodes that are up (three must answer so); if none finds it, the check
//! counts a *miss*: the item was unavailable then, which chaos may cause for a while (say,
//! the nodes holding the newest version were all in the killed worker). An item is
//! *acknowledged and lost* only if, at the end, with chaos stopped, every node running again
//! on its data directory and the network given time to settle, three nodes that answer (none
//! of them its publisher) cannot find what the ledger allows. Nodes keep their items on
//! disk, so every acknowledged write must survive that; the run lists every lost key.

mod cluster;
mod ledger;
mod load;
mod tally;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::cluster::Cluster;
use self::ledger::{Ledger, Verdict};
use self::load::{Shared, chaos, load, lock};
use self::tally::Tally;
pub use self::tally::{GetFailures, Interval, KindFigures};
use crate::local::open_file_limit;
use crate::{TestnetError, WorkerCommand, spread};

/// What a soak runs.
#[derive(Clone, Debug)]
pub struct SoakPlan {
    /// Nodes, all in worker processes.
    pub nodes: usize,
    /// Worker processes; `None` picks [`spread::processes_for`].
    pub processes: Option<usize>,
    /// Names the load writes (each a signed item of one publisher node).
    pub slots: usize,
    /// Seed of the random choices.
    pub seed: u64,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// How long the load and the chaos run: at least this long, and, when `chaos_every` is
    /// not longer, until a worker has been killed and restarted and a node stopped and started.
    pub duration: Duration,
    /// How often a line of figures is reported (a minute in a long run).
    pub interval: Duration,
    /// Time between chaos events.
    pub chaos_every: Duration,
    /// How long a killed worker or a stopped node stays down.
    pub downtime: Duration,
    /// How long each watch runs.
    pub watch_for: Duration,
    /// How long the network settles after the chaos, before the final check of every item.
    pub settle: Duration,
    /// Where the nodes' data directories go (`DIR/node-I`, kept); `None` makes a temporary
    /// directory that the run removes.
    pub data: Option<PathBuf>,
    /// How to start a worker (the soak adds `--data DIR`).
    pub worker: WorkerCommand,
    /// Whether the nodes speak datagrams.
    pub datagrams: bool,
    /// Test only: before the final check, every node is restarted on an emptied data
    /// directory, losing everything, so that a test can see the check catch a loss.
    pub wipe_before_sweep: bool,
}

/// An acknowledged write that the final check could not find.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lost {
    /// The item's key (hex).
    pub key: String,
    /// Its name and the node that published it.
    pub name: String,
    /// The publisher.
    pub publisher: usize,
    /// What the gets found instead.
    pub found: String,
}

/// What a soak measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SoakReport {
    /// Nodes.
    pub nodes: usize,
    /// Worker processes.
    pub processes: usize,
    /// Seed.
    pub seed: u64,
    /// Joins that failed at the start.
    pub failed_joins: usize,
    /// Each interval, in order (the last one is the wind-down after the load stopped).
    pub intervals: Vec<Interval>,
    /// The whole run.
    pub total: Interval,
    /// Puts acknowledged.
    pub acknowledged_puts: u64,
    /// Deletes acknowledged.
    pub acknowledged_deletes: u64,
    /// Names checked at the end.
    pub swept: usize,
    /// Names the final check could not check (no node answered).
    pub unchecked: usize,
    /// Acknowledged and lost: what the final check did not find.
    pub lost: Vec<Lost>,
    /// Wall time, in seconds.
    pub wall_s: f64,
}

/// A temporary data root, removed when dropped.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs a soak; `report` sees each interval's figures as it ends.
pub async fn soak(
    plan: &SoakPlan,
    report: &mut dyn FnMut(&Interval),
) -> Result<SoakReport, TestnetError> {
    let started = Instant::now();
    let nodes = plan.nodes.max(2);
    let processes = plan
        .processes
        .unwrap_or_else(|| spread::processes_for(nodes, open_file_limit()))
        .clamp(1, nodes);
    let (root, _scratch) = match &plan.data {
        Some(dir) => (dir.clone(), Scratch(None)),
        None => {
            let nanos = started.elapsed().as_nanos() ^ u128::from(plan.seed);
            let dir =
                std::env::temp_dir().join(format!("cairn-soak-{}-{nanos}", std::process::id()));
            (dir.clone(), Scratch(Some(dir)))
        }
    };
    let mut command = plan.worker.clone();
    command
        .args
        .extend(["--data".into(), root.display().to_string()]);
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let concurrency = plan.concurrency.max(1);
    let (cluster, failed_joins) =
        Cluster::start(command, nodes, processes, concurrency, &mut rng).await?;
    let shared = Arc::new(Shared {
        cluster,
        ledger: Mutex::new(Ledger::new(plan.slots, nodes)),
        tally: Mutex::new(Tally::default()),
        rng: Mutex::new(StdRng::seed_from_u64(plan.seed.wrapping_add(1))),
        watch_for: plan.watch_for,
        censuses: std::sync::atomic::AtomicUsize::new(0),
    });
    let (stop, stopped) = watch::channel(false);
    let mut loads = JoinSet::new();
    for _ in 0..concurrency {
        loads.spawn(load(shared.clone(), stopped.clone()));
    }
    let chaos_rng = StdRng::seed_from_u64(plan.seed.wrapping_add(2));
    let chaos = tokio::spawn(chaos(
        shared.clone(),
        plan.chaos_every,
        plan.downtime,
        chaos_rng,
        stopped,
    ));
    let (intervals, mut total) = run_intervals(&shared, plan, report).await;
    let _ = stop.send(true);
    while loads.join_next().await.is_some() {}
    let chaos_result = chaos.await;
    let wind_down = std::mem::take(&mut *lock(&shared.tally));
    total.merge(&wind_down);
    let mut intervals = intervals;
    let last = wind_down.figures(intervals.len() as u64 + 1, 0.0);
    report(&last);
    intervals.push(last);
    if plan.wipe_before_sweep {
        for i in 0..nodes {
            shared.cluster.start_node(i, true, &mut rng).await;
        }
    }
    tokio::time::sleep(plan.settle).await;
    let (swept, unchecked, lost) = sweep(&shared, concurrency).await;
    shared.cluster.shutdown().await;
    match chaos_result {
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(TestnetError::Worker(format!("the chaos loop failed: {e}"))),
        Ok(Ok(())) => {}
    }
    let (acknowledged_puts, acknowledged_deletes) = {
        let ledger = lock(&shared.ledger);
        (ledger.acknowledged_puts, ledger.acknowledged_deletes)
    };
    Ok(SoakReport {
        nodes,
        processes,
        seed: plan.seed,
        failed_joins,
        total: total.figures(0, started.elapsed().as_secs_f64()),
        intervals,
        acknowledged_puts,
        acknowledged_deletes,
        swept,
        unchecked,
        lost,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Reports an interval's figures every `plan.interval` until `plan.duration` is over.
/// Returns them and their sum.
async fn run_intervals(
    shared: &Shared,
    plan: &SoakPlan,
    report: &mut dyn FnMut(&Interval),
) -> (Vec<Interval>, Tally) {
    let begun = Instant::now();
    let mut intervals = Vec::new();
    let mut total = Tally::default();
    // With chaos on, the load runs past `duration` until the chaos has killed and restarted a
    // worker and stopped and started a node at least once: a soak without them proves nothing.
    let chaos_on = plan.chaos_every <= plan.duration;
    let chaos_seen = |t: &Tally| t.kills > 0 && t.restarts > 0 && t.stops > 0 && t.starts > 0;
    while begun.elapsed() < plan.duration || (chaos_on && !chaos_seen(&total)) {
        let span = plan
            .interval
            .min(plan.duration.saturating_sub(begun.elapsed()))
            .max(Duration::from_millis(100));
        let start = Instant::now();
        tokio::time::sleep(span).await;
        let tally = std::mem::take(&mut *lock(&shared.tally));
        let line = tally.figures(intervals.len() as u64 + 1, start.elapsed().as_secs_f64());
        report(&line);
        total.merge(&tally);
        intervals.push(line);
    }
    (intervals, total)
}

/// Checks every name with an acknowledged write. Returns the names checked, those no node
/// answered for, and those lost.
async fn sweep(shared: &Arc<Shared>, concurrency: usize) -> (usize, usize, Vec<Lost>) {
    let claims = lock(&shared.ledger).claim_all_acknowledged();
    let swept = claims.len();
    let (mut unchecked, mut lost) = (0, Vec::new());
    let mut running = JoinSet::new();
    let mut judge = |verdict: Verdict, claim: ledger::Claim| match verdict {
        Verdict::Good => {}
        Verdict::Failed => unchecked += 1,
        Verdict::Miss(found) => lost.push(Lost {
            key: claim.key.map(|k| k.to_hex()).unwrap_or_default(),
            name: claim.name,
            publisher: claim.publisher,
            found,
        }),
    };
    for claim in claims {
        let shared = shared.clone();
        running.spawn(async move {
            let verdict = shared.check(&claim, false).await;
            if let (Verdict::Miss(_), Some(key)) = (&verdict, claim.key) {
                // The evidence, on stderr: who holds which copy, by distance.
                shared.census(&claim, claim.publisher, &key.to_hex()).await;
            }
            (verdict, claim)
        });
        if running.len() >= concurrency
            && let Some(Ok((verdict, claim))) = running.join_next().await
        {
            judge(verdict, claim);
        }
    }
    while let Some(done) = running.join_next().await {
        if let Ok((verdict, claim)) = done {
            judge(verdict, claim);
        }
    }
    (swept, unchecked, lost)
}
