//! [`Dht`]: the cheap, cloneable handle to a running node.
//!
//! Every call sends one command to the node's driver task over a bounded channel and awaits
//! the answer on a oneshot channel. Once the node has stopped, every call returns
//! [`Stopped`] (or its operation's `Stopped` variant), and [`Dht::closed`] resolves.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_core::{Contact, Item, Key, NodeId};
use tokio::sync::{mpsc, oneshot};

use crate::activity::ActivityFeed;
use crate::driver::inbox::Command;
use crate::error::{
    BootstrapError, DeleteError, FindNodeError, GetError, PutError, Stopped, WatchError,
};
use crate::outcome::{Found, PeerInfo, PutReceipt, Status};

/// A handle to a running node. Clone it freely; the node runs until [`Dht::shutdown`] or until
/// every handle is dropped.
#[derive(Clone, Debug)]
pub struct Dht {
    pub(crate) commands: mpsc::Sender<Box<Command>>,
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub(crate) activity: std::sync::Arc<crate::activity::Hub>,
    /// The ways [`Dht::ping_key`] found to nodes behind NATs lately, tried first.
    pub(crate) routes: std::sync::Arc<crate::ping::Routes>,
    /// The byte streams ([`Dht::connect`], [`Dht::accept`]).
    pub(crate) streams: std::sync::Arc<crate::stream::Streams>,
}

impl Dht {
    /// Sends a command and waits for its answer; the node has stopped if either channel
    /// is closed.
    pub(crate) async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Box::new(make(reply)))
            .await
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
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
        .await?
    }

    /// Publishes an immutable item; its key is `SHA-512(value)`.
    pub async fn put_immutable(&self, value: Bytes) -> Result<PutReceipt, PutError> {
        self.put_item(cairn_core::ImmutableItem::new(value).into())
            .await
    }

    /// Publishes an item signed elsewhere (or an immutable one).
    pub async fn put_item(&self, item: Item) -> Result<PutReceipt, PutError> {
        self.call(|reply| Command::PutItem { item, reply }).await?
    }

    /// Finds the item under `key`.
    pub async fn get(&self, key: Key) -> Result<Found, GetError> {
        self.call(|reply| Command::Get { key, reply }).await?
    }

    /// Finds the signed item `name` of the publisher with `public_key`.
    pub async fn get_signed(&self, public_key: &[u8; 32], name: &str) -> Result<Found, GetError> {
        self.get(cairn_core::signed_key(public_key, name)).await
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
            .await?
    }

    /// Watches `key` across the network: the returned [`Watch`] yields the newest version
    /// the closest nodes hold (if any), then every newer one, each `seq` once and in order; a
    /// tombstone means the item was deleted. Dropping the watch ends it.
    pub async fn watch(&self, key: Key) -> Result<Watch, WatchError> {
        let (updates, receiver) = mpsc::unbounded_channel();
        let id = self
            .call(|reply| Command::Watch {
                key,
                updates,
                reply,
            })
            .await?;
        Ok(Watch {
            id,
            updates: receiver,
            commands: self.commands.clone(),
        })
    }

    /// The k nodes closest to `target` that answered.
    pub async fn find_node(&self, target: NodeId) -> Result<Vec<Contact>, FindNodeError> {
        self.call(|reply| Command::FindNode { target, reply })
            .await?
    }

    /// Joins the network through `seeds` (or, with none, through the contacts already known).
    pub async fn bootstrap(&self, seeds: Vec<SocketAddr>) -> Result<usize, BootstrapError> {
        self.call(|reply| Command::Bootstrap { seeds, reply })
            .await?
    }

    /// The node's state.
    pub async fn status(&self) -> Result<Status, Stopped> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// The routing table's contacts.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Stopped> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// The ring as this node sees it ([`crate::view::Ring`]).
    pub async fn ring(&self) -> Result<crate::view::Ring, Stopped> {
        self.call(|reply| Command::Ring { reply }).await
    }

    /// The items held, in key order: at most `limit` (capped at [`crate::view::MAX_LISTED`])
    /// from the first key after `after`.
    pub async fn items(
        &self,
        after: Option<Key>,
        limit: usize,
    ) -> Result<Vec<crate::view::HeldItem>, Stopped> {
        let limit = limit.min(crate::view::MAX_LISTED);
        self.call(|reply| Command::Items {
            after,
            limit,
            reply,
        })
        .await
    }

    /// Every metric of the node as OpenMetrics text (what `GET /metrics` serves).
    pub async fn metrics(&self) -> Result<String, Stopped> {
        // The driver brings the gauges that mirror its state up to date first.
        self.call(|reply| Command::UpdateGauges { reply }).await?;
        Ok(self.metrics.encode())
    }

    /// The node's work as it happens ([`crate::Activity`]): the last finished user operations,
    /// then the live events. A reader more than [`crate::activity::ACTIVITY_QUEUE`] events
    /// behind misses the oldest.
    pub fn activity(&self) -> ActivityFeed {
        self.activity.subscribe()
    }

    /// Stops the node gracefully: stops accepting, lets running commands finish (up to the
    /// lookup timeout), closes connections. Returns once the node has stopped (at once if it
    /// had).
    pub async fn shutdown(&self) {
        // A node that had stopped is what the caller asks for.
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
    }

    /// Resolves once the node has stopped, whoever stopped it: a [`Dht::shutdown`], every
    /// handle dropped, or its driver ending.
    pub async fn closed(&self) {
        // The driver owns the receiving end of the commands until its very end.
        self.commands.closed().await;
    }
}

/// A running watch of one key ([`Dht::watch`]): a [`futures_util::Stream`] of its versions,
/// which ends once the node has stopped.
#[derive(Debug)]
pub struct Watch {
    id: cairn_core::WatchId,
    updates: mpsc::UnboundedReceiver<Item>,
    commands: mpsc::Sender<Box<Command>>,
}

impl Watch {
    /// The next newer version (a tombstone when the item was deleted); `None` once the node
    /// has stopped. The same as `StreamExt::next`, without the import.
    pub async fn next(&mut self) -> Option<Item> {
        self.updates.recv().await
    }
}

impl futures_util::Stream for Watch {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.updates.poll_recv(cx)
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
