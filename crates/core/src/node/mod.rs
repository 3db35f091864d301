//! The node state machine: routing table, store and running queries, with no I/O.
//!
//! [`Node::new`] makes a node; then it has four kinds of methods:
//!
//! - **getters** (`&self`): [`Node::id`], [`Node::config`], [`Node::routing_table`],
//!   [`Node::store`], [`Node::stats`], [`Node::running_queries`], [`Node::pending_requests`],
//!   [`Node::watch_count`], [`Node::watch_peers`], [`Node::subscription_count`],
//!   [`Node::subscribers`], [`Node::traces_dropped`], [`Node::observed`],
//!   [`Node::reachability`] and [`Node::probe_report`];
//! - **inputs**: [`Node::handle_request`] (a peer's request with its id: answered at once),
//!   [`Node::handle_response`], [`Node::handle_failure`], [`Node::handle_timeout`],
//!   [`Node::handle_notify`] (a `notify` for one of this node's watches),
//!   [`Node::handle_verified`] (a dialer's `auth` verified), [`Node::handle_observed`] (an
//!   answer said where this node's request came from), [`Node::handle_reach`] (a peer's
//!   `reach`, answered later), [`Node::handle_probe`] (a probe datagram arrived) and
//!   [`Node::handle_probe_sent`] (whether the probe datagram an [`Answer`] asked for went
//!   out: it gives the answer to send),
//!   [`Node::handle_commit`] (a
//!   durable store's commit ended), [`Node::connection_closed`] (an incoming connection's
//!   subscriptions end) and [`Node::restore_contacts`] (a saved routing table);
//! - **commands**: [`Node::find_node`], [`Node::get`], [`Node::put`], [`Node::bootstrap`],
//!   [`Node::publish`] and [`Node::delete`], each returning a [`QueryId`] that its completion
//!   event echoes; [`Node::watch`], returning a [`WatchId`] that its updates carry, and
//!   [`Node::unwatch`]; and the switches [`Node::set_tracing`], [`Node::set_mode`] and
//!   [`Node::start_reach_checks`];
//! - **outputs**: [`Node::poll_transmit`] (a request to send), [`Node::poll_notification`]
//!   (a `notify` to send on an incoming connection), [`Node::poll_event`] (a finished
//!   query, a watch's update or a routing-table change), [`Node::poll_reach_answer`] (the
//!   answer to a relayed `reach`), [`Node::poll_trace`] (a record of
//!   the node's work, when tracing is on) and [`Node::poll_timeout`] (when to call
//!   `handle_timeout` next).
//!
//! The calling order: after every input or command, drain `poll_transmit`,
//! `poll_notification`, `poll_event` and `poll_trace` until each returns `None` (an answer
//! from `handle_request` goes out before the notifications that follow it), then arm one
//! timer at `poll_timeout`. Every request the node sends carries an id, unique for the node's
//! lifetime; report its outcome with that id: `handle_response` when an answer arrives,
//! `handle_failure` when the connection fails or the peer proves to be someone else.
//! Requests nobody answers are timed out by the node itself.
//!
//! Each concern is a part that owns its state: the requests in flight (`requests.rs`), the
//! running queries (`query.rs`, their stages in `stage.rs`), housekeeping
//! (`housekeeping.rs`), the subscriptions peers hold here (`listen.rs`), this node's watches
//! (`watch.rs`), rejoining when the table is empty (`rejoin.rs`), the trace records
//! (`trace.rs`) and what it learns behind NATs (`nat/`, routed by `reaching.rs`). `Node`
//! routes each input to the parts it concerns and collects what they report (`inputs.rs`,
//! `commands.rs`); no part touches another's fields.

mod commands;
mod event;
mod housekeeping;
mod inputs;
mod listen;
mod nat;
mod outbox;
mod publish;
mod query;
mod reaching;
mod rejoin;
mod rendezvous;
mod requests;
mod stage;
mod trace;
mod watch;

use std::net::SocketAddr;

use crate::config::Config;
use crate::id::NodeId;
use crate::message::{Contact, Mode, Request, Response};
use crate::routing::{Failure, Insertion, RoutingTable};
use crate::store::{CommitId, Store};
use crate::time::Time;

