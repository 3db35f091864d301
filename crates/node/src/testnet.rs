//! An in-process test network of real nodes, each on a loopback address of its own
//! (127.a.b.1), and the workload `cairn testnet` runs on it.
//!
//! Every node is a full node: its own listener, driver and connections over loopback TCP. A
//! connection between two nodes of one process costs two file descriptors, so the network
//! shares one connection budget sized from the process's open-file limit, gives each node a
//! small pool, and closes idle connections quickly; the report says how often a node had to do
//! without a connection because the budget was spent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use cairn_core::report::{Operations, Report, Sample, reader, resident_bytes_from_statm};

use crate::{Config, Dht, StartError};

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
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            nodes: 100,
            items: 100,
            seed: 1,
            concurrency: 32,
        }
    }
}

/// What a run measured: the report every cairn experiment shares ([`Report`]), and what only a
/// real network in one process has.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TestnetReport {
    /// The figures the simulator reports too.
    #[serde(flatten)]
    pub report: Report,
    /// Requests sent between nodes during the puts and gets (liveness pings and housekeeping
    /// included).
    pub messages: u64,
    /// Resident memory of the process before any node started, in bytes.
    pub rss_before_bytes: u64,
    /// Resident memory after the run, in bytes.
    pub rss_after_bytes: u64,
    /// The shared connection budget (connections open at once).
    pub connection_budget: usize,
    /// Connections not opened because the budget was spent (their requests failed).
    pub budget_exhausted: u64,
    /// Outgoing connections open when the report was made.
    pub connections_open: usize,
    /// Connections opened (TCP and cairn handshake) per put, over all nodes.
    pub connections_per_put: f64,
    /// Connections opened per get.
    pub connections_per_get: f64,
    /// Wall time of the whole run, in seconds.
    pub wall_s: f64,
}

