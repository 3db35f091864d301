//! The workload `cairn testnet` measures: start a network, join every node, put items from
//! random nodes, get each from a node other than its publisher, and report.

use std::time::Instant;

use bytes::Bytes;
use cairn_node::cairn_core::Key;
use cairn_report::{Operations, Report, Sample, reader};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::task::JoinSet;

use crate::Network;
use crate::member::join;
use crate::{Plan, Progress, TestnetError, TestnetReport};

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
) -> Result<(Network, TestnetReport), TestnetError> {
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
