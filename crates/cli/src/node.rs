//! `cairn node`: runs one node with its local HTTP API until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cairn_node::cairn_core::NetworkName;
use cairn_node::{Config, Dht, FileConfig};
use clap::Args;

use crate::{DEFAULT_API, default_data_dir, parse_addr};

/// Arguments of `cairn node`. Flags override the config file, which overrides the defaults.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Directory for the node's files: its key pair (node.key), its items (items.redb) and its
    /// saved routing table (routing.snapshot) [default: the platform data directory + /cairn].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to accept peers on [default: 0.0.0.0:7400]. Repeat it to listen on more, say
    /// `--listen 0.0.0.0:7400 --listen [::]:7400` for IPv4 and IPv6 (dual stack); every
    /// address takes the first one's port (port 0 in the others means "the same").
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    listen: Vec<SocketAddr>,
    /// Address of the local HTTP API [default: 127.0.0.1:7401].
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    api: Option<SocketAddr>,
    /// A node to join through, as host:port; repeat for more.
    #[arg(long, value_name = "ADDR")]
    bootstrap: Vec<String>,
    /// Network name, 1 to 64 bytes; nodes of other networks are refused [default: cairn].
    #[arg(long, value_name = "NAME")]
    network: Option<NetworkName>,
    /// A TOML config file; `cairn config` prints one with every key and its default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the config file FILE, print "ok" or one line per problem, and exit (0 when it
    /// is valid, 1 when not) without starting the node.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
}

impl NodeArgs {
    /// The file `--check-config` names, if given.
    pub fn check_config(&self) -> Option<&Path> {
        self.check_config.as_deref()
    }
}

/// Arguments of `cairn config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Print this file's values (every key it does not set at its default), as `cairn node
    /// --config FILE` would run with them.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The keys of a config file that belong to the binary rather than to the node.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryKeys {
    /// The local HTTP API's address. Default `127.0.0.1:7401`.
    api: Option<SocketAddr>,
    /// Nodes to join through, as `host:port`.
    bootstrap: Option<Vec<String>>,
}

/// The binary's own keys, named as [`BinaryKeys`] names them, with the comment `cairn config`
/// prints above each (the node's keys have theirs in `cairn_node::config::KEYS`).
const BINARY_KEYS: [(&str, &str); 2] = [
    (
        "api",
        "The local HTTP API (the CLI, the dashboard, /metrics). It signs with the node's key:\n\
         keep it on a loopback address.",
    ),
    (
        "bootstrap",
        "Nodes to join through, as \"host:port\"; none rejoins through the saved routing table.",
    ),
];

/// What a node runs with: the defaults, then the config file, then the flags.
struct Settings {
    config: Config,
    api: SocketAddr,
    bootstrap: Vec<String>,
}

impl Settings {
    /// The defaults of the `cairn` binary: the node's, with the platform data directory.
    fn defaults() -> anyhow::Result<Self> {
        Ok(Settings {
            config: Config::default().data_dir(default_data_dir()),
            api: DEFAULT_API.parse()?,
            bootstrap: Vec::new(),
        })
    }

    /// The defaults with the values of the config file `path` on top.
    fn from_file(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut settings = Self::defaults()?;
        if let Some(path) = path {
            let (file, own): (FileConfig, BinaryKeys) =
                FileConfig::load_with(path, &["api", "bootstrap"])?;
            file.apply(&mut settings.config)?;
            settings.api = own.api.unwrap_or(settings.api);
            settings.bootstrap = own.bootstrap.unwrap_or_default();
        }
        Ok(settings)
    }

    /// The whole config file of these settings, commented.
    fn template(&self) -> String {
        let bootstrap = self
            .bootstrap
            .iter()
            .map(|seed| toml::Value::String(seed.clone()))
            .collect();
        let own = [
            toml::Value::String(self.api.to_string()),
            toml::Value::Array(bootstrap),
        ];
        let mut out = String::from(
            "# cairn node configuration: every key with its default, printed by `cairn config`.\n\
             # Use it with `cairn node --config FILE`; check it with `cairn node --check-config FILE`.\n\
             # Flags override the file. Delete a key to follow the default of later versions.\n\
             # Durations are in seconds (fractions allowed).\n\n",
        );
        for ((name, doc), value) in BINARY_KEYS.iter().zip(own) {
            out.push_str(&cairn_node::config::render(name, doc, Some(value)));
            out.push('\n');
        }
        out.push_str(&cairn_node::config::template(&self.config));
        out
    }
}

/// `cairn config`: prints the commented config file of the defaults (or of `--config FILE`).
pub fn print_config(args: ConfigArgs) -> anyhow::Result<()> {
    print!(
        "{}",
        Settings::from_file(args.config.as_deref())?.template()
    );
    Ok(())
}

/// `cairn node --check-config FILE`: "ok" and 0, or one line per problem on standard error
/// and 1.
pub fn check_config(path: &Path) -> ExitCode {
    let problems = cairn_node::config::check_with::<BinaryKeys>(path, &["api", "bootstrap"]);
    if problems.is_empty() {
        println!("ok");
        return ExitCode::SUCCESS;
    }
    for problem in problems {
        eprintln!("cairn: {}: {problem}", path.display());
    }
    ExitCode::FAILURE
}

/// Resolves `host:port` strings, failing on the first that does not resolve.
async fn resolve(addrs: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for addr in addrs {
        let found = tokio::net::lookup_host(addr.as_str())
            .await
            .with_context(|| {
                format!("cannot resolve bootstrap address {addr:?} (expected host:port)")
            })?;
        out.extend(found.take(1));
    }
    Ok(out)
}

/// Joins through `seeds`, retrying every 30 s until it works or the node stops.
async fn keep_joining(dht: Dht, seeds: Vec<SocketAddr>) {
    loop {
        match dht.bootstrap(seeds.clone()).await {
            Ok(peers) => return tracing::info!(peers, "joined the network"),
            Err(cairn_node::BootstrapError::Stopped) => return,
            Err(e) => tracing::warn!("{e}; retrying in 30 s"),
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `cairn node`.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let Settings {
        mut config,
        mut api,
        mut bootstrap,
    } = Settings::from_file(args.config.as_deref())?;
    config.data_dir = args.data_dir.or(config.data_dir);
    if let Some((first, more)) = args.listen.split_first() {
        config.listen = *first;
        config.also_listen = more.to_vec();
    }
    if let Some(network) = args.network {
        config.network = network;
    }
    api = args.api.unwrap_or(api);
    bootstrap.extend(args.bootstrap);
    let seeds = resolve(&bootstrap).await?;

    let dht = cairn_node::start(config).await?;
    let status = dht.status().await.context("the node stopped at once")?;
    crate::logging::set_node_id(status.node_id);
    let server = cairn_node::api::serve(dht.clone(), api)
        .await
        .with_context(|| format!("cannot serve the API on {api}"))?;
    tracing::info!(node_id = %status.node_id, listen = %status.listen, %api, "node running");
    if !seeds.is_empty() {
        tokio::spawn(keep_joining(dht.clone(), seeds));
    } else if status.peers > 0 {
        // No bootstrap address, but the saved routing table knows nodes: rejoin through them.
        tokio::spawn(keep_joining(dht.clone(), Vec::new()));
    }
    stop_signal().await;
    tracing::info!("stopping");
    dht.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}
