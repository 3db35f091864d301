//! `cairn bench`: a load generator. It drives one node over loopback with many clients, over
//! TCP and over datagrams, and reports, for each kind of request and each transport, how many
//! the node answered per second and how long they took.
//!
//! Without `--target` it starts a node of its own in this process, in memory, with rate limits
//! (requests, stores, datagram handshakes) and store shares out of the way, so that the figures
//! are the node's speed rather than its limits; with `--target` it measures a running node,
//! whose limits then apply. It first stores the items it will look up (half signed, half
//! immutable), then runs each workload in turn for `--seconds`, on each transport of
//! `--transport`: every client keeps `--in-flight` requests outstanding, sending a batch and
//! reading its answers. A request's latency is the time from its batch going out to its
//! answer. How each transport's clients work: [`tcp`] and [`udp`].

mod tcp;
mod udp;

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
    /// Clients per transport (a TCP connection, or a datagram session), each on a thread of
    /// its own.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests each client keeps in flight.
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
    /// Which transports to measure each workload over.
    #[arg(long, value_enum, default_value_t = Transport::Both)]
    transport: Transport,
}

/// The transports a request can go over, as `--transport` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    /// TCP connections past the handshake.
    Tcp,
    /// Datagram sessions (protocol version 2).
    Datagrams,
    /// Both, each workload over TCP and then over datagrams.
    Both,
}

