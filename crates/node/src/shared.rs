//! What every task of one node shares: configuration, identity, the channel to the driver,
//! the shutdown signal, metrics and the activity feed.

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::driver::inbox::ToDriver;
use crate::identity::Identity;

/// Shared, read-mostly state of one node; connection tasks hold it in an `Arc`.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) identity: Identity,
    /// The port this node accepts connections on, announced in handshakes.
    pub(crate) listen_port: u16,
    /// Every address the node accepts connections on (`listen` first, its port resolved).
    pub(crate) listening: Vec<std::net::SocketAddr>,
    pub(crate) to_driver: mpsc::Sender<Box<ToDriver>>,
    /// Flips to `true` once, when the node shuts down.
    pub(crate) shutdown: watch::Sender<bool>,
    /// What the node counts; `GET /metrics` and `GET /v1/status` read it.
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The node's work as it happens, for the dashboard.
    pub(crate) activity: std::sync::Arc<crate::activity::Hub>,
    /// Requests per host, every kind.
    pub(crate) request_limit: crate::ratelimit::Limiter,
    /// Stores per host.
    pub(crate) store_limit: crate::ratelimit::Limiter,
    /// Datagram `initial`s per host: each costs a signature check and a key agreement.
    pub(crate) handshake_limit: std::sync::Arc<crate::ratelimit::Limiter>,
    /// The UDP sockets (none when datagrams are off).
    pub(crate) udp: Option<std::sync::Arc<crate::udp::Sockets>>,
    /// The incoming connections being served, within their bounds.
    pub(crate) inbound: std::sync::Arc<crate::inbound::Inbound>,
    /// A cap on open connection ends shared with other nodes of this process, if the node was
    /// started with one ([`crate::start_with_budget`]): each dialed or accepted connection holds
    /// a permit while open.
    pub(crate) connection_budget: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    /// Server or client now: fixed unless the setting is auto, when the driver switches it.
    pub(crate) mode: crate::mode::ModeCell,
    /// The byte streams: the QUIC endpoint, once made.
    pub(crate) streams: std::sync::Arc<crate::stream::Streams>,
}

impl Shared {
    /// A receiver that wakes when the node shuts down, or `None` if it already has.
    pub(crate) fn shutdown_signal(&self) -> Option<watch::Receiver<bool>> {
        let mut signal = self.shutdown.subscribe();
        let stopped = *signal.borrow_and_update();
        (!stopped).then_some(signal)
    }

    /// Sends a message to the driver, waiting for room; fails once the driver has stopped.
    /// Messages are boxed so that the channel's buffer stays small while it is idle.
    pub(crate) async fn tell(&self, message: ToDriver) -> Result<(), DriverStopped> {
        self.to_driver
            .send(Box::new(message))
            .await
            .map_err(|_| DriverStopped)
    }
}

/// The driver has stopped: the node is shutting down and takes no more messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the node's driver has stopped")]
pub(crate) struct DriverStopped;
