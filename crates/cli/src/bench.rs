//! `cairn bench`: a load generator. It drives one node over loopback TCP with many
//! connections and reports, for each kind of request, how many the node answered per second
//! and how long they took.
//!
//! Without `--target` it starts a node of its own in this process, in memory, with rate limits
//! and store shares out of the way, so that the figures are the node's speed rather than its
//! limits; with `--target` it measures a running node, whose limits then apply. It first stores the items it will look up
//! (half signed, half immutable), then runs each workload in turn for `--seconds`: every
//! connection keeps `--in-flight` requests outstanding, sending a batch and reading its
//! answers. A request's latency is the time from its batch going out to its answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_node::cairn_core::{
    Id, ImmutableItem, Item, Key, Message, Request, Response, SignedItem, StoreLimits,
};
use cairn_node::{Config, Rate};
use cairn_report::Quantiles;
use clap::Args;
use ed25519_dalek::SigningKey;

use crate::peer::Peer;

/// Arguments of `cairn bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A running node to measure (its peer address); without it, a node of this process with
    /// rate limits off.
    #[arg(long, value_name = "ADDR", value_parser = crate::parse_addr)]
    target: Option<SocketAddr>,
    /// Connections, each on a thread of its own.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests each connection keeps in flight.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Seconds each workload runs.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Items stored first, for the find_value hits.
    #[arg(long, default_value_t = 1_000)]
    items: usize,
    /// Run only this workload (to profile one kind of request): handshake, ping, find_node,
    /// find_value_hit, find_value_miss, store_immutable or store_signed.
    #[arg(long, value_name = "WORKLOAD", value_parser = parse_workload)]
    only: Option<String>,
}

/// The workloads, as `--only` names them.
const WORKLOADS: [&str; 7] = [
    "handshake",
    "ping",
    "find_node",
    "find_value_hit",
    "find_value_miss",
    "store_immutable",
    "store_signed",
];

fn parse_workload(text: &str) -> Result<String, String> {
    if WORKLOADS.contains(&text) {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not one of {}", WORKLOADS.join(", ")))
    }
}

/// Whether `--only` lets the workload called `name` (as printed) run.
fn wanted(args: &BenchArgs, name: &str) -> bool {
    args.only
        .as_deref()
        .is_none_or(|only| only == name.replace(' ', "_"))
}

/// One workload's figures.
struct Measured {
    name: &'static str,
    answered: u64,
    per_second: f64,
    latency_ms: Quantiles,
}

/// What a workload sends: the `n`th request of connection `c`.
type Workload = dyn Fn(usize, u64) -> Request + Send + Sync;

/// `cairn bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let seconds_ok = args.seconds.is_finite() && args.seconds > 0.0;
    if args.connections == 0 || args.in_flight == 0 || !seconds_ok {
        bail!("--connections, --in-flight and --seconds must be above 0");
    }
    let (target, own) = match args.target {
        Some(addr) => (addr, None),
        None => {
            let config = Config::default()
                .listen("127.0.0.1:0".parse()?)
                .request_rate(Rate::UNLIMITED)
                .store_rate(Rate::UNLIMITED)
                .max_inbound_per_host(args.connections.max(16) * 2)
                // Room for every store the workloads make, all from one loopback network.
                .limits(StoreLimits {
                    max_items: 10_000_000,
                    max_bytes: 4 << 30,
                    max_items_per_subnet: 10_000_000,
                    max_bytes_per_subnet: 4 << 30,
                });
            let dht = cairn_node::start(config).await.context("starting a node")?;
            let status = dht.status().await.context("the node stopped")?;
            (status.listen, Some(dht))
        }
    };
    let seconds = Duration::from_secs_f64(args.seconds);
    let result = tokio::task::spawn_blocking(move || measure(target, &args, seconds)).await?;
    if let Some(dht) = own {
        dht.shutdown().await;
    }
    let (handshakes, measured) = result?;
    match handshakes {
        Some(rate) => println!("cairn bench: {target}, {rate:.0} handshakes/s"),
        None => println!("cairn bench: {target}"),
    }
    for m in measured {
        println!(
            "  {:<18} {:>9.0}/s  ({} answered)  latency p50 {:.2} ms  p99 {:.2} ms",
            m.name, m.per_second, m.answered, m.latency_ms.p50, m.latency_ms.p99
        );
    }
    Ok(())
}

fn item(n: usize) -> Item {
    let key = SigningKey::from_bytes(&[7; 32]);
    let value = Bytes::from(n.to_be_bytes().repeat(32));
    if n % 2 == 0 {
        ImmutableItem::new(value).into()
    } else {
        match SignedItem::sign(&key, &format!("bench-{n}"), value.clone(), 1, 0) {
            Ok(item) => item.into(),
            Err(_) => ImmutableItem::new(value).into(),
        }
    }
}

