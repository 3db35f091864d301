//! `cairn testnet --soak DURATION`: runs a soak ([`cairn_testnet::soak`]), prints a line of
//! figures per interval and a summary, and fails if an acknowledged write was lost.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_testnet::WorkerCommand;
use cairn_testnet::soak::{Interval, SoakPlan, SoakReport, soak};

use super::TestnetArgs;

/// How long each watch of the load runs.
const WATCH_FOR: Duration = Duration::from_secs(2);

/// Runs the soak `args` describe for `seconds`, with `program` as the workers' binary.
pub(super) async fn run(args: &TestnetArgs, program: PathBuf, seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 2, "--soak needs at least 2 nodes");
    let mut worker_args = vec!["testnet-worker".to_owned()];
    if args.transport == "tcp" {
        worker_args.push("--tcp-only".into());
    }
    let plan = SoakPlan {
        nodes: args.nodes,
        processes: args.processes,
        slots: args.items.max(1),
        seed: args.seed,
        concurrency: args.concurrency.max(1),
        duration: Duration::from_secs(seconds),
        interval: Duration::from_secs(args.report_every),
        chaos_every: Duration::from_secs(args.chaos_every),
        downtime: Duration::from_secs(args.downtime),
        watch_for: WATCH_FOR,
        settle: Duration::from_secs(args.settle),
        data: args.data.clone(),
        worker: WorkerCommand {
            program,
            args: worker_args,
        },
        datagrams: args.transport != "tcp",
        wipe_before_sweep: false,
    };
    let json = args.json;
    if !json {
        println!(
            "cairn testnet --soak: {} nodes, {}s, seed {}; a chaos event every {}s, {}s down",
            plan.nodes, seconds, plan.seed, args.chaos_every, args.downtime
        );
        println!("  (each kind: operations, success %, p50/p99 latency)");
    }
    let mut print = |line: &Interval| {
        // With --json the lines go to stderr, so that a long run shows its progress.
        if json {
            eprintln!("minute {:>3}: {line}", line.minute);
        } else {
            println!("minute {:>3}: {line}", line.minute);
        }
    };
    let report = soak(&plan, &mut print)
        .await
        .context("the soak did not run")?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report);
    }
    anyhow::ensure!(
        report.lost.is_empty(),
        "{} acknowledged writes were lost",
        report.lost.len()
    );
    Ok(())
}

fn print_summary(r: &SoakReport) {
    println!("total:      {}", r.total);
    println!(
        "  nodes {} in {} worker processes, {} joins failed, wall {:.0} s",
        r.nodes, r.processes, r.failed_joins, r.wall_s
    );
    println!(
        "  acknowledged {} puts and {} deletes; missed at the time {}",
        r.acknowledged_puts, r.acknowledged_deletes, r.total.missed
    );
    println!(
        "  final check of {} names: {} not checkable (no node answered), acknowledged and lost {}",
        r.swept,
        r.unchecked,
        r.lost.len()
    );
    for lost in &r.lost {
        println!(
            "  LOST {} ({} of node {}): {}",
            lost.key, lost.name, lost.publisher, lost.found
        );
    }
}