pub use event::{
    BootstrapFailure, Event, ExchangeId, Exchanged, GetFailure, PutFailure, QueryId, QueryStats,
    WatchId,
};
pub use listen::Notification;
pub use nat::{
    CIRCUIT_BYTES, CIRCUIT_LIFE, Family, Mapping, ObservedChange, ObservedReport, ProbeReport,
    ProbeSend, RECORD_NAME, RECORD_TTL, ReachReport, Reachability, RelayReport, RendezvousReport,
    Seen,
};
pub use publish::{expiry, next_seq};
pub use rendezvous::Deferred;
pub use requests::Transmit;
pub use trace::{Duty, Operation, QueryOutcome, RequestOutcome, Trace, error_label};

use housekeeping::Housekeeping;
use listen::Subscriptions;
use nat::{Observed, Points, Probes, Reach, Registry, Relays};
use outbox::Outbox;
use query::{Env, QueryPool};
use rejoin::Rejoin;
use requests::{Purpose, Requests};
use trace::Traces;
use watch::Watches;

/// The answer to a peer's request, and when it may be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// What to answer.
    pub response: Response,
    /// When set (a `stored` answer from a durable store), the answer may go out only once
    /// this commit is durable; if it fails, the peer must get an error 500 instead.
    pub commit: Option<CommitId>,
    /// When set (an accepted `probe`), `response` is only what to answer if this probe
    /// datagram is never sent (an error): send it, report whether it went out with
    /// [`Node::handle_probe_sent`], and answer what that returns instead.
    pub probe: Option<ProbeSend>,
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
    /// The address its connection comes from: what its stores count against (its subnet's
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
    /// Verified contacts kept out of the routing table because their subnet (IPv4 /24,
    /// IPv6 /48) held as many places as it may.
    pub contacts_crowded_out: u64,
    /// Stores refused because the requester's subnet held its share of the store.
    pub stores_over_share: u64,
}

/// One cairn node's protocol state.
pub struct Node<S> {
    id: NodeId,
    config: Config,
    table: RoutingTable,
    store: S,
    /// Requests sent and awaiting their answer, and those waiting to be sent.
    requests: Requests,
    /// Commands running.
    queries: QueryPool,
    events: Outbox<Event>,
    /// Counters since start, but `requests_sent` (which `requests` counts).
    stats: Stats,
    housekeeping: Housekeeping,
    /// The addresses to rejoin through when the table is empty.
    rejoin: Rejoin,
    /// Subscriptions peers hold here, and the notifications owed to them.
    subscriptions: Subscriptions,
    /// This node's own watches.
    watches: Watches,
    /// Step-by-step records, when tracing is on.
    traces: Traces,
    /// Votes on this node's address as its peers see it.
    observed: Observed,
    /// Server (the default) or client: a client takes no `store` and no `listen`.
    mode: Mode,
    /// This node's reachability checks.
    reach: Reach,
    /// Relaying peers' checks and sending their probes.
    probes: Probes,
    /// This node's rendezvous points, while it is a client.
    points: Points,
    /// The registrations this node holds for others, while it is a server.
    registry: Registry,
    /// The circuits this node relays for its registered nodes.
    relays: Relays,
}

impl<S: Store> Node<S> {
    /// A node with id `id` (`SHA-512` of its public key) keeping items in `store`.
    pub fn new(id: NodeId, config: Config, store: S) -> Self {
        Node {
            id,
            table: RoutingTable::new(id, config.k.get(), config.max_failures)
                .with_diversity(config.diversity),
            requests: Requests::new(&config),
            observed: Observed::new(config.nat_subnet_prefix_v4),
            reach: Reach::new(config.nat_subnet_prefix_v4),
            probes: Probes::default(),
            points: Points::default(),
            registry: Registry::default(),
            relays: Relays::default(),
            config,
            store,
            queries: QueryPool::default(),
            events: Outbox::default(),
            stats: Stats::default(),
            housekeeping: Housekeeping::default(),
            rejoin: Rejoin::default(),
            subscriptions: Subscriptions::default(),
            watches: Watches::default(),
            traces: Traces::default(),
            mode: Mode::Server,
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
        Stats {
            requests_sent: self.requests.sent(),
            ..self.stats
        }
    }
    /// Commands still running.
    pub fn running_queries(&self) -> usize {
        self.queries.len()
    }
    /// Requests awaiting an answer.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }
    /// Contacts whose round-trip time is estimated (at most 4,096).
    pub fn rtt_contacts(&self) -> usize {
        self.requests.rtt().len()
    }
    /// Watches running.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }
    /// The nodes a watch is subscribed at now (their `listening` came back).
    pub fn watch_peers(&self, watch: WatchId) -> Vec<Contact> {
        self.watches.peers(watch)
    }
    /// Subscriptions peers hold here now (expired ones not yet dropped included).
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }
    /// The connections holding subscriptions here, with the ids of their `listen` requests.
    pub fn subscribers(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.subscriptions.names()
    }
    /// This node's address in `family` as its peers see it, at `now`.
    pub fn observed(&self, family: Family, now: Time) -> ObservedReport {
        self.observed.report(family, now)
    }
    /// Records dropped because nobody drained the queue in time.
    pub fn traces_dropped(&self) -> u64 {
        self.traces.dropped()
    }

