//! The swarm test: the real core nodes, over the datagram plane, under faults drawn from a
//! seed, with operations drawn from the same seed and invariants checked all along. The same
//! seed replays the same run exactly; a failure prints its seed, the invariant and the command
//! that replays it.
//!
//! - `faults`: what goes wrong, and when;
//! - `operations`: what the run does, and what the checker knows of it;
//! - `invariants`: what must hold, and its exemptions;
//! - `outcome`: how a run is built, and what it reports;
//! - `store`: the durable store that crashes and failed commits act on;
//! - `explore`: many seeds in parallel.

mod explore;
mod faults;
mod invariants;
mod operations;
mod outcome;
mod store;

use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use cairn_core::{Config, Event, Id, Key, StoreLimits, Time};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Command, EPOCH, Latency, Sim, Ticket, Transport};
pub use explore::{Summary, explore};
pub use faults::{Fault, Plan};
use invariants::{Checker, Found, Watching};
pub use invariants::{Invariant, Violation};
use operations::{Keys, Operation};
pub use outcome::{Build, Options, Outcome, reproduce};
pub use store::SwarmStore;

/// Runs seed `seed` with sound nodes.
pub fn run(seed: u64) -> Outcome {
    run_with(seed, Options::default())
}

/// Runs seed `seed` as `options` say. A panic anywhere in the run is the violation of
/// [`Invariant::NoPanic`].
pub fn run_with(seed: u64, options: Options) -> Outcome {
    let started = Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| Run::new(seed, options).go()));
    let mut outcome = result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        Outcome {
            violation: Some(Violation {
                invariant: Invariant::NoPanic,
                at: Duration::ZERO,
                detail: format!("panicked: {message}"),
            }),
            ..Outcome::empty(seed, options, 0, Duration::ZERO)
        }
    });
    outcome.wall = started.elapsed();
    outcome
}

/// How often the continuous checks run (simulated time).
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The most watches a run keeps at once.
const MAX_WATCHES: usize = 4;

/// An operation waiting for its outcome.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    Put {
        key: usize,
        seq: u64,
    },
    Get {
        key: usize,
        node: usize,
        started: Time,
    },
}

/// One run in progress.
struct Run {
    sim: Sim<SwarmStore>,
    /// The run's own choices (operations, faults), apart from the network's.
    rng: StdRng,
    config: Config,
    plan: Plan,
    keys: Keys,
    up_since: Vec<Option<Time>>,
    left: Vec<bool>,
    partitions: Vec<(Time, Option<Time>)>,
    waiting: Vec<(Ticket, Waiting)>,
    watches: Vec<Watching>,
    length: Duration,
    /// See [`Checker::settle`].
    settle: Duration,
    outcome: Outcome,
}

