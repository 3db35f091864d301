//! The node's commands: what each one runs, how answers move it on, and what it reports.
//!
//! Every command runs one stage at a time, and every stage has the same interface ([`Stage`]):
//! `find_node` is one lookup; `get` is one lookup that also watches for values (stopping at the
//! first immutable copy or at `get_quorum` signed copies) and writes the winner back; `put` is
//! a lookup of the key, then a fixed stage that stores at the closest nodes the lookup found;
//! `bootstrap` is a fixed stage that asks its seed addresses, then a lookup of the node itself.
//! Each stage gets `lookup_timeout` to finish.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::event::{BootstrapError, Event, GetError, PutError, QueryId, QueryStats};
use super::trace::{QueryOutcome, Trace};
use super::{Node, Purpose, WatchId};
use crate::id::{Key, NodeId};
use crate::item::Item;
use crate::lookup::{FixedPeers, Lookup, Next};
use crate::message::{Contact, Peer, Request, Response};
use crate::rtt::RttTable;
use crate::store::{CommitId, CommitOutcome, Store};
use crate::time::Time;

pub(super) struct Query {
    pub(super) kind: QueryKind,
    pub(super) stage: Stage,
    pub(super) started: Time,
    /// When the current stage is ended, whatever it still waits for.
    pub(super) deadline: Time,
    pub(super) requests: u32,
    /// Round trips to the farthest of the k closest nodes the last lookup stage reached.
    pub(super) hops: u32,
    /// Started by housekeeping: no event is reported when it ends.
    pub(super) internal: bool,
}

/// The stage a command is in: an iterative lookup or a fixed set of peers.
pub(super) enum Stage {
    Closest(Lookup),
    Fixed(FixedPeers),
}

impl Stage {
    /// Whom to ask next; a lookup asks, among equally close candidates, the one `rtt` expects
    /// to answer first.
    fn next(&mut self, rtt: &RttTable) -> Next {
        match self {
            Stage::Closest(lookup) => lookup.next_by(|id| rtt.expected(id)),
            Stage::Fixed(fixed) => fixed.next(),
        }
    }

    fn on_success(&mut self, peer: &Peer, closer: Vec<Contact>) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_success(&id, closer),
            (Stage::Fixed(fixed), _) => fixed.on_success(peer),
            (Stage::Closest(_), None) => false,
        }
    }

    fn on_failure(&mut self, peer: &Peer) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_failure(&id),
            (Stage::Fixed(fixed), _) => fixed.on_failure(peer),
            (Stage::Closest(_), None) => false,
        }
    }

    /// `peer`'s request ran past its round-trip timeout. A lookup frees its slot (a late answer
    /// still counts); a fixed set of peers (stores, seeds) keeps waiting for it, since each of
    /// its answers matters.
    pub(super) fn on_slow(&mut self, peer: &Peer) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_timeout(&id),
            (Stage::Fixed(_), _) | (Stage::Closest(_), None) => false,
        }
    }

    pub(super) fn on_timeout(&mut self, peer: &Peer) -> bool {
        match (self, peer.id) {
            (Stage::Closest(lookup), Some(id)) => lookup.on_timeout(&id),
            (Stage::Fixed(fixed), _) => fixed.on_timeout(peer),
            (Stage::Closest(_), None) => false,
        }
    }

    fn finish(&mut self) {
        match self {
            Stage::Closest(lookup) => lookup.finish(),
            Stage::Fixed(fixed) => fixed.finish(),
        }
    }

    /// Whether every path of a lookup has had a copy from one of its nodes (always, for a
    /// fixed stage). `paths_with_copy` has a bit set per path that did.
    fn every_path_has(&self, paths_with_copy: u64) -> bool {
        match self {
            Stage::Closest(lookup) => {
                let all = lookup.paths().min(64);
                paths_with_copy.count_ones() as usize >= all
            }
            Stage::Fixed(_) => true,
        }
    }

    /// The path `peer` belongs to (lookups only).
    fn path(&self, peer: &NodeId) -> Option<usize> {
        match self {
            Stage::Closest(lookup) => lookup.path(peer),
            Stage::Fixed(_) => None,
        }
    }

    /// The round trips it took to reach `peer` (lookups only).
    fn hop(&self, peer: &NodeId) -> Option<u32> {
        match self {
            Stage::Closest(lookup) => lookup.hop(peer),
            Stage::Fixed(_) => None,
        }
    }

    fn closest_succeeded(&self, n: usize) -> Vec<Contact> {
        match self {
            Stage::Closest(lookup) => lookup.closest_succeeded(n),
            Stage::Fixed(_) => Vec::new(),
        }
    }
}

