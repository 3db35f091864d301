//! The node state machine: routing table, store and running commands, with no I/O.
//!
//! [`Node`] has four kinds of methods, called in this order by a driver:
//!
//! - **getters** (`&self`): [`Node::id`], [`Node::routing_table`], [`Node::store`],
//!   [`Node::stats`];
//! - **inputs**: [`Node::handle_request`] (answers at once), [`Node::handle_response`],
//!   [`Node::handle_failure`], [`Node::handle_timeout`], [`Node::handle_commit`] (a durable
//!   store's commit ended) and [`Node::handle_verified`] (a dialer's `auth` verified);
//! - **commands**, each returning a [`QueryId`] that its completion event echoes:
//!   [`Node::find_node`], [`Node::get`], [`Node::put`], [`Node::bootstrap`];
//! - **outputs**: [`Node::poll_transmit`] (a request to send), [`Node::poll_event`] (a finished
//!   command or a routing-table change) and [`Node::poll_timeout`] (when to call
//!   `handle_timeout` next).
//!
//! After every input or command, drain `poll_transmit` and `poll_event` until they return
//! `None`, then arm one timer at `poll_timeout`. Every request the node sends carries an id,
//! unique for the node's lifetime; report its outcome with that id: `handle_response` when an
//! answer arrives, `handle_failure` when the connection fails or the peer proves to be someone
//! else. Requests nobody answers are timed out by the node itself.

mod event;
mod housekeeping;
mod listen;
mod publish;
mod query;
mod serve;
mod trace;
mod watch;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use crate::config::Config;
use crate::id::{Key, NodeId};
use crate::item::Item;
use crate::lookup::LookupParams;
use crate::message::{Contact, Request, Response};
use crate::routing::{Failure, Insertion, RoutingTable};
use crate::rtt::RttTable;
use crate::store::{CommitId, CommitOutcome, Origin, Store};
use crate::time::Time;

pub use crate::message::Peer;
pub use event::{BootstrapError, Event, GetError, PutError, QueryId, QueryStats};
pub use listen::Notification;
pub use publish::{expiry, next_seq};
pub use trace::{Duty, MAX_TRACES, Operation, QueryOutcome, RequestOutcome, Trace, error_label};
pub use watch::WatchId;

/// The answer to a peer's request, and when it may be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// What to answer.
    pub response: Response,
    /// When set (a `stored` answer from a durable store), the answer may go out only once
    /// this commit is durable; if it fails, the peer must get an error 500 instead.
    pub commit: Option<CommitId>,
}
use query::{Plan, Query, QueryKind};

/// A request the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The request's id; the answer or failure is reported with it.
    pub id: u64,
    /// The recipient.
    pub to: Peer,
    /// What to send.
    pub request: Request,
}

/// Who sent a request, as far as the driver knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    /// The id the requester claims (from its `hello`).
    pub id: NodeId,
    /// Where the requester accepts connections, if it does.
    pub addr: Option<SocketAddr>,
    /// Whether the requester's `auth` has verified. Only verified requesters enter the table.
    pub verified: bool,
    /// The address its connection comes from: what its stores count against (its network's
    /// share of the store).
    pub source: std::net::IpAddr,
    /// The connection the request came on, as the driver numbers its incoming connections:
    /// what a `listen` subscription belongs to ([`Node::connection_closed`]).
    pub connection: u64,
}

/// Counters since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests handed to the driver.
    pub requests_sent: u64,
    /// Requests answered.
    pub requests_handled: u64,
    /// Requests that failed or timed out.
    pub requests_failed: u64,
    /// Lookup requests that ran past their contact's round-trip timeout and gave up their
    /// slot (answered late, or later failed).
    pub requests_slow: u64,
    /// Verified contacts kept out of the routing table because their network (IPv4 /24,
    /// IPv6 /48) held as many places as it may.
    pub contacts_crowded_out: u64,
    /// Stores refused because the requester's network held its share of the store.
    pub stores_over_share: u64,
}