impl Transport {
    /// The transports a run over `self` measures.
    fn each(self) -> Vec<Transport> {
        match self {
            Transport::Both => vec![Transport::Tcp, Transport::Datagrams],
            one => vec![one],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Datagrams => "datagrams",
            Transport::Both => "both",
        }
    }
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

/// What the clients of one workload saw.
#[derive(Default)]
struct Tally {
    /// Each answered request's latency, in milliseconds.
    latencies_ms: Vec<f64>,
    /// Requests that got no answer (over datagrams, after every try).
    lost: u64,
    /// Datagrams sent again for want of an answer in time (`initial`s and requests).
    resent: u64,
}

impl Tally {
    /// A request sent at `sent` was answered now.
    fn answered(&mut self, sent: Instant) {
        self.latencies_ms
            .push(sent.elapsed().as_secs_f64() * 1_000.0);
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_ms.extend(other.latencies_ms);
        self.lost += other.lost;
        self.resent += other.resent;
    }
}

/// One workload's figures over one transport.
struct Measured {
    name: &'static str,
    transport: Transport,
    /// Requests the clients kept outstanding at once, all together.
    at_once: usize,
    answered: u64,
    lost: u64,
    resent: u64,
    per_second: f64,
    latency_ms: Quantiles,
}

impl Measured {
    fn new(
        (name, transport, at_once): (&'static str, Transport, usize),
        tally: Tally,
        seconds: f64,
    ) -> Self {
        let answered = tally.latencies_ms.len() as u64;
        Measured {
            name,
            transport,
            at_once,
            answered,
            lost: tally.lost,
            resent: tally.resent,
            per_second: answered as f64 / seconds,
            latency_ms: Quantiles::of(tally.latencies_ms),
        }
    }

    fn print(&self) {
        let unit = if self.name == "handshake" {
            "handshakes/s"
        } else {
            "requests/s"
        };
        println!(
            "  {:<16} {:<9} {:>9.0} {unit:<12} ({} answered, {} lost, {} resent, {} at once)  \
             latency p50 {:.2} ms  p99 {:.2} ms",
            self.name,
            self.transport.name(),
            self.per_second,
            self.answered,
            self.lost,
            self.resent,
            self.at_once,
            self.latency_ms.p50,
            self.latency_ms.p99
        );
    }
}

/// What a workload sends: the `n`th request of client `c`.
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
                .handshake_rate(Rate::UNLIMITED)
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
    let header = format!(
        "cairn bench: {target}; per transport, clients: {}, in flight each: {}; seconds each: {}",
        args.connections, args.in_flight, args.seconds
    );
    let result = tokio::task::spawn_blocking(move || measure(target, &args, seconds)).await?;
    if let Some(dht) = own {
        dht.shutdown().await;
    }
    let measured = result?;
    println!("{header}");
    for m in measured {
        m.print();
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

/// Stores the items, then runs every workload over each transport; returns the figures.
fn measure(
    target: SocketAddr,
    args: &BenchArgs,
    seconds: Duration,
) -> anyhow::Result<Vec<Measured>> {
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
    let node = udp::Node {
        addr: target,
        id: loader.node_id(),
    };
    let transports = args.transport.each();
    let mut measured = Vec::new();
    if wanted(args, "handshake") {
        for &transport in &transports {
            measured.push(handshakes(node, args, seconds, transport)?);
        }
    }
    let keys: Arc<Vec<Key>> = Arc::new(items.iter().map(|i| *i.key()).collect());
    for (name, workload) in workloads(keys).into_iter().filter(|(n, _)| wanted(args, n)) {
        let workload: Arc<Workload> = Arc::from(workload);
        for &transport in &transports {
            let run = (name, transport, args.connections * args.in_flight);
            let (tally, elapsed) = clients(args, name, transport, |c| {
                let (in_flight, workload) = (args.in_flight, workload.clone());
                move || match transport {
                    Transport::Datagrams => {
                        udp::warm_client(node, c, in_flight, seconds, name, &*workload)
                    }
                    _ => tcp::client(target, c, in_flight, seconds, name, &*workload),
                }
            })?;
            measured.push(Measured::new(run, tally, elapsed));
        }
    }
    Ok(measured)
}

/// The workloads after `handshake`, by name as printed; `hits` are the keys of the items stored
/// first.
fn workloads(hits: Arc<Vec<Key>>) -> Vec<(&'static str, Box<Workload>)> {
    let fresh = |c: usize, n: u64| -> Item {
        let value = Bytes::from([c.to_be_bytes(), n.to_be_bytes()].concat());
        ImmutableItem::new(value).into()
    };
    let signer = SigningKey::from_bytes(&[8; 32]);
    vec![
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
    ]
}

fn answer(message: Message) -> Option<Response> {
    match message {
        Message::Response { response, .. } => Some(response),
        _ => None,
    }
}

/// The `handshake` workload over `transport`: over TCP, connections one after another; over
/// datagrams, every client keeps `--in-flight` first exchanges going.
fn handshakes(
    node: udp::Node,
    args: &BenchArgs,
    seconds: Duration,
    transport: Transport,
) -> anyhow::Result<Measured> {
    let name = "handshake";
    if transport != Transport::Datagrams {
        let started = Instant::now();
        let tally = tcp::handshakes(node.addr, seconds)?;
        let elapsed = started.elapsed().as_secs_f64();
        return Ok(Measured::new((name, transport, 1), tally, elapsed));
    }
    let in_flight = args.in_flight;
    let (tally, elapsed) = clients(args, name, transport, |c| {
        move || udp::handshake_client(node, c, in_flight, seconds)
    })?;
    let run = (name, transport, args.connections * in_flight);
    Ok(Measured::new(run, tally, elapsed))
}

/// Runs `--connections` clients of `transport`, each on a thread of its own, and adds up what
/// they saw; also returns the seconds they took. `client(c)` makes client `c`'s work. The
/// datagram clients are numbered after the TCP ones, so that their stores are items of
/// their own.
fn clients<F>(
    args: &BenchArgs,
    name: &str,
    transport: Transport,
    client: impl Fn(usize) -> F,
) -> anyhow::Result<(Tally, f64)>
where
    F: FnOnce() -> anyhow::Result<Tally> + Send + 'static,
{
    let first = match transport {
        Transport::Datagrams => args.connections,
        _ => 0,
    };
    let threads: Vec<_> = (first..first + args.connections)
        .map(|c| std::thread::spawn(client(c)))
        .collect();
    let started = Instant::now();
    let mut all = Tally::default();
    for thread in threads {
        let tally = thread
            .join()
            .map_err(|_| anyhow::anyhow!("{name}: a client's thread panicked"))??;
        all.merge(tally);
    }
    Ok((all, started.elapsed().as_secs_f64()))
}
