//! Watching a key across the network: the dialer's side of `listen`.
//!
//! A watch subscribes at the `watch_width` (default 3) nodes closest to its key that answer a
//! lookup. Those are the nodes every put and every replication of the key stores at, so each
//! new version reaches them; three of them let two fail between rounds without a version
//! going unseen. Every round (each `watch_refresh`, or half the shortest `ttl` granted, or
//! soon after a subscription is lost) the watch looks its key up again and sends `listen` to
//! whichever nodes are closest now: to the same nodes this renews the subscription; to new,
//! closer ones it moves there (and `unlisten`s the nodes it leaves). It reports each `seq`
//! once, in increasing order, whichever node it came from: [`Event::WatchUpdate`], whose item
//! may be a tombstone (the item was deleted).

use std::collections::BTreeMap;
use std::time::Duration;

use super::query::QueryKind;
use super::{Event, Node, Purpose};
use crate::id::Key;
use crate::item::Item;
use crate::message::{Contact, Peer, Request, Response};
use crate::store::Store;
use crate::time::Time;

/// The id of a watch; its [`Event::WatchUpdate`]s carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchId(pub u64);

/// How soon a watch looks again after losing a subscription: soon, but not in a loop.
const RETRY: Duration = Duration::from_secs(1);

/// One subscription of a watch: at `peer`, made by the `listen` request `listen`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sub {
    peer: Contact,
    pub(super) listen: u64,
    /// Whether `listening` came back (else the `listen` is in flight).
    active: bool,
}

pub(super) struct Watch {
    key: Key,
    /// The newest `seq` reported; for an immutable key, `Some(0)` once it was.
    last: Option<u64>,
    pub(super) subs: Vec<Sub>,
    /// The lookup of the current round, if one runs.
    lookup: Option<super::QueryId>,
    /// When the next round starts.
    next_round: Time,
}

impl Watch {
    /// Whether `item` is news.
    fn wants(&self, item: &Item) -> bool {
        item.is_news_after(self.last)
    }

    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.lookup.is_none().then_some(self.next_round)
    }
}

/// The watches of one node, and which `listen` request belongs to which.
#[derive(Default)]
pub(super) struct Watches {
    pub(super) watches: BTreeMap<WatchId, Watch>,
    /// Every `listen` request id whose `notify` frames are taken, by watch.
    listens: BTreeMap<u64, WatchId>,
    next: u64,
}

impl<S: Store> Node<S> {
    /// Starts watching `key`: from now on every newer version the nodes closest to it accept
    /// (and the newest they hold already) is reported once, as an [`Event::WatchUpdate`].
    pub fn watch(&mut self, now: Time, key: Key) -> WatchId {
        self.start_housekeeping(now);
        self.watches.next += 1;
        let id = WatchId(self.watches.next);
        // The node's own copy counts, as it does for a get.
        let mut last = None;
        if let Some(item) = self.store.get(&key, now).ok().flatten() {
            last = Some(item.seq().unwrap_or(0));
            self.events
                .push_back(Event::WatchUpdate { watch: id, item });
        }
        let watch = Watch {
            key,
            last,
            subs: Vec::new(),
            lookup: None,
            next_round: now,
        };
        self.watches.watches.insert(id, watch);
        self.round(now, id);
        id
    }

    /// Ends a watch: its subscriptions are ended with `unlisten`.
    pub fn unwatch(&mut self, now: Time, watch: WatchId) {
        let Some(w) = self.watches.watches.remove(&watch) else {
            return;
        };
        for sub in w.subs {
            self.watches.listens.remove(&sub.listen);
            if sub.active {
                let request = Request::Unlisten { listen: sub.listen };
                self.send(now, sub.peer.into(), request, Purpose::Unattended);
            }
        }
        self.watches.listens.retain(|_, w| *w != watch);
    }

    /// Watches running.
    pub fn watch_count(&self) -> usize {
        self.watches.watches.len()
    }

    /// The nodes a watch is subscribed at now (their `listening` came back).
    pub fn watch_peers(&self, watch: WatchId) -> Vec<Contact> {
        self.watches.watches.get(&watch).map_or_else(Vec::new, |w| {
            w.subs.iter().filter(|s| s.active).map(|s| s.peer).collect()
        })
    }

    /// A `notify` arrived from `from` for this node's `listen` request `listen`.
    pub fn handle_notify(&mut self, now: Time, from: Contact, listen: u64, item: Item) {
        self.start_housekeeping(now);
        let Some(&watch) = self.watches.listens.get(&listen) else {
            return;
        };
        let Some(w) = self.watches.watches.get_mut(&watch) else {
            return;
        };
        let from_sub = w
            .subs
            .iter()
            .any(|s| s.listen == listen && s.peer.id == from.id);
        if !from_sub || item.key() != &w.key || !w.wants(&item) {
            return;
        }
        w.last = Some(item.seq().unwrap_or(0));
        self.events.push_back(Event::WatchUpdate { watch, item });
    }

    /// This node's own store accepted `item`: its own watches of that key hear of it too (a
    /// node may be one of the closest to a key it watches, or publish it itself).
    pub(super) fn watch_local(&mut self, item: &Item) {
        for (id, w) in &mut self.watches.watches {
            if w.key == *item.key() && w.wants(item) {
                w.last = Some(item.seq().unwrap_or(0));
                self.events.push_back(Event::WatchUpdate {
                    watch: *id,
                    item: item.clone(),
                });
            }
        }
    }

