//! The running queries ([`QueryPool`]): how answers move each one on, and what each reports
//! when it ends.
//!
//! A query runs one stage at a time (`stage.rs`); each stage gets `lookup_timeout` to
//! finish. `get` stops at the first immutable copy or at `get_quorum` signed copies and writes
//! the winner back. The pool sends through the node's request table, which the node lends it
//! with the rest of an [`Env`]; when a query ends, the pool hands back a [`Done`] for the
//! node to route: an event for the driver, or news for the housekeeping or the watch that
//! started it.

use std::collections::BTreeMap;

use super::event::{BootstrapFailure, Event, GetFailure, PutFailure, QueryId, QueryStats, WatchId};
use super::requests::{Purpose, Requests};
use super::stage::{QueryKind, QueryStart, Stage};
use super::trace::{QueryOutcome, Trace, Traces};
use crate::config::Config;
use crate::id::{Key, NodeId};
use crate::item::Item;
use crate::lookup::{FixedPeers, Lookup, LookupParams, Next};
use crate::message::{Contact, ErrorCode, Peer, Request, Response};
use crate::routing::RoutingTable;
use crate::store::{CommitId, CommitOutcome};
use crate::time::Time;

/// What the queries borrow from their node while an input or a command runs.
pub(super) struct Env<'a> {
    pub(super) now: Time,
    /// This node's id.
    pub(super) own: NodeId,
    pub(super) config: &'a Config,
    pub(super) table: &'a mut RoutingTable,
    pub(super) requests: &'a mut Requests,
    pub(super) traces: &'a mut Traces,
    /// Whether the node knows an address to join through (see `rejoin.rs`): a node with
    /// none and an empty table is alone by design, and its puts need no peer.
    pub(super) can_join: bool,
}

impl Env<'_> {
    /// A lookup of `target` from the 2k closest contacts known; `target`'s bucket counts as
    /// used.
    pub(super) fn start_lookup(&mut self, target: &NodeId) -> Lookup {
        self.table.touch(target, self.now);
        // Twice k: the lookup asks only the k closest that have not failed, and the next k
        // stand in for those that fail before anyone answers with closer nodes (found by the
        // swarm test, seed 9359: a get whose k closest contacts were all down or lost ended
        // "not found" with reachable replicas in its table).
        let seeds = self.table.closest(target, 2 * self.config.k.get());
        self.new_lookup(*target, seeds)
    }

    /// A lookup of `target` from `seeds`, recording referrers when tracing is on.
    fn new_lookup(&self, target: NodeId, seeds: Vec<Contact>) -> Lookup {
        let params = LookupParams {
            k: self.config.k.get(),
            alpha: self.config.alpha.get(),
            paths: self.config.disjoint_paths.get(),
        };
        let mut lookup = Lookup::new(target, params, seeds);
        if self.traces.is_on() {
            lookup.record_referrers();
        }
        lookup
    }
}

/// A command that ended, for the node to route.
// Routed as soon as it is made, one per finished command: boxing the event would cost an
// allocation for no gain (as for `Event` itself).
#[allow(clippy::large_enum_variant)]
pub(super) enum Done {
    /// A user's command: report this event.
    Reported(Event),
    /// A housekeeping command: one fewer runs.
    Housekeeping,
    /// A catch-up ended (one fewer housekeeping command runs) with the newest copy it saw,
    /// for this node to keep if it beats the one held.
    CaughtUp {
        /// The key caught up on.
        key: Key,
        /// The newest copy seen, if any.
        newest: Option<Item>,
        /// Whether any node answered it (with a copy or with nodes): a catch-up that heard
        /// from nobody checked nothing.
        heard: bool,
    },
    /// A watch's round found the closest nodes to its key (closest first).
    Watch {
        watch: WatchId,
        closest: Vec<Contact>,
    },
}

/// One running query.
struct Query {
    kind: QueryKind,
    stage: Stage,
    started: Time,
    /// When the current stage is ended, whatever it still waits for.
    deadline: Time,
    requests: u32,
    /// Round trips to the farthest of the k closest nodes the last lookup stage reached.
    hops: u32,
    /// Started by housekeeping: no event is reported when it ends.
    internal: bool,
}

/// Every command running, by id.
#[derive(Default)]
pub(super) struct QueryPool {
    /// Boxed: a map node holds 11 values inline, and a query is a few hundred bytes.
    queries: BTreeMap<QueryId, Box<Query>>,
    /// The id of the last command started.
    last: u64,
}

impl QueryPool {
    /// Commands running.
    pub(super) fn len(&self) -> usize {
        self.queries.len()
    }

    /// Whether command `id` still runs.
    pub(super) fn contains(&self, id: QueryId) -> bool {
        self.queries.contains_key(&id)
    }

