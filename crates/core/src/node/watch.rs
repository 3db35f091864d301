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
//!
//! This part keeps the watches and their subscriptions and sends their `listen` and
//! `unlisten` requests; the node runs each round's lookup and hands its result back
//! ([`Watches::found`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::event::{Event, QueryId, WatchId};
use super::requests::{Purpose, Requests};
use crate::config::Config;
use crate::id::Key;
use crate::item::Item;
use crate::message::{Contact, Peer, Request, Response};
use crate::time::Time;

/// How soon a watch looks again after losing a subscription: soon, but not in a loop.
const RETRY: Duration = Duration::from_secs(1);

/// One subscription of a watch: at `peer`, made by the `listen` request `listen`.
#[derive(Clone, Copy, Debug)]
struct Sub {
    peer: Contact,
    listen: u64,
    /// Whether `listening` came back (else the `listen` is in flight).
    active: bool,
}

struct Watch {
    key: Key,
    /// The newest `seq` reported; for an immutable key, `Some(0)` once it was.
    last: Option<u64>,
    subs: Vec<Sub>,
    /// The lookup of the current round, if one runs.
    lookup: Option<QueryId>,
    /// When the next round starts.
    next_round: Time,
}

impl Watch {
    /// Whether `item` is news.
    fn wants(&self, item: &Item) -> bool {
        item.is_news_after(self.last)
    }

    /// Takes `item` as the newest version: the update to report.
    fn update(&mut self, id: WatchId, item: Item) -> Event {
        self.last = Some(item.seq().unwrap_or(0));
        Event::WatchUpdate { watch: id, item }
    }

    fn next_deadline(&self) -> Option<Time> {
        self.lookup.is_none().then_some(self.next_round)
    }
}

/// The watches of one node, and which `listen` request belongs to which.
#[derive(Default)]
pub(super) struct Watches {
    watches: BTreeMap<WatchId, Watch>,
    /// Every `listen` request id whose `notify` frames are taken, by watch.
    listens: BTreeMap<u64, WatchId>,
    /// The id of the last watch started.
    last: u64,
}

impl Watches {
    /// Watches running.
    pub(super) fn len(&self) -> usize {
        self.watches.len()
    }

    /// The nodes `watch` is subscribed at now (their `listening` came back).
    pub(super) fn peers(&self, watch: WatchId) -> Vec<Contact> {
        self.watches.get(&watch).map_or_else(Vec::new, |w| {
            w.subs.iter().filter(|s| s.active).map(|s| s.peer).collect()
        })
    }

    /// The ids of `watch`'s `listen` requests, answered or not.
    #[cfg(test)]
    pub(super) fn listens_of(&self, watch: WatchId) -> Vec<u64> {
        self.watches
            .get(&watch)
            .map_or_else(Vec::new, |w| w.subs.iter().map(|s| s.listen).collect())
    }

