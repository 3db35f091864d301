//! The node's commands: what each one runs, how answers move it on, and what it reports.
//!
//! Every command wraps one [`Lookup`] and adds its own purpose: `find_node` returns the
//! closest nodes; `get` watches for values (stopping at the first immutable copy or at
//! `get_quorum` signed copies) and writes the winner back; `put` stores at the closest nodes
//! the lookup found; `bootstrap` asks its seed addresses first, then looks the node itself up.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::event::{BootstrapError, Event, GetError, PutError, QueryId, QueryStats};
use super::{Node, Peer, Purpose};
use crate::id::{Key, NodeId};
use crate::item::Item;
use crate::lookup::{Lookup, Next};
use crate::message::{Contact, Request, Response};
use crate::store::Store;
use crate::time::Time;

pub(super) struct Query {
    pub(super) kind: QueryKind,
    pub(super) started: Time,
    pub(super) deadline: Time,
    pub(super) requests: u32,
    /// Started by housekeeping: no event is reported when it ends.
    pub(super) internal: bool,
}

pub(super) enum QueryKind {
    FindNode {
        lookup: Lookup,
    },
    Get {
        key: Key,
        lookup: Lookup,
        best: Option<Item>,
        /// Valid copies seen, the local one included.
        copies: usize,
        /// The `seq` each answering node held (`None`: it answered with nodes).
        held: BTreeMap<NodeId, Option<u64>>,
        hops: u32,
    },
    Put {
        item: Item,
        stage: PutStage,
        local: Result<(), PutError>,
    },
    Bootstrap {
        stage: BootstrapStage,
    },
}

pub(super) enum PutStage {
    Lookup(Lookup),
    Storing { outstanding: usize, acks: usize },
}

pub(super) enum BootstrapStage {
    Seeds {
        to_ask: Vec<SocketAddr>,
        outstanding: usize,
        found: Vec<Contact>,
    },
    Lookup(Lookup),
}

/// The lookup a command is running, if it is in a lookup stage; one match serves `&` and
/// `&mut` alike through binding modes.
macro_rules! lookup_in {
    ($kind:expr) => {
        match $kind {
            QueryKind::FindNode { lookup }
            | QueryKind::Get { lookup, .. }
            | QueryKind::Put {
                stage: PutStage::Lookup(lookup),
                ..
            }
            | QueryKind::Bootstrap {
                stage: BootstrapStage::Lookup(lookup),
            } => Some(lookup),
            _ => None,
        }
    };
}

impl QueryKind {
    pub(super) fn find_node(lookup: Lookup) -> Self {
        QueryKind::FindNode { lookup }
    }

    pub(super) fn get(key: Key, mut lookup: Lookup, local: Option<Item>) -> Self {
        let copies = usize::from(local.is_some());
        if matches!(local, Some(Item::Immutable(_))) {
            lookup.finish();
        }
        QueryKind::Get {
            key,
            lookup,
            best: local,
            copies,
            held: BTreeMap::new(),
            hops: 0,
        }
    }

    pub(super) fn put(item: Item, mut lookup: Lookup, local: Result<(), PutError>) -> Self {
        if local.is_err() {
            lookup.finish();
        }
        QueryKind::Put {
            item,
            stage: PutStage::Lookup(lookup),
            local,
        }
    }

    pub(super) fn bootstrap(seeds: &[SocketAddr]) -> Self {
        let stage = BootstrapStage::Seeds {
            to_ask: seeds.to_vec(),
            outstanding: 0,
            found: Vec::new(),
        };
        QueryKind::Bootstrap { stage }
    }

    pub(super) fn lookup(&self) -> Option<&Lookup> {
        lookup_in!(self)
    }

    fn lookup_mut(&mut self) -> Option<&mut Lookup> {
        lookup_in!(self)
    }

    fn request(&self, target: &NodeId) -> Request {
        match self {
            QueryKind::Get { key, .. } => Request::FindValue { key: *key },
            _ => Request::FindNode { target: *target },
        }
    }
}

