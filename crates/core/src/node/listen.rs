//! The listener's side of `listen` (`docs/protocol.md`, "Listening"): the subscriptions peers
//! hold here, and the `notify` frames owed to them when a newer copy of a key is accepted.
//!
//! A subscription is named by the connection it came on (an opaque number the driver gives
//! each incoming connection, [`super::Requester::connection`]) and the id of its `listen`
//! request. It ends at its ttl, on `unlisten`, when its connection closes
//! ([`Node::connection_closed`]), or when the same connection listens to the same key again
//! (a renewal replaces it).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Node, Requester};
use crate::id::Key;
use crate::item::Item;
use crate::message::{ErrorCode, ErrorReply, MAX_LISTEN_TTL, MAX_LISTENS_PER_CONNECTION, Response};
use crate::store::{CommitId, Store};
use crate::time::Time;

/// A `notify` frame the driver must send on an incoming connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The connection, as the driver named it in [`Requester::connection`].
    pub connection: u64,
    /// The id of the `listen` request that made the subscription.
    pub id: u64,
    /// The newer copy.
    pub item: Item,
    /// When set, the copy is not durable yet: send only once this commit is, and not at all if
    /// it fails.
    pub commit: Option<CommitId>,
}

#[derive(Clone, Copy, Debug)]
struct Subscription {
    key: Key,
    /// The newest `seq` reported (or that the dialer said it had); `None` for none yet. For an
    /// immutable key, `Some` once its one copy was sent.
    reported: Option<u64>,
    expires: Time,
}

impl Subscription {
    /// Whether `item` is news to this subscription.
    fn wants(&self, item: &Item) -> bool {
        item.is_news_after(self.reported)
    }
}

/// Every subscription peers hold at this node.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    by_id: BTreeMap<(u64, u64), Subscription>,
    by_key: HashMap<Key, BTreeSet<(u64, u64)>>,
}

impl Subscriptions {
    fn remove(&mut self, name: (u64, u64)) -> Option<Subscription> {
        let sub = self.by_id.remove(&name)?;
        if let Some(names) = self.by_key.get_mut(&sub.key) {
            names.remove(&name);
            if names.is_empty() {
                self.by_key.remove(&sub.key);
            }
        }
        Some(sub)
    }

    fn of_connection(&self, connection: u64) -> impl Iterator<Item = (&(u64, u64), &Subscription)> {
        self.by_id.range((connection, 0)..=(connection, u64::MAX))
    }

    fn drop_expired(&mut self, now: Time) {
        let expired: Vec<(u64, u64)> = self
            .by_id
            .iter()
            .filter(|(_, s)| s.expires <= now)
            .map(|(name, _)| *name)
            .collect();
        for name in expired {
            self.remove(name);
        }
    }

    /// Live subscriptions, expired ones not yet dropped included.
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }
}

impl<S: Store> Node<S> {
    /// Answers `listen` request `id` for `key` from `from`: `listening`, or 429 past the limits.
    pub(super) fn listen(
        &mut self,
        now: Time,
        from: &Requester,
        id: u64,
        key: Key,
        seq: u64,
    ) -> Response {
        let connection = from.connection;
        // A renewal (the same key again on the same connection) replaces its subscription.
        let renewed: Vec<(u64, u64)> = self
            .subscriptions
            .of_connection(connection)
            .filter(|(_, s)| s.key == key)
            .map(|(name, _)| *name)
            .collect();
        for name in renewed {
            self.subscriptions.remove(name);
        }
        let live_here = self
            .subscriptions
            .of_connection(connection)
            .filter(|(_, s)| s.expires > now)
            .count();
        if live_here >= MAX_LISTENS_PER_CONNECTION {
            return over_limit(format!(
                "this connection holds {MAX_LISTENS_PER_CONNECTION} subscriptions, the most allowed"
            ));
        }
        if self.subscriptions.len() >= self.config.max_subscriptions {
            self.subscriptions.drop_expired(now);
            if self.subscriptions.len() >= self.config.max_subscriptions {
                return over_limit(format!(
                    "this node holds {} subscriptions, the most it keeps",
                    self.config.max_subscriptions
                ));
            }
        }
        let ttl = self
            .config
            .listen_ttl
            .as_secs()
            .clamp(1, u64::from(MAX_LISTEN_TTL));
        let ttl = u32::try_from(ttl).unwrap_or(MAX_LISTEN_TTL);
        let mut sub = Subscription {
            key,
            reported: (seq != 0).then_some(seq),
            expires: now + std::time::Duration::from_secs(u64::from(ttl)),
        };
        // A copy newer than the dialer's goes out at once (after the `listening` answer: the
        // driver sends answers before notifications).
        if let Some(item) = self.store.get(&key, now).ok().flatten() {
            if sub.wants(&item) {
                sub.reported = Some(item.seq().unwrap_or(0));
                self.notifications.push_back(Notification {
                    connection,
                    id,
                    item,
                    commit: None,
                });
            }
        }
        self.subscriptions.by_id.insert((connection, id), sub);
        self.subscriptions
            .by_key
            .entry(key)
            .or_default()
            .insert((connection, id));
        Response::Listening { ttl }
    }

    /// Answers `unlisten`: ends the subscription `listen` of the requester's connection, if
    /// it is there. Ending one that is not (already ended, or never made) is not an error.
    pub(super) fn unlisten(&mut self, from: &Requester, listen: u64) -> Response {
        self.subscriptions.remove((from.connection, listen));
        Response::Unlistened
    }

    /// A copy of `item`'s key was accepted here: every subscription to that key that has not
    /// seen its `seq` is owed a `notify`.
    pub(super) fn notify_subscribers(&mut self, now: Time, item: &Item, commit: Option<CommitId>) {
        let Some(names) = self.subscriptions.by_key.get(item.key()) else {
            return;
        };
        let names: Vec<(u64, u64)> = names.iter().copied().collect();
        for name in names {
            let Some(sub) = self.subscriptions.by_id.get_mut(&name) else {
                continue;
            };
            if sub.expires <= now {
                self.subscriptions.remove(name);
                continue;
            }
            if sub.wants(item) {
                sub.reported = Some(item.seq().unwrap_or(0));
                self.notifications.push_back(Notification {
                    connection: name.0,
                    id: name.1,
                    item: item.clone(),
                    commit,
                });
            }
        }
    }

    /// Incoming connection `connection` closed: its subscriptions end.
    pub fn connection_closed(&mut self, connection: u64) {
        let names: Vec<(u64, u64)> = self
            .subscriptions
            .of_connection(connection)
            .map(|(name, _)| *name)
            .collect();
        for name in names {
            self.subscriptions.remove(name);
        }
    }

    /// The next `notify` to send, if any. Drain it with the other outputs.
    pub fn poll_notification(&mut self) -> Option<Notification> {
        let next = self.notifications.pop_front();
        if next.is_none() {
            super::release(&mut self.notifications);
        }
        next
    }

    /// Whether any peer listens to `key` here.
    pub(super) fn has_subscribers(&self, key: &Key) -> bool {
        self.subscriptions.by_key.contains_key(key)
    }

    /// Subscriptions peers hold here now (expired ones not yet dropped included).
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// The connections holding subscriptions here, with the ids of their `listen` requests.
    pub fn subscribers(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.subscriptions.by_id.keys().copied()
    }
}

fn over_limit(message: String) -> Response {
    Response::Error(ErrorReply::new(ErrorCode::OVER_LIMIT, message))
}