    /// When the earliest round not yet running is due.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.watches.values().filter_map(Watch::next_deadline).min()
    }

    /// The key `watch` watches, if it runs.
    pub(super) fn key(&self, watch: WatchId) -> Option<Key> {
        self.watches.get(&watch).map(|w| w.key)
    }

    /// Starts a watch of `key`, its first round due at `now`. The node's own copy (`local`)
    /// counts, as it does for a get: the update it makes comes back.
    pub(super) fn add(
        &mut self,
        now: Time,
        key: Key,
        local: Option<Item>,
    ) -> (WatchId, Option<Event>) {
        self.last += 1;
        let id = WatchId(self.last);
        let mut watch = Watch {
            key,
            last: None,
            subs: Vec::new(),
            lookup: None,
            next_round: now,
        };
        let update = local.map(|item| watch.update(id, item));
        self.watches.insert(id, watch);
        (id, update)
    }

    /// Ends `watch`: its subscriptions are ended with `unlisten`.
    pub(super) fn remove(&mut self, now: Time, watch: WatchId, requests: &mut Requests) {
        let Some(w) = self.watches.remove(&watch) else {
            return;
        };
        for sub in w.subs {
            self.leave(now, sub, requests);
        }
        self.listens.retain(|_, w| *w != watch);
    }

    /// Forgets `sub`, and ends it with `unlisten` if it was made.
    fn leave(&mut self, now: Time, sub: Sub, requests: &mut Requests) {
        self.listens.remove(&sub.listen);
        if sub.active {
            let request = Request::Unlisten { listen: sub.listen };
            requests.send(now, sub.peer.into(), request, Purpose::Unattended);
        }
    }

    /// The watches whose round is due at `now` and not running.
    pub(super) fn due(&self, now: Time) -> Vec<WatchId> {
        self.watches
            .iter()
            .filter(|(_, w)| w.lookup.is_none() && w.next_round <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// `watch`'s round runs as lookup `query`.
    pub(super) fn round_started(&mut self, watch: WatchId, query: QueryId) {
        if let Some(w) = self.watches.get_mut(&watch) {
            w.lookup = Some(query);
        }
    }

    /// A `notify` arrived from `from` for this node's `listen` request `listen`: the update
    /// to report, if it is news from a node the watch is subscribed at.
    pub(super) fn notify(&mut self, from: &Contact, listen: u64, item: Item) -> Option<Event> {
        let watch = *self.listens.get(&listen)?;
        let w = self.watches.get_mut(&watch)?;
        let from_sub = w
            .subs
            .iter()
            .any(|s| s.listen == listen && s.peer.id == from.id);
        if !from_sub || item.key() != &w.key || !w.wants(&item) {
            return None;
        }
        Some(w.update(watch, item))
    }

    /// This node's own store accepted `item`: the updates of the watches of its key (a node
    /// may be one of the closest to a key it watches, or publish it itself).
    pub(super) fn local(&mut self, item: &Item) -> Vec<Event> {
        self.watches
            .iter_mut()
            .filter(|(_, w)| w.key == *item.key() && w.wants(item))
            .map(|(id, w)| w.update(*id, item.clone()))
            .collect()
    }

    /// A round's lookup found `closest` (closest first): subscribe at the `watch_width`
    /// closest, renewing where the watch is subscribed already, and leave the others.
    pub(super) fn found(
        &mut self,
        now: Time,
        watch: WatchId,
        closest: Vec<Contact>,
        config: &Config,
        requests: &mut Requests,
    ) {
        let Some(w) = self.watches.get_mut(&watch) else {
            return;
        };
        w.lookup = None;
        w.next_round = now + config.watch_refresh;
        let key = w.key;
        let seq = w.last.unwrap_or(0);
        let targets: Vec<Contact> = closest.into_iter().take(config.watch_width.get()).collect();
        let (keep, leave): (Vec<Sub>, Vec<Sub>) = std::mem::take(&mut w.subs)
            .into_iter()
            .partition(|s| targets.iter().any(|t| t.id == s.peer.id));
        for sub in leave {
            self.leave(now, sub, requests);
        }
        // Subscriptions being renewed keep taking `notify` frames under their old id until
        // the new `listening` comes back.
        let mut subs = Vec::with_capacity(targets.len());
        for peer in targets {
            let old = keep.iter().find(|s| s.peer.id == peer.id).copied();
            let request = Request::Listen { key, seq };
            let listen = requests.send(now, Peer::from(peer), request, Purpose::Listen(watch));
            self.listens.insert(listen, watch);
            subs.push(Sub {
                peer,
                listen,
                active: false,
            });
            subs.extend(old.filter(|o| o.active));
        }
        if let Some(w) = self.watches.get_mut(&watch) {
            w.subs = subs;
        }
    }

    /// The answer to `watch`'s `listen` request `listen`, from `from`.
    pub(super) fn on_listen_response(
        &mut self,
        now: Time,
        watch: WatchId,
        from: &Contact,
        listen: u64,
        response: Response,
    ) {
        let Some(w) = self.watches.get_mut(&watch) else {
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
                    self.listens.remove(&old);
                }
            }
            // Refused (an older node's 400, a 429) or a wrong answer: the next round tries
            // again, maybe elsewhere.
            _ => self.drop_sub(now, watch, listen, false),
        }
    }

    /// Whether `request` is a subscription of a watch (its `listen` was answered).
    pub(super) fn is_subscription(&self, request: u64) -> bool {
        self.listens.contains_key(&request)
    }

    /// `watch`'s `listen` failed, or the connection carrying its subscription closed: it is
    /// gone, and the watch looks for the closest nodes again soon if `lost`.
    pub(super) fn drop_sub(&mut self, now: Time, watch: WatchId, listen: u64, lost: bool) {
        self.listens.remove(&listen);
        let Some(w) = self.watches.get_mut(&watch) else {
            return;
        };
        w.subs.retain(|s| s.listen != listen);
        if lost {
            w.next_round = w.next_round.min(now + RETRY);
        }
    }

    /// The subscription made by `listen` was lost (its connection closed).
    pub(super) fn subscription_lost(&mut self, now: Time, listen: u64) {
        if let Some(&watch) = self.listens.get(&listen) {
            self.drop_sub(now, watch, listen, true);
        }
    }
}
