//! A test network of real nodes, each on a loopback address of its own (127.a.b.1), and the
//! workload `cairn testnet` runs on it.
//!
//! Every node is a full node: its own listener, driver and connections over loopback TCP. A
//! connection between two nodes of one process costs two file descriptors, so the nodes of one
//! process share one connection budget sized from the process's open-file limit, and each node
//! has a pool of at most its share; the report says how often a node had to do without a
//! connection because the budget was spent.
//!
//! One process holds about a hundred nodes with pools a put can reuse. A larger network is
//! spread over several processes ([`spread`]): node `i` of `P` processes runs in process
//! `i % P`, this one being process 0 and the others worker processes that this one starts and
//! drives over their standard input and output. The workload and the report are the same either way.

mod show;
pub mod spread;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::Key;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use cairn_core::report::{Operations, Report, Sample, reader, resident_bytes_from_statm};

use crate::{Config, Dht, StartError};
pub use spread::{WorkerCommand, serve_worker};

/// Reports progress of the stages of a run (the CLI draws progress bars with it).
pub trait Progress: Send + Sync {
    /// A stage with `total` steps begins.
    fn stage(&self, name: &str, total: u64);
    /// One step of the current stage is done.
    fn step(&self);
    /// The current stage is over.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _: &str, _: u64) {}
    fn step(&self) {}
    fn finish(&self) {}
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Nodes to start.
    pub nodes: usize,
    /// Items to put (alternately signed and immutable) and then get.
    pub items: usize,
    /// Seed of the random choices (which nodes put and get, the values).
    pub seed: u64,
    /// Joins, puts or gets running at once.
    pub concurrency: usize,
    /// Processes to spread the nodes over; `None` picks [`spread::processes_for`].
    pub processes: Option<usize>,
    /// How to start a worker process; needed only when the nodes are spread over more than
    /// one process.
    pub worker: Option<WorkerCommand>,
    /// Where to serve the dashboard of the whole network (node 0's API), from the moment the
    /// nodes start; needs every node in this process.
    pub serve: Option<SocketAddr>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            nodes: 100,
            items: 100,
            seed: 1,
            concurrency: 32,
            processes: Some(1),
            worker: None,
            serve: None,
        }
    }
}

/// What a run measured: the report every cairn experiment shares ([`Report`]), and what only a
/// real network has.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TestnetReport {
    /// The figures the simulator reports too.
    #[serde(flatten)]
    pub report: Report,
    /// Processes the nodes ran in (this one included).
    pub processes: usize,
    /// Joins, puts or gets that were in flight at once.
    pub concurrency: usize,
    /// Puts completed per second of the put stage (successful or not).
    pub puts_per_s: f64,
    /// Gets completed per second of the get stage.
    pub gets_per_s: f64,
    /// Requests sent between nodes during the puts and gets (liveness pings and housekeeping
    /// included).
    pub messages: u64,
    /// Resident memory of all the processes before any node started, in bytes.
    pub rss_before_bytes: u64,
    /// Resident memory of all the processes after the run, in bytes.
    pub rss_after_bytes: u64,
    /// The connection budgets of all the processes, added up (connection ends open at once:
    /// a connection between two nodes of one process has two).
    pub connection_budget: usize,
    /// Connections not opened or not accepted because the budget was spent (their requests
    /// failed).
    pub budget_exhausted: u64,
    /// Connections that could not be opened at all (refused, or out of file descriptors).
    pub dial_failures: u64,
    /// Connection ends open when the report was made.
    pub connections_open: usize,
    /// Connections opened (TCP and cairn handshake) per put, over all nodes.
    pub connections_per_put: f64,
    /// Connections opened per get.
    pub connections_per_get: f64,
    /// Wall time of the whole run, in seconds.
    pub wall_s: f64,
}

/// The nodes of one process: a whole network, or one share of a spread one.
pub struct Testnet {
    /// Handles of the nodes, in order.
    pub nodes: Vec<Dht>,
    /// Their listen addresses.
    pub addrs: Vec<SocketAddr>,
    budget: usize,
    permits: Arc<Semaphore>,
    rss_before: u64,
}

