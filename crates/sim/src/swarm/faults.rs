//! The faults of one swarm run, all drawn from its seed before it starts: the network's
//! (loss, duplication, reordering, delay spikes), the nodes' clocks (skew), and a timeline of
//! partitions that come and go, crashes with their restarts, nodes that leave for good, and
//! disks that fail their commits for a while.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

use crate::NetworkFaults;

/// One change of the network's or a node's state, at an offset from the run's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The nodes marked `true` are cut from the others.
    Partition(Vec<bool>),
    /// The partition ends.
    Heal,
    /// The node crashes, losing what its store had not committed.
    Crash(usize),
    /// The node restarts from what its store made durable.
    Restart(usize),
    /// The node leaves for good.
    Leave(usize),
    /// The node's disk starts failing every commit.
    DiskFails(usize),
    /// The node's disk works again.
    DiskRecovers(usize),
}

/// Every fault of a run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Probability that a message is lost.
    pub loss: f64,
    /// Duplication, reordering and spikes.
    pub network: NetworkFaults,
    /// Each node's clock skew, ahead of the simulation's clock.
    pub skew: Vec<Duration>,
    /// The timeline, in time order.
    pub timeline: Vec<(Duration, Fault)>,
}

/// A random duration between `low` and `high` seconds.
fn secs(rng: &mut StdRng, low: u64, high: u64) -> Duration {
    Duration::from_secs(rng.random_range(low..=high))
}

/// One of `choices`, at random.
fn pick<T: Copy>(rng: &mut StdRng, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())]
}

impl Plan {
    /// The faults of a run of `nodes` nodes lasting `length`, drawn from `rng`. Faults start
    /// after `start_calm` (the network's joining) and end `end_calm` before the run does, so
    /// that the last checks see the network repaired.
    pub fn draw(
        rng: &mut StdRng,
        nodes: usize,
        length: Duration,
        start_calm: Duration,
        end_calm: Duration,
    ) -> Plan {
        let loss = pick(rng, &[0.0, 0.0, 0.01, 0.05, 0.1]);
        let network = NetworkFaults {
            duplicate: pick(rng, &[0.0, 0.01, 0.05]),
            reorder: pick(rng, &[0.0, 0.05, 0.2]),
            spike: pick(rng, &[0.0, 0.01, 0.05]),
            spike_delay: secs(rng, 1, 5),
        };
        let most_skew = pick(rng, &[0, 0, 2, 30, 120]);
        let skew = (0..nodes)
            .map(|_| Duration::from_millis(rng.random_range(0..=most_skew * 1000)))
            .collect();
        let window = length
            .saturating_sub(start_calm + end_calm)
            .as_secs()
            .max(1);
        let start = start_calm.as_secs();
        let at = |rng: &mut StdRng| Duration::from_secs(start + rng.random_range(0..window));
        let mut timeline = Vec::new();
        // Partitions: at most one at a time, each healed before the next.
        let mut free = Duration::ZERO;
        for _ in 0..rng.random_range(0..=3) {
            let from = at(rng).max(free);
            let side: Vec<bool> = (0..nodes).map(|_| rng.random_bool(0.5)).collect();
            let until = from + secs(rng, 30, 900);
            timeline.push((from, Fault::Partition(side)));
            timeline.push((until, Fault::Heal));
            free = until + Duration::from_secs(1);
        }
        // Crashes, each with its restart unless the node leaves for good; and disks failing.
        let mut down_until = vec![Duration::ZERO; nodes];
        for _ in 0..rng.random_range(0..=8) {
            let node = rng.random_range(0..nodes);
            let when = at(rng);
            if when < down_until[node] {
                continue;
            }
            let back = when + secs(rng, 5, 600);
            timeline.push((when, Fault::Crash(node)));
            timeline.push((back, Fault::Restart(node)));
            down_until[node] = back + Duration::from_secs(1);
        }
        for _ in 0..rng.random_range(0..=2) {
            let node = rng.random_range(0..nodes);
            let when = at(rng);
            if when >= down_until[node] {
                timeline.push((when, Fault::Leave(node)));
                down_until[node] = Duration::MAX;
            }
        }
        for _ in 0..rng.random_range(0..=3) {
            let node = rng.random_range(0..nodes);
            let when = at(rng);
            timeline.push((when, Fault::DiskFails(node)));
            timeline.push((when + secs(rng, 5, 300), Fault::DiskRecovers(node)));
        }
        // Stable: equal times keep the order they were drawn in.
        timeline.sort_by_key(|(at, _)| *at);
        Plan {
            loss,
            network,
            skew,
            timeline,
        }
    }
}
