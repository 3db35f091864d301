//! The listener's side of `listen` (`docs/protocol.md`, "Listening"): the subscriptions peers
//! hold here, and the `notify` frames owed to them when a newer copy of a key is accepted.
//!
//! A subscription is named by the connection it came on (an opaque number the driver gives
//! each incoming connection, [`super::Requester::connection`]) and the id of its `listen`
//! request. It ends at its ttl, on `unlisten`, when its connection closes
//! ([`Node::connection_closed`]), or when the same connection listens to the same key again
//! (a renewal replaces it). The `notify` frames wait here until the driver polls them
//! ([`Node::poll_notification`]).
//!
//! [`Node::connection_closed`]: super::Node::connection_closed
//! [`Node::poll_notification`]: super::Node::poll_notification

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::outbox::Outbox;
use crate::config::Config;
use crate::id::Key;
use crate::item::Item;
use crate::message::{ErrorCode, ErrorReply, MAX_LISTEN_TTL, MAX_LISTENS_PER_CONNECTION, Response};
use crate::store::{CommitId, Store};
use crate::time::Time;

/// A `notify` frame the driver must send on an incoming connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The connection, as the driver named it in [`super::Requester::connection`].
    pub connection: u64,
    /// The id of the `listen` request that made the subscription.
    pub id: u64,
    /// The newer copy.
    pub item: Item,
    /// When set, the copy is not durable yet: send only once this commit is, and not at all if
    /// it fails.
    pub commit: Option<CommitId>,
}

/// A subscription's name: its connection and the id of its `listen` request.
type Name = (u64, u64);

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

/// Every subscription peers hold at this node, and the `notify` frames owed to them.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    by_id: BTreeMap<Name, Subscription>,
    by_key: HashMap<Key, BTreeSet<Name>>,
    notifications: Outbox<Notification>,
}

impl Subscriptions {
    fn remove(&mut self, name: Name) -> Option<Subscription> {
        let sub = self.by_id.remove(&name)?;
        if let Some(names) = self.by_key.get_mut(&sub.key) {
            names.remove(&name);
            if names.is_empty() {
                self.by_key.remove(&sub.key);
            }
        }
        Some(sub)
    }

    fn of_connection(&self, connection: u64) -> impl Iterator<Item = (&Name, &Subscription)> {
        self.by_id.range((connection, 0)..=(connection, u64::MAX))
    }

    fn drop_expired(&mut self, now: Time) {
        let expired: Vec<Name> = self
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

    /// The names of every subscription, in order.
    pub(super) fn names(&self) -> impl Iterator<Item = Name> + '_ {
        self.by_id.keys().copied()
    }

    /// Whether any peer listens to `key` here.
    pub(super) fn has_subscribers(&self, key: &Key) -> bool {
        self.by_key.contains_key(key)
    }

    /// The next `notify` to send.
    pub(super) fn pop_notification(&mut self) -> Option<Notification> {
        self.notifications.pop()
    }

    /// Answers `listen` request `id` for `key` (the dialer holds `seq`) on `connection`:
    /// `listening`, or 429 past the limits of `config`. A copy in `store` newer than the
    /// dialer's is owed at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn listen<S: Store>(
        &mut self,
        now: Time,
        connection: u64,
        id: u64,
        key: Key,
        seq: u64,
        config: &Config,
        store: &S,
    ) -> Response {
        // A renewal (the same key again on the same connection) replaces its subscription.
        let renewed: Vec<Name> = self
            .of_connection(connection)
            .filter(|(_, s)| s.key == key)
            .map(|(name, _)| *name)
            .collect();
        for name in renewed {
            self.remove(name);
        }
        if let Some(refusal) = self.refusal(now, connection, config.max_subscriptions) {
            return over_limit(refusal);
        }
        let ttl = config
            .listen_ttl
            .as_secs()
            .clamp(1, u64::from(MAX_LISTEN_TTL));
        let ttl = u32::try_from(ttl).unwrap_or(MAX_LISTEN_TTL);
        let mut sub = Subscription {
            key,
            reported: (seq != 0).then_some(seq),
            expires: now + Duration::from_secs(u64::from(ttl)),
        };
        self.catch_up(now, (connection, id), &mut sub, store);
        self.by_id.insert((connection, id), sub);
        self.by_key.entry(key).or_default().insert((connection, id));
        Response::Listening { ttl }
    }

    /// A copy in `store` newer than the one `sub` (named `name`) has seen goes out at once
    /// (after the `listening` answer: the driver sends answers before notifications).
    fn catch_up<S: Store>(&mut self, now: Time, name: Name, sub: &mut Subscription, store: &S) {
        let Some(item) = store.get(&sub.key, now).ok().flatten() else {
            return;
        };
        if sub.wants(&item) {
            sub.reported = Some(item.seq().unwrap_or(0));
            self.notifications.push(Notification {
                connection: name.0,
                id: name.1,
                item,
                commit: None,
            });
        }
    }

    /// Why `connection`, or this node (at most `max`), may not hold one more subscription, if
    /// it may not.
    fn refusal(&mut self, now: Time, connection: u64, max: usize) -> Option<String> {
        let live_here = self
            .of_connection(connection)
            .filter(|(_, s)| s.expires > now)
            .count();
        if live_here >= MAX_LISTENS_PER_CONNECTION {
            return Some(format!(
                "this connection holds {MAX_LISTENS_PER_CONNECTION} subscriptions, the most allowed"
            ));
        }
        if self.len() >= max {
            self.drop_expired(now);
            if self.len() >= max {
                return Some(format!(
                    "this node holds {max} subscriptions, the most it keeps"
                ));
            }
        }
        None
    }

    /// Answers `unlisten`: ends the subscription `listen` of `connection`, if it is there.
    /// Ending one that is not (already ended, or never made) is not an error.
    pub(super) fn unlisten(&mut self, connection: u64, listen: u64) -> Response {
        self.remove((connection, listen));
        Response::Unlistened
    }

    /// A copy of `item`'s key was accepted here: every subscription to that key that has not
    /// seen its `seq` is owed a `notify`.
    pub(super) fn notify(&mut self, now: Time, item: &Item, commit: Option<CommitId>) {
        let Some(names) = self.by_key.get(item.key()) else {
            return;
        };
        let names: Vec<Name> = names.iter().copied().collect();
        for name in names {
            let Some(sub) = self.by_id.get_mut(&name) else {
                continue;
            };
            if sub.expires <= now {
                self.remove(name);
                continue;
            }
            if sub.wants(item) {
                sub.reported = Some(item.seq().unwrap_or(0));
                self.notifications.push(Notification {
                    connection: name.0,
                    id: name.1,
                    item: item.clone(),
                    commit,
                });
            }
        }
    }

    /// Incoming connection `connection` closed: its subscriptions end.
    pub(super) fn connection_closed(&mut self, connection: u64) {
        let names: Vec<Name> = self
            .of_connection(connection)
            .map(|(name, _)| *name)
            .collect();
        for name in names {
            self.remove(name);
        }
    }
}

fn over_limit(message: String) -> Response {
    Response::Error(ErrorReply::new(ErrorCode::OVER_LIMIT, message))
}