/// A running test network.
pub struct Testnet {
    /// Handles of the nodes, node 0 first.
    pub nodes: Vec<Dht>,
    /// Their listen addresses.
    pub addrs: Vec<SocketAddr>,
    budget: usize,
    permits: Arc<Semaphore>,
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

impl Testnet {
    /// Starts `count` nodes, each on its own loopback address (not yet joined), sharing a connection budget sized
    /// from the open-file limit.
    pub async fn start(count: usize) -> Result<Self, StartError> {
        // Each node holds a listener; each connection costs two descriptors; keep some spare.
        let spare = 256 + count;
        let budget = (open_file_limit().saturating_sub(spare) / 2).max(16);
        let shared = Arc::new(Semaphore::new(budget));
        let per_node = (budget / count.max(1)).clamp(4, 64);
        let mut nodes = Vec::with_capacity(count);
        let mut addrs = Vec::with_capacity(count);
        for i in 0..count {
            let config = Config {
                listen: SocketAddr::new(loopback_host(i), 0),
                max_outbound: per_node,
                idle_timeout: Duration::from_secs(1),
                connection_budget: Some(shared.clone()),
                ..Config::default()
            };
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
        progress.stage("joining", self.nodes.len().saturating_sub(1) as u64);
        let mut failed = 0;
        let mut running = JoinSet::new();
        for i in 1..self.nodes.len() {
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
                .map(|_| self.addrs[rng.random_range(0..i)])
                .collect();
            let dht = self.nodes[i].clone();
            running.spawn(async move { dht.bootstrap(seeds).await.is_ok() });
        }
        while let Some(result) = running.join_next().await {
            failed += usize::from(!result.is_ok_and(|ok| ok));
            progress.step();
        }
        progress.finish();
        failed
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

    async fn requests_sent(&self) -> u64 {
        let mut total = 0;
        for dht in &self.nodes {
            total += dht.status().await.map_or(0, |s| s.requests_sent);
        }
        total
    }

    async fn connections_opened(&self) -> u64 {
        let mut total = 0;
        for dht in &self.nodes {
            total += dht.status().await.map_or(0, |s| s.connections_opened);
        }
        total
    }

    async fn budget_exhausted(&self) -> u64 {
        let mut total = 0;
        for dht in &self.nodes {
            total += dht
                .status()
                .await
                .map_or(0, |s| s.connection_budget_exhausted);
        }
        total
    }
}

/// One item put during a run, to be got back.
struct Put {
    key: cairn_core::Key,
    value: Bytes,
    from: usize,
}

/// Starts a network, runs the workload, and reports. The network is returned still running.
pub async fn run(
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<(Testnet, TestnetReport), StartError> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let rss_before = resident_bytes();
    progress.stage("starting nodes", 1);
    let net = Testnet::start(plan.nodes.max(1)).await?;
    progress.finish();
    let failed_joins = net.join(&mut rng, plan.concurrency, progress).await;
    let mut report = Report {
        nodes: net.nodes.len(),
        seed: plan.seed,
        failed_joins,
        ..Report::default()
    };
    report.set_setup(started.elapsed());
    let sent_before = net.requests_sent().await;
    let opened_before = net.connections_opened().await;
    let (puts, samples, replicas) = put_all(&net, plan, &mut rng, progress).await;
    report.puts = Operations::of(&samples);
    report.mean_replicas = replicas as f64 / report.puts.succeeded.max(1) as f64;
    let opened_by_puts = net.connections_opened().await - opened_before;
    report.gets = Operations::of(&get_all(&net, plan, &mut rng, progress, &puts).await);
    let opened_by_gets = net.connections_opened().await - opened_before - opened_by_puts;
    let (puts_attempted, gets_attempted) = (report.puts.attempted, report.gets.attempted);
    let rss_after = resident_bytes();
    report.memory_per_node_bytes = rss_after.saturating_sub(rss_before) / net.nodes.len() as u64;
    let testnet = TestnetReport {
        report,
        messages: net.requests_sent().await - sent_before,
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        connection_budget: net.budget,
        budget_exhausted: net.budget_exhausted().await,
        connections_open: net.budget - net.permits.available_permits(),
        connections_per_put: opened_by_puts as f64 / puts_attempted.max(1) as f64,
        connections_per_get: opened_by_gets as f64 / gets_attempted.max(1) as f64,
        wall_s: started.elapsed().as_secs_f64(),
    };
    Ok((net, testnet))
}

/// Puts `plan.items` items (alternately signed and immutable) from random nodes. Returns the
/// items put, a sample per put, and the replicas the acknowledged ones reported.
async fn put_all(
    net: &Testnet,
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
        let from = rng.random_range(0..net.nodes.len());
        let mut value = vec![0u8; rng.random_range(16..1024)];
        rng.fill_bytes(&mut value);
        let value = Bytes::from(value);
        let dht = net.nodes[from].clone();
        let payload = value.clone();
        running.spawn(async move {
            let start = Instant::now();
            let receipt = if i % 2 == 0 {
                dht.put_signed(&format!("testnet-{i}"), payload, None).await
            } else {
                dht.put_immutable(payload).await
            };
            (receipt, start.elapsed(), value, from)
        });
        while running.len() >= plan.concurrency.max(1)
            || (i + 1 == plan.items && !running.is_empty())
        {
            let Some(Ok((receipt, took, value, from))) = running.join_next().await else {
                break;
            };
            progress.step();
            let mut sample = Sample {
                ok: receipt.is_ok(),
                latency: took,
                hops: 0,
                requests: 0,
            };
            if let Ok(receipt) = receipt {
                replicas += receipt.replicas;
                (sample.hops, sample.requests) = (receipt.stats.hops, receipt.stats.requests);
                puts.push(Put {
                    key: receipt.key,
                    value,
                    from,
                });
            }
            samples.push(sample);
        }
    }
    progress.finish();
    (puts, samples, replicas)
}

/// Gets every item put from a node other than its publisher; a sample per get.
async fn get_all(
    net: &Testnet,
    plan: &Plan,
    rng: &mut StdRng,
    progress: &dyn Progress,
    puts: &[Put],
) -> Vec<Sample> {
    progress.stage("getting", puts.len() as u64);
    let mut running = JoinSet::new();
    let mut samples = Vec::new();
    let live: Vec<usize> = (0..net.nodes.len()).collect();
    for (i, put) in puts.iter().enumerate() {
        let at = reader(put.from, &live, |n| rng.random_range(0..n));
        let (dht, key, value) = (net.nodes[at].clone(), put.key, put.value.clone());
        running.spawn(async move {
            let start = Instant::now();
            let found = dht.get(key).await;
            let took = start.elapsed();
            let ok = found.as_ref().is_ok_and(|f| *f.item.value() == value);
            let stats = found.map(|f| f.stats).unwrap_or_default();
            Sample {
                ok,
                latency: took,
                hops: stats.hops,
                requests: stats.requests,
            }
        });
        while running.len() >= plan.concurrency.max(1)
            || (i + 1 == puts.len() && !running.is_empty())
        {
            let Some(Ok(sample)) = running.join_next().await else {
                break;
            };
            progress.step();
            samples.push(sample);
        }
    }
    progress.finish();
    samples
}
