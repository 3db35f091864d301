//! `cairn testnet`: a whole network on loopback addresses, in this process or spread over
//! worker processes, measured.

mod soak;

use std::sync::Mutex;

use anyhow::Context;
use cairn_testnet::{self as testnet, Plan, Progress, TestnetReport, WorkerCommand};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Arguments of `cairn testnet`.
#[derive(Args, Debug)]
pub struct TestnetArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// Items to put from random nodes and get from others (half signed, half immutable).
    #[arg(long, default_value_t = 200)]
    items: usize,
    /// Seed of the random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Joins, puts or gets in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Processes to spread the nodes over (this one included). By default, as many as let
    /// every node keep a listener and a pool of 48 connections within each process's limit on
    /// open files: one per 136 nodes at a limit of 20,000 (2 for 200 nodes, 74 for 10,000).
    /// More processes give larger pools (faster puts, more memory).
    #[arg(long)]
    processes: Option<usize>,
    /// Print the report as one JSON object on stdout (no progress bars).
    #[arg(long)]
    json: bool,
    /// Watch it work: serve a live dashboard of the whole network (every node on the ring,
    /// their items, each lookup as it hops) from the moment the nodes start, then keep the
    /// network busy with a put or a get every half second until Ctrl-C. Node 0's API, its
    /// metrics included, is served at the same address. Runs every node in this process.
    #[arg(long)]
    serve: bool,
    /// Where --serve serves the dashboard and node 0's API.
    #[arg(long, value_name = "ADDR", default_value = crate::DEFAULT_API)]
    api: std::net::SocketAddr,
    /// How the nodes reach each other: `datagrams` (protocol version 2: lookups over UDP, TCP
    /// for what needs a stream) or `tcp` (version-1 nodes, TCP only), to compare the two.
    #[arg(long, value_name = "TRANSPORT", default_value = "datagrams", value_parser = ["datagrams", "tcp"])]
    transport: String,
    /// Soak the network for DURATION (`90s`, `30m`, `2h`) instead of the workload above: every
    /// node on a data directory of its own, all in worker processes, under a steady load of
    /// puts, gets, deletes and watches (--items names, --concurrency at once) while workers are
    /// killed with SIGKILL and started again and single nodes are stopped and started (the
    /// load goes on past DURATION until each has happened once). Prints a line of figures
    /// every --report-every, then checks every acknowledged write: the run fails if any was
    /// lost.
    #[arg(long, value_name = "DURATION", value_parser = crate::commands::parse_duration)]
    soak: Option<u64>,
    /// With --soak: keep the nodes' data directories in DIR (`DIR/node-I`) instead of a
    /// temporary directory removed at the end.
    #[arg(long, value_name = "DIR", requires = "soak")]
    data: Option<std::path::PathBuf>,
    /// With --soak: time between chaos events (a worker killed, or one node stopped).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = crate::commands::parse_duration)]
    chaos_every: u64,
    /// With --soak: how long a killed worker or a stopped node stays down.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::commands::parse_duration)]
    downtime: u64,
    /// With --soak: how often a line of figures is printed.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::commands::parse_duration)]
    report_every: u64,
    /// With --soak: how long the network settles after the chaos stops, before every
    /// acknowledged write is checked.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = crate::commands::parse_duration)]
    settle: u64,
}

/// Arguments of the hidden `cairn testnet-worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Number of the worker's first node in the whole network.
    #[arg(long)]
    first: usize,
    /// Distance between the numbers of its nodes (the number of processes).
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Nodes the worker runs.
    #[arg(long)]
    count: usize,
    /// The nodes speak TCP only (version 1).
    #[arg(long)]
    tcp_only: bool,
    /// Keep each node's items, key and routing snapshot in `DIR/node-I` (a soak's worker).
    #[arg(long, value_name = "DIR")]
    data: Option<std::path::PathBuf>,
}