/// The loopback address of test node `i`: each node a host of its own in a /24 of its own
/// (127.a.b.1), as nodes on the internet are, so that the per-host and per-subnet limits see
/// a network of many hosts rather than one.
pub fn loopback_host(i: usize) -> std::net::IpAddr {
    let [.., a, b] = u32::try_from(i % 65_024).unwrap_or(0).to_be_bytes();
    std::net::IpAddr::from([127, a.wrapping_add(1), b, 1])
}

/// The soft limit on open files of this process, from `/proc/self/limits` (1,024 if unknown).
pub fn open_file_limit() -> usize {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_024)
}

/// Resident memory of this process in bytes, from `/proc/self/statm` (0 if unknown).
pub fn resident_bytes() -> u64 {
    resident_bytes_from_statm(&std::fs::read_to_string("/proc/self/statm").unwrap_or_default())
}

/// Descriptors a process keeps aside from its nodes' connections: its own files and pipes,
/// plus one listener per node.
fn spare_descriptors(nodes: usize) -> usize {
    256 + nodes
}

impl Testnet {
    /// Starts `count` nodes, each on its own loopback address (not yet joined), sharing a
    /// connection budget sized from the open-file limit.
    pub async fn start(count: usize) -> Result<Self, StartError> {
        Self::start_at(0, 1, count).await
    }

    /// Starts `count` nodes of a network, numbers `first`, `first + stride`, ...: node `i`
    /// listens on [`loopback_host`]`(i)`.
    pub async fn start_at(first: usize, stride: usize, count: usize) -> Result<Self, StartError> {
        let rss_before = resident_bytes();
        // A permit per connection end, dialed or accepted: a descriptor each. A node's pool
        // may fill a third of its share: as many connections come in as go out on average,
        // and the rest is room for the nodes that more dial than others.
        let budget = open_file_limit()
            .saturating_sub(spare_descriptors(count))
            .max(48);
        let shared = Arc::new(Semaphore::new(budget));
        let per_node = (budget / (3 * count.max(1))).clamp(4, 64);
        let mut nodes = Vec::with_capacity(count);
        let mut addrs = Vec::with_capacity(count);
        for i in (0..count).map(|n| first + n * stride.max(1)) {
            let config = Config::default()
                .listen(SocketAddr::new(loopback_host(i), 0))
                .max_outbound(per_node)
                // A node's pool is bounded by its share of the budget, so connections can stay
                // open between operations rather than be set up again for the next one.
                .idle_timeout(Duration::from_secs(30))
                .connection_budget(shared.clone());
            let dht = crate::start(config).await?;
            let addr = dht
                .status()
                .await
                .map(|s| s.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
            nodes.push(dht);
            addrs.push(addr);
        }
        Ok(Testnet {
            nodes,
            addrs,
            budget,
            permits: shared,
            rss_before,
        })
    }

    /// Joins every node but the first through up to three random nodes that joined before it,
    /// `concurrency` joins at a time. Returns how many failed.
    pub async fn join(
        &self,
        rng: &mut StdRng,
        concurrency: usize,
        progress: &dyn Progress,
    ) -> usize {
        let members: Vec<Member> = self.nodes.iter().cloned().map(Member::Local).collect();
        join(&members, &self.addrs, rng, concurrency, progress).await
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        let mut all = JoinSet::new();
        for dht in &self.nodes {
            let dht = dht.clone();
            all.spawn(async move { dht.shutdown().await });
        }
        while all.join_next().await.is_some() {}
    }

    /// The counters of these nodes, added up.
    async fn totals(&self) -> Totals {
        let mut totals = Totals {
            budget: self.budget,
            connections_open: self.budget - self.permits.available_permits(),
            rss_before: self.rss_before,
            rss_after: resident_bytes(),
            ..Totals::default()
        };
        for dht in &self.nodes {
            if let Ok(s) = dht.status().await {
                totals.requests_sent += s.requests_sent;
                totals.connections_opened += s.connections_opened;
                totals.budget_exhausted += s.connection_budget_exhausted;
                totals.dial_failures += s.dial_failures;
            }
        }
        totals
    }
}

/// Counters of one process's nodes, added up; a spread network adds those of its processes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Totals {
    requests_sent: u64,
    connections_opened: u64,
    budget_exhausted: u64,
    dial_failures: u64,
    connections_open: usize,
    budget: usize,
    rss_before: u64,
    rss_after: u64,
}