/// What a command is for, beyond the stage it is in.
pub(super) enum QueryKind {
    FindNode,
    Get {
        key: Key,
        best: Option<Item>,
        /// Valid copies seen, the local one included.
        copies: usize,
        /// The `seq` each answering node held (`None`: it answered with nodes).
        held: BTreeMap<NodeId, Option<u64>>,
        hops: u32,
        /// A bit per lookup path that has brought a valid copy. With disjoint paths a signed
        /// get ends early only once every path has, so that adversaries serving stale copies
        /// on one path cannot end it before the others are heard.
        paths_with_copy: u64,
    },
    Put {
        item: Item,
        /// The local copy's outcome: the commit that makes it durable, or why it was refused.
        local: Result<Option<CommitId>, PutError>,
        /// Whether the lookup is over and the stores are out.
        storing: bool,
    },
    Bootstrap {
        /// Nodes the seeds told of, the seeds included.
        found: Vec<Contact>,
        /// Whether the seeds are done and the self-lookup runs.
        seeded: bool,
    },
    /// A round of a watch: a lookup of its key, whose closest nodes it subscribes at.
    Watch(WatchId),
}

/// A command about to start: what it is for and its first stage.
pub(super) type Plan = (QueryKind, Stage);

impl QueryKind {
    pub(super) fn find_node(lookup: Lookup) -> Plan {
        (QueryKind::FindNode, Stage::Closest(lookup))
    }

    pub(super) fn get(key: Key, mut lookup: Lookup, local: Option<Item>) -> Plan {
        let copies = usize::from(local.is_some());
        if matches!(local, Some(Item::Immutable(_))) {
            lookup.finish();
        }
        let kind = QueryKind::Get {
            key,
            best: local,
            copies,
            held: BTreeMap::new(),
            hops: 0,
            paths_with_copy: 0,
        };
        (kind, Stage::Closest(lookup))
    }

    pub(super) fn put(
        item: Item,
        mut lookup: Lookup,
        local: Result<Option<CommitId>, PutError>,
    ) -> Plan {
        if local.is_err() {
            lookup.finish();
        }
        let kind = QueryKind::Put {
            item,
            local,
            storing: false,
        };
        (kind, Stage::Closest(lookup))
    }

    pub(super) fn watch(watch: WatchId, lookup: Lookup) -> Plan {
        (QueryKind::Watch(watch), Stage::Closest(lookup))
    }

    pub(super) fn bootstrap(seeds: &[SocketAddr]) -> Plan {
        let seeds = seeds.iter().map(|&addr| Peer { id: None, addr });
        let kind = QueryKind::Bootstrap {
            found: Vec::new(),
            seeded: false,
        };
        (kind, Stage::Fixed(FixedPeers::new(seeds, usize::MAX)))
    }
}

impl QueryKind {
    /// The store reported `commit`: a put whose local copy waited on it is durable, or failed.
    pub(super) fn committed(&mut self, commit: CommitId, outcome: CommitOutcome) {
        if let QueryKind::Put { local, .. } = self {
            if *local == Ok(Some(commit)) {
                *local = match outcome {
                    CommitOutcome::Durable => Ok(None),
                    CommitOutcome::Failed => Err(PutError::NotDurable),
                };
            }
        }
    }
}

impl Query {
    /// The request the current stage sends to each peer it asks.
    fn request(&self, own: &NodeId) -> Request {
        match (&self.kind, &self.stage) {
            (QueryKind::Get { key, .. }, _) => Request::FindValue { key: *key },
            (QueryKind::Put { item, .. }, Stage::Fixed(_)) => Request::Store { item: item.clone() },
            (_, Stage::Closest(lookup)) => Request::FindNode {
                target: *lookup.target(),
            },
            (_, Stage::Fixed(_)) => Request::FindNode { target: *own },
        }
    }
}

