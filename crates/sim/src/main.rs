//! `cairn-sim`: runs a scenario on a simulated network and prints what it measured.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cairn_core::Config;
use cairn_sim::churn::{self, Churn};
use cairn_sim::partition::{self, Partition};
use cairn_sim::scenario::{self, Scenario};
use cairn_sim::{Latency, Transport, plot};
use clap::{Args, Parser, Subcommand};

mod swarm_cli;
use serde::Serialize;

/// Runs cairn nodes (the real protocol state machines) on a simulated network with a virtual
/// clock. Every scenario joins N nodes and puts items from random nodes; what follows is the
/// scenario's. The same seed prints the same figures (all but the wall time).
#[derive(Parser, Debug)]
#[command(name = "cairn-sim", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    scenario: Option<Command>,
    /// Options of the default scenario, `kill`.
    #[command(flatten)]
    kill: KillArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Gets every item, kills a fraction of the nodes at once, gets every item again (the
    /// default scenario).
    Kill(KillArgs),
    /// Hours of continuous churn: nodes leave after heavy-tailed sessions and new ones join
    /// in their place, while gets run every minute; prints success and latency per window.
    Churn(ChurnArgs),
    /// Cuts the network in two halves for a while, puts and updates items on each side, heals
    /// the cut, and checks that every item is found from both sides at its newest version.
    Partition(PartitionArgs),
    /// The swarm test: the real nodes under random faults with random operations, checking
    /// invariants all along; `--seed S` replays one seed, `--seeds N` explores many.
    Swarm(swarm_cli::SwarmArgs),
    /// Draws SVG plots from the JSON reports of earlier runs (`--json`).
    Plot(PlotArgs),
}

/// Options every scenario shares.
#[derive(Args, Debug)]
struct Common {
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
    /// How requests travel: `datagrams` (over each node's datagram plane, protocol version 2:
    /// a new contact costs no connection, a lost datagram is sent again by the plane; what
    /// needs a stream or does not fit goes over TCP as `pipelined`), `pipelined` (over TCP: a
    /// new contact costs the TCP handshake's round trip before its first request, as cairn's
    /// version-1 driver does), `handshake` (also the hello/welcome round trip, without
    /// pipelining) or `free` (every connection already open).
    #[arg(long, default_value = "datagrams", value_parser = ["datagrams", "pipelined", "handshake", "free"])]
    connections: String,
    /// Connections each node keeps open at most (the driver's max_outbound).
    #[arg(long, default_value_t = 256)]
    pool: usize,
    /// Milliseconds between one node starting to join and the next.
    #[arg(long, default_value_t = 10)]
    join_interval_ms: u64,
    /// Disjoint paths per lookup (S/Kademlia); 1 is plain Kademlia.
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    paths: NonZeroUsize,
    /// Bucket size and replication factor k.
    #[arg(long, default_value_t = NonZeroUsize::new(20).unwrap_or(NonZeroUsize::MIN))]
    k: NonZeroUsize,
    /// Parallel requests per lookup (alpha).
    #[arg(long, default_value_t = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN))]
    alpha: NonZeroUsize,
    /// The least time a lookup request holds its slot before it counts as slow, in
    /// milliseconds (the nodes' min_slot_timeout). Setting it to the request timeout (2000)
    /// gives lookups without learned timeouts, for comparison.
    #[arg(long, default_value_t = 100)]
    min_slot_timeout_ms: u64,
    /// Also write the report as JSON to this file (for `cairn-sim plot`).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct KillArgs {
    #[command(flatten)]
    common: Common,
    /// Fraction of nodes killed before the second round of gets (0 to 1).
    #[arg(long, default_value_t = 0.3)]
    kill: f64,
    /// Fraction of nodes that turn malicious after joining (0 to 1): they answer lookups with
    /// each other and keep nothing they are asked to store.
    #[arg(long, default_value_t = 0.0)]
    malicious: f64,
    /// Fraction of nodes behind NATs (0 to 1): private nodes, which run as clients (they
    /// announce no address) and join through public nodes; the first 5 nodes stay public.
    /// See docs/simulation.md, "NATs".
    #[arg(long, default_value_t = 0.0)]
    private: f64,
    /// Fraction of the private nodes behind NATs that map each destination to a new random
    /// port ("masquerade random"); the others keep one port for every destination.
    #[arg(long, default_value_t = 0.25)]
    nat_random: f64,
    /// Private nodes announce themselves as public ones do (as every node did before client
    /// mode), to measure what client mode prevents.
    #[arg(long)]
    private_announce: bool,
    /// Virtual seconds the network runs with nothing asked of it between the puts and the
    /// first gets (NAT entries die after 30 s unreplied, 120 s replied).
    #[arg(long, default_value_t = 0)]
    quiet_s: u64,
    /// Private nodes' datagram planes drop a session after this many seconds with nothing
    /// received (the plane's default is 300): below a NAT's 120 s, no session outlives its
    /// mapping. For comparison; not what nodes do today.
    #[arg(long)]
    private_session_idle_s: Option<u64>,
}

