//! [`Dht`]: the cheap, cloneable handle to a running node, and what its calls return.
//!
//! Every call sends one command to the node's driver task over a bounded channel and awaits
//! the answer on a oneshot channel. When the node has stopped, calls return `Stopped` errors.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::item::ItemError;
use cairn_core::message::Contact;
use cairn_core::node::QueryStats;
use cairn_core::{Item, Key, NodeId};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

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
    FindNode {
        target: NodeId,
        reply: oneshot::Sender<Vec<Contact>>,
    },
    Bootstrap {
        seeds: Vec<SocketAddr>,
        reply: oneshot::Sender<Result<usize, BootstrapError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A handle to a running node. Clone it freely; the node runs until [`Dht::shutdown`] or until
/// every handle is dropped.
#[derive(Clone, Debug)]
pub struct Dht {
    pub(crate) commands: mpsc::Sender<Box<Command>>,
}

/// What a successful put did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PutReceipt {
    /// The item's key.
    #[serde(serialize_with = "hex_key")]
    pub key: Key,
    /// The `seq` a signed item was published with.
    pub seq: Option<u64>,
    /// Unix seconds of expiry, 0 for never.
    pub expires: u64,
    /// Nodes that acknowledged a copy, this one included.
    pub replicas: usize,
    /// What the put cost.
    #[serde(skip)]
    pub stats: QueryStats,
}

fn hex_key<S: serde::Serializer>(key: &Key, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&key.to_hex())
}

/// An item found by a get, and what finding it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The verified item (the highest `seq` seen, for a signed one).
    pub item: Item,
    /// Requests, hops and time.
    pub stats: QueryStats,
}

/// Why a put failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    /// The item itself is invalid (say, a name of more than 255 bytes).
    #[error("invalid item: {0}")]
    Invalid(#[from] ItemError),
    /// The node refused the item: too large, stale, conflicting or over a limit.
    #[error(transparent)]
    Refused(#[from] cairn_core::node::PutError),
    /// The local store failed to commit the item, so the put is not acknowledged.
    #[error("the item could not be stored durably: {0}")]
    NotDurable(String),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// Why a get failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// No node reached holds a valid copy.
    #[error("not found: no node holds a valid copy of {key}")]
    NotFound {
        /// The key sought.
        key: Key,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// Why joining failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// No bootstrap node answered and no contact is known.
    #[error("no bootstrap node answered ({tried} tried) and no other node is known")]
    NoContact {
        /// How many addresses were tried.
        tried: usize,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// A node's state, as `GET /v1/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Hex node id.
    pub node_id: String,
    /// Hex ed25519 public key.
    pub public_key: String,
    /// Network name.
    pub network: String,
    /// The address peers connect to.
    pub listen: SocketAddr,
    /// Contacts in the routing table.
    pub peers: usize,
    /// Items in the store.
    pub items: usize,
    /// Seconds since start.
    pub uptime_s: u64,
    /// cairn's version.
    pub version: String,
    /// Requests sent to peers.
    pub requests_sent: u64,
    /// Requests from peers answered.
    pub requests_handled: u64,
    /// Requests to peers that failed or timed out.
    pub requests_failed: u64,
    /// Outgoing connections opened.
    pub connections_opened: u64,
    /// Incoming connections accepted.
    pub connections_accepted: u64,
    /// Outgoing connections not opened because the process's connection budget was spent.
    pub connection_budget_exhausted: u64,
}

/// A routing-table contact, as `GET /v1/peers` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Hex node id.
    pub node_id: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Seconds since it last answered or sent a verified request.
    pub last_seen_s: u64,
    /// Failed requests in a row.
    pub failures: u32,
}

impl Dht {
    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Box::new(make(reply))).await.ok()?;
        answer.await.ok()
    }

    /// Signs `value` under `name` with this node's key and publishes it. `seq` is the current
    /// Unix time in milliseconds, or one more than the stored copy's if that is larger.
    pub async fn put_signed(
        &self,
        name: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<PutReceipt, PutError> {
        let name = name.to_owned();
        self.call(|reply| Command::PutSigned {
            name,
            value,
            ttl,
            reply,
        })
        .await
        .unwrap_or(Err(PutError::Stopped))
    }

    /// Publishes an immutable item; its key is `SHA-512(value)`.
    pub async fn put_immutable(&self, value: Bytes) -> Result<PutReceipt, PutError> {
        self.put_item(cairn_core::ImmutableItem::new(value).into())
            .await
    }

    /// Publishes an item signed elsewhere (or an immutable one).
    pub async fn put_item(&self, item: Item) -> Result<PutReceipt, PutError> {
        self.call(|reply| Command::PutItem { item, reply })
            .await
            .unwrap_or(Err(PutError::Stopped))
    }

    /// Finds the item under `key`.
    pub async fn get(&self, key: Key) -> Result<Found, GetError> {
        self.call(|reply| Command::Get { key, reply })
            .await
            .unwrap_or(Err(GetError::Stopped))
    }

    /// Finds the signed item `name` of the publisher with `public_key`.
    pub async fn get_signed(&self, public_key: &[u8; 32], name: &str) -> Result<Found, GetError> {
        self.get(cairn_core::item::signed_key(public_key, name))
            .await
    }

    /// The k nodes closest to `target` that answered.
    pub async fn find_node(&self, target: NodeId) -> Vec<Contact> {
        self.call(|reply| Command::FindNode { target, reply })
            .await
            .unwrap_or_default()
    }

    /// Joins the network through `seeds` (or, with none, through the contacts already known).
    pub async fn bootstrap(&self, seeds: Vec<SocketAddr>) -> Result<usize, BootstrapError> {
        self.call(|reply| Command::Bootstrap { seeds, reply })
            .await
            .unwrap_or(Err(BootstrapError::Stopped))
    }

    /// The node's state, or `None` if it has stopped.
    pub async fn status(&self) -> Option<Status> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// The routing table's contacts.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.call(|reply| Command::Peers { reply })
            .await
            .unwrap_or_default()
    }

    /// Stops the node gracefully: stops accepting, lets running commands finish (up to the
    /// lookup timeout), closes connections. Returns once the node has stopped.
    pub async fn shutdown(&self) {
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
    }
}
