//! [`Dht`]: the cheap, cloneable handle to a running node.
//!
//! Every call sends one command to the node's driver task over a bounded channel and awaits
//! the answer on a oneshot channel. When the node has stopped, calls return `Stopped` errors.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::message::Contact;
use cairn_core::{Item, Key, NodeId};
use tokio::sync::{mpsc, oneshot};

use crate::driver::inbox::Command;
use crate::outcome::{
    BootstrapError, DeleteError, Found, GetError, PeerInfo, PutError, PutReceipt, Status,
};

/// A handle to a running node. Clone it freely; the node runs until [`Dht::shutdown`] or until
/// every handle is dropped.
#[derive(Clone, Debug)]
pub struct Dht {
    pub(crate) commands: mpsc::Sender<Box<Command>>,
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub(crate) activity: std::sync::Arc<crate::activity::Hub>,
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

    /// Deletes the item `name` this node published: publishes a tombstone whose `seq` beats
    /// the newest version held here or, if none is, found by a get. Gets of the item then
    /// answer [`GetError::Deleted`], and no stale copy can come back. The tombstone lives `ttl`
    /// (for ever without one: it must outlive every copy of the item to keep them out).
    /// A later [`Dht::put_signed`] of the name brings it back.
    pub async fn delete(
        &self,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<PutReceipt, DeleteError> {
        let name = name.to_owned();
        self.call(|reply| Command::Delete { name, ttl, reply })
            .await
            .unwrap_or(Err(DeleteError::Put(PutError::Stopped)))
    }

    /// Watches `key` across the network: the returned [`Watch`] yields the newest version
    /// the closest nodes hold (if any), then every newer one, each `seq` once and in order; a
    /// tombstone means the item was deleted. Dropping the watch ends it.
    pub async fn watch(&self, key: Key) -> Option<Watch> {
        let (updates, receiver) = mpsc::unbounded_channel();
        let id = self
            .call(|reply| Command::Watch {
                key,
                updates,
                reply,
            })
            .await?;
        Some(Watch {
            id,
            updates: receiver,
            commands: self.commands.clone(),
        })
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

    /// The ring as this node sees it ([`crate::view::Ring`]); empty once the node stopped.
    pub async fn ring(&self) -> crate::view::Ring {
        self.call(|reply| Command::Ring { reply })
            .await
            .unwrap_or_default()
    }

    /// The items held, in key order: at most `limit` (capped at [`crate::view::MAX_LISTED`])
    /// from the first key after `after`.
    pub async fn items(&self, after: Option<Key>, limit: usize) -> Vec<crate::view::HeldItem> {
        let limit = limit.min(crate::view::MAX_LISTED);
        self.call(|reply| Command::Items {
            after,
            limit,
            reply,
        })
        .await
        .unwrap_or_default()
    }

    /// Every metric of the node as OpenMetrics text (what `GET /metrics` serves).
    pub async fn metrics(&self) -> String {
        // The status brings the gauges up to date first.
        let _ = self.status().await;
        self.metrics.encode()
    }

    /// The node's work as it happens: the last finished user operations (oldest first),
    /// then the live events ([`crate::Activity`]). A reader more than
    /// [`crate::activity::ACTIVITY_QUEUE`] events behind misses the oldest.
    pub fn activity(
        &self,
    ) -> (
        Vec<std::sync::Arc<crate::Activity>>,
        tokio::sync::broadcast::Receiver<std::sync::Arc<crate::Activity>>,
    ) {
        self.activity.subscribe()
    }

    /// Stops the node gracefully: stops accepting, lets running commands finish (up to the
    /// lookup timeout), closes connections. Returns once the node has stopped.
    pub async fn shutdown(&self) {
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
    }
}

/// A running watch of one key ([`Dht::watch`]).
#[derive(Debug)]
pub struct Watch {
    id: cairn_core::node::WatchId,
    updates: mpsc::UnboundedReceiver<Item>,
    commands: mpsc::Sender<Box<Command>>,
}

impl Watch {
    /// The next newer version (a tombstone when the item was deleted); `None` once the node
    /// has stopped.
    pub async fn next(&mut self) -> Option<Item> {
        self.updates.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // If the queue is full the driver notices the closed channel at the next update.
        let _ = self
            .commands
            .try_send(Box::new(Command::Unwatch { watch: self.id }));
    }
}
