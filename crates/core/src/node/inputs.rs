//! The node's inputs (`handle_*`): each is routed to the parts it concerns, and what they
//! report is collected. Answering a peer's request, and the checks every stored item passes
//! wherever it came from, are here too.

use super::event::{Event, PutFailure};
use super::requests::{Pending, Purpose};
use super::trace::{RequestOutcome, outcome_of};
use super::{Answer, Node, Requester};
use crate::id::NodeId;
use crate::item::{Item, Resolution};
use crate::message::{Contact, ErrorCode, ErrorReply, Mode, Request, Response};
use crate::store::{CommitId, CommitOutcome, Origin, Store, StoreError};
use crate::subnet::Prefix;
use crate::time::Time;

impl<S: Store> Node<S> {
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

    /// An answer to request `request_id` arrived from `from`, whose identity the connection's
    /// handshake proved, in a message that said no `role` (a node that predates roles: it
    /// enters the table as before). See [`Node::handle_response_from`].
    pub fn handle_response(
        &mut self,
        now: Time,
        from: Contact,
        request_id: u64,
        response: Response,
    ) {
        self.handle_response_from(now, from, None, request_id, response);
    }

    /// An answer to request `request_id` arrived from `from`, whose identity the connection's
    /// handshake proved, in a message that said `role`. The answer is used whatever the role;
    /// the peer enters the routing table only if it did not say `client`, and one that said
    /// `client` leaves it (and its replacement cache and the dormant list).
    pub fn handle_response_from(
        &mut self,
        now: Time,
        from: Contact,
        role: Option<Mode>,
        request_id: u64,
        response: Response,
    ) {
        self.start_housekeeping(now);
        let server = role != Some(Mode::Client);
        if !server {
            self.forget_client(&from.id);
        }
        self.take_response(now, from, server, request_id, response);
        self.keep_points(now);
        self.pump_housekeeping(now);
    }

    /// A message from `id` said it is a client (`role: "client"`): it leaves the routing
    /// table, its replacement cache and the dormant list. The driver calls this before
    /// handing the message's request on, whose requester then carries no address.
    pub fn handle_client(&mut self, now: Time, id: &NodeId) {
        self.start_housekeeping(now);
        self.forget_client(id);
    }

    /// Request `request_id` failed: the connection could not be made or broke, or the peer was
    /// not who it should be. For a `listen` already answered, its subscription is lost (the
    /// connection carrying it closed).
    pub fn handle_failure(&mut self, now: Time, request_id: u64) {
        self.start_housekeeping(now);
        if let Some(pending) = self.requests.take(request_id) {
            self.fail_pending(now, request_id, pending);
        } else if self.watches.is_subscription(request_id) {
            self.watches.subscription_lost(now, request_id);
        }
        self.pump_housekeeping(now);
    }

    /// Time has reached `now`: time out overdue requests and queries.
    pub fn handle_timeout(&mut self, now: Time) {
        self.start_housekeeping(now);
        // Lookup requests past their contact's round-trip timeout give up their slot.
        for pending in self.requests.mark_slow(now) {
            if let Purpose::Query(query) = pending.purpose {
                if self.queries.on_slow(query, &pending.to) {
                    self.stats.requests_slow += 1;
                }
            }
        }
        for (request_id, pending) in self.requests.time_out(now) {
            self.time_out(now, request_id, pending);
        }
        for query in self.queries.ids() {
            let (queries, mut env) = self.queries_and_env(now);
            let done = queries.step(&mut env, query);
            self.route(now, done);
        }
        self.watch_rounds(now);
        self.reach_round(now);
        self.rendezvous_round(now);
        self.rejoin_round(now);
        self.housekeep(now);
    }

