//! Continuous churn: nodes leave and new ones join for hours while gets run every minute.
//!
//! The network of the standard scenario is built and its items put. Then every node lives a
//! session drawn from a Weibull distribution (heavy-tailed with a shape below 1, as session
//! lengths measured in deployed peer-to-peer networks are; see `docs/simulation.md`). When a
//! session ends the node leaves, silently (its host gone) or refusing connections (its host
//! up), and a new node with a new identity and an empty store joins in its place from three
//! live nodes, so the network keeps its size. Housekeeping (refresh, replication,
//! republishing) runs in every node as in a real one. Each minute some items are got from
//! random nodes that have finished joining; successes and latencies are summed up per window.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::{Duration, Instant};

use cairn_core::{Event, Id, StoreLimits, Time};
use cairn_report::{Operations, Sample};
use rand::Rng;
use rand::seq::index::sample;
use serde::Serialize;

use crate::scenario::{self, FAILED, Scenario, got, latencies_ms};
use crate::{Command, DatagramTotals, RequestTotals, Sim, Ticket};

/// What to run.
#[derive(Clone, Debug)]
pub struct Churn {
    /// The network, its items and its nodes' parameters (the kill and malicious fractions
    /// are not used).
    pub base: Scenario,
    /// How long churn runs, in virtual time.
    pub duration: Duration,
    /// The median session length.
    pub median_session: Duration,
    /// The Weibull shape of session lengths: 1 is exponential, below 1 heavy-tailed.
    pub shape: f64,
    /// Gets started each minute.
    pub gets_per_minute: usize,
    /// Gets are summed up over windows this long.
    pub window: Duration,
    /// The fraction of departing nodes whose host stays up (refusing connections); the others
    /// vanish with their host.
    pub refusing: f64,
}

impl Default for Churn {
    fn default() -> Self {
        Churn {
            base: Scenario::default(),
            duration: Duration::from_secs(6 * 3_600),
            median_session: Duration::from_secs(3_600),
            shape: 0.5,
            gets_per_minute: 20,
            window: Duration::from_secs(600),
            refusing: 0.5,
        }
    }
}

impl Churn {
    /// A session length: Weibull with the scenario's shape and median
    /// (`median * (ln(1/u) / ln 2)^(1/shape)` for `u` uniform in (0, 1]).
    fn session(&self, sim: &mut Sim) -> Duration {
        let u: f64 = 1.0 - sim.rng().random_range(0.0..1.0);
        let shape = self.shape.max(0.05);
        let factor = ((1.0 / u).ln() / std::f64::consts::LN_2).powf(1.0 / shape);
        Duration::from_secs_f64((self.median_session.as_secs_f64() * factor).min(1e9))
    }
}

/// One window of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Window {
    /// Minutes from the start of churn to the window's start.
    pub start_min: u64,
    /// The gets started in the window (those whose node left before they ended are not
    /// counted).
    pub gets: Operations,
    /// Gets abandoned because their node left while they ran.
    pub abandoned: usize,
    /// Nodes that left during the window.
    pub left: usize,
    /// Nodes that joined during the window.
    pub joined: usize,
}

/// What a churn run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChurnReport {
    /// The network before churn: setup and puts (`gets` is left empty).
    pub network: cairn_report::Report,
    /// Virtual minutes of churn.
    pub minutes: u64,
    /// The median and shape of session lengths.
    pub median_session_min: f64,
    /// The Weibull shape.
    pub shape: f64,
    /// Every window, in order.
    pub windows: Vec<Window>,
    /// All gets together.
    pub gets: Operations,
    /// Every successful get's latency, in milliseconds, ascending.
    pub get_latencies_ms: Vec<f64>,
    /// Nodes that left in all.
    pub left: usize,
    /// Nodes that joined in all.
    pub joined: usize,
    /// Joins that failed.
    pub failed_joins: usize,
    /// The lowest success rate of any window, in percent.
    pub worst_window_percent: f64,
    /// Messages delivered and connections opened in the whole run.
    pub messages: u64,
    /// Connections opened in the whole run.
    pub connections: u64,
    /// What the datagram planes did (all zero unless requests went over datagrams).
    pub datagrams: DatagramTotals,
    /// The nodes' requests in the whole run.
    pub requests: RequestTotals,
    /// Real time the run took.
    #[serde(skip)]
    pub wall: Duration,
}