impl<S: Store> Node<S> {
    /// Moves a command on: sends what its stage asks for, starts its next stage when one
    /// ends, and finishes it after the last.
    pub(super) fn step(&mut self, now: Time, id: QueryId) {
        let Some(mut query) = self.queries.remove(&id) else {
            return;
        };
        if now >= query.deadline {
            query.stage.finish();
        }
        loop {
            match query.stage.next(&self.rtt) {
                Next::Send(peer) => {
                    let (via, hop) = query.stage.route_to(peer.id.as_ref());
                    self.traces.push(|| Trace::Asked {
                        query: id,
                        to: peer.id,
                        via,
                        hop,
                    });
                    let request = query.request(&self.id);
                    self.send(now, peer, request, Purpose::Query(id));
                    query.requests += 1;
                }
                Next::Wait => break,
                Next::Finished => {
                    self.forget_requests(id);
                    if let Stage::Closest(lookup) = &query.stage {
                        query.hops = lookup.hops(self.config.k.get());
                    }
                    match self.next_stage(now, &mut query) {
                        Some(stage) => {
                            query.stage = stage;
                            query.deadline = now + self.config.lookup_timeout;
                        }
                        None => {
                            query.requests += self.write_back(now, &query);
                            self.finish(now, id, *query);
                            return;
                        }
                    }
                }
            }
        }
        self.queries.insert(id, query);
    }

    /// The stage that follows the one just finished, if the command has one.
    fn next_stage(&mut self, now: Time, query: &mut Query) -> Option<Stage> {
        let k = self.config.k.get();
        match &mut query.kind {
            QueryKind::Put {
                local: Ok(_),
                storing: storing @ false,
                ..
            } => {
                *storing = true;
                let targets = query.stage.closest_succeeded(k).into_iter().map(Peer::from);
                Some(Stage::Fixed(FixedPeers::new(targets, usize::MAX)))
            }
            QueryKind::Bootstrap {
                found,
                seeded: seeded @ false,
            } => {
                *seeded = true;
                let mut seeds = self.table.closest(&self.id, k);
                seeds.extend(found.drain(..).filter(|c| c.id != self.id));
                let target = self.id;
                self.table.touch(&target, now);
                Some(Stage::Closest(self.new_lookup(target, seeds)))
            }
            _ => None,
        }
    }

    /// After a get of a signed key: stores the winner (a signed item or a tombstone) at the
    /// closest answering nodes that lacked it.
    fn write_back(&mut self, now: Time, query: &Query) -> u32 {
        let QueryKind::Get {
            best: Some(best),
            held,
            ..
        } = &query.kind
        else {
            return 0;
        };
        if best.seq().is_none() {
            return 0;
        }
        let mut sent = 0;
        for contact in query.stage.closest_succeeded(self.config.k.get()) {
            let had = held.get(&contact.id).copied().flatten();
            if had.is_none_or(|seq| Some(seq) < best.seq()) {
                let request = Request::Store { item: best.clone() };
                self.send(now, contact.into(), request, Purpose::Unattended);
                sent += 1;
            }
        }
        sent
    }

    /// Emits a command's completion event.
    fn finish(&mut self, now: Time, id: QueryId, query: Query) {
        self.forget_requests(id);
        self.trace_finish(now, id, &query);
        if let QueryKind::Watch(watch) = query.kind {
            let closest = query.stage.closest_succeeded(self.config.k.get());
            self.watch_found(now, watch, closest);
            return;
        }
        if query.internal {
            self.housekeeping.running = self.housekeeping.running.saturating_sub(1);
            return;
        }
        let stats = query.stats(now);
        let event = match query.kind {
            QueryKind::FindNode => Event::FindNodeDone {
                query: id,
                closest: query.stage.closest_succeeded(self.config.k.get()),
                stats,
            },
            QueryKind::Get {
                key, best, held, ..
            } => {
                let asked = held.len();
                Event::GetDone {
                    query: id,
                    key,
                    result: best.ok_or(GetError::NotFound { key, asked }),
                    stats,
                }
            }
            QueryKind::Put { item, local, .. } => {
                let acks = match &query.stage {
                    Stage::Fixed(stores) => stores.succeeded(),
                    Stage::Closest(_) => 0,
                };
                let commit = local.as_ref().ok().copied().flatten();
                Event::PutDone {
                    query: id,
                    key: *item.key(),
                    seq: item.seq(),
                    expires: item.expires(),
                    result: local.map(|_| acks + 1),
                    commit,
                    stats,
                }
            }
            QueryKind::Watch(_) => return,
            QueryKind::Bootstrap { .. } => {
                let contacts = self.table.len();
                let result = if contacts == 0 {
                    Err(BootstrapError::NoContact)
                } else {
                    Ok(contacts)
                };
                Event::BootstrapDone {
                    query: id,
                    result,
                    stats,
                }
            }
        };
        self.events.push_back(event);
    }

