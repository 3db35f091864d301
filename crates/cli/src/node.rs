//! `cairn node`: runs one node with its local HTTP API until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// A TOML config file (see the README for its fields).
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
    let mut api: SocketAddr = DEFAULT_API.parse()?;
    let mut bootstrap = Vec::new();
    if let Some(path) = &args.config {
        let (file, own): (FileConfig, BinaryKeys) =
            FileConfig::load_with(path, &["api", "bootstrap"])?;
        file.apply(&mut config)?;
        api = own.api.unwrap_or(api);
        bootstrap = own.bootstrap.unwrap_or_default();
    }
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
