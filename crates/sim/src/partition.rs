//! A partition and its heal: the network is cut in two halves for a while, each side goes on
//! alone, and afterwards every item must be found from both sides at its newest version.
//!
//! The network of the standard scenario is built and its items put. Then a random half of the
//! nodes is cut off from the other (nothing crosses, as if a link between two continents went
//! down). During the cut, every signed item is updated by its publisher, on the publisher's
//! side only, and each side puts new items of its own; each side gets its own items. Then the
//! cut heals, and every item (old, updated and new from both sides) is got from a random node
//! of each side, at once and again a while later (one replication interval by default), a
//! get succeeding only if it returns the newest version.

use std::fmt;
use std::time::{Duration, Instant};

use cairn_core::Event;
use cairn_report::{Operations, Sample};
use rand::Rng;
use rand::seq::index::sample;
use serde::Serialize;

use crate::scenario::{self, FAILED, Published, Scenario, got};
use crate::{Command, DatagramTotals, RequestTotals, Sim};

/// What to run.
#[derive(Clone, Debug)]
pub struct Partition {
    /// The network, its items and its nodes' parameters (the kill and malicious fractions
    /// are not used).
    pub base: Scenario,
    /// How long the network stays cut.
    pub cut: Duration,
    /// How long after the heal every item is got a second time.
    pub settle: Duration,
}

impl Default for Partition {
    fn default() -> Self {
        Partition {
            base: Scenario::default(),
            cut: Duration::from_secs(600),
            settle: Duration::from_secs(3_600),
        }
    }
}

/// What a partition run measured. Pairs are (side 0, side 1).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PartitionReport {
    /// The network before the cut: setup and puts (`gets` is left empty).
    pub network: cairn_report::Report,
    /// Nodes on each side.
    pub sides: [usize; 2],
    /// Minutes the network was cut.
    pub cut_min: u64,
    /// New puts made on each side during the cut.
    pub puts_during: [Operations; 2],
    /// Gets made on each side during the cut, of that side's new items and of the old items
    /// its publishers updated.
    pub during: [Operations; 2],
    /// Gets of every item from each side right after the heal.
    pub healed: [Operations; 2],
    /// Of those, gets that returned an older version than the newest.
    pub healed_stale: [usize; 2],
    /// Minutes between the heal and the second round of gets.
    pub settle_min: u64,
    /// Gets of every item from each side after `settle_min`.
    pub settled: [Operations; 2],
    /// Of those, gets that returned an older version than the newest.
    pub settled_stale: [usize; 2],
    /// Messages delivered in the whole run.
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

