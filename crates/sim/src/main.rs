//! `cairn-sim`: runs the standard scenario on a simulated network and prints what it measured.

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use cairn_core::Config;
use cairn_sim::scenario::{self, Scenario};
use cairn_sim::{Latency, Transport};
use clap::Parser;

/// Joins N simulated cairn nodes, puts items from random nodes, gets each from another random
/// node, kills a fraction of the nodes and gets every item again. Everything runs on a virtual
/// clock: the same seed prints the same figures (all but the wall time).
#[derive(Parser, Debug)]
#[command(name = "cairn-sim", version)]
struct Args {
    /// Number of nodes.
    #[arg(long, short = 'n', default_value_t = 1_000)]
    nodes: usize,
    /// Signed items to put; as many immutable items are put too.
    #[arg(long, short = 'm', default_value_t = 100)]
    items: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Latency model: `regions` (nodes in five world regions, round trips between them, see
    /// docs/simulation.md) or `uniform` (each message 10 to 100 ms, or --latency-min-ms to
    /// --latency-max-ms).
    #[arg(long, default_value = "regions", value_parser = ["regions", "uniform"])]
    latency: String,
    /// Lowest one-way message latency of the uniform model, in milliseconds.
    #[arg(long, default_value_t = 10)]
    latency_min_ms: u64,
    /// Highest one-way message latency of the uniform model, in milliseconds (equal to the
    /// lowest for a fixed one).
    #[arg(long, default_value_t = 100)]
    latency_max_ms: u64,
    /// How connections are charged: `pipelined` (a new contact costs the TCP handshake's round
    /// trip before its first request, as cairn's driver does), `handshake` (also the
    /// hello/welcome round trip, without pipelining) or `free` (every connection already open).
    #[arg(long, default_value = "pipelined", value_parser = ["pipelined", "handshake", "free"])]
    connections: String,
    /// Connections each node keeps open at most (the driver's max_outbound).
    #[arg(long, default_value_t = 256)]
    pool: usize,
    /// Milliseconds between one node starting to join and the next.
    #[arg(long, default_value_t = 10)]
    join_interval_ms: u64,
    /// Fraction of nodes killed before the second round of gets (0 to 1).
    #[arg(long, default_value_t = 0.3)]
    kill: f64,
    /// Fraction of nodes that turn malicious after joining (0 to 1): they answer lookups with
    /// each other and keep nothing they are asked to store.
    #[arg(long, default_value_t = 0.0)]
    malicious: f64,
    /// Disjoint paths per lookup (S/Kademlia); 1 is plain Kademlia.
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    paths: NonZeroUsize,
    /// Bucket size and replication factor k.
    #[arg(long, default_value_t = NonZeroUsize::new(20).unwrap_or(NonZeroUsize::MIN))]
    k: NonZeroUsize,
    /// Parallel requests per lookup (alpha).
    #[arg(long, default_value_t = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN))]
    alpha: NonZeroUsize,
}

/// Resident memory of this process, in bytes (0 where `/proc` is missing).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    cairn_core::report::resident_bytes_from_statm(&statm)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.nodes == 0
        || !(0.0..=1.0).contains(&args.kill)
        || !(0.0..1.0).contains(&args.malicious)
        || args.latency_max_ms < args.latency_min_ms
    {
        eprintln!(
            "cairn-sim: need --nodes >= 1, 0 <= --kill <= 1, 0 <= --malicious < 1 and --latency-max-ms >= --latency-min-ms"
        );
        return ExitCode::from(2);
    }
    let scenario = Scenario {
        nodes: args.nodes,
        items: args.items,
        seed: args.seed,
        latency: match args.latency.as_str() {
            "uniform" => Latency::Uniform(
                Duration::from_millis(args.latency_min_ms),
                Duration::from_millis(args.latency_max_ms),
            ),
            _ => Latency::Regions,
        },
        transport: match args.connections.as_str() {
            "free" => None,
            mode => Some(Transport {
                pool: args.pool.max(1),
                pipelining: mode == "pipelined",
                ..Transport::default()
            }),
        },
        join_interval: Duration::from_millis(args.join_interval_ms),
        kill_fraction: args.kill,
        malicious_fraction: args.malicious,
        config: Config {
            k: args.k,
            alpha: args.alpha,
            disjoint_paths: args.paths,
            ..Config::default()
        },
        ..Scenario::default()
    };
    let before = resident_bytes();
    let mut report = scenario::run(&scenario);
    report.network.memory_per_node_bytes =
        resident_bytes().saturating_sub(before) / args.nodes as u64;
    print!("{report}");
    ExitCode::SUCCESS
}
