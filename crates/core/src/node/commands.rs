//! The node's commands, and the commands it starts itself (housekeeping's, a watch's
//! rounds): each starts a query the query pool runs, and each query's end is routed to
//! whoever waits on it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;

use super::Node;
use super::event::{QueryId, WatchId};
use super::housekeeping::Task;
use super::publish::{expiry, next_seq};
use super::query::Done;
use super::requests::Purpose;
use super::stage::{QueryKind, QueryStart};
use crate::id::{Key, NodeId};
use crate::item::{Item, ItemError, SignedItem, Tombstone, signed_key};
use crate::lookup::Lookup;
use crate::message::Request;
use crate::store::{Origin, Store};
use crate::time::Time;

impl<S: Store> Node<S> {
    /// Starts a lookup of the k nodes closest to `target`.
    pub fn find_node(&mut self, now: Time, target: NodeId) -> QueryId {
        self.start_housekeeping(now);
        let lookup = self.start_lookup(now, &target);
        self.start_query(now, QueryKind::find_node(lookup), false)
    }

    /// Starts a get of the item under `key`.
    pub fn get(&mut self, now: Time, key: Key) -> QueryId {
        self.start_housekeeping(now);
        let local = self.store.get(&key, now);
        let unreadable = local.is_err();
        let checked = !self.housekeeping.is_unchecked(&key);
        let lookup = self.start_lookup(now, &key);
        let local = local.ok().flatten().map(|item| (item, checked));
        let plan = QueryKind::get(key, lookup, local, unreadable);
        self.start_query(now, plan, false)
    }

    /// Stores `item` here, then at the k nodes closest to its key.
    pub fn put(&mut self, now: Time, item: Item) -> QueryId {
        self.start_housekeeping(now);
        let local = self.store_checked(now, item.clone(), Origin::Own);
        let key = *item.key();
        let lookup = self.start_lookup(now, &key);
        self.start_query(now, QueryKind::put(item, lookup, local), false)
    }

    /// Joins a network: asks `seeds` for this node's neighbours, then looks itself up. With no
    /// seeds, the contacts already in the table (say, from a snapshot) serve.
    pub fn bootstrap(&mut self, now: Time, seeds: &[SocketAddr]) -> QueryId {
        self.start_housekeeping(now);
        self.rejoin.remember(now, seeds.iter().copied());
        self.start_query(now, QueryKind::bootstrap(seeds), false)
    }

    /// Bootstraps again through the addresses kept to rejoin, if the routing table is empty
    /// and a try is due: a housekeeping lookup, reported to nobody.
    pub(super) fn rejoin_round(&mut self, now: Time) {
        let alone = self.table.is_empty();
        let Some(addrs) = self.rejoin.due(now, alone) else {
            return;
        };
        let plan = QueryKind::bootstrap(addrs);
        self.housekeeping.started();
        self.start_query(now, plan, true);
    }