    /// Starts a round of `watch`: a lookup of its key.
    fn round(&mut self, now: Time, watch: WatchId) {
        let Some(key) = self.watches.watches.get(&watch).map(|w| w.key) else {
            return;
        };
        let plan = QueryKind::watch(watch, self.start_lookup(now, &key));
        let query = self.start(now, plan);
        // The lookup may have ended at once (a node alone) and already run `found`.
        if let Some(w) = self.watches.watches.get_mut(&watch) {
            if self.queries.contains_key(&query) {
                w.lookup = Some(query);
            }
        }
    }

    /// Starts the rounds that are due.
    pub(super) fn watch_rounds(&mut self, now: Time) {
        let due: Vec<WatchId> = self
            .watches
            .watches
            .iter()
            .filter(|(_, w)| w.lookup.is_none() && w.next_round <= now)
            .map(|(id, _)| *id)
            .collect();
        for watch in due {
            self.round(now, watch);
        }
    }

    /// A round's lookup found `closest` (closest first): subscribe at the `watch_width`
    /// closest, renewing where the watch is subscribed already, and leave the others.
    pub(super) fn watch_found(&mut self, now: Time, watch: WatchId, closest: Vec<Contact>) {
        let width = self.config.watch_width.get();
        let refresh = self.config.watch_refresh;
        let Some(w) = self.watches.watches.get_mut(&watch) else {
            return;
        };
        w.lookup = None;
        w.next_round = now + refresh;
        let key = w.key;
        let seq = w.last.unwrap_or(0);
        let targets: Vec<Contact> = closest.into_iter().take(width).collect();
        let (keep, leave): (Vec<Sub>, Vec<Sub>) = std::mem::take(&mut w.subs)
            .into_iter()
            .partition(|s| targets.iter().any(|t| t.id == s.peer.id));
        for sub in leave {
            self.watches.listens.remove(&sub.listen);
            if sub.active {
                let request = Request::Unlisten { listen: sub.listen };
                self.send(now, sub.peer.into(), request, Purpose::Unattended);
            }
        }
        // Subscriptions being renewed keep taking `notify` frames under their old id until
        // the new `listening` comes back.
        let mut subs = Vec::with_capacity(targets.len());
        for peer in targets {
            let old = keep.iter().find(|s| s.peer.id == peer.id).copied();
            let listen = self.send(
                now,
                Peer::from(peer),
                Request::Listen { key, seq },
                Purpose::Listen(watch),
            );
            self.watches.listens.insert(listen, watch);
            subs.push(Sub {
                peer,
                listen,
                active: false,
            });
            if let Some(old) = old.filter(|o| o.active) {
                subs.push(old);
            }
        }
        if let Some(w) = self.watches.watches.get_mut(&watch) {
            w.subs = subs;
        }
    }

    /// The answer to a watch's `listen` request `listen`, from `from`.
    pub(super) fn on_listen_response(
        &mut self,
        now: Time,
        watch: WatchId,
        from: Contact,
        listen: u64,
        response: Response,
    ) {
        let Some(w) = self.watches.watches.get_mut(&watch) else {
            return;
        };
        match response {
            Response::Listening { ttl } if ttl > 0 => {
                // The new subscription replaces the one it renews.
                let replaced: Vec<u64> = w
                    .subs
                    .iter()
                    .filter(|s| s.peer.id == from.id && s.listen != listen)
                    .map(|s| s.listen)
                    .collect();
                w.subs.retain(|s| !replaced.contains(&s.listen));
                if let Some(sub) = w.subs.iter_mut().find(|s| s.listen == listen) {
                    sub.active = true;
                }
                let renew = now + Duration::from_secs(u64::from(ttl)) / 2;
                w.next_round = w.next_round.min(renew);
                for old in replaced {
                    self.watches.listens.remove(&old);
                }
            }
            // Refused (an older node's 400, a 429) or a wrong answer: the next round tries
            // again, maybe elsewhere.
            _ => self.drop_sub(now, watch, listen, false),
        }
    }

    /// Whether `request` is a subscription of a watch (its `listen` was answered).
    pub(super) fn is_subscription(&self, request: u64) -> bool {
        self.watches.listens.contains_key(&request)
    }

    /// A watch's `listen` failed, or the connection carrying its subscription closed: it is
    /// gone, and the watch looks for the closest nodes again soon if `lost`.
    pub(super) fn drop_sub(&mut self, now: Time, watch: WatchId, listen: u64, lost: bool) {
        self.watches.listens.remove(&listen);
        let Some(w) = self.watches.watches.get_mut(&watch) else {
            return;
        };
        w.subs.retain(|s| s.listen != listen);
        if lost {
            w.next_round = w.next_round.min(now + RETRY);
        }
    }

    /// The subscription made by `listen` was lost (its connection closed).
    pub(super) fn subscription_lost(&mut self, now: Time, listen: u64) {
        if let Some(&watch) = self.watches.listens.get(&listen) {
            self.drop_sub(now, watch, listen, true);
        }
    }
}