impl std::ops::Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals {
            requests_sent: self.requests_sent + o.requests_sent,
            connections_opened: self.connections_opened + o.connections_opened,
            budget_exhausted: self.budget_exhausted + o.budget_exhausted,
            dial_failures: self.dial_failures + o.dial_failures,
            connections_open: self.connections_open + o.connections_open,
            budget: self.budget + o.budget,
            rss_before: self.rss_before + o.rss_before,
            rss_after: self.rss_after + o.rss_after,
        }
    }
}

/// What a put left to get back: its key, and a sample of what it cost.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PutDone {
    /// The key, when the put succeeded.
    key: Option<String>,
    replicas: usize,
    sample: WireSample,
}

/// A [`Sample`] as it crosses from a worker process: the latency in microseconds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct WireSample {
    ok: bool,
    micros: u64,
    hops: u32,
    requests: u32,
}

impl From<WireSample> for Sample {
    fn from(w: WireSample) -> Sample {
        Sample {
            ok: w.ok,
            latency: Duration::from_micros(w.micros),
            hops: w.hops,
            requests: w.requests,
        }
    }
}

/// One node of a run, in this process or in a worker.
#[derive(Clone)]
enum Member {
    Local(Dht),
    Remote(Arc<spread::Worker>, usize),
}

impl Member {
    async fn join(self, seeds: Vec<SocketAddr>) -> bool {
        match self {
            Member::Local(dht) => dht.bootstrap(seeds).await.is_ok(),
            Member::Remote(worker, node) => {
                matches!(
                    worker.call(spread::Op::Join { node, seeds }).await,
                    Some(spread::Reply::Joined(true))
                )
            }
        }
    }

    /// Puts `value`, signed under `name` if there is one, else immutable.
    async fn put(self, name: Option<String>, value: Bytes) -> PutDone {
        match self {
            Member::Local(dht) => put_local(&dht, name, value).await,
            Member::Remote(worker, node) => {
                let value = value.to_vec();
                match worker.call(spread::Op::Put { node, name, value }).await {
                    Some(spread::Reply::Put(done)) => done,
                    _ => PutDone {
                        key: None,
                        replicas: 0,
                        sample: worker_gone(),
                    },
                }
            }
        }
    }

    /// Gets `key` and checks the value is `expect`.
    async fn get(self, key: Key, expect: Bytes) -> WireSample {
        match self {
            Member::Local(dht) => get_local(&dht, key, &expect).await,
            Member::Remote(worker, node) => {
                let (key, expect) = (key.to_hex(), expect.to_vec());
                match worker.call(spread::Op::Get { node, key, expect }).await {
                    Some(spread::Reply::Got(sample)) => sample,
                    _ => worker_gone(),
                }
            }
        }
    }
}

/// The sample of an operation whose worker process is gone.
fn worker_gone() -> WireSample {
    WireSample {
        ok: false,
        micros: 0,
        hops: 0,
        requests: 0,
    }
}

async fn put_local(dht: &Dht, name: Option<String>, value: Bytes) -> PutDone {
    let start = Instant::now();
    let receipt = match name {
        Some(name) => dht.put_signed(&name, value, None).await,
        None => dht.put_immutable(value).await,
    };
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    match receipt {
        Ok(r) => PutDone {
            key: Some(r.key.to_hex()),
            replicas: r.replicas,
            sample: WireSample {
                ok: true,
                micros,
                hops: r.stats.hops,
                requests: r.stats.requests,
            },
        },
        Err(_) => PutDone {
            key: None,
            replicas: 0,
            sample: WireSample {
                ok: false,
                micros,
                hops: 0,
                requests: 0,
            },
        },
    }
}

async fn get_local(dht: &Dht, key: Key, expect: &[u8]) -> WireSample {
    let start = Instant::now();
    let found = dht.get(key).await;
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let stats = found.as_ref().map(|f| f.stats).unwrap_or_default();
    WireSample {
        ok: found.is_ok_and(|f| f.item.value()[..] == *expect),
        micros,
        hops: stats.hops,
        requests: stats.requests,
    }
}