    /// A `notify` arrived from `from` for this node's `listen` request `listen`.
    pub fn handle_notify(&mut self, now: Time, from: Contact, listen: u64, item: Item) {
        self.start_housekeeping(now);
        self.events.extend(self.watches.notify(&from, listen, item));
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

    /// `by` answered one of this node's requests over datagrams, saying the request came from
    /// `observed` (the plane's [`PlaneEvent::Observed`](crate::datagram::PlaneEvent)):
    /// one vote on this node's address. A change of the address seen is reported as
    /// [`Event::ObservedChanged`].
    pub fn handle_observed(&mut self, now: Time, by: Contact, observed: std::net::SocketAddr) {
        if let Some(change) = self.observed.vote(now, &by, observed) {
            self.events.push(Event::ObservedChanged(change));
            self.reach.observed_changed(now);
        }
    }

    /// A durable store's commit ended. On failure the store undoes that commit's writes; the
    /// caller answers whoever waits on the commit (an [`Answer`] or a
    /// [`Event::PutDone`]).
    pub fn handle_commit(&mut self, commit: CommitId, outcome: CommitOutcome) {
        self.store.committed(commit, outcome);
        self.queries.committed(commit, outcome);
    }

    /// Incoming connection `connection` closed: its subscriptions end.
    pub fn connection_closed(&mut self, connection: u64) {
        self.subscriptions.connection_closed(connection);
    }

    /// Puts contacts verified in an earlier run (a saved routing table) back in the table.
    /// Their liveness is unknown: the next lookups and `bootstrap(now, &[])` find out. Their
    /// addresses are kept to rejoin through should the table empty.
    pub fn restore_contacts(&mut self, now: Time, contacts: impl IntoIterator<Item = Contact>) {
        for contact in contacts {
            self.rejoin.remember(now, [contact.addr]);
            if self.table.restore(contact, now) {
                self.events.push(Event::ContactAdded(contact));
            }
        }
    }

    /// Takes the answer to request `request_id` from `from` to whoever sent the request.
    fn take_response(
        &mut self,
        now: Time,
        from: Contact,
        server: bool,
        request_id: u64,
        response: Response,
    ) {
        let Some(pending) = self.requests.take(request_id) else {
            // Late for a finished query: the peer is still alive.
            if server {
                self.saw(now, from);
            }
            return;
        };
        if pending.to.id.is_some_and(|expected| expected != from.id) {
            self.fail_pending(now, request_id, pending);
            return;
        }
        let round_trip = now.since(pending.sent);
        self.requests.sample(&from.id, round_trip);
        if !pending.timed_out {
            let outcome = outcome_of(&response);
            pending.trace(&mut self.traces, outcome, Some(round_trip));
        }
        if server {
            self.saw(now, from);
        }
        if let (Some(key), Response::Error(e)) = (pending.key, &response) {
            if e.code == ErrorCode::CONFLICT {
                // The peer holds a copy that beats this node's: fetch it, so that a stale
                // copy (say, of a deleted item) is not replicated again.
                let request = Request::FindValue { key };
                self.requests
                    .send(now, from.into(), request, Purpose::Repair);
            }
        }
        self.route_response(now, from, request_id, pending, response);
    }

    /// Hands an answer to the part whose request it was.
    fn route_response(
        &mut self,
        now: Time,
        from: Contact,
        request_id: u64,
        pending: Pending,
        response: Response,
    ) {
        match pending.purpose {
            Purpose::Query(query) => {
                let (queries, mut env) = self.queries_and_env(now);
                let done = queries.on_response(&mut env, query, pending.to, from, response);
                self.route(now, done);
            }
            Purpose::Listen(watch) => {
                let watches = &mut self.watches;
                watches.on_listen_response(now, watch, &from, request_id, response);
            }
            Purpose::Repair => {
                if let (Some(key), Response::Value { item, .. }) = (pending.key, response) {
                    if *item.key() == key {
                        // Kept only if it wins over the copy held; a refusal changes nothing.
                        let _ = self.store_checked(now, item, Origin::Unknown);
                    }
                }
            }
            Purpose::Reach | Purpose::Probe => self.reach_answered(now, request_id, Some(response)),
            purpose @ (Purpose::Register | Purpose::Meet | Purpose::Exchange) => {
                let round_trip = now.since(pending.sent);
                let answer = Some((from, response));
                self.rendezvous_answered(now, request_id, purpose, answer, round_trip);
            }
            Purpose::Liveness | Purpose::Unattended => {}
        }
    }

    /// Request `request_id` (`pending`) failed.
    fn fail_pending(&mut self, now: Time, request_id: u64, pending: Pending) {
        if !pending.timed_out {
            pending.trace(&mut self.traces, RequestOutcome::Failed, None);
            if let Some(id) = pending.to.id.filter(|_| pending.purpose.shows_liveness()) {
                self.failed(&id);
            }
        }
        match pending.purpose {
            Purpose::Query(query) => {
                let (queries, mut env) = self.queries_and_env(now);
                let done = queries.on_failure(&mut env, query, pending.to);
                self.route(now, done);
            }
            Purpose::Listen(watch) => self.watches.drop_sub(now, watch, request_id, true),
            Purpose::Reach | Purpose::Probe => self.reach_answered(now, request_id, None),
            purpose @ (Purpose::Register | Purpose::Meet | Purpose::Exchange) => {
                let round_trip = now.since(pending.sent);
                self.rendezvous_answered(now, request_id, purpose, None, round_trip);
            }
            Purpose::Liveness | Purpose::Unattended | Purpose::Repair => {}
        }
    }

    /// Request `request_id` (`pending`) timed out. A query's request stays known, so that
    /// a late answer is still used; its stage frees the slot it held.
    fn time_out(&mut self, now: Time, request_id: u64, pending: Pending) {
        pending.trace(&mut self.traces, RequestOutcome::TimedOut, None);
        if let Some(id) = pending.to.id.filter(|_| pending.purpose.shows_liveness()) {
            self.failed(&id);
        }
        match pending.purpose {
            Purpose::Query(query) => self.queries.on_timeout(query, &pending.to),
            Purpose::Listen(watch) => self.watches.drop_sub(now, watch, request_id, true),
            Purpose::Reach | Purpose::Probe => self.reach_answered(now, request_id, None),
            purpose @ (Purpose::Register | Purpose::Meet | Purpose::Exchange) => {
                let round_trip = now.since(pending.sent);
                self.rendezvous_answered(now, request_id, purpose, None, round_trip);
            }
            Purpose::Liveness | Purpose::Unattended | Purpose::Repair => {}
        }
    }

    /// The answer to one request from the node `from`.
    fn serve(&mut self, now: Time, from: &Requester, id: u64, request: Request) -> Answer {
        let requester = &from.id;
        let response = match request {
            Request::Ping => Response::Pong,
            Request::FindNode { target } => {
                Response::Nodes(self.closest_except(&target, requester))
            }
            Request::FindValue { key } => match self.store.get(&key, now) {
                Ok(Some(item)) => Response::Value {
                    unchecked: item.seq().is_some() && self.housekeeping.is_unchecked(&key),
                    item,
                },
                Ok(None) => Response::Nodes(self.closest_except(&key, requester)),
                // Held but unreadable: "not found" would send the asker on to nodes that may
                // not hold it; an error tells it this node failed.
                Err(e) => Response::Error(ErrorReply::new(e.code(), "the store cannot read it")),
            },
            Request::Store { .. } | Request::Listen { .. } if self.mode == Mode::Client => {
                Response::Error(ErrorReply::new(ErrorCode::UNAVAILABLE, CLIENT_REFUSAL))
            }
            Request::Store { item } => return self.serve_store(now, from, item),
            Request::Listen { key, seq } => {
                let (config, store) = (&self.config, &self.store);
                let connection = from.connection;
                self.subscriptions
                    .listen(now, connection, id, key, seq, config, store)
            }
            Request::Unlisten { listen } => self.subscriptions.unlisten(from.connection, listen),
            // A `reach` needs the address of a proven session: it goes over datagrams
            // ([`Node::handle_reach`]).
            Request::Reach { .. } => Response::Error(ErrorReply::new(
                ErrorCode::BAD_REQUEST,
                "reach goes over datagrams",
            )),
            Request::Probe { to, nonce } => return self.serve_probe(now, from, to, nonce),
            // Both need the full address of a proven session: they go over datagrams
            // ([`Node::handle_rendezvous`]).
            Request::Register | Request::Introduce { .. } | Request::Relay { .. } => {
                Response::Error(ErrorReply::new(
                    ErrorCode::BAD_REQUEST,
                    "register, introduce and relay go over datagrams",
                ))
            }
            Request::Meet { to, nonce } => self.serve_meet(now, from, to, nonce),
        };
        Answer {
            response,
            commit: None,
            probe: None,
        }
    }

    /// Answers a `store` of `item` from `from`.
    fn serve_store(&mut self, now: Time, from: &Requester, item: Item) -> Answer {
        let key = *item.key();
        let origin = Origin::Subnet(Prefix::subnet(from.source));
        match self.store_checked(now, item, origin) {
            Ok(commit) => {
                self.housekeeping.received(key, now);
                Answer {
                    response: Response::Stored,
                    commit,
                    probe: None,
                }
            }
            Err(e) => {
                if let PutFailure::Local(StoreError::SubnetFull { .. }) = e {
                    self.stats.stores_over_share += 1;
                }
                Answer {
                    response: reply(&e),
                    commit: None,
                    probe: None,
                }
            }
        }
    }

    /// The k closest contacts to `target`, never including the requester.
    fn closest_except(&self, target: &NodeId, requester: &NodeId) -> Vec<Contact> {
        let k = self.config.k.get();
        let mut closest = self.table.closest(target, k + 1);
        closest.retain(|c| c.id != *requester);
        closest.truncate(k);
        closest
    }

    /// Stores an item in this node's store after the size check, and tells the subscribers
    /// and watches of its key. Returns the commit that makes it durable, if it is not durable
    /// yet.
    pub(super) fn store_checked(
        &mut self,
        now: Time,
        item: Item,
        origin: Origin,
    ) -> Result<Option<CommitId>, PutFailure> {
        let (size, max) = (item.value().len(), self.config.max_value_size);
        if size > max {
            return Err(PutFailure::TooLarge { size, max });
        }
        // Only a key someone listens to (a peer, or this node's own watch) needs the copy kept.
        let watched = self.subscriptions.has_subscribers(item.key()) || self.watches.len() > 0;
        let copy = watched.then(|| item.clone());
        let written = self.store.put(item, now, origin)?;
        if let Some(item) = copy.filter(|_| written.resolution != Resolution::Unchanged) {
            self.subscriptions.notify(now, &item, written.commit);
            self.events.extend(self.watches.local(&item));
        }
        Ok(written.commit)
    }
}

/// What a client answers `store` and `listen` (code 503).
pub const CLIENT_REFUSAL: &str = "this node is a client";

/// The `error` response a peer's `store` gets for the refusal `error`.
fn reply(error: &PutFailure) -> Response {
    let (code, message) = match error {
        PutFailure::TooLarge { .. } => (ErrorCode::TOO_LARGE, error.to_string()),
        PutFailure::NotDurable(_) => (ErrorCode::INTERNAL, error.to_string()),
        PutFailure::Local(e) => (e.code(), e.to_string()),
        // A peer's `store` asks no other node: never this failure, told as unavailable.
        PutFailure::NoPeer { .. } => (ErrorCode::UNAVAILABLE, error.to_string()),
    };
    Response::Error(ErrorReply::new(code, message))
}