/// Progress bars on stderr, one per stage.
struct Bars {
    current: Mutex<Option<ProgressBar>>,
    hidden: bool,
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: u64) {
        let bar = if self.hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        };
        let style = ProgressStyle::with_template("{msg:>15} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(name.to_owned());
        if let Ok(mut current) = self.current.lock() {
            *current = Some(bar);
        }
    }
    fn step(&self) {
        if let Ok(current) = self.current.lock() {
            current.iter().for_each(|bar| bar.inc(1));
        }
    }
    fn finish(&self) {
        if let Ok(mut current) = self.current.lock() {
            if let Some(bar) = current.take() {
                bar.finish();
            }
        }
    }
}

fn print_report(t: &TestnetReport) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "cairn testnet: {} nodes on 127.a.b.1 loopback addresses",
        t.report.nodes
    );
    print!("{}", t.report);
    println!(
        "  throughput       {:.0} puts/s, {:.0} gets/s ({} in flight)",
        t.puts_per_s, t.gets_per_s, t.concurrency
    );
    println!(
        "  processes        {}: {:.1} MiB -> {:.1} MiB resident in all",
        t.processes,
        mib(t.rss_before_bytes),
        mib(t.rss_after_bytes)
    );
    println!(
        "  messages         {} requests between nodes during the puts and gets",
        t.messages
    );
    println!(
        "  connections      {} open at the end, budget {} at once, {} times exhausted, {} dials failed",
        t.connections_open, t.connection_budget, t.budget_exhausted, t.dial_failures
    );
    println!(
        "  setups           {:.1} connections opened per put, {:.1} per get",
        t.connections_per_put, t.connections_per_get
    );
    println!("  wall time        {:.2} s", t.wall_s);
}

/// `cairn testnet`.
pub async fn run(args: TestnetArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(args.processes != Some(0), "--processes must be at least 1");
    anyhow::ensure!(
        !args.serve || args.processes.is_none_or(|p| p == 1),
        "--serve runs every node in this process, so that the dashboard can show them all; drop --processes"
    );
    let program = std::env::current_exe().context("cannot find this program to start workers")?;
    if let Some(seconds) = args.soak {
        anyhow::ensure!(!args.serve, "--soak and --serve do not go together");
        return soak::run(&args, program, seconds).await;
    }
    let plan = Plan {
        nodes: args.nodes,
        items: args.items,
        seed: args.seed,
        concurrency: args.concurrency.max(1),
        processes: args.processes,
        worker: Some(WorkerCommand {
            program,
            args: if args.transport == "tcp" {
                vec!["testnet-worker".into(), "--tcp-only".into()]
            } else {
                vec!["testnet-worker".into()]
            },
        }),
        serve: args.serve.then_some(args.api),
        datagrams: args.transport != "tcp",
    };
    if args.serve {
        // Printed first: the dashboard is live from the moment the nodes start.
        eprintln!(
            "dashboard: http://{}/ (live as soon as the nodes start)",
            args.api
        );
    }
    let bars = Bars {
        current: Mutex::new(None),
        hidden: args.json,
    };
    let (mut net, report) = testnet::run(&plan, &bars)
        .await
        .context("cannot start the test network")?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    if args.serve {
        eprintln!(
            "dashboard: http://{0}/ · metrics: http://{0}/metrics · a put or a get every 0.5 s; press Ctrl-C to stop",
            args.api
        );
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let ran = net
            .keep_busy(args.seed, std::time::Duration::from_millis(500), stop)
            .await;
        eprintln!("stopping after {ran} more operations");
    }
    net.shutdown().await;
    Ok(())
}

/// `cairn testnet-worker`: serves one share of a spread test network until its input closes.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.count >= 1, "--count must be at least 1");
    testnet::serve_worker(
        args.first,
        args.stride,
        args.count,
        !args.tcp_only,
        args.data,
    )
    .await
    .context("testnet worker")
}