    /// `peer` (proved to be `from`) answered one of command `id`'s requests.
    pub(super) fn on_query_response(
        &mut self,
        now: Time,
        id: QueryId,
        peer: Peer,
        from: Contact,
        response: Response,
    ) {
        let own = self.id;
        let quorum = self.config.get_quorum.get();
        let Some(query) = self.queries.get_mut(&id) else {
            return;
        };
        let stage = &mut query.stage;
        match (&mut query.kind, response) {
            (QueryKind::Put { storing: true, .. }, Response::Stored) => {
                stage.on_success(&peer, Vec::new());
            }
            (QueryKind::Bootstrap { found, .. }, Response::Nodes(nodes)) if !is_lookup(stage) => {
                found.push(from);
                found.extend(nodes);
                stage.on_success(&peer, Vec::new());
            }
            (
                QueryKind::Get {
                    key,
                    best,
                    copies,
                    held,
                    hops,
                    paths_with_copy,
                },
                Response::Value(item),
            ) => {
                if item.key() != key {
                    stage.on_failure(&peer);
                } else {
                    let hop = stage.hop(&from.id).unwrap_or(1);
                    if let Some(path) = stage.path(&from.id) {
                        *paths_with_copy |= 1u64 << path.min(63);
                    }
                    stage.on_success(&peer, Vec::new());
                    held.insert(from.id, item.seq());
                    *copies += 1;
                    if best.as_ref().is_none_or(|b| item.seq() > b.seq()) {
                        *best = Some(item);
                        *hops = hop;
                    }
                    let immutable = matches!(best, Some(Item::Immutable(_)));
                    let heard = stage.every_path_has(*paths_with_copy);
                    if immutable || (*copies >= quorum && heard) {
                        stage.finish();
                    }
                }
            }
            (kind, Response::Nodes(nodes)) if is_lookup(stage) => {
                if let QueryKind::Get { held, .. } = kind {
                    held.insert(from.id, None);
                }
                let closer = nodes.into_iter().filter(|c| c.id != own).collect();
                stage.on_success(&peer, closer);
            }
            _ => {
                stage.on_failure(&peer);
            }
        }
        self.step(now, id);
    }

    /// One of command `id`'s requests, to `peer`, failed.
    pub(super) fn on_query_failure(&mut self, now: Time, id: QueryId, peer: Peer) {
        if let Some(query) = self.queries.get_mut(&id) {
            query.stage.on_failure(&peer);
            self.step(now, id);
        }
    }
}

impl Query {
    /// What the command cost up to `now`: a get's hops are those to its winning copy, any
    /// other lookup's those to the farthest of the k closest nodes it reached.
    fn stats(&self, now: Time) -> QueryStats {
        let hops = match &self.kind {
            QueryKind::Get { hops, .. } => *hops,
            _ => self.hops,
        };
        QueryStats {
            requests: self.requests,
            hops,
            duration: now.since(self.started),
        }
    }

    fn outcome(&self, contacts: usize) -> QueryOutcome {
        match &self.kind {
            QueryKind::Get { best: None, .. } => QueryOutcome::NotFound,
            QueryKind::Put { local: Err(_), .. } => QueryOutcome::Failed,
            QueryKind::Bootstrap { .. } if contacts == 0 => QueryOutcome::Failed,
            _ => QueryOutcome::Ok,
        }
    }
}

impl<S: Store> Node<S> {
    fn trace_finish(&mut self, now: Time, id: QueryId, query: &Query) {
        let contacts = self.table.len();
        self.traces.push(|| Trace::QueryFinished {
            query: id,
            operation: query.kind.operation(query.internal),
            outcome: query.outcome(contacts),
            stats: query.stats(now),
        });
    }
}

fn is_lookup(stage: &Stage) -> bool {
    matches!(stage, Stage::Closest(_))
}
