//! The commands a simulation schedules on its nodes, and the tickets that find their
//! completions. Starting a command is the one place that calls the node's command methods.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::{Item, Key, Node, NodeId, QueryId, Store, Time};
use ed25519_dalek::SigningKey;

/// A command to run on one node.
#[derive(Clone, Debug)]
pub enum Command {
    /// Join through these nodes (by index).
    Bootstrap(Vec<usize>),
    /// Publish an item.
    Put(Item),
    /// Sign `value` under `name` with `key` and publish it, choosing `seq` and expiry as a
    /// real node does ([`Node::publish`]). An invalid item (a name over 255 bytes) starts
    /// nothing, so its ticket never completes.
    Publish {
        /// The publisher's key pair.
        key: Box<SigningKey>,
        /// The item's name.
        name: String,
        /// The value.
        value: Bytes,
        /// How long it lives; `None` for ever.
        ttl: Option<Duration>,
    },
    /// Delete the item `name` of `key`'s owner, as a real node does ([`Node::delete`]): a
    /// tombstone whose `seq` beats the copy held (or `found`, a `seq` a get found).
    Delete {
        /// The publisher's key pair.
        key: Box<SigningKey>,
        /// The item's name.
        name: String,
        /// The newest `seq` known from elsewhere.
        found: Option<u64>,
    },
    /// Look a key up.
    Get(Key),
    /// Find the nodes closest to an id.
    FindNode(NodeId),
}

/// A handle on a scheduled command, to find its completion with [`crate::Sim::outcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    /// The ticket numbered `n` (the simulator numbers them in scheduling order).
    pub(crate) fn new(n: u64) -> Self {
        Ticket(n)
    }
}

impl Command {
    /// Starts this command on `node` at `now` (a bootstrap through `seeds`, the addresses of
    /// the nodes it names). `None` when it starts nothing (an invalid item).
    pub(crate) fn start<S: Store>(
        self,
        node: &mut Node<S>,
        now: Time,
        seeds: &[SocketAddr],
    ) -> Option<QueryId> {
        Some(match self {
            Command::Bootstrap(_) => node.bootstrap(now, seeds),
            Command::Put(item) => node.put(now, item),
            Command::Publish {
                key,
                name,
                value,
                ttl,
            } => node.publish(now, &key, &name, value, ttl).ok()?,
            Command::Delete { key, name, found } => {
                node.delete(now, &key, &name, found, None).ok()?
            }
            Command::Get(key) => node.get(now, key),
            Command::FindNode(target) => node.find_node(now, target),
        })
    }
}