    /// Signs `value` under `name` with `key` (this node's publishing key), choosing `seq` and
    /// `expires` by the rules of [`next_seq`] and [`expiry`], and puts it. Fails only if the
    /// item is invalid (say, a name of more than 255 bytes).
    pub fn publish(
        &mut self,
        now: Time,
        key: &SigningKey,
        name: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<QueryId, ItemError> {
        let item_key = signed_key(&key.verifying_key().to_bytes(), name);
        let held = self
            .store
            .get(&item_key, now)
            .ok()
            .flatten()
            .and_then(|item| item.seq());
        let item = SignedItem::sign(key, name, value, next_seq(now, held), expiry(now, ttl))?;
        Ok(self.put(now, item.into()))
    }

    /// Deletes the item `name` of `key`'s owner: signs a tombstone whose `seq` beats both the
    /// copy held here and `found` (the `seq` a get found in the network, if any), and puts it.
    /// The tombstone lives `ttl`, for ever without one: a tombstone that expires stops
    /// refusing older copies, so it should outlive every copy of the item it deletes.
    pub fn delete(
        &mut self,
        now: Time,
        key: &SigningKey,
        name: &str,
        found: Option<u64>,
        ttl: Option<Duration>,
    ) -> Result<QueryId, ItemError> {
        let item_key = signed_key(&key.verifying_key().to_bytes(), name);
        let local = self
            .store
            .get(&item_key, now)
            .ok()
            .flatten()
            .and_then(|item| item.seq());
        let held = local.max(found);
        let tombstone = Tombstone::sign(key, name, next_seq(now, held), expiry(now, ttl))?;
        Ok(self.put(now, tombstone.into()))
    }

    /// Starts watching `key`: from now on every newer version the nodes closest to it accept
    /// (and the newest they hold already) is reported once, as an [`super::Event::WatchUpdate`].
    pub fn watch(&mut self, now: Time, key: Key) -> WatchId {
        self.start_housekeeping(now);
        let local = self.store.get(&key, now).ok().flatten();
        let (id, update) = self.watches.add(now, key, local);
        self.events.extend(update);
        self.round(now, id);
        id
    }

    /// Ends a watch: its subscriptions are ended with `unlisten`.
    pub fn unwatch(&mut self, now: Time, watch: WatchId) {
        self.watches.remove(now, watch, &mut self.requests);
    }

    /// A lookup of `target` from the closest contacts known.
    fn start_lookup(&mut self, now: Time, target: &NodeId) -> Lookup {
        self.queries_and_env(now).1.start_lookup(target)
    }

    /// Starts `plan` (`internal`: for housekeeping) and routes its end if it ends at once.
    fn start_query(&mut self, now: Time, plan: QueryStart, internal: bool) -> QueryId {
        let (queries, mut env) = self.queries_and_env(now);
        let (id, done) = queries.start(&mut env, plan, internal);
        self.route(now, done);
        id
    }

    /// Tells whoever waits on a query that it ended: the driver, housekeeping, or a watch.
    pub(super) fn route(&mut self, now: Time, done: Option<Done>) {
        match done {
            None => {}
            Some(Done::Reported(event)) => self.events.push(event),
            Some(Done::Housekeeping) => self.housekeeping.finished(),
            Some(Done::CaughtUp { key, newest, heard }) => {
                self.housekeeping.finished();
                if heard {
                    self.housekeeping.caught_up(&key);
                } else {
                    // Nobody answered: the copy is as unchecked as before; try again later.
                    self.housekeeping.missed(now, key);
                }
                if let Some(item) = newest {
                    // Kept only if it beats the copy held; a refusal changes nothing.
                    let _ = self.store_checked(now, item, Origin::Unknown);
                }
            }
            Some(Done::Watch { watch, closest }) => {
                let (config, requests) = (&self.config, &mut self.requests);
                self.watches.found(now, watch, closest, config, requests);
            }
        }
    }

    /// Starts a round of `watch`: a lookup of its key.
    fn round(&mut self, now: Time, watch: WatchId) {
        let Some(key) = self.watches.key(watch) else {
            return;
        };
        let lookup = self.start_lookup(now, &key);
        let query = self.start_query(now, QueryKind::watch(watch, lookup), false);
        // The lookup may have ended at once (a node alone) and already been routed.
        if self.queries.contains(query) {
            self.watches.round_started(watch, query);
        }
    }

    /// Starts the watch rounds that are due.
    pub(super) fn watch_rounds(&mut self, now: Time) {
        for watch in self.watches.due(now) {
            self.round(now, watch);
        }
    }

    /// Starts the housekeeping clock at the first input the node sees.
    pub(super) fn start_housekeeping(&mut self, now: Time) {
        self.housekeeping
            .start(now, &self.id, &self.config, &self.store);
    }

    /// Runs every housekeeping duty due at `now`, then starts queued tasks.
    pub(super) fn housekeep(&mut self, now: Time) {
        let refresh = self.housekeeping.run_due(
            now,
            &self.id,
            &self.config,
            &mut self.store,
            &self.table,
            &mut self.traces,
        );
        if refresh {
            for contact in self.table.dormant_round() {
                self.requests
                    .send(now, contact.into(), Request::Ping, Purpose::Liveness);
            }
        }
        self.pump_housekeeping(now);
    }

    /// Starts queued housekeeping tasks while fewer than `max_housekeeping` run.
    pub(super) fn pump_housekeeping(&mut self, now: Time) {
        let max = self.config.max_housekeeping.get();
        while let Some(task) = self.housekeeping.next_task(max) {
            let plan = match task {
                Task::Store(key) => match self.store.get(&key, now).ok().flatten() {
                    Some(item) => {
                        let lookup = self.start_lookup(now, &key);
                        QueryKind::put(item, lookup, Ok(None))
                    }
                    None => continue,
                },
                Task::CatchUp(key) => match self.store.get(&key, now).ok().flatten() {
                    Some(item) => {
                        let lookup = self.start_lookup(now, &key);
                        QueryKind::catch_up(key, lookup, item)
                    }
                    None => {
                        // Gone (expired) or unreadable: nothing to catch up on or to serve.
                        self.housekeeping.caught_up(&key);
                        continue;
                    }
                },
                Task::Refresh(target) => {
                    let lookup = self.start_lookup(now, &target);
                    QueryKind::find_node(lookup)
                }
            };
            self.housekeeping.started();
            self.start_query(now, plan, true);
        }
    }
}
