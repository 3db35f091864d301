//! The standard experiment: join N nodes, put items, get them back, kill some nodes, get again.
//!
//! Both the `cairn-sim` binary and the integration tests run it, so the figures the binary
//! prints are the figures the tests assert on.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::store::StoreLimits;
use cairn_core::{Config, Event, Id, ImmutableItem, Item, SignedItem};
use ed25519_dalek::SigningKey;
use rand::Rng;
use rand::seq::index::sample;

use crate::{Command, EPOCH, Latency, Sim, Ticket};

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Number of nodes.
    pub nodes: usize,
    /// Items of each kind: this many signed and this many immutable.
    pub items: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Message latency.
    pub latency: Latency,
    /// Time between one node starting to join and the next.
    pub join_interval: Duration,
    /// How many earlier nodes each node bootstraps from.
    pub seeds_per_join: usize,
    /// Fraction of nodes killed after the puts, before the second round of gets.
    pub kill_fraction: f64,
    /// Protocol parameters of every node.
    pub config: Config,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 1_000,
            items: 100,
            seed: 1,
            latency: Latency::Uniform(Duration::from_millis(10), Duration::from_millis(100)),
            join_interval: Duration::from_millis(10),
            seeds_per_join: 3,
            kill_fraction: 0.3,
            config: Config::default(),
        }
    }
}

/// The figures of one round of gets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GetRound {
    /// Gets run.
    pub gets: usize,
    /// Gets that returned exactly the item put.
    pub found: usize,
    /// Hops per successful get, sorted.
    pub hops: Vec<u32>,
    /// Virtual latency per successful get, sorted.
    pub latencies: Vec<Duration>,
    /// Requests sent by all gets of the round.
    pub requests: u64,
}

impl GetRound {
    /// Percentage of gets that succeeded.
    pub fn success_percent(&self) -> f64 {
        if self.gets == 0 {
            100.0
        } else {
            100.0 * self.found as f64 / self.gets as f64
        }
    }
    /// Mean requests per get.
    pub fn messages_per_get(&self) -> f64 {
        if self.gets == 0 {
            0.0
        } else {
            self.requests as f64 / self.gets as f64
        }
    }
}

/// Everything a run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Nodes in the network.
    pub nodes: usize,
    /// The seed.
    pub seed: u64,
    /// Virtual time from the first join to the last join's end.
    pub join_time: Duration,
    /// Joins that failed.
    pub failed_joins: usize,
    /// Puts run, and the mean number of replicas they reported.
    pub puts: usize,
    /// Mean replicas per put.
    pub mean_replicas: f64,
    /// Gets with every node alive.
    pub before_kill: GetRound,
    /// Nodes killed.
    pub killed: usize,
    /// Gets after the kill.
    pub after_kill: GetRound,
    /// Messages delivered in the whole run.
    pub messages: u64,
    /// Real time the run took (the only figure that varies between runs of one seed).
    pub wall: Duration,
}