    /// The ids of the commands running, in order.
    pub(super) fn ids(&self) -> Vec<QueryId> {
        self.queries.keys().copied().collect()
    }

    /// When the earliest stage must be ended.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.queries.values().map(|q| q.deadline).min()
    }

    /// Starts `plan` (`internal`: for housekeeping, reported by no event) and sends its first
    /// requests. It may end at once (nobody to ask), and then comes back [`Done`].
    pub(super) fn start(
        &mut self,
        env: &mut Env,
        (kind, stage): QueryStart,
        internal: bool,
    ) -> (QueryId, Option<Done>) {
        self.last += 1;
        let id = QueryId(self.last);
        let target = match &stage {
            Stage::Closest(lookup) => *lookup.target(),
            Stage::Fixed(_) => env.own,
        };
        let operation = kind.operation(internal);
        env.traces.push(|| Trace::QueryStarted {
            query: id,
            operation,
            target,
        });
        let query = Query {
            kind,
            stage,
            started: env.now,
            deadline: env.now + env.config.lookup_timeout,
            requests: 0,
            hops: 0,
            internal,
        };
        self.queries.insert(id, Box::new(query));
        (id, self.step(env, id))
    }

    /// Moves command `id` on: sends what its stage asks for, starts its next stage when one
    /// ends, and finishes it after the last.
    pub(super) fn step(&mut self, env: &mut Env, id: QueryId) -> Option<Done> {
        let mut query = self.queries.remove(&id)?;
        if env.now >= query.deadline {
            query.stage.finish();
        }
        loop {
            match query.stage.next(env.requests.rtt()) {
                Next::Send(peer) => {
                    let (via, hop) = query.stage.route_to(peer.id.as_ref());
                    env.traces.push(|| Trace::Asked {
                        query: id,
                        to: peer.id,
                        via,
                        hop,
                    });
                    let request = query.kind.request(&query.stage, &env.own);
                    env.requests
                        .send(env.now, peer, request, Purpose::Query(id));
                    query.requests += 1;
                }
                Next::Wait => break,
                Next::Finished => {
                    env.requests.forget(id);
                    if let Stage::Closest(lookup) = &query.stage {
                        query.hops = lookup.hops(env.config.k.get());
                    }
                    let Some(stage) = next_stage(env, &mut query.kind, &query.stage) else {
                        query.requests += write_back(env, &query);
                        return finish(env, id, *query);
                    };
                    query.stage = stage;
                    query.deadline = env.now + env.config.lookup_timeout;
                }
            }
        }
        self.queries.insert(id, query);
        None
    }

    /// `peer` (proved to be `from`) answered one of command `id`'s requests.
    pub(super) fn on_response(
        &mut self,
        env: &mut Env,
        id: QueryId,
        peer: Peer,
        from: Contact,
        response: Response,
    ) -> Option<Done> {
        let query = self.queries.get_mut(&id)?;
        let quorum = if query.kind.is_catch_up() {
            usize::MAX
        } else {
            env.config.get_quorum.get()
        };
        let k = env.config.k.get();
        query.take(&env.own, (quorum, k), &peer, from, response);
        self.step(env, id)
    }

    /// One of command `id`'s requests, to `peer`, failed.
    pub(super) fn on_failure(&mut self, env: &mut Env, id: QueryId, peer: Peer) -> Option<Done> {
        let query = self.queries.get_mut(&id)?;
        query.stage.on_failure(&peer);
        self.step(env, id)
    }

    /// One of command `id`'s requests, to `peer`, ran past its round-trip timeout: whether
    /// that freed a lookup slot.
    pub(super) fn on_slow(&mut self, id: QueryId, peer: &Peer) -> bool {
        self.queries
            .get_mut(&id)
            .is_some_and(|query| query.stage.on_slow(peer))
    }

    /// One of command `id`'s requests, to `peer`, timed out: its stage frees the slot it held.
    pub(super) fn on_timeout(&mut self, id: QueryId, peer: &Peer) {
        if let Some(query) = self.queries.get_mut(&id) {
            query.stage.on_timeout(peer);
        }
    }

    /// The store reported `commit`: a put still running learns it now, so that its event
    /// reports no commit to wait for.
    pub(super) fn committed(&mut self, commit: CommitId, outcome: CommitOutcome) {
        for query in self.queries.values_mut() {
            query.kind.committed(commit, outcome);
        }
    }
}

/// The stage that follows `finished`, if the query has one.
fn next_stage(env: &mut Env, kind: &mut QueryKind, finished: &Stage) -> Option<Stage> {
    let k = env.config.k.get();
    match kind {
        QueryKind::Put {
            local: Ok(_),
            storing: storing @ false,
            ..
        } => {
            *storing = true;
            let targets = finished.closest_succeeded(k).into_iter().map(Peer::from);
            Some(Stage::Fixed(FixedPeers::new(targets, usize::MAX)))
        }
        QueryKind::Bootstrap {
            found,
            seeded: seeded @ false,
        } => {
            *seeded = true;
            let own = env.own;
            let mut seeds = env.table.closest(&own, k);
            seeds.extend(found.drain(..).filter(|c| c.id != own));
            env.table.touch(&own, env.now);
            Some(Stage::Closest(env.new_lookup(own, seeds)))
        }
        _ => None,
    }
}

