//! `cairn node`: runs one node with its local HTTP API until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_node::cairn_core::NetworkName;
use cairn_node::identity::ApiToken;
use cairn_node::{Config, Dht, FileConfig};
use clap::Args;

use crate::{DEFAULT_API, default_data_dir, resolve_addr};

/// Arguments of `cairn node`. Flags override the config file, which overrides the defaults.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Directory for the node's files: its key pair (node.key), its items (items.redb) and its
    /// saved routing table (routing.snapshot) [default: the platform data directory + /cairn].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to accept peers on [default: 0.0.0.0:7400]. Repeat it to listen on more, say
    /// `--listen 0.0.0.0:7400 --listen [::]:7400` for IPv4 and IPv6 (dual stack); every
    /// address takes the first one's port (port 0 in the others means "the same"). A host
    /// name is resolved at start (to its first IPv4 address, else its first).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Address of the local HTTP API [default: 127.0.0.1:7401]. A host name is resolved at
    /// start (as for --listen). Beyond loopback (say 0.0.0.0:7401) every change needs the
    /// token in DATA_DIR/api.token, made on first run.
    #[arg(long, value_name = "ADDR")]
    api: Option<String>,
    /// Also serve GET /metrics alone on this address, for a Prometheus elsewhere: it shows
    /// the counters and changes nothing, so the API itself can stay on loopback.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// A node to join through, as host:port; repeat for more.
    #[arg(long, value_name = "ADDR")]
    bootstrap: Vec<String>,
    /// Network name, 1 to 64 bytes; nodes of other networks are refused [default: cairn].
    #[arg(long, value_name = "NAME")]
    network: Option<NetworkName>,
    /// A TOML config file (see the README for its fields).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The keys of a config file that belong to the binary rather than to the node.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryKeys {
    /// The local HTTP API's address, `host:port`. Default `127.0.0.1:7401`.
    api: Option<String>,
    /// Nodes to join through, as `host:port`.
    bootstrap: Option<Vec<String>>,
    /// Web origins whose pages may change things through the API (see
    /// `cairn_node::api::Access`). Default none.
    api_allowed_origins: Option<Vec<String>>,
    /// Host names the API answers to besides loopback ones and its own. Default none.
    api_allowed_hosts: Option<Vec<String>>,
    /// Where to serve `/metrics` alone, `host:port`. Default nowhere.
    metrics: Option<String>,
}

/// The config file keys of [`BinaryKeys`].
const BINARY_KEYS: &[&str] = &[
    "api",
    "bootstrap",
    "api_allowed_origins",
    "api_allowed_hosts",
    "metrics",
];

/// The host part of `host:port` when it is a name rather than an IP address.
fn host_name(text: &str) -> Option<String> {
    let (host, _) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>()
        .is_err()
        .then(|| host.to_ascii_lowercase())
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
    let mut config = Config::default().data_dir(default_data_dir());
    let mut own = BinaryKeys::default();
    if let Some(path) = &args.config {
        let file: FileConfig;
        (file, own) = FileConfig::load_with(path, BINARY_KEYS)?;
        file.apply(&mut config)?;
    }
    config.data_dir = args.data_dir.or(config.data_dir);
    let mut listen = Vec::new();
    for text in &args.listen {
        listen.push(resolve_addr(text, "--listen").await?);
    }
    if let Some((first, more)) = listen.split_first() {
        config.listen = *first;
        config.also_listen = more.to_vec();
    }
    if let Some(network) = args.network {
        config.network = network;
    }
    let api_text = args
        .api
        .or(own.api)
        .unwrap_or_else(|| DEFAULT_API.to_owned());
    let api = resolve_addr(&api_text, "--api").await?;
    let metrics = match args.metrics.or(own.metrics) {
        Some(text) => Some(resolve_addr(&text, "--metrics").await?),
        None => None,
    };
    let mut bootstrap = own.bootstrap.unwrap_or_default();
    bootstrap.extend(args.bootstrap);
    let seeds = resolve(&bootstrap).await?;
    let mut access = cairn_node::api::Access {
        token: None,
        allowed_origins: own.api_allowed_origins.unwrap_or_default(),
        allowed_hosts: own.api_allowed_hosts.unwrap_or_default(),
    };
    access.allowed_hosts.extend(host_name(&api_text));
    if let Some(dir) = &config.data_dir {
        access.token = Some(ApiToken::load_or_create(dir)?);
    }

    let dht = cairn_node::start(config).await?;
    let status = dht.status().await.context("the node stopped at once")?;
    let app = cairn_node::api::router(dht.clone());
    let server = cairn_node::api::serve_with(app, dht.clone(), api, access)
        .await
        .with_context(|| format!("cannot serve the API on {api}"))?;
    if let Some(addr) = metrics {
        cairn_node::api::serve_metrics(dht.clone(), addr)
            .await
            .with_context(|| format!("cannot serve /metrics on {addr}"))?;
        tracing::info!(%addr, "serving /metrics");
    }
    if cairn_node::api::beyond_loopback(api) {
        tracing::warn!(
            %api,
            "the API is reachable beyond loopback: changes need the token in DATA_DIR/api.token"
        );
    }
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
