//! `cairn-sim swarm`: one seed (`--seed S`, to replay a failure) or many (`--seeds N`).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_sim::swarm::{self, Options, Outcome};
use clap::Args;

/// Options of the swarm test.
#[derive(Args, Debug)]
pub struct SwarmArgs {
    /// Run this one seed, printing what it did (the replay of a failure).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds, from --from on.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of --seeds.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Threads that run seeds at once (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Hold every get to the newest version acknowledged before it began, at once (by
    /// default, one replication interval after the acknowledgement).
    #[arg(long)]
    strict_reads: bool,
}

/// Runs the swarm test; `Ok(false)` when an invariant was broken.
pub fn swarm(args: &SwarmArgs) -> Result<bool, String> {
    let options = Options {
        strict_reads: args.strict_reads,
        ..Options::default()
    };
    match (args.seed, args.seeds) {
        (Some(seed), _) => Ok(one(seed, options)),
        (None, Some(count)) => Ok(many(args.from, count, options, args.jobs)),
        (None, None) => Err("swarm needs --seed S or --seeds N".to_string()),
    }
}

fn describe(outcome: &Outcome) -> String {
    format!(
        "seed {}: {} nodes, {} h simulated, {} operations, {} puts acknowledged, {} gets, {} \
         faults, {:.2} s",
        outcome.seed,
        outcome.nodes,
        outcome.simulated.as_secs() / 3_600,
        outcome.operations,
        outcome.acknowledged,
        outcome.gets,
        outcome.faults,
        outcome.wall.as_secs_f64()
    )
}

fn one(seed: u64, options: Options) -> bool {
    let outcome = swarm::run_with(seed, options);
    println!("{}", describe(&outcome));
    if let Some(plan) = &outcome.plan {
        println!(
            "  network: loss {}, {:?}; clock skews (ms): {:?}",
            plan.loss,
            plan.network,
            plan.skew.iter().map(|s| s.as_millis()).collect::<Vec<_>>()
        );
        for (at, fault) in &plan.timeline {
            println!("  at {:>6} s: {fault:?}", at.as_secs());
        }
    }
    match outcome.failure() {
        Some(failure) => {
            println!("FAILED {failure}");
            false
        }
        None => {
            println!("every invariant held");
            true
        }
    }
}

fn many(from: u64, count: u64, options: Options, jobs: Option<usize>) -> bool {
    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    println!(
        "swarm: seeds {from} to {} on {jobs} threads",
        from + count.saturating_sub(1)
    );
    let done = AtomicU64::new(0);
    let progress = |outcome: &Outcome| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(failure) = outcome.failure() {
            println!("FAILED {failure}");
        }
        if n % 100 == 0 {
            println!("  {n} of {count} seeds run");
            let _ = std::io::stdout().flush();
        }
    };
    let summary = swarm::explore(from, count, options, jobs, &progress);
    println!(
        "swarm: {} seeds, {} failed, {:.1} s wall, {:.3} s per seed on average (slowest {:.2} s, \
         seed {}), {} simulated hours, {} operations, {} puts acknowledged, {} gets",
        summary.seeds,
        summary.failures.len(),
        summary.wall.as_secs_f64(),
        summary.busy.as_secs_f64() / summary.seeds.max(1) as f64,
        summary.slowest.0.as_secs_f64(),
        summary.slowest.1,
        summary.simulated.as_secs() / 3_600,
        summary.operations,
        summary.acknowledged,
        summary.gets
    );
    for failure in &summary.failures {
        if let Some(text) = failure.failure() {
            println!("FAILED {text}");
        }
    }
    summary.failures.is_empty()
}
