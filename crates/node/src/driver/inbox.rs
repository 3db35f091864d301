//! The driver's inbox and outbox types: commands from [`crate::Dht`] handles, messages from
//! connection tasks, and the requests the driver hands to dialed connections.
//!
//! Every message is boxed on its channel, so that an idle channel's buffer stays small.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::{Contact, Item, Key, Message, NodeId, Request, Requester, Response, WatchId};
use tokio::sync::{mpsc, oneshot};

use crate::error::{BootstrapError, DeleteError, FindNodeError, GetError, PutError};
use crate::outcome::{Found, PeerInfo, PutReceipt, Status};

/// A command for the driver, with the channel its answer goes back on.
pub(crate) enum Command {
    PutSigned {
        name: String,
        value: Bytes,
        ttl: Option<Duration>,
        reply: oneshot::Sender<Result<PutReceipt, PutError>>,
    },
    PutItem {
        item: Item,
        reply: oneshot::Sender<Result<PutReceipt, PutError>>,
    },
    Get {
        key: Key,
        reply: oneshot::Sender<Result<Found, GetError>>,
    },
    Delete {
        name: String,
        ttl: Option<Duration>,
        reply: oneshot::Sender<Result<PutReceipt, DeleteError>>,
    },
    Watch {
        key: Key,
        updates: mpsc::UnboundedSender<Item>,
        reply: oneshot::Sender<WatchId>,
    },
    Unwatch {
        watch: WatchId,
    },
    FindNode {
        target: NodeId,
        reply: oneshot::Sender<Result<Vec<Contact>, FindNodeError>>,
    },
    Bootstrap {
        seeds: Vec<SocketAddr>,
        reply: oneshot::Sender<Result<usize, BootstrapError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    /// Bring the metrics that mirror the node's state up to date (before a scrape).
    UpdateGauges {
        reply: oneshot::Sender<()>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Ring {
        reply: oneshot::Sender<crate::view::Ring>,
    },
    Items {
        after: Option<Key>,
        limit: usize,
        reply: oneshot::Sender<Vec<crate::view::HeldItem>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// This node is an end of `circuit`, relayed by `via`: the address its other end has.
    OpenCircuit {
        circuit: u64,
        via: SocketAddr,
        reply: oneshot::Sender<SocketAddr>,
    },
    /// One request to one peer, and its answer (`None`: it failed or timed out).
    Exchange {
        to: cairn_core::Peer,
        request: Request,
        reply: oneshot::Sender<Option<cairn_core::Exchanged>>,
    },
}

/// What connection tasks tell the driver.
pub(crate) enum ToDriver {
    /// A request arrived; answer it on `reply`.
    Request {
        requester: Requester,
        id: u64,
        request: Box<Request>,
        reply: mpsc::Sender<Box<Message>>,
    },
    /// A response to one of this node's requests arrived from a verified peer.
    Response {
        from: Contact,
        id: u64,
        response: Box<Response>,
        /// What the peer said it is in that message (`role`), if it said.
        role: Option<cairn_core::Mode>,
    },
    /// A dialer's message said `role: "client"`: it leaves the routing table.
    Client { id: cairn_core::NodeId },
    /// These requests will never be answered.
    Failed { ids: Vec<u64> },
    /// A dialed connection ended; the pool may forget it. `failure`: why it never opened.
    Closed {
        addr: SocketAddr,
        conn: u64,
        failure: Option<crate::error::SeedFailure>,
    },
    /// A `notify` for this node's `listen` request `id` arrived from a verified peer.
    Notify {
        from: Contact,
        id: u64,
        item: Box<Item>,
    },
    /// An incoming connection that had sent `listen` closed: its subscriptions end.
    InboundClosed { connection: u64 },
    /// A dialer's `auth` verified on an incoming connection.
    Verified { requester: Requester },
    /// A datagram arrived on a UDP socket.
    Datagram { from: SocketAddr, bytes: Vec<u8> },
    /// A QUIC packet of a byte stream to send to a circuit address: wrapped for its relay.
    StreamOut { to: SocketAddr, bytes: Vec<u8> },
    /// An incoming connection's dialer does not speak datagrams (its `hello` did not say so):
    /// its address is reached over TCP.
    TcpOnly { addr: SocketAddr },
}

/// A request for a dialed connection to send.
pub(crate) type Outgoing = (u64, Box<Request>);
