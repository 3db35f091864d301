//! The standard experiment: join N nodes, put items, get them back, kill some nodes, get again.
//!
//! Both the `cairn-sim` binary and the integration tests run it, so the figures the binary
//! prints are the figures the tests assert on.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_core::{
    Config, Event, Id, ImmutableItem, Item, Key, QueryStats, StoreLimits, signed_key,
};
use cairn_report::{Operations, Sample, reader};
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::{
    Command, DatagramTotals, EPOCH, Latency, Mapping, NatTotals, RequestTotals, Sim, Ticket,
    Transport,
};

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
    /// How requests travel and connections are charged (`None`: as if every connection were
    /// open already; [`Transport::datagrams`]: over datagrams). Default: TCP, pipelined.
    pub transport: Option<Transport>,
    /// Time between one node starting to join and the next.
    pub join_interval: Duration,
    /// How many earlier nodes each node bootstraps from.
    pub seeds_per_join: usize,
    /// Fraction of nodes killed after the puts, before the second round of gets.
    pub kill_fraction: f64,
    /// Fraction of nodes that turn malicious once the items are put (see
    /// [`Sim::make_malicious`]); every signed item is then updated, so that the copies the
    /// adversaries hold are stale. Puts, updates and gets are made from honest nodes only.
    pub malicious_fraction: f64,
    /// Protocol parameters of every node.
    pub config: Config,
    /// Fraction of nodes behind a NAT (0 to 1; see `nat.rs`), chosen at random among all but
    /// the first [`PUBLIC_SEEDS`]. They run as clients and join through public nodes only.
    /// Default 0. The kill scenario ([`run`]) is the one measured with it: churn's newcomers
    /// are public and may pick private nodes as seeds.
    pub private_fraction: f64,
    /// Fraction of the private nodes whose NAT maps each destination to a new random port
    /// (address-and-port-dependent, "random"); the others keep one port (endpoint-independent).
    /// Default 0.25.
    pub random_nat_fraction: f64,
    /// Private nodes announce themselves as public ones do ([`Sim::set_private_announce`]):
    /// what nodes did before client mode. Default `false`.
    pub private_announce: bool,
    /// How long the network runs with nothing asked of it between the puts and the first
    /// gets: NAT entries die after 30 s unreplied and 120 s replied. Default 0.
    pub quiet: Duration,
    /// How long private nodes' datagram planes keep a session with no datagram in, if not the
    /// plane's default ([`Sim::set_private_session_idle`]). Default `None`.
    pub private_session_idle: Option<Duration>,
}

/// How many nodes, the first ones, are always public: the network's first seeds.
pub const PUBLIC_SEEDS: usize = 5;

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 1_000,
            items: 100,
            seed: 1,
            latency: Latency::Regions,
            transport: Some(Transport::default()),
            join_interval: Duration::from_millis(10),
            seeds_per_join: 3,
            kill_fraction: 0.3,
            malicious_fraction: 0.0,
            config: Config::default(),
            private_fraction: 0.0,
            random_nat_fraction: 0.25,
            private_announce: false,
            quiet: Duration::ZERO,
            private_session_idle: None,
        }
    }
}

/// Everything a run measured: the figures every cairn experiment reports (with every node
/// alive), then the gets after the kill.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// The shared figures. `setup_s` is virtual time; `memory_per_node_bytes` is left 0 (the
    /// process's memory is the caller's to measure, as `cairn-sim` does).
    pub network: cairn_report::Report,
    /// Nodes that turned malicious after joining.
    pub malicious: usize,
    /// Nodes killed.
    pub killed: usize,
    /// Gets after the kill.
    pub after_kill: Operations,
    /// Every successful get's latency before the kill, in milliseconds, ascending.
    pub get_latencies_ms: Vec<f64>,
    /// Every successful get's latency after the kill, in milliseconds, ascending.
    pub after_kill_latencies_ms: Vec<f64>,
    /// How far each node's network-size estimate (from its routing table, after the puts) was
    /// from the true number of nodes.
    pub size_estimate: SizeEstimate,
    /// Messages delivered in the whole run.
    pub messages: u64,
    /// Connections opened in the whole run (with a transport).
    pub connections: u64,
    /// What the datagram planes did (all zero unless requests went over datagrams).
    pub datagrams: DatagramTotals,
    /// The nodes' requests in the whole run.
    pub requests: RequestTotals,
    /// The NATs, and the gets split by the kind of node that asked.
    pub nat: NatReport,
    /// Real time the run took (the only figure that varies between runs of one seed).
    #[serde(skip)]
    pub wall: Duration,
}