/// A running network: its nodes in this process and those in worker processes.
pub struct Network {
    /// The nodes in this process (node 0 first).
    pub local: Testnet,
    workers: Vec<Arc<spread::Worker>>,
    members: Vec<Member>,
    addrs: Vec<SocketAddr>,
    /// The dashboard's server, when the plan asked for one; it stops with node 0.
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Network {
    /// Starts `plan.nodes` nodes over the processes the plan asks for.
    async fn start(plan: &Plan) -> Result<Self, StartError> {
        let nodes = plan.nodes.max(1);
        let processes = plan
            .processes
            .unwrap_or_else(|| spread::processes_for(nodes, open_file_limit()))
            .clamp(1, nodes);
        let shares = spread::shares(nodes, processes);
        let local = Testnet::start_at(0, processes, shares[0]).await?;
        // Node i runs in process i % P, as number i / P there.
        let mut placed: Vec<Vec<(Member, SocketAddr)>> = vec![
            local
                .nodes
                .iter()
                .cloned()
                .map(Member::Local)
                .zip(local.addrs.iter().copied())
                .collect(),
        ];
        let mut workers = Vec::new();
        if processes > 1 {
            let command = plan.worker.as_ref().ok_or(StartError::Worker(
                "spreading nodes over processes needs a worker command".into(),
            ))?;
            for (p, &count) in shares.iter().enumerate().skip(1) {
                let (worker, addrs) = spread::Worker::spawn(command, p, processes, count).await?;
                placed.push(
                    (0..count)
                        .map(|n| Member::Remote(worker.clone(), n))
                        .zip(addrs)
                        .collect(),
                );
                workers.push(worker);
            }
        }
        let (members, addrs) = (0..nodes)
            .map(|i| placed[i % processes][i / processes].clone())
            .unzip();
        Ok(Network {
            local,
            workers,
            members,
            addrs,
            server: None,
        })
    }

    /// Processes the nodes run in.
    pub fn processes(&self) -> usize {
        1 + self.workers.len()
    }

    /// Nodes in the whole network.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the network has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    async fn totals(&self) -> Totals {
        let mut totals = self.local.totals().await;
        for worker in &self.workers {
            if let Some(spread::Reply::Totals(t)) = worker.call(spread::Op::Totals).await {
                totals = totals + t;
            }
        }
        totals
    }