impl<S: Store> Node<S> {
    /// Moves a command on: sends what its lookup asks for, and finishes it when done.
    pub(super) fn step(&mut self, now: Time, id: super::QueryId) {
        let Some(mut query) = self.queries.remove(&id) else {
            return;
        };
        if now >= query.deadline {
            if let Some(lookup) = query.kind.lookup_mut() {
                lookup.finish();
            }
        }
        if let QueryKind::Bootstrap {
            stage:
                BootstrapStage::Seeds {
                    to_ask,
                    outstanding,
                    ..
                },
        } = &mut query.kind
        {
            for addr in std::mem::take(to_ask) {
                let request = Request::FindNode { target: self.id };
                self.send(now, Peer { id: None, addr }, request, Purpose::Query(id));
                *outstanding += 1;
                query.requests += 1;
            }
        }
        self.advance_bootstrap(now, &mut query);
        while let Some(lookup) = query.kind.lookup_mut() {
            let target = *lookup.target();
            match lookup.next(now) {
                Next::Send(contact) => {
                    let request = query.kind.request(&target);
                    self.send(now, contact.into(), request, Purpose::Query(id));
                    query.requests += 1;
                }
                Next::Wait => break,
                Next::Finished => {
                    self.forget_requests(id);
                    if let QueryKind::Put { .. } = query.kind {
                        self.start_storing(now, id, &mut query);
                    } else {
                        query.requests += self.write_back(now, &query.kind);
                        self.finish(now, id, *query);
                        return;
                    }
                }
            }
        }
        if let QueryKind::Put {
            stage: PutStage::Storing { outstanding: 0, .. },
            ..
        } = query.kind
        {
            self.finish(now, id, *query);
            return;
        }
        self.queries.insert(id, query);
    }

    /// Once every seed has answered or failed, starts the self-lookup (or gives up).
    fn advance_bootstrap(&mut self, now: Time, query: &mut Query) {
        let QueryKind::Bootstrap {
            stage:
                BootstrapStage::Seeds {
                    to_ask,
                    outstanding: 0,
                    found,
                },
        } = &mut query.kind
        else {
            return;
        };
        debug_assert!(to_ask.is_empty());
        let mut seeds = self.table.closest(&self.id, self.config.k.get());
        seeds.extend(found.drain(..).filter(|c| c.id != self.id));
        let target = self.id;
        self.table.touch(&target, now);
        let lookup = Lookup::new(target, self.lookup_params(), seeds);
        query.kind = QueryKind::Bootstrap {
            stage: BootstrapStage::Lookup(lookup),
        };
    }

    /// A put's lookup is over: sends `store` to the closest nodes that answered.
    fn start_storing(&mut self, now: Time, id: QueryId, query: &mut Query) {
        let QueryKind::Put { item, stage, local } = &mut query.kind else {
            return;
        };
        let targets = match (&stage, &local) {
            (PutStage::Lookup(lookup), Ok(())) => lookup.closest_succeeded(self.config.k.get()),
            _ => Vec::new(),
        };
        for contact in &targets {
            let request = Request::Store { item: item.clone() };
            self.send(now, (*contact).into(), request, Purpose::Query(id));
            query.requests += 1;
        }
        *stage = PutStage::Storing {
            outstanding: targets.len(),
            acks: 0,
        };
    }