/// Why a request is outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// Part of a command.
    Query(QueryId),
    /// A liveness check of a full bucket's least recently seen contact.
    Liveness,
    /// A write-back or replication store nobody waits for.
    Unattended,
    /// A watch's `listen`.
    Listen(WatchId),
    /// Fetching the copy that made a peer refuse this node's `store` as stale.
    Repair,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    to: Peer,
    purpose: Purpose,
    sent: Time,
    /// When a lookup's request stops holding its slot: the contact's round-trip timeout.
    slot_deadline: Time,
    deadline: Time,
    /// Past its slot deadline: its slot is freed, its answer still awaited.
    slow: bool,
    /// The key of the item a `store` carries, or that a repair fetches.
    key: Option<Key>,
    /// The request's `type` ([`Request::name`]), for its trace.
    request: &'static str,
    /// Timed out already: counted as a failure, but a late answer is still taken.
    timed_out: bool,
}

impl Pending {
    /// The next time this request needs attention, if any.
    fn next_deadline(&self) -> Option<Time> {
        match (self.timed_out, self.slow) {
            (true, _) => None,
            (false, true) => Some(self.deadline),
            (false, false) => Some(self.slot_deadline.min(self.deadline)),
        }
    }
}

/// One cairn node's protocol state.
pub struct Node<S> {
    id: NodeId,
    config: Config,
    table: RoutingTable,
    store: S,
    next_request: u64,
    next_query: u64,
    /// Boxed for the same reason as `queries`.
    pending: BTreeMap<u64, Box<Pending>>,
    /// Boxed: a map node holds 11 values inline, and a query is a few hundred bytes.
    queries: BTreeMap<QueryId, Box<Query>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Round-trip estimates of the contacts this node has asked.
    rtt: RttTable,
    housekeeping: housekeeping::Housekeeping,
    /// Subscriptions peers hold here.
    subscriptions: listen::Subscriptions,
    notifications: VecDeque<Notification>,
    /// This node's own watches.
    watches: watch::Watches,
    /// Step-by-step records, when tracing is on.
    traces: trace::Traces,
}