/// What the NAT model saw in a run: its nodes, its drops, whether a private node ever entered
/// a public node's routing table, and the gets by the kind of node that made them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NatReport {
    /// Nodes not behind a NAT.
    pub public: usize,
    /// What the NATs did, with `private_in_public_tables` counted at every table addition.
    pub totals: NatTotals,
    /// Private nodes in live public nodes' tables at the end of the run (a scan of every
    /// table, after the kill).
    pub private_in_public_tables_at_end: usize,
    /// Gets before the kill made by private nodes.
    pub gets_private: Operations,
    /// Gets before the kill made by public nodes.
    pub gets_public: Operations,
    /// Gets after the kill made by private nodes.
    pub after_kill_private: Operations,
    /// Gets after the kill made by public nodes.
    pub after_kill_public: Operations,
    /// Of the gets before the kill made by private nodes, those made by nodes behind random
    /// (address-and-port-dependent) mappings.
    pub gets_private_random: Operations,
    /// The same after the kill.
    pub after_kill_private_random: Operations,
}

impl NatReport {
    /// Splits `samples`, made by `readers` (in the same order), by the readers' kind:
    /// private, public, and private behind a random mapping.
    fn split(sim: &Sim, samples: &[Sample], readers: &[usize]) -> [Operations; 3] {
        let (mut private, mut public, mut random) = (Vec::new(), Vec::new(), Vec::new());
        for (sample, reader) in samples.iter().zip(readers) {
            match sim.nat_mapping(*reader) {
                None => public.push(*sample),
                Some(mapping) => {
                    private.push(*sample);
                    if mapping == Mapping::Dependent {
                        random.push(*sample);
                    }
                }
            }
        }
        [private, public, random].map(|samples| Operations::of(&samples))
    }
}

/// The error of the nodes' network-size estimates
/// ([`cairn_core::RoutingTable::network_size`]), as percentages of the true size.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SizeEstimate {
    /// The true number of nodes that tables can hold (live public nodes).
    pub nodes: usize,
    /// The median node's estimate.
    pub median_estimate: u64,
    /// The median of `|estimate - nodes| / nodes`, in percent.
    pub median_error_percent: f64,
    /// The 90th percentile of the same.
    pub p90_error_percent: f64,
}

impl SizeEstimate {
    /// The estimates of every live node of `sim`, against the number of live public nodes:
    /// private nodes enter no table, so the tables (and the estimates) count public nodes.
    pub fn of(sim: &Sim) -> Self {
        let live: Vec<usize> = (0..sim.len()).filter(|i| sim.is_alive(*i)).collect();
        let nodes = live.iter().filter(|i| !sim.is_private(**i)).count();
        let mut estimates: Vec<u64> = live
            .iter()
            .map(|i| sim.node(*i).routing_table().network_size())
            .collect();
        estimates.sort_unstable();
        let mut errors: Vec<f64> = estimates
            .iter()
            .map(|e| (*e as f64 - nodes as f64).abs() / nodes.max(1) as f64 * 100.0)
            .collect();
        errors.sort_by(f64::total_cmp);
        let at = |v: &[f64], q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
        };
        SizeEstimate {
            nodes,
            median_estimate: estimates.get(estimates.len() / 2).copied().unwrap_or(0),
            median_error_percent: at(&errors, 0.5).unwrap_or(0.0),
            p90_error_percent: at(&errors, 0.9).unwrap_or(0.0),
        }
    }
}

impl fmt::Display for SizeEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "median node estimates {} of {} nodes; error median {:.1}%, p90 {:.1}%",
            self.median_estimate, self.nodes, self.median_error_percent, self.p90_error_percent
        )
    }
}