/// After a get of a signed key: stores the winner (a signed item or a tombstone) at the
/// closest answering nodes that lacked it. Returns the stores sent.
fn write_back(env: &mut Env, query: &Query) -> u32 {
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
    // Only to the k closest the lookup knows: a copy farther out would not be updated by the
    // next put, and would answer later gets with a stale version.
    for contact in query.stage.succeeded_among_closest(env.config.k.get()) {
        let had = held.get(&contact.id).copied().flatten();
        if had.is_none_or(|seq| Some(seq) < best.seq()) {
            let request = Request::Store { item: best.clone() };
            env.requests
                .send(env.now, contact.into(), request, Purpose::Unattended);
            sent += 1;
        }
    }
    sent
}

/// Ends command `id`: detaches its requests, traces its end, and says whom to tell.
fn finish(env: &mut Env, id: QueryId, query: Query) -> Option<Done> {
    env.requests.forget(id);
    let contacts = env.table.len();
    env.traces.push(|| Trace::QueryFinished {
        query: id,
        operation: query.kind.operation(query.internal),
        outcome: query.outcome(contacts),
        stats: query.stats(env.now),
    });
    let k = env.config.k.get();
    if let QueryKind::Watch(watch) = query.kind {
        let closest = query.stage.closest_succeeded(k);
        return Some(Done::Watch { watch, closest });
    }
    if query.internal {
        if let QueryKind::Get {
            catch_up: true,
            key,
            best,
            held,
            ..
        } = query.kind
        {
            let heard = !held.is_empty();
            return Some(Done::CaughtUp {
                key,
                newest: best,
                heard,
            });
        }
        return Some(Done::Housekeeping);
    }
    query
        .into_event(id, env.now, k, contacts, contacts == 0 && !env.can_join)
        .map(Done::Reported)
}

impl Query {
    /// Takes `peer`'s answer `response` (`peer` proved to be `from`) into the query.
    fn take(
        &mut self,
        own: &NodeId,
        (quorum, k): (usize, usize),
        peer: &Peer,
        from: Contact,
        response: Response,
    ) {
        let stage = &mut self.stage;
        match (&mut self.kind, response) {
            (QueryKind::Put { storing: true, .. }, Response::Stored) => {
                stage.on_success(peer, Vec::new());
            }
            (QueryKind::Bootstrap { found, .. }, Response::Nodes(nodes)) if !stage.is_lookup() => {
                found.push(from);
                found.extend(nodes);
                stage.on_success(peer, Vec::new());
            }
            (kind @ QueryKind::Get { .. }, Response::Value { item, unchecked }) => {
                let copy = Copy {
                    from: &from,
                    own,
                    quorum,
                    k,
                    unchecked,
                };
                take_value(kind, stage, peer, copy, item);
            }
            (QueryKind::Get { unreadable, .. }, Response::Error(e))
                if e.code == ErrorCode::UNAVAILABLE || e.code == ErrorCode::INTERNAL =>
            {
                // It holds the item but cannot read it (503; a node of before 503 answers a
                // `find_value` 500 only for that): a failed replica, not an absent copy.
                *unreadable += 1;
                stage.on_failure(peer);
            }
            (kind, Response::Nodes(nodes)) if stage.is_lookup() => {
                if let QueryKind::Get { held, .. } = kind {
                    held.insert(from.id, None);
                }
                let closer = nodes.into_iter().filter(|c| c.id != *own).collect();
                stage.on_success(peer, closer);
            }
            _ => {
                stage.on_failure(peer);
            }
        }
    }

    /// What the query cost up to `now`: a get's hops are those to its winning copy, any
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

    /// How the command ended, for its trace (`contacts`: the routing table's size).
    fn outcome(&self, contacts: usize) -> QueryOutcome {
        match &self.kind {
            QueryKind::Get {
                best: None,
                unreadable: 0,
                ..
            } => QueryOutcome::NotFound,
            QueryKind::Get { best: None, .. } => QueryOutcome::Failed,
            QueryKind::Put { local: Err(_), .. } => QueryOutcome::Failed,
            QueryKind::Bootstrap { .. } if contacts == 0 => QueryOutcome::Failed,
            _ => QueryOutcome::Ok,
        }
    }