impl<S: Store> Node<S> {
    /// A node with id `id` (`SHA-512` of its public key) keeping items in `store`.
    pub fn new(id: NodeId, config: Config, store: S) -> Self {
        Node {
            id,
            table: RoutingTable::new(id, config.k.get(), config.max_failures)
                .with_diversity(config.diversity),
            config,
            store,
            next_request: 1,
            next_query: 1,
            pending: BTreeMap::new(),
            queries: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            rtt: RttTable::default(),
            housekeeping: housekeeping::Housekeeping::default(),
            subscriptions: listen::Subscriptions::default(),
            notifications: VecDeque::new(),
            watches: watch::Watches::default(),
            traces: trace::Traces::default(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }
    /// The parameters in force.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The routing table.
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }
    /// The item store.
    pub fn store(&self) -> &S {
        &self.store
    }
    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }
    /// Commands still running.
    pub fn running_queries(&self) -> usize {
        self.queries.len()
    }
    /// Requests awaiting an answer.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    fn lookup_params(&self) -> LookupParams {
        LookupParams {
            k: self.config.k.get(),
            alpha: self.config.alpha.get(),
            paths: self.config.disjoint_paths.get(),
        }
    }

    /// The next request to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let next = self.transmits.pop_front();
        if next.is_none() {
            release(&mut self.transmits);
        }
        next
    }

    /// The next finished command or routing-table change, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let next = self.events.pop_front();
        if next.is_none() {
            release(&mut self.events);
        }
        next
    }

    /// When [`Node::handle_timeout`] must next be called, if anything is waiting on time.
    pub fn poll_timeout(&self) -> Option<Time> {
        let requests = self.pending.values().filter_map(|p| p.next_deadline());
        let queries = self.queries.values().map(|q| q.deadline);
        let watches = self
            .watches
            .watches
            .values()
            .filter_map(|w| w.next_deadline());
        requests
            .chain(queries)
            .chain(watches)
            .chain(self.housekeeping.next_deadline())
            .min()
    }

    fn send(&mut self, now: Time, to: Peer, request: Request, purpose: Purpose) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        let deadline = now + self.config.request_timeout;
        let slot_deadline = match purpose {
            Purpose::Query(_) => {
                now + self.rtt.timeout(
                    to.id.as_ref(),
                    self.config.min_slot_timeout,
                    self.config.request_timeout,
                )
            }
            Purpose::Liveness | Purpose::Unattended | Purpose::Listen(_) | Purpose::Repair => {
                deadline
            }
        };
        let key = match &request {
            Request::Store { item } => Some(*item.key()),
            Request::FindValue { key } if purpose == Purpose::Repair => Some(*key),
            _ => None,
        };
        let pending = Pending {
            to,
            purpose,
            sent: now,
            slot_deadline,
            deadline,
            slow: false,
            timed_out: false,
            key,
            request: request.name(),
        };
        self.pending.insert(id, Box::new(pending));
        self.transmits.push_back(Transmit { id, to, request });
        self.stats.requests_sent += 1;
        id
    }

    /// Records a verified contact as seen, pinging a full bucket's oldest contact if needed.
    fn saw(&mut self, now: Time, contact: Contact) {
        match self.table.seen(contact, now) {
            Insertion::Added => self.events.push_back(Event::ContactAdded(contact)),
            Insertion::Pending { ping: Some(oldest) } => {
                self.send(now, oldest.into(), Request::Ping, Purpose::Liveness);
            }
            Insertion::Crowded => self.stats.contacts_crowded_out += 1,
            Insertion::Updated | Insertion::Pending { ping: None } | Insertion::OwnId => {}
        }
    }

    fn failed(&mut self, id: &NodeId) {
        self.stats.requests_failed += 1;
        // A peer failed, so the neighbourhood may have changed and whoever replicated items
        // here may be gone: replicate everything at the next turn instead of skipping.
        self.housekeeping.forget_received();
        if let Failure::Evicted { replaced_by } = self.table.failed(id) {
            self.events.push_back(Event::ContactRemoved(*id));
            if let Some(contact) = replaced_by {
                self.events.push_back(Event::ContactAdded(contact));
            }
        }
    }

    /// An answer to request `request_id` arrived from `from`, whose identity the connection's
    /// handshake proved.
    pub fn handle_response(
        &mut self,
        now: Time,
        from: Contact,
        request_id: u64,
        response: Response,
    ) {
        self.start_housekeeping(now);
        self.respond(now, from, request_id, response);
        self.pump_housekeeping(now);
    }

    fn respond(&mut self, now: Time, from: Contact, request_id: u64, response: Response) {
        let Some(pending) = self.pending.remove(&request_id) else {
            // Late for a finished command: the peer is still alive.
            self.saw(now, from);
            return;
        };
        if pending.to.id.is_some_and(|expected| expected != from.id) {
            self.fail_pending(now, request_id, *pending);
            return;
        }
        self.rtt.sample(&from.id, now.since(pending.sent));
        if !pending.timed_out {
            let outcome = trace::outcome_of(&response);
            self.trace_request(&pending, outcome, Some(now.since(pending.sent)));
        }
        self.saw(now, from);
        if let (Some(key), Response::Error(e)) = (pending.key, &response) {
            if e.code == crate::message::ErrorCode::CONFLICT {
                // The peer holds a copy that beats this node's: fetch it, so that a stale
                // copy (say, of a deleted item) is not replicated again.
                self.send(
                    now,
                    from.into(),
                    Request::FindValue { key },
                    Purpose::Repair,
                );
            }
        }
        match pending.purpose {
            Purpose::Query(query) => self.on_query_response(now, query, pending.to, from, response),
            Purpose::Listen(watch) => {
                self.on_listen_response(now, watch, from, request_id, response);
            }
            Purpose::Repair => {
                if let (Some(key), Response::Value(item)) = (pending.key, response) {
                    if *item.key() == key {
                        // Kept only if it wins over the copy held; a refusal changes nothing.
                        let _ = self.store_checked(now, item, Origin::Unknown);
                    }
                }
            }
            Purpose::Liveness | Purpose::Unattended => {}
        }
    }

    /// Request `request_id` failed: the connection could not be made or broke, or the peer was
    /// not who it should be. For a `listen` already answered, its subscription is lost (the
    /// connection carrying it closed).
    pub fn handle_failure(&mut self, now: Time, request_id: u64) {
        self.start_housekeeping(now);
        if let Some(pending) = self.pending.remove(&request_id) {
            self.fail_pending(now, request_id, *pending);
        } else if self.is_subscription(request_id) {
            self.subscription_lost(now, request_id);
        }
        self.pump_housekeeping(now);
    }

    fn fail_pending(&mut self, now: Time, request_id: u64, pending: Pending) {
        if !pending.timed_out {
            self.trace_request(&pending, RequestOutcome::Failed, None);
            if let Some(id) = pending.to.id {
                self.failed(&id);
            }
        }
        match pending.purpose {
            Purpose::Query(query) => self.on_query_failure(now, query, pending.to),
            Purpose::Listen(watch) => self.drop_sub(now, watch, request_id, true),
            Purpose::Liveness | Purpose::Unattended | Purpose::Repair => {}
        }
    }

    /// Time has reached `now`: time out overdue requests and commands.
    pub fn handle_timeout(&mut self, now: Time) {
        self.start_housekeeping(now);
        // Lookup requests past their contact's round-trip timeout give up their slot.
        let slow: Vec<(u64, Pending)> = self
            .pending
            .iter_mut()
            .filter(|(_, p)| !p.timed_out && !p.slow && p.slot_deadline <= now)
            .map(|(id, p)| {
                p.slow = true;
                (*id, **p)
            })
            .collect();
        for (_, pending) in slow {
            if let Purpose::Query(query) = pending.purpose {
                if let Some(query) = self.queries.get_mut(&query) {
                    if query.stage.on_slow(&pending.to) {
                        self.stats.requests_slow += 1;
                    }
                }
            }
        }
        let overdue: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.timed_out && p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for request_id in overdue {
            let Some(pending) = self.pending.get_mut(&request_id) else {
                continue;
            };
            pending.timed_out = true;
            let pending = **pending;
            self.trace_request(&pending, RequestOutcome::TimedOut, None);
            if let Some(id) = pending.to.id {
                self.failed(&id);
            }
            match pending.purpose {
                // The request stays known, so that a late answer is still used; its stage
                // frees the slot it held.
                Purpose::Query(query) => {
                    if let Some(query) = self.queries.get_mut(&query) {
                        query.stage.on_timeout(&pending.to);
                    }
                }
                Purpose::Listen(watch) => {
                    self.pending.remove(&request_id);
                    self.drop_sub(now, watch, request_id, true);
                }
                Purpose::Liveness | Purpose::Unattended | Purpose::Repair => {
                    self.pending.remove(&request_id);
                }
            }
        }
        let ids: Vec<QueryId> = self.queries.keys().copied().collect();
        for query in ids {
            self.step(now, query);
        }
        self.watch_rounds(now);
        self.housekeep(now);
    }

    /// Answers request `id` from `from`. A verified requester that accepts connections is
    /// added to the routing table. A `stored` answer may carry a commit to wait for
    /// ([`Answer`]); a `listening` answer may be followed by notifications
    /// ([`Node::poll_notification`]), which go out after it.
    pub fn handle_request(
        &mut self,
        now: Time,
        from: Requester,
        id: u64,
        request: Request,
    ) -> Answer {
        self.start_housekeeping(now);
        self.stats.requests_handled += 1;
        if let (true, Some(addr)) = (from.verified, from.addr) {
            self.saw(now, Contact::new(from.id, addr));
        }
        self.serve(now, &from, id, request)
    }

    /// A dialer proved its identity (its `auth` verified) after the requests it pipelined
    /// ahead of `auth` were answered unverified: if it accepts connections, it enters the
    /// routing table now, as a verified requester does.
    pub fn handle_verified(&mut self, now: Time, from: Requester) {
        self.start_housekeeping(now);
        if let (true, Some(addr)) = (from.verified, from.addr) {
            self.saw(now, Contact::new(from.id, addr));
        }
        self.pump_housekeeping(now);
    }

    /// A durable store's commit ended. On failure the store undoes that commit's writes; the
    /// caller answers whoever waits on the commit (an [`Answer`] or a [`Event::PutDone`]).
    pub fn handle_commit(&mut self, commit: CommitId, outcome: CommitOutcome) {
        self.store.committed(commit, outcome);
        // A put still running learns it now, so that its event reports no commit to wait for.
        for query in self.queries.values_mut() {
            query.kind.committed(commit, outcome);
        }
    }

    /// Puts contacts verified in an earlier run (a saved routing table) back in the table.
    /// Their liveness is unknown: the next lookups and `bootstrap(now, &[])` find out.
    pub fn restore_contacts(&mut self, now: Time, contacts: impl IntoIterator<Item = Contact>) {
        for contact in contacts {
            if self.table.restore(contact, now) {
                self.events.push_back(Event::ContactAdded(contact));
            }
        }
    }

    /// Starts a lookup of the k nodes closest to `target`.
    pub fn find_node(&mut self, now: Time, target: NodeId) -> QueryId {
        self.start_housekeeping(now);
        let plan = QueryKind::find_node(self.start_lookup(now, &target));
        self.start(now, plan)
    }

    /// Starts a get of the item under `key`.
    pub fn get(&mut self, now: Time, key: Key) -> QueryId {
        self.start_housekeeping(now);
        let local = self.store.get(&key, now).ok().flatten();
        let plan = QueryKind::get(key, self.start_lookup(now, &key), local);
        self.start(now, plan)
    }

    /// Stores `item` here, then at the k nodes closest to its key.
    pub fn put(&mut self, now: Time, item: Item) -> QueryId {
        self.start_housekeeping(now);
        let local = self.store_checked(now, item.clone(), Origin::Own);
        let key = *item.key();
        let plan = QueryKind::put(item, self.start_lookup(now, &key), local);
        self.start(now, plan)
    }

    /// Joins a network: asks `seeds` for this node's neighbours, then looks itself up. With no
    /// seeds, the contacts already in the table (say, from a snapshot) serve.
    pub fn bootstrap(&mut self, now: Time, seeds: &[SocketAddr]) -> QueryId {
        self.start_housekeeping(now);
        self.start(now, QueryKind::bootstrap(seeds))
    }

    fn start_lookup(&mut self, now: Time, target: &NodeId) -> crate::lookup::Lookup {
        self.table.touch(target, now);
        let seeds = self.table.closest(target, self.config.k.get());
        self.new_lookup(*target, seeds)
    }

    /// A lookup of `target` from `seeds`, recording referrers when tracing is on.
    fn new_lookup(&self, target: NodeId, seeds: Vec<Contact>) -> crate::lookup::Lookup {
        let mut lookup = crate::lookup::Lookup::new(target, self.lookup_params(), seeds);
        if self.traces.on {
            lookup.record_referrers();
        }
        lookup
    }

    fn start(&mut self, now: Time, plan: Plan) -> QueryId {
        self.start_query(now, plan, false)
    }

    /// Starts a housekeeping command: it reports no event when it ends.
    fn start_internal(&mut self, now: Time, plan: Plan) -> QueryId {
        self.start_query(now, plan, true)
    }

    fn start_query(&mut self, now: Time, (kind, stage): Plan, internal: bool) -> QueryId {
        let id = QueryId(self.next_query);
        self.next_query += 1;
        let deadline = now + self.config.lookup_timeout;
        let target = match &stage {
            query::Stage::Closest(lookup) => *lookup.target(),
            query::Stage::Fixed(_) => self.id,
        };
        let operation = kind.operation(internal);
        self.traces.push(|| Trace::QueryStarted {
            query: id,
            operation,
            target,
        });
        let query = Query {
            kind,
            stage,
            started: now,
            deadline,
            requests: 0,
            hops: 0,
            internal,
        };
        self.queries.insert(id, Box::new(query));
        self.step(now, id);
        id
    }

    /// Detaches a finished command's requests from it, so late answers only refresh the
    /// table. Requests still unanswered stay known until their deadline, with nobody waiting on
    /// them: a silent contact is still counted as failed, and a late answer still shows it
    /// alive. (A lookup may end while a slow request is out: see `Pending::slot_deadline`.)
    fn forget_requests(&mut self, query: QueryId) {
        self.pending.retain(|_, p| {
            if p.purpose != Purpose::Query(query) {
                return true;
            }
            p.purpose = Purpose::Unattended;
            p.slow = true;
            !p.timed_out
        });
    }
}

/// Frees a drained queue's buffer after a burst: thousands of idle nodes in one process
/// should not each keep the capacity of their busiest moment.
fn release<T>(queue: &mut VecDeque<T>) {
    if queue.capacity() > 0 {
        *queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests;