/// Runs the scenario.
pub fn run(partition: &Partition) -> PartitionReport {
    let started = Instant::now();
    let base = &partition.base;
    let (mut sim, keys, mut items, network) = scenario::populated(base);
    let everyone: Vec<usize> = (0..sim.len()).collect();

    // Cut a random half off.
    let len = sim.len();
    let mut side = vec![false; len];
    for n in sample(sim.rng(), len, len / 2) {
        side[n] = true;
    }
    let members: [Vec<usize>; 2] =
        [false, true].map(|s| everyone.iter().copied().filter(|n| side[*n] == s).collect());
    let cut_at = sim.now();
    sim.partition(side.clone());

    // Each side updates its publishers' signed items and puts new items of its own.
    scenario::update_where(&mut sim, &keys, &mut items, |_| true);
    let mut puts_during: [Operations; 2] = Default::default();
    let mut during: [Operations; 2] = Default::default();
    let mut new_items: Vec<Published> = Vec::new();
    for s in 0..2 {
        let publishers = &members[s];
        if publishers.is_empty() {
            continue;
        }
        let prefix = format!("side{s}");
        let count = base.items.div_ceil(2);
        let (fresh, samples, _) = scenario::put_from(&mut sim, count, &keys, publishers, &prefix);
        puts_during[s] = Operations::of(&samples);
        new_items.extend(fresh);
    }
    for s in 0..2 {
        // The side's updated signed items and its new ones.
        let own: Vec<&Published> = items
            .iter()
            .filter(|item| item.name.is_some())
            .chain(&new_items)
            .filter(|item| side[item.publisher] == (s == 1))
            .collect();
        let (samples, _) = get_from(&mut sim, &own, &members[s]);
        during[s] = Operations::of(&samples);
    }
    sim.run_for((cut_at + partition.cut).since(sim.now()));
    sim.heal();

    // Every item from each side: how many gets succeeded, and how many found an old version.
    let all: Vec<&Published> = items.iter().chain(&new_items).collect();
    let round = |sim: &mut Sim| {
        let (mut ops, mut stale): ([Operations; 2], [usize; 2]) = Default::default();
        for s in 0..2 {
            let (samples, old) = get_from(sim, &all, &members[s]);
            ops[s] = Operations::of(&samples);
            stale[s] = old;
        }
        (ops, stale)
    };
    let (healed, healed_stale) = round(&mut sim);
    sim.run_for(partition.settle);
    let (settled, settled_stale) = round(&mut sim);
    PartitionReport {
        network,
        sides: [members[0].len(), members[1].len()],
        cut_min: partition.cut.as_secs() / 60,
        puts_during,
        during,
        healed,
        healed_stale,
        settle_min: partition.settle.as_secs() / 60,
        settled,
        settled_stale,
        messages: sim.delivered(),
        connections: sim.connections_opened(),
        datagrams: sim.datagram_totals(),
        requests: sim.request_totals(),
        wall: started.elapsed(),
    }
}

/// Gets each item from a random node of `readers` other than its publisher, one every 10 ms.
/// Returns each get's sample (a success returned the newest version) and how many returned
/// an older version.
fn get_from(sim: &mut Sim, items: &[&Published], readers: &[usize]) -> (Vec<Sample>, usize) {
    if readers.is_empty() {
        return (Vec::new(), 0);
    }
    let mut tickets = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let node = loop {
            let n = readers[sim.rng().random_range(0..readers.len())];
            if n != item.publisher || readers.len() == 1 {
                break n;
            }
        };
        let at = sim.now() + Duration::from_millis(10) * u32::try_from(i).unwrap_or(u32::MAX);
        tickets.push(sim.schedule(at, node, Command::Get(item.key)));
    }
    sim.run_until_done(&tickets);
    let mut stale = 0;
    let samples = tickets
        .iter()
        .zip(items)
        .map(|(ticket, item)| {
            if let Some(Event::GetDone {
                result: Ok(found), ..
            }) = sim.outcome(*ticket)
                && *found.value() != item.value
            {
                stale += 1;
            }
            got(sim, *ticket, item).unwrap_or(FAILED)
        })
        .collect();
    (samples, stale)
}

fn sides(f: &mut fmt::Formatter<'_>, label: &str, ops: &[Operations; 2]) -> fmt::Result {
    for (s, o) in ops.iter().enumerate() {
        writeln!(f, "  {label:<16} side {s}: {o}")?;
    }
    Ok(())
}

impl fmt::Display for PartitionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cairn-sim partition: {} nodes, seed {} (virtual time), cut into {} and {} for {} min",
            self.network.nodes, self.network.seed, self.sides[0], self.sides[1], self.cut_min
        )?;
        scenario::write_setup(f, &self.network)?;
        sides(f, "puts in the cut", &self.puts_during)?;
        sides(f, "gets in the cut", &self.during)?;
        sides(f, "gets at the heal", &self.healed)?;
        writeln!(
            f,
            "  stale at heal    {} and {} gets returned an older version",
            self.healed_stale[0], self.healed_stale[1]
        )?;
        sides(f, &format!("{} min later", self.settle_min), &self.settled)?;
        writeln!(
            f,
            "  stale later      {} and {} gets returned an older version",
            self.settled_stale[0], self.settled_stale[1]
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