/// A get started during churn.
struct Pending {
    ticket: Ticket,
    window: usize,
    item: usize,
    node: usize,
}

/// Runs the scenario.
pub fn run(churn: &Churn) -> ChurnReport {
    let started = Instant::now();
    let base = &churn.base;
    let (mut sim, mut keys, items, network) = scenario::populated(base);

    let start = sim.now();
    let minutes = churn.duration.as_secs() / 60;
    let windows = usize::try_from(
        churn
            .duration
            .as_secs()
            .div_ceil(churn.window.as_secs().max(1)),
    )
    .unwrap_or(usize::MAX)
    .max(1);
    let window_of = |at: Time| -> usize {
        usize::try_from(at.since(start).as_secs() / churn.window.as_secs().max(1))
            .unwrap_or(usize::MAX)
            .min(windows - 1)
    };
    let mut left = vec![0usize; windows];
    let mut joined = vec![0usize; windows];
    // Departures by time; nodes still joining, with their bootstrap's ticket.
    let mut departures: BinaryHeap<Reverse<(Time, usize)>> = BinaryHeap::new();
    for node in 0..sim.len() {
        let at = start + churn.session(&mut sim);
        departures.push(Reverse((at, node)));
    }
    let mut ready = vec![true; sim.len()];
    let mut joining: Vec<(usize, Ticket)> = Vec::new();
    let mut failed_churn_joins = 0;
    let mut pending: Vec<Pending> = Vec::new();

    for minute in 0..minutes {
        let minute_start = start + Duration::from_secs(minute * 60);
        let minute_end = minute_start + Duration::from_secs(60);
        let mut starts: Vec<Time> = (0..churn.gets_per_minute)
            .map(|_| minute_start + Duration::from_millis(sim.rng().random_range(0..60_000)))
            .collect();
        starts.sort();
        let mut starts = starts.into_iter().peekable();
        loop {
            let departure = departures
                .peek()
                .map(|Reverse(next)| *next)
                .filter(|(at, _)| *at < minute_end);
            let get = starts.peek().copied();
            let (at, leaving) = match (departure, get) {
                (Some((d, n)), Some(g)) if d <= g => (d, Some(n)),
                (_, Some(g)) => (g, None),
                (Some((d, n)), None) => (d, Some(n)),
                (None, None) => break,
            };
            sim.run_for(at.since(sim.now()));
            settle_joins(&sim, &mut joining, &mut ready, &mut failed_churn_joins);
            let window = window_of(at);
            if let Some(node) = leaving {
                departures.pop();
                ready[node] = false;
                if sim.rng().random_bool(churn.refusing.clamp(0.0, 1.0)) {
                    sim.stop(node);
                } else {
                    sim.kill(node);
                }
                left[window] += 1;
                // A newcomer takes its place.
                let key = scenario::signing_key(&mut sim);
                let id = Id::of_public_key(&key.verifying_key().to_bytes());
                let newcomer = sim.add_node(id, base.config.clone(), StoreLimits::default());
                keys.push(key);
                ready.push(false);
                let session = churn.session(&mut sim);
                departures.push(Reverse((at + session, newcomer)));
                let seeds = random_ready(&mut sim, &ready, base.seeds_per_join, None);
                let ticket = sim.schedule(at, newcomer, Command::Bootstrap(seeds));
                joining.push((newcomer, ticket));
                joined[window] += 1;
            } else {
                starts.next();
                let item = sim.rng().random_range(0..items.len());
                let publisher = items[item].publisher;
                let Some(&node) = random_ready(&mut sim, &ready, 1, Some(publisher)).first() else {
                    continue;
                };
                let ticket = sim.schedule(at, node, Command::Get(items[item].key));
                pending.push(Pending {
                    ticket,
                    window,
                    item,
                    node,
                });
            }
        }
        sim.run_for(minute_end.since(sim.now()));
    }
    // Let the last gets end.
    sim.run_for(base.config.lookup_timeout + base.config.request_timeout);
    settle_joins(&sim, &mut joining, &mut ready, &mut failed_churn_joins);

    let mut per_window: Vec<Vec<Sample>> = vec![Vec::new(); windows];
    let mut abandoned = vec![0usize; windows];
    for get in &pending {
        match got(&sim, get.ticket, &items[get.item]) {
            Some(sample) => per_window[get.window].push(sample),
            None if !sim.is_alive(get.node) => abandoned[get.window] += 1,
            None => per_window[get.window].push(FAILED),
        }
    }
    let all: Vec<Sample> = per_window.iter().flatten().copied().collect();
    let windows: Vec<Window> = (0..windows)
        .map(|w| Window {
            start_min: w as u64 * churn.window.as_secs() / 60,
            gets: Operations::of(&per_window[w]),
            abandoned: abandoned[w],
            left: left[w],
            joined: joined[w],
        })
        .collect();
    ChurnReport {
        network,
        minutes,
        median_session_min: churn.median_session.as_secs_f64() / 60.0,
        shape: churn.shape,
        worst_window_percent: windows
            .iter()
            .map(|w| w.gets.success_percent)
            .fold(100.0, f64::min),
        windows,
        gets: Operations::of(&all),
        get_latencies_ms: latencies_ms(&all),
        left: left.iter().sum(),
        joined: joined.iter().sum(),
        failed_joins: failed_churn_joins,
        messages: sim.delivered(),
        connections: sim.connections_opened(),
        datagrams: sim.datagram_totals(),
        requests: sim.request_totals(),
        wall: started.elapsed(),
    }
}

