//! Node configuration: the [`Config`] struct with its defaults, and loading it from TOML.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_core::{NetworkName, StoreLimits};

use crate::mode::ModeSetting;
use crate::ratelimit::Rate;
use serde::Deserialize;

mod check;
mod keys;

pub use check::{Problem, check_with};
pub use keys::{ALIASES, KEYS, Key, render, template};

/// Everything a node needs to run. `Config::default()` is the documented default of every
/// field; a TOML file ([`FileConfig`]) overrides any of them. Fields are read directly; set
/// them with the setter of the same name, which a later field does not break:
///
/// ```
/// let config = cairn_node::Config::default()
///     .listen("127.0.0.1:0".parse().expect("an address"))
///     .max_inbound(64);
/// assert_eq!(config.max_inbound, 64);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Where to accept peer connections. Default `0.0.0.0:7400`.
    pub listen: SocketAddr,
    /// More addresses to accept peer connections on, say an IPv6 one beside an IPv4 `listen`
    /// (dual stack). A node announces one port, so each must have `listen`'s port, or port 0
    /// for the port `listen` got. Default none.
    pub also_listen: Vec<SocketAddr>,
    /// The network name; nodes of other networks are refused. Default `"cairn"`.
    pub network: NetworkName,
    /// Where the key pair (and later the store) live. `None` keeps the identity in memory
    /// only: a new id every start. The `cairn` binary defaults to the platform data directory.
    pub data_dir: Option<PathBuf>,
    /// Protocol parameters (k, alpha, timeouts, value size); the defaults of `docs/design.md`.
    pub protocol: cairn_core::Config,
    /// Store limits. Defaults: 100,000 items, 256 MiB, a tenth of each for one network.
    pub limits: StoreLimits,
    /// The largest frame accepted. Default 1,048,576 bytes.
    pub max_frame: usize,
    /// A connection with no traffic for this long is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// A connection stalled mid-frame (or mid-handshake) this long is closed. Default 10 s.
    pub read_timeout: Duration,
    /// The most outgoing connections this node keeps; the least recently used idle one is
    /// closed to make room. Default 256.
    pub max_outbound: usize,
    /// The most incoming connections served at once. A newcomer past it takes the place of a
    /// connection that has not completed its handshake, or of an idle one; with none, it is
    /// closed on accept. Default 1,024.
    pub max_inbound: usize,
    /// The most incoming connections from one host (an IPv4 address, an IPv6 /64). Default 16.
    pub max_inbound_per_host: usize,
    /// Requests of any kind one host (an IPv4 address, an IPv6 /64) may make; past it they are
    /// answered 429. Default 1,024/s, bursts of 2,048 (OpenDHT's per-IP default).
    pub request_rate: Rate,
    /// `store` requests one host may make, within `request_rate`; past it they are answered
    /// 429. Default 64/s, bursts of 256.
    pub store_rate: Rate,
    /// How long a dialer has, from the moment it is accepted, to complete the handshake
    /// (`hello` and a verified `auth`). Default 5 s.
    pub handshake_timeout: Duration,
    /// Invalid messages tolerated on one connection before it is closed. Default 16.
    pub max_invalid_messages: u32,
    /// Requests from one incoming connection being served at once. Past it the connection
    /// reads nothing more until an answer goes out, so a peer that pipelines faster than it
    /// reads is slowed by TCP itself and every request still gets its answer. Default 32.
    pub max_requests_per_connection: usize,
    /// Commands from [`crate::Dht`] handles that may wait for the node at once. Default 1,024.
    pub command_queue: usize,
    /// Whether the node speaks datagrams (protocol version 2, `docs/protocol.md` section
    /// 11): binds UDP beside each TCP listener and sends lookups over it. Off, it is a
    /// version-1 node: TCP only. Default on.
    pub datagrams: bool,
    /// Datagram `initial`s taken per host (an IPv4 address, an IPv6 /64); past it they are
    /// dropped unread. Default 64/s, bursts of 256: an honest node opens a session to one
    /// host once per peer there every few minutes.
    pub handshake_rate: Rate,
    /// Server (the default here; the `cairn` command's is auto), client or auto
    /// (`docs/design.md`, "Client mode"). A client says `role: "client"` on every message,
    /// announces no address (`hello.port` 0, the datagram `initial` flag clear), so no node
    /// adds it to its routing table; it refuses `store` and `listen` (503, "this node is a
    /// client") and does everything its user asks. Auto is a server while the node's
    /// reachability checks find it public, a client otherwise ([`ModeSetting::Auto`]).
    pub mode: ModeSetting,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 7400)),
            also_listen: Vec::new(),
            network: NetworkName::default(),
            data_dir: None,
            protocol: cairn_core::Config::default(),
            limits: StoreLimits::default(),
            max_frame: 1_048_576,
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(10),
            max_outbound: 256,
            max_inbound: 1_024,
            max_inbound_per_host: 16,
            handshake_timeout: Duration::from_secs(5),
            request_rate: Rate {
                per_second: 1_024.0,
                burst: 2_048.0,
            },
            store_rate: Rate {
                per_second: 64.0,
                burst: 256.0,
            },
            max_invalid_messages: 16,
            max_requests_per_connection: 32,
            command_queue: 1_024,
            datagrams: true,
            handshake_rate: Rate {
                per_second: 64.0,
                burst: 256.0,
            },
            mode: ModeSetting::Server,
        }
    }
}