    /// The completion event of a user's command `id` ended at `now` (`contacts`: the
    /// routing table's size; `alone`: the node is alone by design); a watch's round has none.
    fn into_event(
        self,
        id: QueryId,
        now: Time,
        k: usize,
        contacts: usize,
        alone: bool,
    ) -> Option<Event> {
        let stats = self.stats(now);
        let event = match self.kind {
            QueryKind::Watch(_) => return None,
            QueryKind::FindNode => Event::FindNodeDone {
                query: id,
                closest: self.stage.closest_succeeded(k),
                stats,
            },
            QueryKind::Get {
                key,
                best,
                held,
                unreadable,
                ..
            } => Event::GetDone {
                query: id,
                key,
                result: best.ok_or(if unreadable > 0 {
                    GetFailure::Unavailable {
                        key,
                        replicas: unreadable,
                    }
                } else {
                    GetFailure::NotFound {
                        key,
                        asked: held.len(),
                    }
                }),
                stats,
            },
            QueryKind::Put { item, local, .. } => {
                let (asked, acks) = match &self.stage {
                    Stage::Fixed(stores) => (stores.peers(), stores.succeeded()),
                    Stage::Closest(_) => (0, 0),
                };
                // A put no peer took is acknowledged only on a node alone by design (found
                // by the short soak test: a publisher restarted under load, whose requests
                // all timed out, acknowledged a put only it held, and the final check found
                // the older version everywhere else).
                let alone = alone && stats.requests == 0;
                let local = match local {
                    Ok(_) if acks == 0 && !alone => Err(PutFailure::NoPeer { asked }),
                    local => local,
                };
                put_done(id, item, local, acks, stats)
            }
            QueryKind::Bootstrap { .. } => Event::BootstrapDone {
                query: id,
                result: if contacts == 0 {
                    Err(BootstrapFailure::NoContact)
                } else {
                    Ok(contacts)
                },
                stats,
            },
        };
        Some(event)
    }
}

/// The event of put `id` of `item` whose local copy ended as `local` and which `acks` other
/// nodes stored.
fn put_done(
    id: QueryId,
    item: Item,
    local: Result<Option<CommitId>, PutFailure>,
    acks: usize,
    stats: QueryStats,
) -> Event {
    Event::PutDone {
        query: id,
        key: *item.key(),
        seq: item.seq(),
        expires: item.expires(),
        commit: local.as_ref().ok().copied().flatten(),
        result: local.map(|_| acks + 1),
        stats,
    }
}

/// Where a copy came from, and what a get that takes it counts.
struct Copy<'a> {
    /// The node that sent it (proved).
    from: &'a Contact,
    /// This node.
    own: &'a NodeId,
    quorum: usize,
    k: usize,
    /// The sender said its copy is `unchecked` since its start: it may be a replaced version.
    unchecked: bool,
}

/// A copy `item` came from `peer` (proved to be `copy.from`) for the get `kind`: the best copy
/// so far is kept, and the lookup ends at an immutable copy or once `quorum` copies came in
/// from every path, counting only the copies of the k closest nodes the lookup knows (this
/// node's own copy included if it is one of them). Found by the soak: copies held farther out
/// (where a put reached while the closest were down, or where an earlier get wrote back) are
/// not updated by later puts, and three of them, answering first, decided gets with an older
/// version; they still count for the best copy, never for ending early. So does an
/// `unchecked` copy (a restarted node's, not yet caught up on; found by the short soak test:
/// restarted nodes that answered first with versions replaced while they were down decided a
/// get).
fn take_value(kind: &mut QueryKind, stage: &mut Stage, peer: &Peer, copy: Copy, item: Item) {
    let Copy {
        from,
        own,
        quorum,
        k,
        unchecked: copy_unchecked,
    } = copy;
    let QueryKind::Get {
        key,
        best,
        local_copy,
        held,
        unchecked,
        hops,
        paths_with_copy,
        ..
    } = kind
    else {
        return;
    };
    if item.key() != key {
        stage.on_failure(peer);
        return;
    }
    let hop = stage.hop(&from.id).unwrap_or(1);
    if copy_unchecked {
        unchecked.insert(from.id);
    } else if let Some(path) = stage.path(&from.id) {
        *paths_with_copy |= 1u64 << path.min(63);
    }
    stage.on_found(peer);
    held.insert(from.id, item.seq());
    if best.as_ref().is_none_or(|b| item.seq() > b.seq()) {
        *best = Some(item);
        *hops = hop;
    }
    let immutable = matches!(best, Some(Item::Immutable(_)));
    let near = |id: &NodeId| stage.is_among_closest(id, k);
    let copies = held
        .iter()
        .filter(|(id, seq)| seq.is_some() && near(id) && !unchecked.contains(*id))
        .count()
        + usize::from(*local_copy && near(own));
    if immutable || (copies >= quorum && stage.every_path_has(*paths_with_copy)) {
        stage.finish();
    }
}