impl Run {
    /// A run sized and faulted from `seed`: 6 to 12 nodes, k of 3 to 6, 2 hours (sized so
    /// that 10,000 seeds take minutes, not hours: most of a run's time goes to verifying
    /// signatures, as on a real node).
    fn new(seed: u64, options: Options) -> Run {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5ca1_ab1e_5eed_f00d);
        let nodes = rng.random_range(6..=12);
        let k = rng.random_range(3..=6);
        let length = Duration::from_secs(2 * 3_600);
        let config = Config {
            k: NonZeroUsize::new(k).unwrap_or(NonZeroUsize::MIN),
            replicate_interval: Duration::from_secs(1_200),
            republish_interval: Duration::from_secs(1_200),
            refresh_interval: Duration::from_secs(300),
            bucket_idle: Duration::from_secs(600),
            watch_refresh: Duration::from_secs(120),
            listen_ttl: Duration::from_secs(300),
            max_subscriptions: 64,
            ..Config::default()
        };
        let start_calm = Duration::from_secs(120);
        let end_calm = config.replicate_interval + Duration::from_secs(300);
        let settle = if options.strict_reads {
            Duration::ZERO
        } else {
            config.replicate_interval
        };
        let plan = Plan::draw(&mut rng, nodes, length, start_calm, end_calm);
        let keys = Keys::draw(&mut rng, 3, 2);
        let mut sim = Sim::with_stores(seed, Latency::Regions);
        sim.set_transport(Some(Transport::datagrams()));
        sim.set_loss(plan.loss);
        sim.set_network_faults(plan.network.clone());
        let limits = StoreLimits::default();
        for index in 0..nodes {
            let id = Id::hash(&[seed.to_be_bytes(), (index as u64).to_be_bytes()].concat());
            let store = match options.build {
                Build::Sound => SwarmStore::new(limits),
                Build::DropsAcknowledged => SwarmStore::drops_acknowledged(limits),
            };
            sim.add_node_with(id, config.clone(), store);
            sim.set_skew(index, plan.skew[index]);
        }
        Run {
            sim,
            rng,
            config,
            plan,
            keys,
            up_since: vec![Some(EPOCH); nodes],
            left: vec![false; nodes],
            partitions: Vec::new(),
            waiting: Vec::new(),
            watches: Vec::new(),
            length,
            settle,
            outcome: Outcome::empty(seed, options, nodes, length),
        }
    }

    /// Joins the nodes, then runs the operations and faults to the end, checking as it goes.
    fn go(mut self) -> Outcome {
        self.join();
        let end = EPOCH + self.length;
        let last_operation = end - Duration::from_secs(120);
        let mut next_operation = self.sim.now() + self.operation_gap();
        let mut next_check = self.sim.now() + CHECK_EVERY;
        self.outcome.plan = Some(self.plan.clone());
        let timeline = std::mem::take(&mut self.plan.timeline);
        let mut faults = timeline.into_iter().peekable();
        let mut final_gets = false;
        while self.sim.now() < end {
            let next_fault = faults.peek().map(|(at, _)| EPOCH + *at);
            let next = [Some(next_operation), Some(next_check), next_fault]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end)
                .min(end);
            self.sim.run_for(next.since(self.sim.now()));
            let now = self.sim.now();
            if next_fault.is_some_and(|at| at <= now) {
                if let Some((_, fault)) = faults.next() {
                    self.apply(fault);
                }
            }
            if now >= next_operation {
                if now < last_operation {
                    self.operate();
                } else if !final_gets {
                    // Every key read once more, after the faults have ended.
                    final_gets = true;
                    for key in 0..self.keys.len() {
                        self.get(key);
                    }
                }
                next_operation = now + self.operation_gap();
            }
            if now >= next_check {
                self.check();
                next_check = now + CHECK_EVERY;
            }
            if self.outcome.violation.is_some() {
                break;
            }
        }
        self.check();
        self.outcome.messages = self.sim.delivered();
        self.outcome
    }

    /// Time to the next operation: 5 to 120 seconds.
    fn operation_gap(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(5_000..=120_000))
    }

    /// Joins every node through node 0 and a random earlier one, 100 ms apart, and lets the
    /// network settle for a minute.
    fn join(&mut self) {
        for index in 1..self.sim.len() {
            let other = self.rng.random_range(0..index);
            let at = self.sim.now() + Duration::from_millis(100);
            self.sim
                .schedule(at, index, Command::Bootstrap(vec![0, other]));
            self.sim.run_for(Duration::from_millis(100));
        }
        self.sim.run_for(Duration::from_secs(60));
    }

    /// A random node that is up.
    fn random_up(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.up_since.len())
            .filter(|n| self.up_since[*n].is_some())
            .collect();
        (!up.is_empty()).then(|| up[self.rng.random_range(0..up.len())])
    }

    /// Issues one operation drawn at random.
    fn operate(&mut self) {
        let key = self.rng.random_range(0..self.keys.len());
        match Operation::draw(&mut self.rng) {
            Operation::Put => self.put(key, false),
            Operation::Delete => self.put(key, true),
            Operation::Get => self.get(key),
            Operation::Watch => self.watch(key),
        }
    }

    /// Puts a new version of key `key` (a tombstone if `delete`) from a random node.
    fn put(&mut self, key: usize, delete: bool) {
        let Some(node) = self.random_up() else {
            return;
        };
        // Mostly small values; some too large for a datagram, which go over TCP.
        let size = if self.rng.random_bool(0.1) {
            self.rng.random_range(1_500..=6_000)
        } else {
            self.rng.random_range(8..=600)
        };
        let gap = self.rng.random_range(0..=2);
        let Some(item) = self.keys.next_version(key, delete, size, gap) else {
            return;
        };
        let seq = item.seq().unwrap_or(0);
        let now = self.sim.now();
        let ticket = self.sim.schedule(now, node, Command::Put(item));
        self.waiting.push((ticket, Waiting::Put { key, seq }));
        self.outcome.operations += 1;
    }

    /// Gets key `key` from a random node.
    fn get(&mut self, key: usize) {
        let Some(node) = self.random_up() else {
            return;
        };
        let now = self.sim.now();
        let ticket = self
            .sim
            .schedule(now, node, Command::Get(self.keys.keys[key]));
        let started = now;
        self.waiting
            .push((ticket, Waiting::Get { key, node, started }));
        self.outcome.operations += 1;
    }

    /// Watches key `key` from a random node, unless enough watches run.
    fn watch(&mut self, key: usize) {
        if self.watches.len() >= MAX_WATCHES {
            return;
        }
        let Some(node) = self.random_up() else {
            return;
        };
        let watch = self.sim.watch(node, self.keys.keys[key]);
        self.watches.push(Watching {
            node,
            watch,
            key,
            started: self.sim.now(),
            checked: 0,
            newest: None,
        });
        self.outcome.operations += 1;
    }

    /// Applies one fault of the timeline.
    fn apply(&mut self, fault: Fault) {
        let now = self.sim.now();
        self.outcome.faults += 1;
        match fault {
            Fault::Partition(side) => {
                self.sim.partition(side);
                self.partitions.push((now, None));
            }
            Fault::Heal => {
                self.sim.heal();
                if let Some((_, heal)) = self.partitions.last_mut() {
                    heal.get_or_insert(now);
                }
            }
            Fault::Crash(node) if self.up_since[node].is_some() => {
                self.sim.crash(node);
                self.up_since[node] = None;
                self.watches.retain(|w| w.node != node);
            }
            Fault::Restart(node) if self.up_since[node].is_none() && !self.left[node] => {
                self.sim.restart(node);
                self.up_since[node] = Some(now);
            }
            Fault::Leave(node) if self.up_since[node].is_some() => {
                self.sim.kill(node);
                self.up_since[node] = None;
                self.left[node] = true;
                self.watches.retain(|w| w.node != node);
            }
            Fault::DiskFails(node) => self.sim.set_disk_failing(node, true),
            Fault::DiskRecovers(node) => self.sim.set_disk_failing(node, false),
            Fault::Crash(_) | Fault::Restart(_) | Fault::Leave(_) => {}
        }
    }

    /// Takes the outcomes that arrived, then checks every invariant.
    fn check(&mut self) {
        if self.outcome.violation.is_some() {
            return;
        }
        self.settle();
        if self.outcome.violation.is_some() {
            return;
        }
        let checker = Checker {
            sim: &self.sim,
            up_since: &self.up_since,
            partitions: &self.partitions,
            replicate: self.config.replicate_interval,
            k: self.config.k.get(),
            settle: self.settle,
        };
        let mut watching = vec![0; self.up_since.len()];
        for w in &self.watches {
            watching[w.node] += 1;
        }
        let mut found = checker
            .stores(&self.keys.keys)
            .or_else(|| checker.memory(self.keys.len(), &watching));
        let refresh = self.config.watch_refresh;
        let slack = self.config.lookup_timeout + Duration::from_secs(30);
        for w in &mut self.watches {
            if found.is_some() {
                break;
            }
            let key = self.keys.keys[w.key];
            found = checker.watch_order(w).or_else(|| {
                checker.watch_newest(w, &self.keys.histories[w.key], &key, refresh, slack)
            });
        }
        self.outcome.violation = found;
    }

    /// What the checks read.
    fn checker(&self) -> Checker<'_> {
        Checker {
            sim: &self.sim,
            up_since: &self.up_since,
            partitions: &self.partitions,
            replicate: self.config.replicate_interval,
            k: self.config.k.get(),
            settle: self.settle,
        }
    }

    /// Takes the outcomes that arrived, in the order they did, and checks each get.
    fn settle(&mut self) {
        let mut done: Vec<(Time, Ticket, Waiting)> = Vec::new();
        let sim = &self.sim;
        self.waiting.retain(|(ticket, waiting)| {
            let waits_on_live = match waiting {
                Waiting::Get { node, .. } => self.up_since[*node].is_some(),
                Waiting::Put { .. } => true,
            };
            match sim.finished_at(*ticket) {
                Some(at) => {
                    done.push((at, *ticket, *waiting));
                    false
                }
                None => waits_on_live,
            }
        });
        done.sort_by_key(|(at, ticket, _)| (*at, *ticket));
        for (at, ticket, waiting) in done {
            let event = self.sim.outcome(ticket).cloned();
            match (waiting, event) {
                (
                    Waiting::Put { key, seq },
                    Some(Event::PutDone {
                        result: Ok(stored), ..
                    }),
                ) if stored >= 1 => {
                    self.keys.acknowledge(key, seq, at);
                    self.outcome.acknowledged += 1;
                }
                (Waiting::Get { key, node, started }, Some(Event::GetDone { result, .. })) => {
                    let found: Found = result
                        .ok()
                        .map(|item| (item.seq().unwrap_or(0), item.is_tombstone()));
                    self.outcome.gets += 1;
                    if let Some(v) = self.check_get(key, node, started, found) {
                        self.outcome.violation = Some(v);
                        return;
                    }
                    if let Some((seq, _)) = found {
                        self.keys.histories[key].returned.push((at, seq));
                    }
                }
                _ => {}
            }
        }
    }

    /// Checks a get that ended.
    fn check_get(&self, key: usize, node: usize, started: Time, found: Found) -> Option<Violation> {
        let item_key: Key = self.keys.keys[key];
        self.checker()
            .get(&self.keys.histories[key], &item_key, node, started, found)
    }
}

#[cfg(test)]
mod tests;