#[derive(Args, Debug)]
struct ChurnArgs {
    #[command(flatten)]
    common: Common,
    /// Virtual hours of churn.
    #[arg(long, default_value_t = 6.0)]
    hours: f64,
    /// Median session length, in minutes.
    #[arg(long, default_value_t = 60.0)]
    median_session_min: f64,
    /// Weibull shape of session lengths (1: exponential; below 1: heavy-tailed).
    #[arg(long, default_value_t = 0.5)]
    shape: f64,
    /// Gets started each virtual minute.
    #[arg(long, default_value_t = 20)]
    gets_per_minute: usize,
    /// Length of the windows gets are summed up over, in minutes.
    #[arg(long, default_value_t = 10)]
    window_min: u64,
    /// Fraction of departing nodes whose host stays up and refuses connections; the others
    /// vanish silently.
    #[arg(long, default_value_t = 0.5)]
    refusing: f64,
}

#[derive(Args, Debug)]
struct PartitionArgs {
    #[command(flatten)]
    common: Common,
    /// Minutes the network stays cut.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Minutes after the heal at which every item is got a last time (one replication
    /// interval by default).
    #[arg(long, default_value_t = 60)]
    settle_min: u64,
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// `cdf` (get latency CDF of kill reports, before and after the kill), `churn` (success
    /// and latency per window of churn reports) or `hops` (get hops against log2 N, from kill
    /// reports of several sizes).
    #[arg(value_parser = ["cdf", "churn", "hops"])]
    kind: String,
    /// The SVG file to write.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: PathBuf,
    /// JSON reports written by `--json`; each is labelled by its file name.
    #[arg(required = true, value_name = "REPORT")]
    reports: Vec<PathBuf>,
}

/// Resident memory of this process, in bytes (0 where `/proc` is missing).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    cairn_report::resident_bytes_from_statm(&statm)
}

impl Common {
    fn scenario(&self) -> Result<Scenario, String> {
        if self.nodes == 0 {
            return Err("--nodes must be at least 1".into());
        }
        if self.latency_max_ms < self.latency_min_ms {
            return Err("--latency-max-ms must be at least --latency-min-ms".into());
        }
        Ok(Scenario {
            nodes: self.nodes,
            items: self.items,
            seed: self.seed,
            latency: match self.latency.as_str() {
                "uniform" => Latency::Uniform(
                    Duration::from_millis(self.latency_min_ms),
                    Duration::from_millis(self.latency_max_ms),
                ),
                _ => Latency::Regions,
            },
            transport: match self.connections.as_str() {
                "free" => None,
                mode => Some(Transport {
                    pool: self.pool.max(1),
                    pipelining: mode != "handshake",
                    datagrams: mode == "datagrams",
                    ..Transport::default()
                }),
            },
            join_interval: Duration::from_millis(self.join_interval_ms),
            config: Config {
                k: self.k,
                alpha: self.alpha,
                disjoint_paths: self.paths,
                min_slot_timeout: Duration::from_millis(self.min_slot_timeout_ms),
                ..Config::default()
            },
            ..Scenario::default()
        })
    }