    /// Stops every node, in this process and in the workers (which then exit), and the
    /// dashboard's server with them.
    pub async fn shutdown(&mut self) {
        for worker in &self.workers {
            worker.stop().await;
        }
        self.local.shutdown().await;
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

/// Joins every node but the first through up to three random nodes that joined before it,
/// `concurrency` joins at a time. Returns how many failed.
async fn join(
    members: &[Member],
    addrs: &[SocketAddr],
    rng: &mut StdRng,
    concurrency: usize,
    progress: &dyn Progress,
) -> usize {
    progress.stage("joining", members.len().saturating_sub(1) as u64);
    let mut failed = 0;
    let mut running = JoinSet::new();
    for (i, member) in members.iter().enumerate().skip(1) {
        if running.len() >= concurrency.max(1) {
            failed += usize::from(
                !running
                    .join_next()
                    .await
                    .is_some_and(|r| r.is_ok_and(|ok| ok)),
            );
            progress.step();
        }
        // Seeds are earlier nodes: joined, or at least joining, and so answering.
        let seeds: Vec<SocketAddr> = (0..3.min(i))
            .map(|_| addrs[rng.random_range(0..i)])
            .collect();
        running.spawn(member.clone().join(seeds));
    }
    while let Some(result) = running.join_next().await {
        failed += usize::from(!result.is_ok_and(|ok| ok));
        progress.step();
    }
    progress.finish();
    failed
}

/// One item put during a run, to be got back.
struct Put {
    key: Key,
    value: Bytes,
    from: usize,
}

/// Starts a network, runs the workload, and reports. The network is returned still running.
pub async fn run(
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<(Network, TestnetReport), StartError> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.seed);
    progress.stage("starting nodes", 1);
    let mut net = Network::start(plan).await?;
    if let Some(addr) = plan.serve {
        net.serve(addr).await?;
    }
    progress.finish();
    let failed_joins = join(
        &net.members,
        &net.addrs,
        &mut rng,
        plan.concurrency,
        progress,
    )
    .await;
    let mut report = Report {
        nodes: net.len(),
        seed: plan.seed,
        failed_joins,
        ..Report::default()
    };
    report.set_setup(started.elapsed());
    let before = net.totals().await;
    let put_stage = Instant::now();
    let (puts, samples, replicas) = put_all(&net, plan, &mut rng, progress).await;
    let puts_per_s = samples.len() as f64 / put_stage.elapsed().as_secs_f64();
    report.puts = Operations::of(&samples);
    report.mean_replicas = replicas as f64 / report.puts.succeeded.max(1) as f64;
    let after_puts = net.totals().await;
    let get_stage = Instant::now();
    let samples = get_all(&net, plan, &mut rng, progress, &puts).await;
    let gets_per_s = samples.len() as f64 / get_stage.elapsed().as_secs_f64();
    report.gets = Operations::of(&samples);
    let after = net.totals().await;
    let opened_by_puts = after_puts.connections_opened - before.connections_opened;
    let opened_by_gets = after.connections_opened - after_puts.connections_opened;
    report.memory_per_node_bytes =
        after.rss_after.saturating_sub(after.rss_before) / net.len() as u64;
    let testnet = TestnetReport {
        processes: net.processes(),
        concurrency: plan.concurrency.max(1),
        puts_per_s,
        gets_per_s,
        messages: after.requests_sent - before.requests_sent,
        rss_before_bytes: after.rss_before,
        rss_after_bytes: after.rss_after,
        connection_budget: after.budget,
        budget_exhausted: after.budget_exhausted,
        dial_failures: after.dial_failures,
        connections_open: after.connections_open,
        connections_per_put: opened_by_puts as f64 / report.puts.attempted.max(1) as f64,
        connections_per_get: opened_by_gets as f64 / report.gets.attempted.max(1) as f64,
        wall_s: started.elapsed().as_secs_f64(),
        report,
    };
    Ok((net, testnet))
}

/// Puts `plan.items` items (alternately signed and immutable) from random nodes. Returns the
/// items put, a sample per put, and the replicas the acknowledged ones reported.
async fn put_all(
    net: &Network,
    plan: &Plan,
    rng: &mut StdRng,
    progress: &dyn Progress,
) -> (Vec<Put>, Vec<Sample>, usize) {
    progress.stage("putting", plan.items as u64);
    let mut running = JoinSet::new();
    let mut puts = Vec::new();
    let mut samples = Vec::new();
    let mut replicas = 0;
    for i in 0..plan.items {
        let from = rng.random_range(0..net.len());
        let mut value = vec![0u8; rng.random_range(16..1024)];
        rng.fill_bytes(&mut value);
        let value = Bytes::from(value);
        let name = (i % 2 == 0).then(|| format!("testnet-{i}"));
        let put = net.members[from].clone().put(name, value.clone());
        running.spawn(async move { (put.await, value, from) });
        while running.len() >= plan.concurrency.max(1)
            || (i + 1 == plan.items && !running.is_empty())
        {
            let Some(Ok((done, value, from))) = running.join_next().await else {
                break;
            };
            progress.step();
            if let Some(key) = done.key.as_deref().and_then(|k| Key::from_hex(k).ok()) {
                replicas += done.replicas;
                puts.push(Put { key, value, from });
            }
            samples.push(Sample::from(done.sample));
        }
    }
    progress.finish();
    (puts, samples, replicas)
}

/// Gets every item put from a node other than its publisher; a sample per get.
async fn get_all(
    net: &Network,
    plan: &Plan,
    rng: &mut StdRng,
    progress: &dyn Progress,
    puts: &[Put],
) -> Vec<Sample> {
    progress.stage("getting", puts.len() as u64);
    let mut running = JoinSet::new();
    let mut samples = Vec::new();
    let live: Vec<usize> = (0..net.len()).collect();
    for (i, put) in puts.iter().enumerate() {
        let at = reader(put.from, &live, |n| rng.random_range(0..n));
        running.spawn(net.members[at].clone().get(put.key, put.value.clone()));
        while running.len() >= plan.concurrency.max(1)
            || (i + 1 == puts.len() && !running.is_empty())
        {
            let Some(Ok(sample)) = running.join_next().await else {
                break;
            };
            progress.step();
            samples.push(Sample::from(sample));
        }
    }
    progress.finish();
    samples
}