/// Setters that take and return the [`Config`], one per field, named after it.
macro_rules! setters {
    ($($field:ident: $type:ty),* $(,)?) => {
        impl Config {
            $(
                #[doc = concat!("Sets [`Config::", stringify!($field), "`].")]
                #[must_use]
                pub fn $field(mut self, value: $type) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

setters!(
    listen: SocketAddr,
    also_listen: Vec<SocketAddr>,
    network: NetworkName,
    protocol: cairn_core::Config,
    limits: StoreLimits,
    max_frame: usize,
    idle_timeout: Duration,
    read_timeout: Duration,
    max_outbound: usize,
    max_inbound: usize,
    max_inbound_per_host: usize,
    request_rate: Rate,
    store_rate: Rate,
    handshake_timeout: Duration,
    max_invalid_messages: u32,
    max_requests_per_connection: usize,
    command_queue: usize,
    datagrams: bool,
    handshake_rate: Rate,
);

impl Config {
    /// Sets [`Config::mode`]: a [`ModeSetting`], or a [`cairn_core::Mode`] to force one.
    #[must_use]
    pub fn mode(mut self, mode: impl Into<ModeSetting>) -> Self {
        self.mode = mode.into();
        self
    }

    /// Sets [`Config::data_dir`]: keeps the identity, the items and the routing-table
    /// snapshot in `dir`.
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
}

/// The TOML form of [`Config`]: every field optional, unknown fields refused. Durations are
/// in seconds (fractions allowed). Each field has its entry, with the comment an operator
/// reads, in [`KEYS`]; [`template`] prints them all with their values (`cairn config`), and
/// [`check_with`] reports every problem of a file. A program built on cairn-node can keep keys of its own in
/// the same file with [`FileConfig::load_with`] (the `cairn` binary keeps `api` and
/// `bootstrap` there).
///
/// ```toml
/// listen = "0.0.0.0:7400"
/// network = "cairn"
/// data_dir = "/var/lib/cairn"
/// k = 20
/// alpha = 3
/// request_timeout_secs = 2
/// min_slot_timeout_secs = 0.1
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Config::also_listen`].
    pub also_listen: Option<Vec<SocketAddr>>,
    /// See [`Config::network`].
    pub network: Option<NetworkName>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// Bucket size and replication factor.
    pub k: Option<usize>,
    /// Parallel requests per lookup path.
    pub alpha: Option<usize>,
    /// Disjoint paths per lookup (S/Kademlia); see `cairn_core::Config::disjoint_paths`.
    pub disjoint_paths: Option<usize>,
    /// Signed copies a get waits for.
    pub get_quorum: Option<usize>,
    /// See `cairn_core::Config::request_timeout`.
    pub request_timeout_secs: Option<f64>,
    /// See `cairn_core::Config::lookup_timeout`.
    pub lookup_timeout_secs: Option<f64>,
    /// See `cairn_core::Config::min_slot_timeout`.
    pub min_slot_timeout_secs: Option<f64>,
    /// See `cairn_core::Config::max_value_size`.
    pub max_value_size: Option<usize>,
    /// See `cairn_core::Config::max_failures`.
    pub max_failures: Option<u32>,
    /// See [`StoreLimits::max_items`].
    pub max_items: Option<usize>,
    /// See [`StoreLimits::max_bytes`].
    pub max_store_bytes: Option<usize>,
    /// See [`StoreLimits::max_items_per_subnet`]. Files may still say `max_items_per_network`.
    #[serde(alias = "max_items_per_network")]
    pub max_items_per_subnet: Option<usize>,
    /// See [`StoreLimits::max_bytes_per_subnet`]. Files may still say
    /// `max_store_bytes_per_network`.
    #[serde(alias = "max_store_bytes_per_network")]
    pub max_store_bytes_per_subnet: Option<usize>,
    /// See [`Config::max_frame`].
    pub max_frame: Option<usize>,
    /// See [`Config::idle_timeout`].
    pub idle_timeout_secs: Option<f64>,
    /// See [`Config::read_timeout`].
    pub read_timeout_secs: Option<f64>,
    /// See [`Config::max_outbound`].
    pub max_outbound: Option<usize>,
    /// See [`Config::max_inbound`].
    pub max_inbound: Option<usize>,
    /// See `cairn_core::Diversity::per_bucket`.
    pub max_subnet_contacts_per_bucket: Option<usize>,
    /// See `cairn_core::Diversity::per_table`.
    pub max_subnet_contacts: Option<usize>,
    /// See [`Config::max_inbound_per_host`].
    pub max_inbound_per_host: Option<usize>,
    /// See [`Config::handshake_timeout`].
    pub handshake_timeout_secs: Option<f64>,
    /// See [`Config::request_rate`] (requests per second).
    pub requests_per_host_per_sec: Option<f64>,
    /// See [`Config::request_rate`] (burst; default twice the rate).
    pub requests_per_host_burst: Option<f64>,
    /// See [`Config::store_rate`] (stores per second).
    pub stores_per_host_per_sec: Option<f64>,
    /// See [`Config::store_rate`] (burst; default twice the rate).
    pub stores_per_host_burst: Option<f64>,
    /// See [`Config::max_requests_per_connection`].
    pub max_requests_per_connection: Option<usize>,
    /// See `cairn_core::Config::republish_interval`.
    pub republish_interval_secs: Option<f64>,
    /// See `cairn_core::Config::replicate_interval`.
    pub replicate_interval_secs: Option<f64>,
    /// See `cairn_core::Config::refresh_interval`.
    pub refresh_interval_secs: Option<f64>,
    /// See `cairn_core::Config::max_subscriptions`.
    pub max_subscriptions: Option<usize>,
    /// See `cairn_core::Config::listen_ttl` (at most 600).
    pub listen_ttl_secs: Option<f64>,
    /// See `cairn_core::Config::watch_refresh`.
    pub watch_refresh_secs: Option<f64>,
    /// See [`Config::datagrams`].
    pub datagrams: Option<bool>,
    /// See [`Config::handshake_rate`] (datagram `initial`s per second).
    pub handshakes_per_host_per_sec: Option<f64>,
    /// See [`Config::handshake_rate`] (burst; default twice the rate).
    pub handshakes_per_host_burst: Option<f64>,
    /// See `cairn_core::Config::nat_subnet_prefix_v4` (1 to 32).
    pub nat_subnet_prefix_v4: Option<u8>,
    /// See [`Config::mode`]: `"auto"`, `"server"` or `"client"`.
    pub mode: Option<String>,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })
}

fn parse_error(path: &Path, error: toml::de::Error) -> ConfigError {
    ConfigError::Parse {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML for a [`FileConfig`].
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        toml::from_str(&text).map_err(|e| parse_error(path, e))
    }

    /// Reads a TOML file that also holds the caller's own keys `own` (parsed as `T`, which
    /// should refuse unknown fields); every other key must be a [`FileConfig`] field.
    pub fn load_with<T: serde::de::DeserializeOwned>(
        path: &Path,
        own: &[&str],
    ) -> Result<(Self, T), ConfigError> {
        let text = read(path)?;
        let mut node: toml::Table = toml::from_str(&text).map_err(|e| parse_error(path, e))?;
        let mut mine = toml::Table::new();
        for key in own {
            if let Some(value) = node.remove(*key) {
                mine.insert((*key).to_owned(), value);
            }
        }
        let node = node.try_into().map_err(|e| parse_error(path, e))?;
        let mine = mine.try_into().map_err(|e| parse_error(path, e))?;
        Ok((node, mine))
    }

    /// Applies the values this file sets on top of `config`.
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        let nonzero = |name: &str, v: usize| {
            std::num::NonZeroUsize::new(v)
                .ok_or_else(|| ConfigError::Invalid(format!("{name} must be at least 1")))
        };
        let secs = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v).map_err(|_| {
                ConfigError::Invalid(format!("{name} must be a non-negative number of seconds"))
            })
        };
        let p = &mut config.protocol;
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = &self.also_listen {
            config.also_listen = v.clone();
        }
        if let Some(v) = &self.network {
            config.network = v.clone();
        }
        if let Some(v) = &self.data_dir {
            config.data_dir = Some(v.clone());
        }
        if let Some(v) = self.k {
            p.k = nonzero("k", v)?;
        }
        if let Some(v) = self.alpha {
            p.alpha = nonzero("alpha", v)?;
        }
        if let Some(v) = self.disjoint_paths {
            p.disjoint_paths = nonzero("disjoint_paths", v)?;
        }
        if let Some(v) = self.get_quorum {
            p.get_quorum = nonzero("get_quorum", v)?;
        }
        if let Some(v) = self.request_timeout_secs {
            p.request_timeout = secs("request_timeout_secs", v)?;
        }
        if let Some(v) = self.lookup_timeout_secs {
            p.lookup_timeout = secs("lookup_timeout_secs", v)?;
        }
        if let Some(v) = self.min_slot_timeout_secs {
            p.min_slot_timeout = secs("min_slot_timeout_secs", v)?;
        }
        if let Some(v) = self.max_value_size {
            p.max_value_size = v;
        }
        if let Some(v) = self.max_failures {
            p.max_failures = v.max(1);
        }
        if let Some(v) = self.max_items {
            config.limits.max_items = v;
        }
        if let Some(v) = self.max_store_bytes {
            config.limits.max_bytes = v;
        }
        if let Some(v) = self.max_items_per_subnet {
            config.limits.max_items_per_subnet = v;
        }
        if let Some(v) = self.max_store_bytes_per_subnet {
            config.limits.max_bytes_per_subnet = v;
        }
        if let Some(v) = self.max_frame {
            config.max_frame = v;
        }
        if let Some(v) = self.idle_timeout_secs {
            config.idle_timeout = secs("idle_timeout_secs", v)?;
        }
        if let Some(v) = self.read_timeout_secs {
            config.read_timeout = secs("read_timeout_secs", v)?;
        }
        if let Some(v) = self.max_outbound {
            config.max_outbound = v.max(1);
        }
        if let Some(v) = self.max_inbound {
            config.max_inbound = v.max(1);
        }
        if let Some(v) = self.max_subnet_contacts_per_bucket {
            config.protocol.diversity.per_bucket =
                nonzero("max_subnet_contacts_per_bucket", v)?.get();
        }
        if let Some(v) = self.max_subnet_contacts {
            config.protocol.diversity.per_table = nonzero("max_subnet_contacts", v)?.get();
        }
        if let Some(v) = self.max_inbound_per_host {
            config.max_inbound_per_host = v.max(1);
        }
        if let Some(v) = self.handshake_timeout_secs {
            config.handshake_timeout = secs("handshake_timeout_secs", v)?;
        }
        let rate = |name: &str, per_second: Option<f64>, burst: Option<f64>, held: Rate| match (
            per_second, burst,
        ) {
            (None, None) => Ok(held),
            (per_second, burst) => crate::ratelimit::rate(
                per_second.unwrap_or(held.per_second),
                burst,
            )
            .ok_or_else(|| {
                ConfigError::Invalid(format!("{name} must be above 0 and its burst at least 1"))
            }),
        };
        config.request_rate = rate(
            "requests_per_host_per_sec",
            self.requests_per_host_per_sec,
            self.requests_per_host_burst,
            config.request_rate,
        )?;
        config.store_rate = rate(
            "stores_per_host_per_sec",
            self.stores_per_host_per_sec,
            self.stores_per_host_burst,
            config.store_rate,
        )?;
        config.handshake_rate = rate(
            "handshakes_per_host_per_sec",
            self.handshakes_per_host_per_sec,
            self.handshakes_per_host_burst,
            config.handshake_rate,
        )?;
        if let Some(v) = self.datagrams {
            config.datagrams = v;
        }
        if let Some(v) = self.max_requests_per_connection {
            config.max_requests_per_connection = v.max(1);
        }
        if let Some(v) = self.max_subscriptions {
            config.protocol.max_subscriptions = v;
        }
        if let Some(v) = self.listen_ttl_secs {
            let ttl = secs("listen_ttl_secs", v)?;
            if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(600) {
                return Err(ConfigError::Invalid(
                    "listen_ttl_secs must be 1 to 600 (the protocol's limit)".into(),
                ));
            }
            config.protocol.listen_ttl = ttl;
        }
        for (value, name, field) in [
            (
                self.republish_interval_secs,
                "republish_interval_secs",
                &mut config.protocol.republish_interval,
            ),
            (
                self.replicate_interval_secs,
                "replicate_interval_secs",
                &mut config.protocol.replicate_interval,
            ),
            (
                self.refresh_interval_secs,
                "refresh_interval_secs",
                &mut config.protocol.refresh_interval,
            ),
            (
                self.watch_refresh_secs,
                "watch_refresh_secs",
                &mut config.protocol.watch_refresh,
            ),
        ] {
            if let Some(v) = value {
                *field = secs(name, v)?.max(Duration::from_secs(1));
            }
        }
        if let Some(v) = self.nat_subnet_prefix_v4 {
            if !(1..=32).contains(&v) {
                return Err(ConfigError::Invalid(
                    "nat_subnet_prefix_v4 must be 1 to 32 (an IPv4 prefix length)".into(),
                ));
            }
            config.protocol.nat_subnet_prefix_v4 = v;
        }
        if let Some(v) = &self.mode {
            config.mode = ModeSetting::parse(v).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "mode must be \"auto\", \"server\" or \"client\", not {v:?}"
                ))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_only_what_it_sets() {
        let file: FileConfig = toml::from_str(
            "k = 8\nrequest_timeout_secs = 0.5\nmin_slot_timeout_secs = 0.25\nnetwork = \"lab\"",
        )
        .expect("valid");
        let mut config = Config::default();
        file.apply(&mut config).expect("valid values");
        assert_eq!(config.protocol.k.get(), 8);
        assert_eq!(config.protocol.request_timeout, Duration::from_millis(500));
        assert_eq!(config.protocol.min_slot_timeout, Duration::from_millis(250));
        assert_eq!(config.network.as_str(), "lab");
        assert_eq!(config.protocol.alpha.get(), 3);
        assert_eq!(config.listen, SocketAddr::from(([0, 0, 0, 0], 7400)));
    }

    #[test]
    fn a_program_keeps_its_own_keys_in_the_same_file() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Own {
            api: Option<SocketAddr>,
        }
        let path = std::env::temp_dir().join(format!("cairn-config-{}.toml", std::process::id()));
        std::fs::write(&path, "api = \"127.0.0.1:9\"\nk = 5\n").expect("written");
        let (file, own): (FileConfig, Own) = FileConfig::load_with(&path, &["api"]).expect("valid");
        assert_eq!(file.k, Some(5));
        assert_eq!(own.api, Some(SocketAddr::from(([127, 0, 0, 1], 9))));
        // The node alone does not know `api`, and neither side takes an unknown key.
        assert!(FileConfig::load(&path).is_err());
        std::fs::write(&path, "api = \"127.0.0.1:9\"\ncolour = 3\n").expect("written");
        assert!(FileConfig::load_with::<Own>(&path, &["api"]).is_err());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(toml::from_str::<FileConfig>("colour = 3").is_err());
        let file: FileConfig = toml::from_str("k = 0").expect("parses");
        assert!(file.apply(&mut Config::default()).is_err());
        let file: FileConfig = toml::from_str("idle_timeout_secs = -1").expect("parses");
        assert!(file.apply(&mut Config::default()).is_err());
        let long = format!("network = \"{}\"", "n".repeat(65));
        let refused = toml::from_str::<FileConfig>(&long).expect_err("too long");
        assert!(refused.to_string().contains("1 to 64 bytes"), "{refused}");
        assert!(toml::from_str::<FileConfig>("network = \"\"").is_err());
    }
}