/// Marks the newcomers whose join has ended as ready (if it succeeded).
fn settle_joins(
    sim: &Sim,
    joining: &mut Vec<(usize, Ticket)>,
    ready: &mut [bool],
    failed: &mut usize,
) {
    joining.retain(|(node, ticket)| match sim.outcome(*ticket) {
        None => sim.is_alive(*node),
        Some(Event::BootstrapDone { result: Ok(_), .. }) => {
            ready[*node] = sim.is_alive(*node);
            false
        }
        Some(_) => {
            *failed += 1;
            false
        }
    });
}

/// Up to `count` distinct live nodes that have finished joining, other than `except`, at
/// random. Draws at random first (most nodes are live and ready), then falls back to a scan.
fn random_ready(sim: &mut Sim, ready: &[bool], count: usize, except: Option<usize>) -> Vec<usize> {
    let eligible = |sim: &Sim, n: usize| ready[n] && sim.is_alive(n) && Some(n) != except;
    let mut chosen = Vec::new();
    for _ in 0..count * 64 {
        if chosen.len() == count || ready.is_empty() {
            return chosen;
        }
        let n = sim.rng().random_range(0..ready.len());
        if eligible(sim, n) && !chosen.contains(&n) {
            chosen.push(n);
        }
    }
    let rest: Vec<usize> = (0..ready.len())
        .filter(|n| eligible(sim, *n) && !chosen.contains(n))
        .collect();
    let more = (count - chosen.len()).min(rest.len());
    chosen.extend(
        sample(sim.rng(), rest.len(), more)
            .into_iter()
            .map(|i| rest[i]),
    );
    chosen
}

impl fmt::Display for ChurnReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cairn-sim churn: {} nodes, seed {} (virtual time), {} min of churn, sessions Weibull median {:.0} min shape {}",
            self.network.nodes,
            self.network.seed,
            self.minutes,
            self.median_session_min,
            self.shape
        )?;
        scenario::write_setup(f, &self.network)?;
        writeln!(
            f,
            "  window   left joined   gets ok      p50      p95      p99  abandoned"
        )?;
        for w in &self.windows {
            writeln!(
                f,
                "  {:>4} min {:>5} {:>6} {:>5}/{:<5} {:>6.0} ms {:>6.0} ms {:>6.0} ms {:>5}",
                w.start_min,
                w.left,
                w.joined,
                w.gets.succeeded,
                w.gets.attempted,
                w.gets.latency_ms.p50,
                w.gets.latency_ms.p95,
                w.gets.latency_ms.p99,
                w.abandoned
            )?;
        }
        writeln!(f, "  all gets         {}", self.gets)?;
        writeln!(
            f,
            "  churn            {} left, {} joined ({} joins failed)",
            self.left, self.joined, self.failed_joins
        )?;
        scenario::write_totals(
            f,
            self.messages,
            self.connections,
            (&self.requests, &self.datagrams),
            self.wall,
        )
    }
}