/// The value at quantile `q` (0 to 1) of a sorted slice.
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn signing_key(sim: &mut Sim) -> SigningKey {
    let mut seed = [0u8; 32];
    sim.rng().fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// Creates the scenario's nodes and joins them. Returns the network, each node's key pair,
/// and how many joins failed.
pub fn network(scenario: &Scenario) -> (Sim, Vec<SigningKey>, usize) {
    let mut sim = Sim::new(scenario.seed, scenario.latency);
    let keys: Vec<SigningKey> = (0..scenario.nodes).map(|_| signing_key(&mut sim)).collect();
    for key in &keys {
        let id = Id::of_public_key(&key.verifying_key().to_bytes());
        sim.add_node(id, scenario.config.clone(), StoreLimits::default());
    }
    let joins = join(&mut sim, scenario);
    let failed = joins
        .iter()
        .filter(|t| {
            !matches!(
                sim.outcome(**t),
                Some(Event::BootstrapDone { result: Ok(_), .. })
            )
        })
        .count();
    (sim, keys, failed)
}

/// Runs the scenario.
pub fn run(scenario: &Scenario) -> Report {
    let started = Instant::now();
    let (mut sim, keys, failed_joins) = network(scenario);
    let mut report = Report {
        nodes: scenario.nodes,
        seed: scenario.seed,
        join_time: sim.now().since(EPOCH),
        failed_joins,
        ..Report::default()
    };
    let items = put(&mut sim, scenario, &keys, &mut report);
    report.before_kill = get_round(&mut sim, &items);

    let alive: Vec<usize> = (0..sim.len()).collect();
    let killed = (scenario.nodes as f64 * scenario.kill_fraction).round() as usize;
    for at in sample(sim.rng(), alive.len(), killed.min(alive.len())) {
        sim.kill(alive[at]);
    }
    report.killed = killed;
    report.after_kill = get_round(&mut sim, &items);
    report.messages = sim.delivered();
    report.wall = started.elapsed();
    report
}

/// Starts node i's join at `i * join_interval`, from up to `seeds_per_join` earlier nodes.
fn join(sim: &mut Sim, scenario: &Scenario) -> Vec<Ticket> {
    let mut tickets = Vec::new();
    for i in 1..scenario.nodes {
        let count = scenario.seeds_per_join.clamp(1, i);
        let seeds: Vec<usize> = sample(sim.rng(), i, count).into_iter().collect();
        let at = EPOCH + scenario.join_interval * u32::try_from(i).unwrap_or(u32::MAX);
        tickets.push(sim.schedule(at, i, Command::Bootstrap(seeds)));
    }
    sim.run_until_done(&tickets);
    tickets
}

/// Puts `items` signed and `items` immutable items from random nodes, one every 10 ms.
/// Returns each item with the node that put it.
fn put(
    sim: &mut Sim,
    scenario: &Scenario,
    keys: &[SigningKey],
    report: &mut Report,
) -> Vec<(Item, usize)> {
    let mut items = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..scenario.items * 2 {
        let node = sim.rng().random_range(0..scenario.nodes);
        let len = sim.rng().random_range(16..256);
        let mut value = vec![0u8; len];
        sim.rng().fill(&mut value[..]);
        let item: Item = if i % 2 == 0 {
            let name = format!("item-{i}");
            match SignedItem::sign(&keys[node], &name, Bytes::from(value), 1, 0) {
                Ok(item) => item.into(),
                Err(_) => continue,
            }
        } else {
            ImmutableItem::new(Bytes::from(value)).into()
        };
        let at = sim.now() + Duration::from_millis(10) * u32::try_from(i).unwrap_or(u32::MAX);
        tickets.push(sim.schedule(at, node, Command::Put(item.clone())));
        items.push((item, node));
    }
    sim.run_until_done(&tickets);
    let replicas: Vec<usize> = tickets
        .iter()
        .filter_map(|t| match sim.outcome(*t) {
            Some(Event::PutDone { result: Ok(n), .. }) => Some(*n),
            _ => None,
        })
        .collect();
    report.puts = tickets.len();
    report.mean_replicas = replicas.iter().sum::<usize>() as f64 / replicas.len().max(1) as f64;
    items
}

/// Gets every item from a random live node other than its publisher, one every 10 ms.
fn get_round(sim: &mut Sim, items: &[(Item, usize)]) -> GetRound {
    let live: Vec<usize> = (0..sim.len()).filter(|i| sim.is_alive(*i)).collect();
    let mut tickets = Vec::new();
    for (i, (item, publisher)) in items.iter().enumerate() {
        let node = loop {
            let pick = live[sim.rng().random_range(0..live.len())];
            if pick != *publisher || live.len() == 1 {
                break pick;
            }
        };
        let at = sim.now() + Duration::from_millis(10) * u32::try_from(i).unwrap_or(u32::MAX);
        tickets.push((sim.schedule(at, node, Command::Get(*item.key())), item));
    }
    let all: Vec<Ticket> = tickets.iter().map(|(t, _)| *t).collect();
    sim.run_until_done(&all);
    let mut round = GetRound {
        gets: tickets.len(),
        ..GetRound::default()
    };
    for (ticket, expected) in tickets {
        if let Some(Event::GetDone { result, stats, .. }) = sim.outcome(ticket) {
            round.requests += u64::from(stats.requests);
            if result.as_ref() == Ok(expected) {
                round.found += 1;
                round.hops.push(stats.hops);
                round.latencies.push(stats.duration);
            }
        }
    }
    round.hops.sort_unstable();
    round.latencies.sort_unstable();
    round
}

impl fmt::Display for GetRound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  gets              {}/{} ({:.2}%)",
            self.found,
            self.gets,
            self.success_percent()
        )?;
        writeln!(
            f,
            "  hops p50/p99      {} / {}",
            quantile(&self.hops, 0.5),
            quantile(&self.hops, 0.99)
        )?;
        writeln!(
            f,
            "  latency p50/p99   {:?} / {:?}",
            quantile(&self.latencies, 0.5),
            quantile(&self.latencies, 0.99)
        )?;
        writeln!(f, "  messages per get  {:.1}", self.messages_per_get())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cairn-sim: {} nodes, seed {}", self.nodes, self.seed)?;
        writeln!(
            f,
            "join              {:?} virtual, {} failed",
            self.join_time, self.failed_joins
        )?;
        writeln!(
            f,
            "puts              {} (mean {:.1} replicas)",
            self.puts, self.mean_replicas
        )?;
        writeln!(f, "gets, all nodes alive:")?;
        write!(f, "{}", self.before_kill)?;
        writeln!(f, "gets, after killing {} nodes:", self.killed)?;
        write!(f, "{}", self.after_kill)?;
        writeln!(f, "messages          {}", self.messages)?;
        writeln!(f, "wall time         {:.2?}", self.wall)
    }
}
