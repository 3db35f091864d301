//! `cairn`: run a DHT node, publish and fetch items through it, or start a local test network.

mod bench;
mod commands;
mod docs;
mod logging;
mod node;
mod peer;
mod testnet;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The local API address the client commands use unless told otherwise.
pub const DEFAULT_API: &str = "127.0.0.1:7401";

/// cairn: a peer-to-peer distributed hash table (Kademlia over TCP, signed items).
///
/// Run `cairn node` to start a node; `cairn put`, `cairn get`, `cairn delete`, `cairn watch`,
/// `cairn status` and `cairn id` talk to a running node through its local HTTP API. `cairn testnet` starts a whole network
/// on loopback addresses (127.a.b.1, one per node) and measures it.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// How log lines on standard error are written: `text` for a person, `json` for a log
    /// system (one object a line; every line carries `node_id` once the node has started).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a node in the foreground until SIGINT or SIGTERM.
    Node(node::NodeArgs),
    /// Print a complete, commented config file with every key set to its default (or to its
    /// value in --config FILE), for `cairn node --config`.
    ///
    /// Example:
    ///   cairn config > cairn.toml
    #[command(verbatim_doc_comment)]
    Config(node::ConfigArgs),
    /// Publish a value: signed under NAME with the node's key, or --immutable (keyed by hash).
    ///
    /// The value is VALUE, the contents of --file PATH, or standard input when VALUE is `-`
    /// or absent. Prints PUBLIC_KEY/NAME (signed) or KEY (immutable), for `cairn get`.
    ///
    /// Examples:
    ///   cairn put greeting "hello world" --ttl 1h
    ///   cairn put photo --file cat.jpg
    ///   echo data | cairn put --immutable -
    #[command(verbatim_doc_comment)]
    Put(commands::PutArgs),
    /// Fetch a value by PUBLIC_KEY/NAME (a signed item) or by KEY (any item), to stdout or -o FILE.
    ///
    /// Exits 1 with "deleted" when the item was deleted by its publisher.
    Get(commands::GetArgs),
    /// Delete an item this node published (a signed tombstone that stale copies cannot undo).
    ///
    /// A later `cairn put` of the same NAME brings it back. Immutable items cannot be deleted.
    ///
    /// Example:
    ///   cairn delete greeting
    #[command(verbatim_doc_comment)]
    Delete(commands::DeleteArgs),
    /// Print each new version of PUBLIC_KEY/NAME or KEY as it arrives (the newest first).
    ///
    /// Subscribes at the nodes closest to the key and follows them as the network changes.
    /// A deletion prints "(deleted, seq N)". Runs until Ctrl-C.
    ///
    /// Example:
    ///   cairn watch 03a1...b8/greeting
    #[command(verbatim_doc_comment)]
    Watch(commands::WatchArgs),
    /// Show the running node's state.
    Status(commands::ApiArgs),
    /// Print the running node's id and public key.
    Id(commands::ApiArgs),
    /// Reach the node with PUBLIC_KEY and print how (direct; punched through its NAT, asked by
    /// a rendezvous; or relayed by that rendezvous) and the round trip of a ping.
    ///
    /// A server is found by a lookup; a node behind a NAT by the rendezvous record it
    /// publishes. Exits 1 when no way reached it.
    ///
    /// Example:
    ///   cairn ping 03a1...b8
    #[command(verbatim_doc_comment)]
    Ping(commands::PingArgs),
    /// Open a byte stream to the node with PUBLIC_KEY and pipe standard input and output
    /// through it (netcat by key).
    ///
    /// The node is reached as `cairn ping` reaches it (direct, punched or relayed; standard
    /// error says which), then a QUIC stream, encrypted and proven to end at that key, carries
    /// the bytes. The other node must be waiting in `cairn listen`. A relayed stream carries
    /// what its relay allows, 128 KiB by default: for getting in touch, not for bulk. Exits 0
    /// once both sides' bytes ended and the other side has all of this side's.
    ///
    /// Example:
    ///   echo hello | cairn connect 03a1...b8
    #[command(verbatim_doc_comment)]
    Connect(commands::PingArgs),
    /// Wait for one byte stream another node opens to this one (`cairn connect`), and pipe
    /// standard input and output through it.
    ///
    /// Standard error says `cairn: listening` once the node takes streams (it refuses them
    /// while nothing listens), then names the other node's key when one arrives.
    ///
    /// Example:
    ///   cairn listen > received.bin
    #[command(verbatim_doc_comment)]
    Listen(commands::ApiArgs),
    /// Start N nodes on loopback addresses, put and get items, and report.
    ///
    /// About 136 nodes run in each process (this one, then worker processes it starts; see
    /// --processes), so that every node can keep its connections open within the limit on
    /// open files of each process.
    Testnet(testnet::TestnetArgs),
    /// One share of a test network spread over processes, driven by `cairn testnet` over
    /// standard input and output (not for use by hand).
    #[command(hide = true)]
    TestnetWorker(testnet::WorkerArgs),
    /// Load one node (its own, or --target ADDR) over many connections and report requests/s
    /// and latency for each kind of request, and handshakes/s.
    Bench(bench::BenchArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish or powershell).
    ///
    /// Example:
    ///   cairn completions bash > ~/.local/share/bash-completion/completions/cairn
    #[command(verbatim_doc_comment)]
    Completions(docs::CompletionsArgs),
    /// Print the man page, in roff: cairn(1), or cairn-SUBCOMMAND(1) with that one's options.
    ///
    /// Example:
    ///   cairn man > cairn.1 && cairn man node > cairn-node.1 && man ./cairn.1
    #[command(verbatim_doc_comment)]
    Man(docs::ManArgs),
}

/// Parses an address, with a message that says what was expected.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:7401 or [::1]:7401"))
}

/// Resolves `host:port` (or takes an IP address as it is). A name with several addresses
/// gives its first IPv4 one (the API's default, 127.0.0.1, is IPv4, and `localhost` lists
/// `::1` first on many systems), else its first: one socket, one address, so that what the
/// log says is where the node is. `what` names the flag in the error.
pub async fn resolve_addr(text: &str, what: &str) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host(text)
        .await
        .with_context(|| format!("cannot resolve {what} {text:?} (expected host:port)"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .with_context(|| format!("{what} {text:?} resolves to no address"))
}

/// The platform data directory for a node's files.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("cairn")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let check = match &cli.command {
        Cmd::Node(args) => args.check_config(),
        _ => None,
    };
    if let Some(path) = check {
        return node::check_config(path);
    }
    logging::init(
        if matches!(cli.command, Cmd::Node(_)) {
            "info"
        } else {
            "warn"
        },
        cli.log_format,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cairn: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Cmd::Node(args) => node::run(args).await,
            Cmd::Config(args) => node::print_config(args),
            Cmd::Put(args) => commands::put(args).await,
            Cmd::Get(args) => commands::get(args).await,
            Cmd::Delete(args) => commands::delete(args).await,
            Cmd::Watch(args) => commands::watch(args).await,
            Cmd::Status(args) => commands::status(args).await,
            Cmd::Id(args) => commands::id(args).await,
            Cmd::Ping(args) => commands::ping(args).await,
            Cmd::Connect(args) => commands::connect(args).await,
            Cmd::Listen(args) => commands::listen(args).await,
            Cmd::Testnet(args) => testnet::run(args).await,
            Cmd::TestnetWorker(args) => testnet::worker(args).await,
            Cmd::Bench(args) => bench::run(args).await,
            Cmd::Completions(args) => docs::completions(args),
            Cmd::Man(args) => docs::man(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::FAILURE
        }
    }
}