    /// Writes `report` as JSON where `--json` says.
    fn write_json(&self, report: &impl Serialize) -> Result<(), String> {
        let Some(path) = &self.json else {
            return Ok(());
        };
        let text = serde_json::to_string(report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn kill(args: &KillArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.kill) || !(0.0..1.0).contains(&args.malicious) {
        return Err("need 0 <= --kill <= 1 and 0 <= --malicious < 1".into());
    }
    if !(0.0..=1.0).contains(&args.private) || !(0.0..=1.0).contains(&args.nat_random) {
        return Err("need 0 <= --private <= 1 and 0 <= --nat-random <= 1".into());
    }
    let scenario = Scenario {
        kill_fraction: args.kill,
        malicious_fraction: args.malicious,
        private_fraction: args.private,
        random_nat_fraction: args.nat_random,
        private_announce: args.private_announce,
        quiet: Duration::from_secs(args.quiet_s),
        private_session_idle: args.private_session_idle_s.map(Duration::from_secs),
        ..args.common.scenario()?
    };
    let before = resident_bytes();
    let mut report = scenario::run(&scenario);
    report.network.memory_per_node_bytes =
        resident_bytes().saturating_sub(before) / scenario.nodes as u64;
    print!("{report}");
    let mut goals = goals_kill(&report, scenario.latency);
    if report.nat.totals.private > 0 {
        goals.extend(goals_nat(&report));
    }
    print_goals(&goals);
    args.common.write_json(&report)
}

fn churn(args: &ChurnArgs) -> Result<(), String> {
    if !(args.hours > 0.0 && args.median_session_min > 0.0 && args.shape > 0.0)
        || args.window_min == 0
        || !(0.0..=1.0).contains(&args.refusing)
    {
        return Err(
            "need --hours, --median-session-min and --shape above 0, --window-min of at least 1 and 0 <= --refusing <= 1"
                .into(),
        );
    }
    let churn = Churn {
        base: args.common.scenario()?,
        duration: Duration::from_secs_f64(args.hours * 3_600.0),
        median_session: Duration::from_secs_f64(args.median_session_min * 60.0),
        shape: args.shape,
        gets_per_minute: args.gets_per_minute,
        window: Duration::from_secs(args.window_min * 60),
        refusing: args.refusing,
    };
    let before = resident_bytes();
    let mut report = churn::run(&churn);
    report.network.memory_per_node_bytes =
        resident_bytes().saturating_sub(before) / args.common.nodes as u64;
    print!("{report}");
    print_goals(&[Goal {
        what: "at least 99% of gets succeed in every window".into(),
        met: report.gets.attempted > 0 && report.worst_window_percent >= 99.0,
        measured: format!(
            "worst window {:.2}%, {} gets in all",
            report.worst_window_percent, report.gets.attempted
        ),
    }]);
    args.common.write_json(&report)
}

fn partition(args: &PartitionArgs) -> Result<(), String> {
    if args.minutes == 0 {
        return Err("--minutes must be at least 1".into());
    }
    if args.common.nodes < 2 {
        return Err("a partition needs --nodes of at least 2, one for each side".into());
    }
    let partition = Partition {
        base: args.common.scenario()?,
        cut: Duration::from_secs(args.minutes * 60),
        settle: Duration::from_secs(args.settle_min * 60),
    };
    let before = resident_bytes();
    let mut report = partition::run(&partition);
    report.network.memory_per_node_bytes =
        resident_bytes().saturating_sub(before) / args.common.nodes as u64;
    print!("{report}");
    print_goals(&[Goal {
        what: "after the heal, every item is found from both sides at its newest seq".into(),
        met: report
            .healed
            .iter()
            .all(|o| o.attempted > 0 && o.succeeded == o.attempted),
        measured: format!(
            "{:.2}% and {:.2}% right after, {:.2}% and {:.2}% {} min later",
            report.healed[0].success_percent,
            report.healed[1].success_percent,
            report.settled[0].success_percent,
            report.settled[1].success_percent,
            args.settle_min
        ),
    }]);
    args.common.write_json(&report)
}

/// One of the goals, as this run measured it.
struct Goal {
    what: String,
    met: bool,
    measured: String,
}

/// The goals of "Lookups that stay fast on a real wide-area network" a kill run speaks to.
fn goals_kill(report: &scenario::Report, latency: Latency) -> Vec<Goal> {
    let gets = &report.network.gets;
    let after = &report.after_kill;
    // One round trip per hop is the least a hop can cost; the model's mean round trip between
    // two random nodes is the yardstick.
    let mean_rtt = latency.mean_round_trip().as_secs_f64() * 1_000.0;
    vec![
        Goal {
            what: format!(
                "get p50 at most 2 round trips per hop ({} hops x 2 x {mean_rtt:.0} ms mean round trip)",
                gets.hops.p50
            ),
            met: gets.succeeded > 0 && gets.latency_ms.p50 <= gets.hops.p50 * 2.0 * mean_rtt,
            measured: format!("p50 {:.0} ms", gets.latency_ms.p50),
        },
        Goal {
            what: "get p99 under 1.5 s with everyone alive".into(),
            met: gets.succeeded > 0
                && gets.latency_ms.p99 < 1_500.0
                && gets.succeeded == gets.attempted,
            measured: format!(
                "p99 {:.0} ms, {:.2}% ok",
                gets.latency_ms.p99, gets.success_percent
            ),
        },
        Goal {
            what: format!(
                "after {} nodes die at once: 99.9% of gets succeed, p99 under 2 s",
                report.killed
            ),
            met: after.succeeded > 0
                && after.success_percent >= 99.9
                && after.latency_ms.p99 < 2_000.0,
            measured: format!(
                "{:.2}% ok, p99 {:.0} ms",
                after.success_percent, after.latency_ms.p99
            ),
        },
        Goal {
            what: "network-size estimate within 25% at the median node".into(),
            met: report.size_estimate.nodes > 1
                && report.size_estimate.median_error_percent <= 25.0,
            measured: report.size_estimate.to_string(),
        },
    ]
}

/// The goals of issue 22 (NATs) a kill run with private nodes speaks to.
fn goals_nat(report: &scenario::Report) -> Vec<Goal> {
    let (gets, nat) = (&report.network.gets, &report.nat);
    vec![
        Goal {
            what: format!(
                "with {} of {} nodes private: 99.9% of gets succeed",
                nat.totals.private, report.network.nodes
            ),
            met: gets.succeeded > 0 && gets.success_percent >= 99.9,
            measured: format!(
                "{:.2}% ok ({:.2}% by private nodes, {:.2}% by public)",
                gets.success_percent,
                nat.gets_private.success_percent,
                nat.gets_public.success_percent
            ),
        },
        Goal {
            what: "no public node's routing table holds a private node, at any time".into(),
            met: nat.totals.private_in_public_tables == 0
                && nat.private_in_public_tables_at_end == 0,
            measured: format!(
                "{} additions over the run, {} at the end",
                nat.totals.private_in_public_tables, nat.private_in_public_tables_at_end
            ),
        },
    ]
}

fn print_goals(goals: &[Goal]) {
    println!("goals (from the issue; printed, not asserted):");
    for goal in goals {
        let mark = if goal.met { "met    " } else { "NOT met" };
        println!("  {mark}  {}: {}", goal.what, goal.measured);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.scenario {
        None => kill(&cli.kill),
        Some(Command::Kill(args)) => kill(args),
        Some(Command::Churn(args)) => churn(args),
        Some(Command::Partition(args)) => partition(args),
        Some(Command::Plot(args)) => plot::draw(&args.kind, &args.out, &args.reports)
            .map(|written| println!("wrote {written}")),
        Some(Command::Swarm(args)) => match swarm_cli::swarm(args) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(message) => Err(message),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cairn-sim: {message}");
            ExitCode::from(2)
        }
    }
}
