//! `cairn node`: runs one node with its local HTTP API until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
    /// auto: a client until probes from other nodes show it can be reached, then a server
    /// (and back, if they stop reaching it); the first node of a network, with no
    /// --bootstrap and no saved peers, starts as a server. server: takes requests, stores
    /// items for others, enters routing tables. client: only asks (put, get, delete, watch
    /// all work), announces no address, so no node adds it to its routing table, and stores
    /// nothing for others [default: auto].
    #[arg(long, value_name = "MODE", value_parser = ["auto", "server", "client"])]
    mode: Option<String>,
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
    /// The local HTTP API's address, `host:port`. Default `127.0.0.1:7401`.
    api: Option<HostPort>,
    /// Nodes to join through, as `host:port`.
    bootstrap: Option<Vec<HostPort>>,
    /// Web origins whose pages may change things through the API (see
    /// `cairn_node::api::Access`). Default none.
    api_allowed_origins: Option<Vec<String>>,
    /// Host names the API answers to besides loopback ones and its own. Default none.
    api_allowed_hosts: Option<Vec<String>>,
    /// Where to serve `/metrics` alone, `host:port`. Default nowhere.
    metrics: Option<HostPort>,
}

/// An address as a config file gives it, `host:port` (a name or an IP address, and a port),
/// checked when the file is read, so that `--check-config` names the key and line of a bad
/// one; names are resolved only when the node starts.
#[derive(Debug, Clone)]
struct HostPort(String);

impl<'de> serde::Deserialize<'de> for HostPort {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let valid = text
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if valid {
            Ok(HostPort(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "expected host:port (a name or an IP address, and a port), got {text:?}"
            )))
        }
    }
}

/// The host part of `host:port` when it is a name rather than an IP address.
fn host_name(text: &str) -> Option<String> {
    let (host, _) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>()
        .is_err()
        .then(|| host.to_ascii_lowercase())
}

/// The binary's own keys, named as [`BinaryKeys`] names them, with the comment `cairn config`
/// prints above each (the node's keys have theirs in `cairn_node::config::KEYS`).
const BINARY_KEYS: [(&str, &str); 5] = [
    (
        "api",
        "The local HTTP API (the CLI, the dashboard, /metrics). It signs with the node's key:\n\
         keep it on a loopback address. Beyond loopback, changes need the token in\n\
         DATA_DIR/api.token.",
    ),
    (
        "bootstrap",
        "Nodes to join through, as \"host:port\"; none rejoins through the saved routing table.",
    ),
    (
        "api_allowed_origins",
        "Web origins whose pages may change things through the API, e.g.\n\
         [\"https://app.example\"]; other origins are refused.",
    ),
    (
        "api_allowed_hosts",
        "Names of reverse proxies the API answers to besides loopback ones and its own;\n\
         a change through one needs the token in DATA_DIR/api.token.",
    ),
    (
        "metrics",
        "Serve GET /metrics alone on this address, e.g. \"0.0.0.0:9401\", so a Prometheus\n\
         elsewhere can scrape the node while the API stays on loopback. Unset: nowhere.",
    ),
];

/// What a node runs with: the defaults, then the config file, then the flags.
struct Settings {
    config: Config,
    api: String,
    bootstrap: Vec<String>,
    api_allowed_origins: Vec<String>,
    api_allowed_hosts: Vec<String>,
    metrics: Option<String>,
}

impl Settings {
    /// The defaults of the `cairn` binary: the node's, with the platform data directory.
    fn defaults() -> Self {
        Settings {
            config: Config::default()
                .data_dir(default_data_dir())
                .mode(cairn_node::ModeSetting::Auto),
            api: DEFAULT_API.to_owned(),
            bootstrap: Vec::new(),
            api_allowed_origins: Vec::new(),
            api_allowed_hosts: Vec::new(),
            metrics: None,
        }
    }

    /// The defaults with the values of the config file `path` on top.
    fn from_file(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut settings = Self::defaults();
        if let Some(path) = path {
            let (file, own): (FileConfig, BinaryKeys) =
                FileConfig::load_with(path, &BINARY_KEYS.map(|(name, _)| name))?;
            file.apply(&mut settings.config)?;
            settings.api = own.api.map_or(settings.api, |api| api.0);
            settings.bootstrap = own
                .bootstrap
                .unwrap_or_default()
                .into_iter()
                .map(|seed| seed.0)
                .collect();
            settings.api_allowed_origins = own.api_allowed_origins.unwrap_or_default();
            settings.api_allowed_hosts = own.api_allowed_hosts.unwrap_or_default();
            settings.metrics = own.metrics.map(|metrics| metrics.0);
        }
        Ok(settings)
    }

    /// The whole config file of these settings, commented.
    fn template(&self) -> String {
        let strings = |list: &[String]| {
            toml::Value::Array(list.iter().cloned().map(toml::Value::String).collect())
        };
        let own = [
            Some(toml::Value::String(self.api.clone())),
            Some(strings(&self.bootstrap)),
            Some(strings(&self.api_allowed_origins)),
            Some(strings(&self.api_allowed_hosts)),
            self.metrics.clone().map(toml::Value::String),
        ];
        let mut out = String::from(
            "# cairn node configuration: every key with its default, printed by `cairn config`.\n\
             # Use it with `cairn node --config FILE`; check it with `cairn node --check-config FILE`.\n\
             # Flags override the file. Delete a key to follow the default of later versions.\n\
             # Durations are in seconds (fractions allowed).\n\n",
        );
        for ((name, doc), value) in BINARY_KEYS.iter().zip(own) {
            out.push_str(&cairn_node::config::render(name, doc, value));
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
    let problems =
        cairn_node::config::check_with::<BinaryKeys>(path, &BINARY_KEYS.map(|(name, _)| name));
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
        // One rule for every address the binary takes (a name's first IPv4 address first).
        out.push(crate::resolve_addr(addr, "bootstrap address").await?);
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
        api: own_api,
        mut bootstrap,
        api_allowed_origins,
        api_allowed_hosts,
        metrics: own_metrics,
    } = Settings::from_file(args.config.as_deref())?;
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
    if let Some(mode) = args
        .mode
        .as_deref()
        .and_then(cairn_node::ModeSetting::parse)
    {
        config.mode = mode;
    }
    let api_text = args.api.unwrap_or(own_api);
    let api = resolve_addr(&api_text, "--api").await?;
    let metrics = match args.metrics.or(own_metrics) {
        Some(text) => Some(resolve_addr(&text, "--metrics").await?),
        None => None,
    };
    bootstrap.extend(args.bootstrap);
    let seeds = resolve(&bootstrap).await?;
    let mut access = cairn_node::api::Access {
        token: None,
        allowed_origins: api_allowed_origins,
        allowed_hosts: api_allowed_hosts,
        own_host: host_name(&api_text),
    };
    let data_dir = config.data_dir.clone();

    // The node checks the data directory's format before it reads a file of it; the API's
    // token comes after.
    let dht = cairn_node::start(config).await?;
    if let Some(dir) = &data_dir {
        access.token = Some(ApiToken::load_or_create(dir)?);
    }
    let status = dht.status().await.context("the node stopped at once")?;
    crate::logging::set_node_id(status.node_id);
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