    /// After a signed get: stores the winner at the closest answering nodes that lacked it.
    fn write_back(&mut self, now: Time, kind: &QueryKind) -> u32 {
        let QueryKind::Get {
            lookup,
            best: Some(best @ Item::Signed(_)),
            held,
            ..
        } = kind
        else {
            return 0;
        };
        let mut sent = 0;
        for contact in lookup.closest_succeeded(self.config.k.get()) {
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
        if query.internal {
            self.housekeeping.running = self.housekeeping.running.saturating_sub(1);
            return;
        }
        let mut stats = QueryStats {
            requests: query.requests,
            hops: 0,
            duration: now.since(query.started),
        };
        let event = match query.kind {
            QueryKind::FindNode { lookup } => Event::FindNodeDone {
                query: id,
                closest: lookup.closest_succeeded(self.config.k.get()),
                stats,
            },
            QueryKind::Get {
                key,
                best,
                hops,
                held,
                ..
            } => {
                stats.hops = hops;
                let asked = held.len();
                Event::GetDone {
                    query: id,
                    key,
                    result: best.ok_or(GetError::NotFound { key, asked }),
                    stats,
                }
            }
            QueryKind::Put { item, stage, local } => {
                let acks = match stage {
                    PutStage::Storing { acks, .. } => acks,
                    PutStage::Lookup(_) => 0,
                };
                let key = *item.key();
                Event::PutDone {
                    query: id,
                    key,
                    result: local.map(|()| acks + 1),
                    stats,
                }
            }
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

    pub(super) fn on_query_response(
        &mut self,
        now: Time,
        id: QueryId,
        from: Contact,
        response: Response,
    ) {
        let Some(query) = self.queries.get_mut(&id) else {
            return;
        };
        let own = self.id;
        let quorum = self.config.get_quorum.get();
        match (&mut query.kind, response) {
            (
                QueryKind::Bootstrap {
                    stage:
                        BootstrapStage::Seeds {
                            outstanding, found, ..
                        },
                },
                response,
            ) => {
                *outstanding = outstanding.saturating_sub(1);
                if let Response::Nodes(nodes) = response {
                    found.push(from);
                    found.extend(nodes);
                }
            }
            (
                QueryKind::Put {
                    stage: PutStage::Storing { outstanding, acks },
                    ..
                },
                response,
            ) => {
                *outstanding = outstanding.saturating_sub(1);
                if response == Response::Stored {
                    *acks += 1;
                }
            }
            (
                QueryKind::Get {
                    key,
                    lookup,
                    best,
                    copies,
                    held,
                    hops,
                },
                Response::Value(item),
            ) => {
                if item.key() != key {
                    lookup.on_failure(&from.id);
                } else {
                    let hop = lookup.hop(&from.id).unwrap_or(1);
                    lookup.on_success(&from.id, []);
                    held.insert(from.id, item.seq());
                    *copies += 1;
                    let better = best.as_ref().is_none_or(|b| item.seq() > b.seq());
                    if better {
                        *best = Some(item);
                        *hops = hop;
                    }
                    let immutable = matches!(best, Some(Item::Immutable(_)));
                    if immutable || *copies >= quorum {
                        lookup.finish();
                    }
                }
            }
            (kind, Response::Nodes(nodes)) => {
                if let QueryKind::Get { held, .. } = kind {
                    held.insert(from.id, None);
                }
                if let Some(lookup) = kind.lookup_mut() {
                    lookup.on_success(&from.id, nodes.into_iter().filter(|c| c.id != own));
                }
            }
            (kind, _) => {
                if let Some(lookup) = kind.lookup_mut() {
                    lookup.on_failure(&from.id);
                }
            }
        }
        self.step(now, id);
    }

    pub(super) fn on_query_failure(&mut self, now: Time, id: QueryId, to: Peer) {
        let Some(query) = self.queries.get_mut(&id) else {
            return;
        };
        match &mut query.kind {
            QueryKind::Bootstrap {
                stage: BootstrapStage::Seeds { outstanding, .. },
            } => {
                *outstanding = outstanding.saturating_sub(1);
            }
            QueryKind::Put {
                stage: PutStage::Storing { outstanding, .. },
                ..
            } => {
                *outstanding = outstanding.saturating_sub(1);
            }
            kind => {
                if let (Some(lookup), Some(peer)) = (kind.lookup_mut(), to.id) {
                    lookup.on_failure(&peer);
                }
            }
        }
        self.step(now, id);
    }
}
