//! How a swarm run is built ([`Options`], [`Build`]) and what it reports ([`Outcome`]).

use std::time::Duration;

use super::faults::Plan;
use super::invariants::Violation;

/// How a run is built and checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// How the nodes are built.
    pub build: Build,
    /// Holds every get to the newest version acknowledged before it began, at once, instead
    /// of one replication interval after the acknowledgement. cairn's get ends at the first
    /// `get_quorum` copies, and stale copies on nodes off the k closest (earlier publishers,
    /// write-backs) can decide it until replication repairs them; this reading shows it.
    pub strict_reads: bool,
}

/// How the nodes of a run are built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Build {
    /// As they are.
    #[default]
    Sound,
    /// With a store that forgets every item once it is durable: the checker must catch it.
    DropsAcknowledged,
}

/// What one seed's run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Whether gets were held to the strict reading ([`Options::strict_reads`]).
    pub strict_reads: bool,
    /// The first invariant broken, if one was.
    pub violation: Option<Violation>,
    /// Nodes in the run.
    pub nodes: usize,
    /// Simulated time.
    pub simulated: Duration,
    /// Operations issued.
    pub operations: usize,
    /// Puts acknowledged.
    pub acknowledged: usize,
    /// Gets that ended, and those of them held to a version (not exempt).
    pub gets: usize,
    /// Faults applied.
    pub faults: usize,
    /// Messages delivered (datagrams included): a fingerprint of the run.
    pub messages: u64,
    /// The faults drawn (none if the run panicked before drawing them).
    pub plan: Option<Plan>,
    /// Wall time of the run.
    pub wall: Duration,
}

impl Outcome {
    /// A run of `seed` with `nodes` nodes for `simulated`, before it did anything.
    pub(super) fn empty(seed: u64, options: Options, nodes: usize, simulated: Duration) -> Self {
        Outcome {
            seed,
            strict_reads: options.strict_reads,
            violation: None,
            nodes,
            simulated,
            operations: 0,
            acknowledged: 0,
            gets: 0,
            faults: 0,
            messages: 0,
            plan: None,
            wall: Duration::ZERO,
        }
    }

    /// The failure report: the seed, the invariant and the command that replays it.
    pub fn failure(&self) -> Option<String> {
        let violation = self.violation.as_ref()?;
        Some(format!(
            "seed {}: {violation}\n  reproduce: {}",
            self.seed,
            reproduce(self.seed, self.strict_reads)
        ))
    }
}

/// The shortest command that replays seed `seed` (checked with the strict reading of gets).
pub fn reproduce(seed: u64, strict_reads: bool) -> String {
    let strict = if strict_reads { " --strict-reads" } else { "" };
    format!("cargo run --release -p cairn-sim -- swarm --seed {seed}{strict}")
}