/// Stores the items, then runs every workload; returns handshakes/s and the figures.
fn measure(
    target: SocketAddr,
    args: &BenchArgs,
    seconds: Duration,
) -> anyhow::Result<(Option<f64>, Vec<Measured>)> {
    let handshakes = if wanted(args, "handshake") {
        Some(handshake_rate(target, seconds)?)
    } else {
        None
    };
    let items: Vec<Item> = (0..args.items.max(1)).map(item).collect();
    let mut loader = Peer::connect(target, None, 200).context("connecting")?;
    for (n, item) in items.iter().enumerate() {
        let request = Request::Store { item: item.clone() };
        loader.send(&Message::Request {
            id: n as u64,
            request,
        })?;
        if !matches!(answer(loader.receive()?), Some(Response::Stored)) {
            bail!("the node did not store item {n}");
        }
    }
    let keys: Arc<Vec<Key>> = Arc::new(items.iter().map(|i| *i.key()).collect());
    let hits = keys.clone();
    let fresh = |c: usize, n: u64| -> Item {
        let value = Bytes::from([c.to_be_bytes(), n.to_be_bytes()].concat());
        ImmutableItem::new(value).into()
    };
    let signer = SigningKey::from_bytes(&[8; 32]);
    let workloads: Vec<(&'static str, Box<Workload>)> = vec![
        ("ping", Box::new(|_, _| Request::Ping)),
        (
            "find_node",
            Box::new(|c, n| Request::FindNode {
                target: Id::hash(&[c.to_be_bytes(), n.to_be_bytes()].concat()),
            }),
        ),
        (
            "find_value hit",
            Box::new(move |c, n| Request::FindValue {
                key: hits[(c * 7_919 + n as usize) % hits.len()],
            }),
        ),
        (
            "find_value miss",
            Box::new(|c, n| Request::FindValue {
                key: Id::hash(&[n.to_be_bytes(), c.to_be_bytes()].concat()),
            }),
        ),
        (
            "store immutable",
            Box::new(move |c, n| Request::Store { item: fresh(c, n) }),
        ),
        (
            "store signed",
            Box::new(move |c, n| {
                let name = format!("load-{c}-{n}");
                match SignedItem::sign(&signer, &name, Bytes::from_static(b"v"), 1, 0) {
                    Ok(item) => Request::Store { item: item.into() },
                    Err(_) => Request::Ping,
                }
            }),
        ),
    ];
    let mut measured = Vec::new();
    for (name, workload) in workloads.into_iter().filter(|(n, _)| wanted(args, n)) {
        measured.push(run_workload(
            target,
            args,
            seconds,
            name,
            Arc::from(workload),
        )?);
    }
    Ok((handshakes, measured))
}

fn answer(message: Message) -> Option<Response> {
    match message {
        Message::Response { response, .. } => Some(response),
        _ => None,
    }
}

/// Connections with full handshakes opened one after another for `seconds`.
fn handshake_rate(target: SocketAddr, seconds: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < seconds {
        // A ping proves the handshake completed before the connection closes.
        let mut peer = Peer::connect(target, None, 100).context("a handshake failed")?;
        peer.send(&Message::Request {
            id: 1,
            request: Request::Ping,
        })?;
        peer.receive()?;
        done += 1;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

fn run_workload(
    target: SocketAddr,
    args: &BenchArgs,
    seconds: Duration,
    name: &'static str,
    workload: Arc<Workload>,
) -> anyhow::Result<Measured> {
    let in_flight = args.in_flight;
    let threads: Vec<_> = (0..args.connections)
        .map(|c| {
            let workload = workload.clone();
            std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
                let mut peer = Peer::connect(target, None, c as u8)?;
                let mut latencies = Vec::new();
                let started = Instant::now();
                let mut n = 0u64;
                while started.elapsed() < seconds {
                    let sent = Instant::now();
                    for _ in 0..in_flight {
                        n += 1;
                        let request = workload(c, n);
                        peer.send(&Message::Request { id: n, request })?;
                    }
                    for _ in 0..in_flight {
                        match answer(peer.receive()?) {
                            Some(Response::Error(e)) => {
                                bail!("{name}: the node answered {} {}", e.code, e.message)
                            }
                            Some(_) => latencies.push(sent.elapsed().as_secs_f64() * 1_000.0),
                            None => bail!("{name}: the node sent something not an answer"),
                        }
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Vec::new();
    for thread in threads {
        let latencies = thread
            .join()
            .map_err(|_| anyhow::anyhow!("{name}: a connection's thread panicked"))??;
        all.extend(latencies);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Measured {
        name,
        answered: all.len() as u64,
        per_second: all.len() as f64 / elapsed,
        latency_ms: Quantiles::of(all),
    })
}
