//! cairn-node: runs the cairn protocol over TCP on tokio.
//!
//! [`start`] binds a listener, loads or creates the node's identity, and spawns two tasks: the
//! accept loop and the driver that owns the protocol state machine. It returns a [`Dht`]
//! handle; the local HTTP API ([`api`]) and the `cairn` binary are built on that handle.
//! [`start_with_store`] runs the node on any [`cairn_core::Store`].
//!
//! Each call of the handle has its own error ([`PutError`], [`GetError`], ... in [`error`]),
//! each converting into the umbrella [`Error`]; a stopped node answers every call with
//! [`Stopped`] (or the call's `Stopped` variant), and [`Dht::closed`] resolves when it stops.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let dht = cairn_node::start(cairn_node::Config::default()).await?;
//! dht.bootstrap(vec!["192.0.2.1:7400".parse()?]).await?;
//! let receipt = dht.put_signed("greeting", "hello".into(), None).await?;
//! let found = dht.get(receipt.key).await?;
//! assert_eq!(found.item.value().as_ref(), b"hello");
//! dht.shutdown().await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod activity;
pub mod api;
pub mod client;
mod clock;
pub mod config;
mod connection;
pub mod datadir;
mod dht;
mod driver;
pub mod error;
pub mod identity;
mod inbound;
mod listener;
mod metrics;
mod mode;
mod outcome;
mod ping;
mod ratelimit;
mod shared;
pub mod snapshot;
pub mod store;
mod stream;
mod udp;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_core::{MemoryStore, Node, Store};
use store::{CommitReceiver, RedbStore};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use activity::{Activity, ActivityError, ActivityFeed};
pub use cairn_core;
pub use config::{Config, FileConfig};
pub use dht::{Dht, Watch};
pub use error::{
    BootstrapError, DeleteError, Error, FindNodeError, GetError, MismatchedEvent, PutError,
    SeedFailure, Stopped, WatchError,
};
pub use identity::Identity;
pub use mode::ModeSetting;
pub use outcome::{
    DatagramStatus, FamilyReachability, Found, PeerInfo, PutReceipt, Reachability,
    RendezvousCounts, Status,
};
pub use ping::{PingError, PingReport, Pinged, Route};
pub use ratelimit::Rate;
pub use stream::{
    AcceptError, BACKLOG, ConnectError, Listener, MAX_ACCEPTED, MAX_STREAMS, STREAMS_PER_HOST,
    Stream,
};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The key pair could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The item store could not be opened.
    #[error(transparent)]
    Store(#[from] store::OpenError),
    /// The routing-table snapshot exists but could not be read.
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    /// The data directory has a format this version does not read (a newer one), or its
    /// version could not be read or written.
    #[error(transparent)]
    Format(#[from] datadir::FormatError),
}

/// Starts a node with the identity in `config.data_dir` (or a fresh one) and returns its
/// handle. The node does not join any network until [`Dht::bootstrap`] is called.
pub async fn start(config: Config) -> Result<Dht, StartError> {
    let identity = match &config.data_dir {
        Some(dir) => {
            datadir::prepare(dir)?;
            Identity::load_or_create(dir)?
        }
        None => Identity::generate(),
    };
    start_with_identity(config, identity).await
}

/// Starts a node with the given identity, keeping items in `config.data_dir` (durable, a
/// [`RedbStore`]) or, with none, in memory (a [`MemoryStore`]).
pub async fn start_with_identity(config: Config, identity: Identity) -> Result<Dht, StartError> {
    match &config.data_dir {
        Some(dir) => {
            datadir::prepare(dir)?;
            let opened = std::time::Instant::now();
            let (store, commits) = RedbStore::open(dir, config.limits)?;
            tracing::info!(items = store.len(), took = ?opened.elapsed(), "store opened");
            start_with_store(config, identity, store, Some(commits)).await
        }
        None => {
            let store = MemoryStore::new(config.limits);
            start_with_store(config, identity, store, None).await
        }
    }
}

/// Starts a node with the given identity on any [`Store`]: say, a [`RedbStore`] opened on a
/// storage backend of the caller's, or a store of the caller's own. A store whose writes
/// return a commit ([`cairn_core::Written::commit`]) reports each commit's outcome on
/// `commits`; one whose writes are durable at once passes `None`. The routing-table snapshot
/// still comes from `config.data_dir`.
pub async fn start_with_store<S>(
    config: Config,
    identity: Identity,
    store: S,
    commits: Option<CommitReceiver>,
) -> Result<Dht, StartError>
where
    S: Store + Send + 'static,
{
    launch(config, identity, store, commits, None).await
}

/// Starts a node like [`start_with_store`] that shares `budget`, a cap on open connection
/// ends, with other nodes of this process (a test network of many nodes): each connection it
/// dials or accepts holds one permit while open; an accepted one is refused when none is
/// left, and a dial waits for one up to the request timeout, else its requests fail.
pub async fn start_with_budget<S>(
    config: Config,
    identity: Identity,
    store: S,
    commits: Option<CommitReceiver>,
    budget: Arc<tokio::sync::Semaphore>,
) -> Result<Dht, StartError>
where
    S: Store + Send + 'static,
{
    launch(config, identity, store, commits, Some(budget)).await
}

async fn launch<S>(
    config: Config,
    identity: Identity,
    store: S,
    commits: Option<CommitReceiver>,
    connection_budget: Option<Arc<tokio::sync::Semaphore>>,
) -> Result<Dht, StartError>
where
    S: Store + Send + 'static,
{
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|error| StartError::Bind {
            addr: config.listen,
            error,
        })?;
    let local = listener.local_addr().map_err(|error| StartError::Bind {
        addr: config.listen,
        error,
    })?;
    let mut listeners = vec![listener];
    let mut listening = vec![local];
    for &addr in &config.also_listen {
        let addr = match addr.port() {
            0 => SocketAddr::new(addr.ip(), local.port()),
            port if port == local.port() => addr,
            _ => {
                return Err(StartError::Bind {
                    addr,
                    error: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "every listen address needs the same port ({}): a node announces one",
                            local.port()
                        ),
                    ),
                });
            }
        };
        let extra = TcpListener::bind(addr)
            .await
            .map_err(|error| StartError::Bind { addr, error })?;
        listeners.push(extra);
        listening.push(addr);
    }
    // Datagrams on each address the node listens on, same port (`docs/protocol.md` 11).
    let udp = if config.datagrams {
        let sockets = udp::Sockets::bind(&listening)
            .await
            .map_err(|(addr, error)| StartError::Bind { addr, error })?;
        Some(Arc::new(sockets))
    } else {
        None
    };
    let mut node = Node::new(identity.node_id(), config.protocol.clone(), store);
    let mut mode = config.mode.initial();
    if let Some(dir) = &config.data_dir {
        let contacts = snapshot::load(dir)?;
        if config.mode == ModeSetting::Auto && !contacts.is_empty() && udp.is_some() {
            // It has joined a network before: a client until its checks find it public (a
            // node without datagrams cannot be checked, and stays a server).
            mode = cairn_core::Mode::Client;
        }
        if !contacts.is_empty() {
            tracing::info!(
                contacts = contacts.len(),
                "routing table restored from the snapshot"
            );
        }
        node.restore_contacts(clock::Clock::new().now(), contacts);
    }
    node.set_mode(mode);
    let (commands_tx, commands) = mpsc::channel(config.command_queue.max(1));
    let (to_driver, inbound) = mpsc::channel(4_096);
    let config_rates = (
        config.request_rate,
        config.store_rate,
        config.handshake_rate,
    );
    let connections = Arc::new(inbound::Inbound::new(
        config.max_inbound,
        config.max_inbound_per_host,
    ));
    let metrics = Arc::new(metrics::Metrics::new(&config.limits));
    let activity = Arc::new(activity::Hub::new());
    let handshake_limit = Arc::new(ratelimit::Limiter::new(config_rates.2));
    let streams = Arc::new(stream::Streams::new(
        &identity,
        udp.clone(),
        to_driver.clone(),
        handshake_limit.clone(),
        metrics.clone(),
    ));
    let shared = Arc::new(shared::Shared {
        config,
        identity,
        listen_port: local.port(),
        listening: listening.clone(),
        to_driver,
        shutdown: watch::channel(false).0,
        metrics: metrics.clone(),
        activity: activity.clone(),
        inbound: connections,
        connection_budget,
        request_limit: ratelimit::Limiter::new(config_rates.0),
        store_limit: ratelimit::Limiter::new(config_rates.1),
        handshake_limit: handshake_limit.clone(),
        udp,
        mode: mode::ModeCell::new(mode),
        streams: streams.clone(),
    });
    for listener in listeners {
        tokio::spawn(listener::accept_loop(listener, shared.clone()));
    }
    if let Some(udp) = &shared.udp {
        udp.spawn_readers(&shared);
    }
    let driver = driver::Driver::new(node, shared, commands, inbound, commits);
    tokio::spawn(Box::new(driver).run());
    tracing::info!(addrs = ?listening, "node listening");
    Ok(Dht {
        commands: commands_tx,
        metrics,
        activity,
        routes: Default::default(),
        streams,
    })
}