/// An item put during the run: its key, its value, the node that published it, and its
/// name if it is signed.
pub(crate) struct Published {
    pub(crate) key: Key,
    pub(crate) value: Bytes,
    pub(crate) publisher: usize,
    pub(crate) name: Option<String>,
}

pub(crate) fn signing_key(sim: &mut Sim) -> SigningKey {
    let mut seed = [0u8; 32];
    sim.rng().fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// Creates the scenario's nodes and joins them. Returns the network, each node's key pair,
/// and how many joins failed.
pub fn network(scenario: &Scenario) -> (Sim, Vec<SigningKey>, usize) {
    let mut sim = Sim::new(scenario.seed, scenario.latency);
    sim.set_transport(scenario.transport);
    let keys: Vec<SigningKey> = (0..scenario.nodes).map(|_| signing_key(&mut sim)).collect();
    for key in &keys {
        let id = Id::of_public_key(&key.verifying_key().to_bytes());
        sim.add_node(id, scenario.config.clone(), StoreLimits::default());
    }
    place_nats(&mut sim, scenario);
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

/// The scenario's network with its items put from random nodes: the network, each node's
/// key pair, the items, and the report of the setup and the puts (its gets left empty).
pub(crate) fn populated(
    scenario: &Scenario,
) -> (Sim, Vec<SigningKey>, Vec<Published>, cairn_report::Report) {
    let (mut sim, keys, failed_joins) = network(scenario);
    let mut report = cairn_report::Report {
        nodes: scenario.nodes,
        seed: scenario.seed,
        failed_joins,
        ..Default::default()
    };
    report.set_setup(sim.now().since(EPOCH));
    let everyone: Vec<usize> = (0..sim.len()).collect();
    let items = put(&mut sim, scenario, &keys, &everyone, &mut report);
    (sim, keys, items, report)
}

/// Runs the scenario.
pub fn run(scenario: &Scenario) -> Report {
    let started = Instant::now();
    let (mut sim, keys, failed_joins) = network(scenario);
    let mut network = cairn_report::Report {
        nodes: scenario.nodes,
        seed: scenario.seed,
        failed_joins,
        ..Default::default()
    };
    network.set_setup(sim.now().since(EPOCH));
    let malicious = (scenario.nodes as f64 * scenario.malicious_fraction).round() as usize;
    let adversaries: Vec<usize> = if malicious > 0 {
        sample(sim.rng(), scenario.nodes, malicious.min(scenario.nodes)).into_vec()
    } else {
        Vec::new()
    };
    let honest: Vec<usize> = (0..sim.len())
        .filter(|n| !adversaries.contains(n))
        .collect();
    let mut items = put(&mut sim, scenario, &keys, &honest, &mut network);
    if !adversaries.is_empty() {
        // The adversaries held copies honestly until now; they turn, and every signed item is
        // updated, so that what they serve from then on is stale.
        for node in adversaries {
            sim.make_malicious(node);
        }
        update(&mut sim, &keys, &mut items);
    }
    if !scenario.quiet.is_zero() {
        sim.run_for(scenario.quiet);
    }
    let (gets, readers) = get_round(&mut sim, &items);
    network.gets = Operations::of(&gets);
    let [gets_private, gets_public, gets_private_random] = NatReport::split(&sim, &gets, &readers);
    let size_estimate = SizeEstimate::of(&sim);

    let alive: Vec<usize> = (0..sim.len()).collect();
    let killed = (scenario.nodes as f64 * scenario.kill_fraction).round() as usize;
    for at in sample(sim.rng(), alive.len(), killed.min(alive.len())) {
        sim.kill(alive[at]);
    }
    let (after, readers) = get_round(&mut sim, &items);
    let [
        after_kill_private,
        after_kill_public,
        after_kill_private_random,
    ] = NatReport::split(&sim, &after, &readers);
    let nat = NatReport {
        public: (0..sim.len()).filter(|n| !sim.is_private(*n)).count(),
        totals: sim.nat_totals(),
        private_in_public_tables_at_end: sim.private_in_public_tables_now(),
        gets_private,
        gets_public,
        after_kill_private,
        after_kill_public,
        gets_private_random,
        after_kill_private_random,
    };
    Report {
        network,
        malicious,
        killed,
        after_kill: Operations::of(&after),
        get_latencies_ms: latencies_ms(&gets),
        after_kill_latencies_ms: latencies_ms(&after),
        size_estimate,
        messages: sim.delivered(),
        connections: sim.connections_opened(),
        datagrams: sim.datagram_totals(),
        requests: sim.request_totals(),
        nat,
        wall: started.elapsed(),
    }
}

/// Puts `private_fraction` of the nodes (never the first [`PUBLIC_SEEDS`]) behind NATs,
/// `random_nat_fraction` of them with dependent mappings. The choice draws from an RNG of its
/// own, seeded from the scenario's seed, so that the simulation's draws are the same with
/// and without private nodes.
fn place_nats(sim: &mut Sim, scenario: &Scenario) {
    sim.set_private_announce(scenario.private_announce);
    sim.set_private_session_idle(scenario.private_session_idle);
    let eligible = scenario.nodes.saturating_sub(PUBLIC_SEEDS);
    let private = ((scenario.nodes as f64 * scenario.private_fraction.clamp(0.0, 1.0)).round()
        as usize)
        .min(eligible);
    if private == 0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(scenario.seed ^ 0x6e61_7420_6e6f_6465);
    let chosen = sample(&mut rng, eligible, private).into_vec();
    let random = (private as f64 * scenario.random_nat_fraction.clamp(0.0, 1.0)).round() as usize;
    for (n, at) in chosen.into_iter().enumerate() {
        let mapping = if n < random {
            Mapping::Dependent
        } else {
            Mapping::Independent
        };
        sim.put_behind_nat(PUBLIC_SEEDS + at, mapping);
    }
}

/// Starts node i's join at `i * join_interval`, from up to `seeds_per_join` earlier public
/// nodes (a private node can be no one's seed: nothing reaches it).
fn join(sim: &mut Sim, scenario: &Scenario) -> Vec<Ticket> {
    let mut tickets = Vec::new();
    let mut public: Vec<usize> = Vec::new();
    for i in 1..scenario.nodes {
        if !sim.is_private(i - 1) {
            public.push(i - 1);
        }
        let count = scenario.seeds_per_join.clamp(1, public.len());
        let seeds: Vec<usize> = sample(sim.rng(), public.len(), count)
            .into_iter()
            .map(|at| public[at])
            .collect();
        let at = EPOCH + scenario.join_interval * u32::try_from(i).unwrap_or(u32::MAX);
        tickets.push(sim.schedule(at, i, Command::Bootstrap(seeds)));
    }
    sim.run_until_done(&tickets);
    tickets
}

/// Puts `items` signed and `items` immutable items from random nodes, one every 10 ms; signed
/// ones are published as a node publishes its own (`seq` and expiry chosen by the core).
fn put(
    sim: &mut Sim,
    scenario: &Scenario,
    keys: &[SigningKey],
    honest: &[usize],
    report: &mut cairn_report::Report,
) -> Vec<Published> {
    let (items, samples, replicas) = put_from(sim, scenario.items, keys, honest, "item");
    report.puts = Operations::of(&samples);
    report.mean_replicas = replicas as f64 / report.puts.succeeded.max(1) as f64;
    items
}

/// Puts `count` signed items (named `{prefix}-{i}`) and `count` immutable ones from random
/// nodes of `publishers`, one every 10 ms. Returns the items, each put's sample, and the
/// replicas the puts reported in all.
pub(crate) fn put_from(
    sim: &mut Sim,
    count: usize,
    keys: &[SigningKey],
    publishers: &[usize],
    prefix: &str,
) -> (Vec<Published>, Vec<Sample>, usize) {
    let mut items = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..count * 2 {
        let node = publishers[sim.rng().random_range(0..publishers.len())];
        let len = sim.rng().random_range(16..256);
        let mut value = vec![0u8; len];
        sim.rng().fill(&mut value[..]);
        let value = Bytes::from(value);
        let name = (i % 2 == 0).then(|| format!("{prefix}-{i}"));
        let (key, command) = if let Some(name) = &name {
            let public_key = keys[node].verifying_key().to_bytes();
            let command = Command::Publish {
                key: Box::new(keys[node].clone()),
                name: name.clone(),
                value: value.clone(),
                ttl: None,
            };
            (signed_key(&public_key, name), command)
        } else {
            let item: Item = ImmutableItem::new(value.clone()).into();
            (*item.key(), Command::Put(item))
        };
        let at = sim.now() + Duration::from_millis(10) * u32::try_from(i).unwrap_or(u32::MAX);
        tickets.push(sim.schedule(at, node, command));
        items.push(Published {
            key,
            value,
            publisher: node,
            name,
        });
    }
    sim.run_until_done(&tickets);
    let mut replicas = 0;
    let samples: Vec<Sample> = tickets
        .iter()
        .map(|t| match sim.outcome(*t) {
            Some(Event::PutDone { result, stats, .. }) => {
                replicas += result.as_ref().map_or(0, |n| *n);
                measured(result.is_ok(), stats)
            }
            _ => measured(false, &QueryStats::default()),
        })
        .collect();
    (items, samples, replicas)
}

/// Publishes a new version of every signed item from its publisher, one every 10 ms.
fn update(sim: &mut Sim, keys: &[SigningKey], items: &mut [Published]) {
    update_where(sim, keys, items, |_| true);
}

/// Publishes a new version of every signed item whose publisher `chosen` accepts, one every
/// 10 ms.
pub(crate) fn update_where(
    sim: &mut Sim,
    keys: &[SigningKey],
    items: &mut [Published],
    chosen: impl Fn(usize) -> bool,
) {
    let mut tickets = Vec::new();
    for (i, item) in items.iter_mut().enumerate() {
        let Some(name) = item.name.clone() else {
            continue;
        };
        if !chosen(item.publisher) {
            continue;
        }
        let value = Bytes::from([item.value.as_ref(), b" v2"].concat());
        let command = Command::Publish {
            key: Box::new(keys[item.publisher].clone()),
            name,
            value: value.clone(),
            ttl: None,
        };
        let at = sim.now() + Duration::from_millis(10) * u32::try_from(i).unwrap_or(u32::MAX);
        tickets.push(sim.schedule(at, item.publisher, command));
        item.value = value;
    }
    sim.run_until_done(&tickets);
}

pub(crate) fn measured(ok: bool, stats: &QueryStats) -> Sample {
    Sample {
        ok,
        latency: stats.duration,
        hops: stats.hops,
        requests: stats.requests,
    }
}

/// Gets every item from a random live honest node other than its publisher, one every 10 ms.
/// Returns each get's sample and the node that made it.
fn get_round(sim: &mut Sim, items: &[Published]) -> (Vec<Sample>, Vec<usize>) {
    let live: Vec<usize> = (0..sim.len())
        .filter(|i| sim.is_alive(*i) && !sim.is_malicious(*i))
        .collect();
    let readers: Vec<usize> = items
        .iter()
        .map(|item| reader(item.publisher, &live, |n| sim.rng().random_range(0..n)))
        .collect();
    (get_each(sim, items, &readers), readers)
}

/// Gets each item from the node at the same place in `readers`, one every 10 ms; a get
/// succeeds if it returns exactly the item's latest value.
pub(crate) fn get_each(sim: &mut Sim, items: &[Published], readers: &[usize]) -> Vec<Sample> {
    let mut tickets = Vec::new();
    for (i, (item, node)) in items.iter().zip(readers).enumerate() {
        let at = sim.now() + Duration::from_millis(10) * u32::try_from(i).unwrap_or(u32::MAX);
        tickets.push(sim.schedule(at, *node, Command::Get(item.key)));
    }
    sim.run_until_done(&tickets);
    tickets
        .iter()
        .zip(items)
        .map(|(ticket, expected)| got(sim, *ticket, expected).unwrap_or(FAILED))
        .collect()
}

/// A sample of an operation that never finished.
pub(crate) const FAILED: Sample = Sample {
    ok: false,
    latency: Duration::ZERO,
    hops: 0,
    requests: 0,
};

/// The sample of the get `ticket` of `expected`, if it has finished: it succeeded if it
/// returned exactly the item's latest value.
pub(crate) fn got(sim: &Sim, ticket: Ticket, expected: &Published) -> Option<Sample> {
    match sim.outcome(ticket)? {
        Event::GetDone { result, stats, .. } => {
            let ok = result
                .as_ref()
                .is_ok_and(|item| *item.key() == expected.key && *item.value() == expected.value);
            Some(measured(ok, stats))
        }
        _ => Some(FAILED),
    }
}

/// Latencies of the successful samples, in milliseconds, ascending (for a CDF).
pub(crate) fn latencies_ms(samples: &[Sample]) -> Vec<f64> {
    let mut ms: Vec<f64> = samples
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.latency.as_secs_f64() * 1_000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cairn-sim: {} nodes, seed {} (virtual time)",
            self.network.nodes, self.network.seed
        )?;
        if self.malicious > 0 {
            writeln!(
                f,
                "  malicious        {} nodes (eclipse lookups, keep nothing, serve stale copies)",
                self.malicious
            )?;
        }
        write!(f, "{}", self.network)?;
        writeln!(f, "  network size     {}", self.size_estimate)?;
        if self.nat.totals.private > 0 {
            write!(f, "{}", self.nat)?;
        }
        writeln!(f, "after killing {} nodes:", self.killed)?;
        writeln!(f, "  gets             {}", self.after_kill)?;
        if self.nat.totals.private > 0 {
            writeln!(f, "  gets by private  {}", self.nat.after_kill_private)?;
            writeln!(f, "  gets by public   {}", self.nat.after_kill_public)?;
            writeln!(
                f,
                "    (random NATs   {})",
                self.nat.after_kill_private_random
            )?;
        }
        write_totals(
            f,
            self.messages,
            self.connections,
            (&self.requests, &self.datagrams),
            self.wall,
        )
    }
}

