//! Many seeds at once: `cairn-sim swarm --seeds N`, spread over threads, each seed in its own
//! run (its own network, RNG and checks), so that the outcome of a seed never depends on the
//! others or on the number of threads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Options, Outcome, run_with};

/// What a batch of seeds found.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// The runs that broke an invariant, by seed.
    pub failures: Vec<Outcome>,
    /// Sum of the runs' wall times (CPU time, roughly).
    pub busy: Duration,
    /// The slowest run's wall time, and its seed.
    pub slowest: (Duration, u64),
    /// Simulated time over all runs.
    pub simulated: Duration,
    /// Operations over all runs.
    pub operations: usize,
    /// Gets over all runs.
    pub gets: usize,
    /// Acknowledged puts over all runs.
    pub acknowledged: usize,
    /// Wall time of the batch.
    pub wall: Duration,
}

impl Summary {
    fn add(&mut self, outcome: Outcome) {
        self.seeds += 1;
        self.busy += outcome.wall;
        if outcome.wall > self.slowest.0 {
            self.slowest = (outcome.wall, outcome.seed);
        }
        self.simulated += outcome.simulated;
        self.operations += outcome.operations;
        self.gets += outcome.gets;
        self.acknowledged += outcome.acknowledged;
        if outcome.violation.is_some() {
            self.failures.push(outcome);
        }
    }
}

/// Runs seeds `from` to `from + count - 1` as `options` say on `jobs` threads; `progress`
/// hears of each run as it ends (from any thread).
pub fn explore(
    from: u64,
    count: u64,
    options: Options,
    jobs: usize,
    progress: &(dyn Fn(&Outcome) + Sync),
) -> Summary {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let outcome = run_with(from.wrapping_add(n), options);
                    progress(&outcome);
                    if let Ok(mut summary) = summary.lock() {
                        summary.add(outcome);
                    }
                }
            });
        }
    });
    let mut summary = summary.into_inner().unwrap_or_default();
    summary.failures.sort_by_key(|o| o.seed);
    summary.wall = started.elapsed();
    summary
}