    /// The next request to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.requests.pop_transmit()
    }

    /// The next request the node stopped waiting for (its deadline passed), if any: the
    /// driver may stop sending it (the datagram plane's retransmissions, a fallback to TCP;
    /// [`Plane::cancel`](crate::datagram::Plane::cancel)). An answer that still comes is
    /// taken as a late one. Drain it with the other outputs.
    pub fn poll_cancelled(&mut self) -> Option<u64> {
        self.requests.pop_cancelled()
    }

    /// The next `notify` to send, if any. Drain it with the other outputs.
    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.subscriptions.pop_notification()
    }

    /// The next finished query, watch update or routing-table change, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// The next record of the node's work, if tracing is on and one is waiting.
    pub fn poll_trace(&mut self) -> Option<Trace> {
        self.traces.pop()
    }

    /// When [`Node::handle_timeout`] must next be called, if anything is waiting on time.
    pub fn poll_timeout(&self) -> Option<Time> {
        [
            self.requests.next_deadline(),
            self.queries.next_deadline(),
            self.watches.next_deadline(),
            self.housekeeping.next_deadline(),
            self.reach.next_deadline(),
            self.points.next_deadline(),
            self.rejoin.deadline(self.table.is_empty()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Server or client ([`Node::set_mode`]).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Makes this node a server (the default) or a client. A client answers `ping`,
    /// `find_node` and `find_value`, refuses `store` and `listen` (503, "this node is a
    /// client"), and keeps its own items (to republish them) and does all its user asks. It
    /// announces no address: that is the driver's part (`hello.port` 0, the `initial` flag
    /// clear, `role: "client"` on every message).
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// Turns the step-by-step records of [`Node::poll_trace`] on or off.
    pub fn set_tracing(&mut self, on: bool) {
        self.traces.set_on(on);
    }

    /// The query pool, and the rest of the node it borrows while queries move on at `now`.
    fn queries_and_env(&mut self, now: Time) -> (&mut QueryPool, Env<'_>) {
        let env = Env {
            now,
            own: self.id,
            config: &self.config,
            table: &mut self.table,
            requests: &mut self.requests,
            traces: &mut self.traces,
            can_join: self.rejoin.can_join(),
        };
        (&mut self.queries, env)
    }

    /// Records a verified contact as seen, pinging a full bucket's oldest contact if needed.
    fn saw(&mut self, now: Time, contact: Contact) {
        match self.table.seen(contact, now) {
            Insertion::Added => self.events.push(Event::ContactAdded(contact)),
            Insertion::Pending { ping: Some(oldest) } => {
                let to = oldest.into();
                self.requests
                    .send(now, to, Request::Ping, Purpose::Liveness);
            }
            Insertion::Crowded => self.stats.contacts_crowded_out += 1,
            Insertion::Updated | Insertion::Pending { ping: None } | Insertion::OwnId => {}
        }
    }

    /// `id` said it is a client: it leaves the routing table, its replacement cache and the
    /// dormant list at once.
    fn forget_client(&mut self, id: &NodeId) {
        if let Failure::Evicted { replaced_by } = self.table.remove(id) {
            self.events.push(Event::ContactRemoved(*id));
            if let Some(contact) = replaced_by {
                self.events.push(Event::ContactAdded(contact));
            }
        }
    }

    /// A request to `id` failed or timed out.
    fn failed(&mut self, id: &NodeId) {
        self.stats.requests_failed += 1;
        // A peer failed, so the neighbourhood may have changed and whoever replicated items
        // here may be gone: replicate everything at the next turn instead of skipping.
        self.housekeeping.forget_received();
        if let Failure::Evicted { replaced_by } = self.table.failed(id) {
            self.events.push(Event::ContactRemoved(*id));
            if let Some(contact) = replaced_by {
                self.events.push(Event::ContactAdded(contact));
            }
        }
    }
}

#[cfg(test)]
mod tests;