impl fmt::Display for NatReport {
    /// The lines of a report with private nodes, but for the gets after the kill.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        writeln!(f, "  gets by private  {}", self.gets_private)?;
        writeln!(f, "  gets by public   {}", self.gets_public)?;
        writeln!(f, "    (random NATs   {})", self.gets_private_random)?;
        writeln!(
            f,
            "  nat              {} private ({} behind random mappings), {} public; {} datagrams dropped by NATs",
            t.private, t.dependent, self.public, t.dropped
        )?;
        writeln!(
            f,
            "  private in public tables: {} additions over the run, {} at the end",
            t.private_in_public_tables, self.private_in_public_tables_at_end
        )
    }
}

/// The setup and puts lines of a report whose gets are its own.
pub(crate) fn write_setup(
    f: &mut fmt::Formatter<'_>,
    network: &cairn_report::Report,
) -> fmt::Result {
    writeln!(
        f,
        "  setup            {:.2} s ({:.0} joins/s, {} failed)",
        network.setup_s, network.joins_per_s, network.failed_joins
    )?;
    writeln!(f, "  puts             {}", network.puts)
}

/// The last lines of every report: traffic and wall time.
pub(crate) fn write_totals(
    f: &mut fmt::Formatter<'_>,
    messages: u64,
    connections: u64,
    (requests, datagrams): (&RequestTotals, &DatagramTotals),
    wall: Duration,
) -> fmt::Result {
    writeln!(
        f,
        "  messages         {messages} delivered, {connections} connections opened in the whole run"
    )?;
    writeln!(
        f,
        "  requests         {} sent, {} failed, {} slow (gave up their lookup slot)",
        requests.sent, requests.failed, requests.slow
    )?;
    if datagrams.sent > 0 {
        let d = datagrams;
        writeln!(
            f,
            "  datagrams        {} sent, {} lost; {} sessions, {} retransmits, {} duplicates, {} fallbacks to TCP, {} cancelled, {} held back (3x limit)",
            d.sent,
            d.lost,
            d.sessions,
            d.retransmits,
            d.duplicates,
            d.fallbacks,
            d.cancelled,
            d.amplification_limited
        )?;
    }
    writeln!(f, "  wall time        {wall:.2?}")
}
