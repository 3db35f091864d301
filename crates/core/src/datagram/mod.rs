//! The datagram plane (`docs/protocol.md`, "Datagrams"): requests and answers over UDP, in
//! sessions whose first exchange is one round trip, as a state machine with no I/O.
//!
//! A [`Plane`] sits between a [`Node`](crate::Node) and a UDP socket. It takes the node's
//! requests ([`Plane::send`]), the datagrams that arrive ([`Plane::handle_datagram`]), the
//! node's answers to peers ([`Plane::answer`]) and the time ([`Plane::handle_timeout`]); it
//! hands back datagrams to send ([`Plane::poll_datagram`]), and what the node must hear
//! ([`Plane::poll_event`]): a peer's request, an answer, a failure, a peer whose address is
//! now proven, or a request the plane cannot carry and that must go over TCP.
//!
//! The rules, each in one place:
//! - a first exchange is an `initial` (padded to 1,200 bytes, signed, carrying the request in
//!   the clear) answered by an `accept` (signed, carrying the answer sealed): one round trip,
//!   after which both sides hold two ChaCha20-Poly1305 keys from an X25519 agreement and no
//!   further public-key operation is needed;
//! - an address is proven when its node shows it read what was sent there: the responder's by
//!   its `accept`, the initiator's by its first `data`. Until then the responder sends at most
//!   three times the bytes it received (RFC 9000, section 8), takes no `store`, and the
//!   initiator enters no routing table ([`PlaneEvent::Verified`] marks the moment);
//! - every `data` has a packet number; a number seen before, or older than the last 64, is
//!   refused, so a replayed datagram does nothing;
//! - a request unanswered after its contact's retransmission timeout is sent again, a bounded
//!   number of times; a retransmitted request is answered from the answers kept, never handled
//!   twice;
//! - an address that never answers an `initial` goes over TCP for a while ([`PlaneEvent::Fallback`]),
//!   as do requests that need a stream (`listen`) or do not fit in a datagram.

mod packet;
mod sent_to;
mod session;
mod suite;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest, Sha512};

use crate::id::NodeId;
use crate::message::{
    Contact, ErrorCode, ErrorReply, Message, Mode, NetworkName, Request, Response,
};
use crate::node::{Requester, Transmit};
use crate::rtt::RttTable;
use crate::time::Time;
use crate::wire::{self, Body, Envelope, MAX_PARTS};

pub use packet::{
    ACCEPT, ACCEPT_HEADER, DATA, DATA_HEADER, FLAG_ANNOUNCE, INITIAL, MAX_DATAGRAM, MAX_RELAYED,
    PROBE, PROBE_LEN, PUNCH, PUNCH_LEN, REFUSE, RELAYED, RELAYED_HEADER, UNKNOWN, VERSION,
    parse_relayed, probe, punch, relayed,
};
pub use sent_to::{MAPPING_LIFE, SENT_TO_KEPT};
pub use suite::{Real, Simulated, Suite, TAG_LEN};

/// The five layouts' builders and parsers, for the fuzz targets in `fuzz/` (feature
/// `fuzzing`): what a node needs of them is the plane.
#[cfg(feature = "fuzzing")]
pub mod layouts {
    pub use super::packet::{
        Accept, Initial, data_header, parse_data, parse_probe, parse_refuse, parse_unknown, probe,
        refuse, unknown, version,
    };
}

use packet::{Accept, Initial};
use sent_to::SentTo;
use session::{
    ANSWERS_KEPT, Check, Initiating, Open, Sent, Session, State, Unproven, Window, derive_keys,
};

/// The plane's settings.
#[derive(Clone, Debug)]
pub struct PlaneConfig {
    /// The network name, as in the TCP handshake.
    pub network: NetworkName,
    /// Whether this node takes requests at the address it sends from (a node that listens):
    /// peers add it to their routing tables only if so.
    pub announce: bool,
    /// What this node says it is in every body it sends (`role`). A client also clears
    /// `announce`.
    pub role: Mode,
    /// Sessions kept at most; past it, the one idle longest is dropped.
    pub max_sessions: usize,
    /// A session with no datagram either way for this long is dropped.
    pub session_idle: Duration,
    /// How many times a request is sent in all before it fails.
    pub tries: u32,
    /// How many times an `initial` is sent before its address is taken for one that does not
    /// speak datagrams, and its requests go over TCP.
    pub initial_tries: u32,
    /// The retransmission timeout of a contact with no round-trip estimate.
    pub initial_rto: Duration,
    /// The least retransmission timeout (cairn: half the node's `min_slot_timeout`).
    pub min_rto: Duration,
    /// The most retransmission timeout.
    pub max_rto: Duration,
    /// How long an address that never answered on UDP is reached over TCP only.
    pub fallback_for: Duration,
    /// How long an answer is kept for a retransmitted request.
    pub answers_for: Duration,
}

impl PlaneConfig {
    /// cairn's defaults on `network`. Why each: `docs/design.md`, "Datagrams".
    pub fn new(network: NetworkName) -> Self {
        PlaneConfig {
            network,
            announce: true,
            role: Mode::Server,
            max_sessions: 4_096,
            session_idle: Duration::from_secs(300),
            tries: 4,
            initial_tries: 4,
            initial_rto: Duration::from_millis(400),
            min_rto: Duration::from_millis(50),
            max_rto: Duration::from_secs(2),
            fallback_for: Duration::from_secs(600),
            answers_for: Duration::from_secs(10),
        }
    }
}

/// Where an answer goes: the session a request came in and the request's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The session (this node's id for it).
    pub session: u64,
    /// The request's id.
    pub id: u64,
}

/// Why a request over datagrams failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatagramFailure {
    /// No answer after every try.
    NoAnswer,
    /// The node at the address is not the one expected.
    UnexpectedPeer(NodeId),
    /// The peer refused the `initial` (426: another version or network).
    Refused {
        /// The code.
        code: ErrorCode,
        /// The peer's message.
        message: String,
    },
}

/// What the plane reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaneEvent {
    /// A peer's request: answer it with [`Plane::answer`] and `reply`.
    Request {
        /// Where the answer goes.
        reply: Reply,
        /// Who asked: `verified` once its address is proven, `addr` if it announces one (never
        /// for a peer that said it is a client).
        from: Requester,
        /// The request.
        request: Request,
        /// What the asker said it is (`role`), if it said.
        role: Option<Mode>,
    },
    /// The answer to this node's request `id`, from a peer whose key and address are proven.
    Response {
        /// The peer.
        from: Contact,
        /// The request's id.
        id: u64,
        /// The answer.
        response: Response,
        /// What the peer said it is (`role`), if it said: a client must not enter the table.
        role: Option<Mode>,
    },
    /// This node's request `id` failed.
    Failed {
        /// The request's id.
        id: u64,
        /// Where it went.
        to: SocketAddr,
        /// Why.
        reason: DatagramFailure,
    },
    /// A request to send over TCP instead: it needs a stream, does not fit, or its peer does
    /// not answer datagrams.
    Fallback(Transmit),
    /// A peer proved its address (and it announces one): it may enter the routing table.
    Verified(Requester),
    /// An answer to one of this node's requests said from which address the request came
    /// (`observed`): one vote for the node's address as others see it. Reported just before
    /// that answer's [`PlaneEvent::Response`]. The peer's key and address are proven (a
    /// request goes only on a proven session), and it answered a request this node chose to
    /// send it: an answer nobody asked for is dropped before (`stray`).
    Observed {
        /// The peer that answered.
        by: Contact,
        /// The address it saw this node's request come from.
        observed: SocketAddr,
    },
    /// A peer asked `reach` on a proven session: answer it with [`Plane::answer`] and `reply`
    /// once the third node answered. `source` is the session's address, the one the probe
    /// must go to (never an address the asker wrote).
    Reach {
        /// Where the answer goes.
        reply: Reply,
        /// Who asked.
        from: Requester,
        /// The address the request came from.
        source: SocketAddr,
        /// The nonce the probe carries.
        nonce: [u8; 16],
    },
    /// A peer asked `register` or `introduce` on a proven session: both need the session's
    /// address. Answer with [`Plane::answer`] and `reply`: a `register` at once, an
    /// `introduce` once the target answered its `meet`.
    Rendezvous {
        /// Where the answer goes.
        reply: Reply,
        /// Who asked.
        from: Requester,
        /// The address the request came from: the one registered, or the one the target
        /// punches towards.
        source: SocketAddr,
        /// `register` or `introduce`.
        request: Request,
    },
    /// A `probe` datagram arrived from an address this node never sent a datagram to (of the
    /// last [`SENT_TO_KEPT`] it sent to): someone it did not contact reached it, if
    /// `vouched`.
    Probe {
        /// Where it came from.
        from: SocketAddr,
        /// Its nonce.
        nonce: [u8; 16],
        /// Whether the plane vouches that it never sent to `from` within a NAT mapping's life
        /// ([`MAPPING_LIFE`]): false while destinations it pushed out of its record (spoofed
        /// junk it answered can push real contacts out) were sent to more recently than that.
        /// An unvouched probe proves nothing either way.
        vouched: bool,
    },
}

/// Counters since the plane started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlaneStats {
    /// Datagrams handed in.
    pub datagrams_in: u64,
    /// Datagrams handed out.
    pub datagrams_out: u64,
    /// Bytes handed in.
    pub bytes_in: u64,
    /// Bytes handed out.
    pub bytes_out: u64,
    /// Sessions this node opened (its `initial` was accepted).
    pub sessions_initiated: u64,
    /// Sessions peers opened (this node sent an `accept`).
    pub sessions_accepted: u64,
    /// Sessions held now.
    pub sessions: u64,
    /// Datagrams refused as malformed: a bad layout, an `initial` not padded to 1,200 bytes,
    /// a body that is not a message.
    pub malformed: u64,
    /// `initial`s and `accept`s whose signature did not verify.
    pub bad_signature: u64,
    /// `data`s whose tag did not verify.
    pub bad_tag: u64,
    /// `data`s refused as replayed (a packet number seen, or too old).
    pub replayed: u64,
    /// Datagrams for a session from another address than the session's, or for a session
    /// this node does not hold.
    pub stray: u64,
    /// Open sessions this node dropped because a request on one ran out of tries with nothing
    /// heard on it since the first (a peer that forgot it, or a NAT that moved this node to
    /// another port); the request went on in a new session.
    pub silent_sessions: u64,
    /// Datagrams not sent because the peer's address is not proven and they would exceed
    /// three times what it sent.
    pub amplification_limited: u64,
    /// Requests sent again.
    pub retransmits: u64,
    /// Retransmitted requests answered from the answers kept.
    pub duplicates: u64,
    /// Requests handed to TCP.
    pub fallbacks: u64,
    /// Requests the node stopped waiting for before the plane was done with them
    /// ([`Plane::cancel`]).
    pub cancelled: u64,
    /// `store`s refused because they came in an `initial` (the address is not proven).
    pub unproven_stores: u64,
    /// `probe` datagrams dropped because they came from an address this node had sent to.
    pub probes_from_contacted: u64,
    /// `probe` datagrams reported unvouched: they came while destinations pushed out of the
    /// record were sent to within a NAT mapping's life.
    pub probes_unvouched: u64,
    /// `punch` datagrams sent ([`Plane::punch`]).
    pub punches_out: u64,
    /// `punch` datagrams received (and dropped: they only open their sender's NAT).
    pub punches_in: u64,
}

/// A request of this node's out over datagrams.
#[derive(Debug)]
struct Outgoing {
    transmit: Transmit,
    /// Its body (MessagePack), sent again as it is.
    body: Vec<u8>,
    /// The session it went on (this node's id), `None` while it waits for one.
    session: Option<u64>,
    tries: u32,
    rto: Duration,
    /// When it was last sent.
    sent: Time,
    /// When it was first sent, once it was.
    first_sent: Option<Time>,
    /// Whether it left a silent session for a new one, after its tries there.
    reopened: bool,
    /// When to send it again or give up.
    next: Time,
    /// The parts of a split `nodes` answer received so far.
    parts: Vec<Option<Vec<Contact>>>,
    /// A `ping` the plane sent itself to open a session for a `store`.
    internal: bool,
}

impl Outgoing {
    /// A request not sent yet: due now, with `rto` as its first retransmission timeout.
    fn new(transmit: Transmit, body: Vec<u8>, rto: Duration, now: Time, internal: bool) -> Self {
        Outgoing {
            transmit,
            body,
            session: None,
            tries: 0,
            rto,
            sent: now,
            first_sent: None,
            reopened: false,
            next: now,
            parts: Vec::new(),
            internal,
        }
    }
}

/// The datagram plane of one node.
pub struct Plane<C: Suite> {
    suite: C,
    public_key: [u8; 32],
    id: NodeId,
    config: PlaneConfig,
    random: Random,
    sessions: HashMap<u64, Session>,
    /// The open session requests to an address go on, else the one being opened.
    by_addr: HashMap<SocketAddr, u64>,
    /// Requests out, by id.
    pending: BTreeMap<u64, Outgoing>,
    /// Addresses that did not answer an `initial`, and until when they are reached over TCP.
    tcp_only: HashMap<SocketAddr, Time>,
    datagrams: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<PlaneEvent>,
    rtt: RttTable,
    stats: PlaneStats,
    /// Ids of the plane's own `ping`s: counting down from `u64::MAX`, far from the node's.
    next_internal: u64,
    /// When idle sessions and old answers were last dropped.
    swept: Time,
    /// The destinations datagrams went to, the last [`SENT_TO_KEPT`] of them.
    sent_to: SentTo,
    /// The latest time an input brought: when a datagram handed out goes.
    now: Time,
}

/// How often idle sessions and kept answers are swept.
const SWEEP: Duration = Duration::from_secs(5);

impl<C: Suite> Plane<C> {
    /// A plane for the node whose keys `suite` holds; `seed` (32 random bytes from the
    /// operating system, or the simulator's seed) makes its session ids and ephemeral keys.
    pub fn new(suite: C, config: PlaneConfig, seed: [u8; 32], now: Time) -> Self {
        let public_key = suite.public_key();
        Plane {
            id: NodeId::of_public_key(&public_key),
            public_key,
            suite,
            config,
            random: Random::new(seed),
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            pending: BTreeMap::new(),
            tcp_only: HashMap::new(),
            datagrams: VecDeque::new(),
            events: VecDeque::new(),
            rtt: RttTable::default(),
            stats: PlaneStats::default(),
            next_internal: u64::MAX,
            swept: now,
            sent_to: SentTo::default(),
            now,
        }
    }

    /// The counters.
    pub fn stats(&self) -> PlaneStats {
        PlaneStats {
            sessions: self.sessions.len() as u64,
            ..self.stats
        }
    }

    /// The settings.
    pub fn config(&self) -> &PlaneConfig {
        &self.config
    }

    /// Says `role` from now on, and announces an address only as a server: sessions opened
    /// from now on carry the flag accordingly, and every body says the role. A peer that
    /// heard `client` in a session and now hears `server` takes this node as announcing there
    /// (sessions stay: dropping them all would cut the relays and requests under way).
    pub fn set_role(&mut self, role: Mode) {
        self.config.role = role;
        self.config.announce = role == Mode::Server;
    }

    /// Requests out and not yet answered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The next datagram to send, and where.
    pub fn poll_datagram(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let next = self.datagrams.pop_front();
        if next.is_none() {
            // A drained queue gives its buffer back: thousands of idle simulated nodes should
            // not keep the room of their busiest moment.
            self.datagrams = VecDeque::new();
        }
        next
    }

    /// The next thing the node must hear.
    pub fn poll_event(&mut self) -> Option<PlaneEvent> {
        let next = self.events.pop_front();
        if next.is_none() {
            self.events = VecDeque::new();
        }
        next
    }

    /// When to call [`Plane::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Time> {
        let next = self.pending.values().map(|p| p.next).min();
        let sweep =
            (!self.sessions.is_empty() || !self.tcp_only.is_empty()).then(|| self.swept + SWEEP);
        next.into_iter().chain(sweep).min()
    }

    /// A peer at `addr` was found not to speak datagrams (it dialed over TCP without saying it
    /// does): reach it over TCP for a while.
    pub fn speaks_tcp_only(&mut self, now: Time, addr: SocketAddr) {
        self.now = self.now.max(now);
        self.tcp_only.insert(addr, now + self.config.fallback_for);
    }

    /// Sends `transmit` (a request of the node's, from `poll_transmit`) over datagrams, or
    /// hands it back as a [`PlaneEvent::Fallback`] when it cannot go that way.
    pub fn send(&mut self, now: Time, transmit: Transmit) {
        self.now = self.now.max(now);
        let body = match &transmit.request {
            Request::Listen { .. } | Request::Unlisten { .. } => None,
            _ => wire::encode_body_with(
                &Body::Message(Message::Request {
                    id: transmit.id,
                    request: transmit.request.clone(),
                }),
                &Envelope::role(self.config.role),
            )
            .ok()
            .filter(|body| body.len() <= data_room()),
        };
        // A bootstrap address (no node id known) goes over TCP: it is asked once, and TCP
        // tells a closed port, another network or something that is not cairn apart at once.
        let tcp_only = transmit.to.id.is_none()
            || self
                .tcp_only
                .get(&transmit.to.addr)
                .is_some_and(|until| *until > now);
        match body {
            Some(body) if !tcp_only => {
                let rto = self.rto(transmit.to.id.as_ref());
                let id = transmit.id;
                let outgoing = Outgoing::new(transmit, body, rto, now, false);
                self.pending.insert(id, outgoing);
                self.dispatch(now, id);
            }
            _ => self.fall_back(transmit),
        }
    }

    /// Sends a `punch` carrying `nonce` to `to` from the node's socket (the node's
    /// [`Node::poll_punch`](crate::Node::poll_punch)): it opens this node's NAT, if any, to
    /// `to`, so that `to` can open a session here. `to` is then a destination this node sent
    /// to, as for any datagram.
    pub fn punch(&mut self, to: SocketAddr, nonce: &[u8; 16]) {
        self.stats.punches_out += 1;
        self.push_datagram(to, punch(nonce));
    }

    /// Answers the request `reply` names with `response`. An answer to a session that is gone
    /// is dropped (the peer will ask again or give up).
    pub fn answer(&mut self, now: Time, reply: Reply, response: Response) {
        self.now = self.now.max(now);
        let Some(session) = self.sessions.get_mut(&reply.session) else {
            return;
        };
        session.last = now;
        let addr = session.addr;
        let Some(open) = session.open() else {
            return;
        };
        let kept = open.serving.contains(&(reply.id, true));
        open.serving.retain(|(id, _)| *id != reply.id);
        let first_in_accept = open
            .unproven
            .as_ref()
            .is_some_and(|u| u.accept_for == Some(reply.id));
        let first_room = if first_in_accept {
            accept_room()
        } else {
            data_room()
        };
        let envelope = Envelope {
            observed: Some(addr),
            role: Some(self.config.role),
        };
        let bodies = answer_bodies(reply.id, response, &envelope, first_room);
        if kept {
            if open.answers.len() >= ANSWERS_KEPT {
                open.answers.pop_front();
            }
            open.answers.push_back(Sent {
                id: reply.id,
                bodies: bodies.clone(),
                at: now,
                repeats: 0,
            });
        }
        let mut bodies = bodies.into_iter();
        if first_in_accept {
            if let Some(u) = open.unproven.as_mut() {
                u.accept_for = None;
            }
            if let Some(body) = bodies.next() {
                let accept = self.seal_accept(reply.session, &body);
                self.send_limited(reply.session, addr, accept.clone());
                if let Some(u) = self
                    .open_mut(reply.session)
                    .and_then(|o| o.unproven.as_mut())
                {
                    u.accept = Some(accept);
                }
            }
        }
        for body in bodies {
            self.send_data(reply.session, &body);
        }
    }

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, bytes: &[u8]) {
        self.now = self.now.max(now);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        match bytes.first() {
            Some(&INITIAL) => self.on_initial(now, from, bytes),
            Some(&ACCEPT) => self.on_accept(now, from, bytes),
            Some(&DATA) => self.on_data(now, from, bytes),
            Some(&UNKNOWN) => self.on_unknown(now, from, bytes),
            Some(&REFUSE) => self.on_refuse(from, bytes),
            Some(&PROBE) => self.on_probe(now, from, bytes),
            // A punch only opened its sender's NAT on the way here: nothing to do.
            Some(&PUNCH) if bytes.len() == PUNCH_LEN => self.stats.punches_in += 1,
            _ => self.stats.malformed += 1,
        }
    }

    /// The node stopped waiting for request `id` (its deadline passed,
    /// [`Node::poll_cancelled`](crate::Node::poll_cancelled)): it is sent no more, and never
    /// handed to TCP. A session being opened for it alone is dropped, its `initial` not sent
    /// again; when every `initial` but the last had gone unanswered, the address is reached
    /// over TCP for a while, as when all of them go unanswered (so that a version-1 node is
    /// found out even when nobody waits that long). Requests waiting behind it on the same
    /// session carry on, the next of them in its place.
    pub fn cancel(&mut self, now: Time, id: u64) {
        self.now = self.now.max(now);
        let Some(cancelled) = self.pending.remove(&id) else {
            return;
        };
        self.stats.cancelled += 1;
        let Some(sid) = cancelled.session else {
            return;
        };
        let opening = self.sessions.get(&sid).is_some_and(|s| !s.is_open());
        if !opening {
            return;
        }
        let waiting = self
            .pending
            .iter()
            .find(|(_, p)| p.session == Some(sid) && !p.internal)
            .map(|(id, _)| *id);
        let carrier = self.carried_by(sid);
        match waiting {
            Some(next) if carrier == Some(id) => {
                if let Some(Session {
                    state: State::Initiating(opening),
                    ..
                }) = self.sessions.get_mut(&sid)
                {
                    opening.carried = next;
                }
                if let Some(p) = self.pending.get_mut(&next) {
                    p.tries = cancelled.tries;
                    p.rto = cancelled.rto;
                    p.sent = cancelled.sent;
                    p.first_sent = cancelled.first_sent;
                    p.next = cancelled.next;
                }
            }
            Some(_) => {}
            None => {
                let tries = match carrier {
                    Some(carrier) if carrier == id => cancelled.tries,
                    Some(carrier) => self.pending.get(&carrier).map_or(0, |p| p.tries),
                    None => 0,
                };
                if tries + 1 >= self.config.initial_tries {
                    self.tcp_only
                        .insert(cancelled.transmit.to.addr, now + self.config.fallback_for);
                }
                // The plane's own `ping`s for the session end with it; nobody else waits.
                self.end_session(sid);
            }
        }
    }

    /// Time has reached `now`: requests past their timeout are sent again or given up, idle
    /// sessions and old answers dropped.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = self.now.max(now);
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.retry(now, id);
        }
        if now >= self.swept + SWEEP {
            self.swept = now;
            self.sweep(now);
        }
    }

    // --- sending --------------------------------------------------------------------------

    /// Sends pending request `id` on its address's session, opening one if there is none.
    fn dispatch(&mut self, now: Time, id: u64) {
        let Some(outgoing) = self.pending.get(&id) else {
            return;
        };
        let to = outgoing.transmit.to;
        // A `store` changes what a peer holds, `reach`, `probe`, `introduce` and `meet` make
        // peers send datagrams, and `register` names the sender's address: each needs a
        // proven address, so a session first.
        let is_store = matches!(
            outgoing.transmit.request,
            Request::Store { .. }
                | Request::Reach { .. }
                | Request::Probe { .. }
                | Request::Register
                | Request::Introduce { .. }
                | Request::Relay { .. }
                | Request::Meet { .. }
        );
        match self.by_addr.get(&to.addr).copied() {
            Some(sid) if self.sessions.get(&sid).is_some_and(Session::is_open) => {
                let peer = self.sessions.get(&sid).and_then(|s| s.peer);
                if let (Some(expected), Some(peer)) = (to.id, peer) {
                    if expected != peer {
                        self.pending.remove(&id);
                        self.events.push_back(PlaneEvent::Failed {
                            id,
                            to: to.addr,
                            reason: DatagramFailure::UnexpectedPeer(peer),
                        });
                        return;
                    }
                }
                let body = self
                    .pending
                    .get(&id)
                    .map(|p| p.body.clone())
                    .unwrap_or_default();
                self.send_data(sid, &body);
                self.armed(now, id, Some(sid));
            }
            Some(sid) => {
                // An `initial` is on its way: this request follows once it is accepted, and
                // shares its fate until then.
                let next = self
                    .pending
                    .values()
                    .filter(|p| p.session == Some(sid))
                    .map(|p| p.next)
                    .min();
                // A due time already past is the carrier's own, about to be renewed in the
                // same `handle_timeout` (a late timer): this one takes its own rto instead.
                if let Some(p) = self.pending.get_mut(&id) {
                    p.session = Some(sid);
                    p.next = next.filter(|next| *next > now).unwrap_or(now + p.rto);
                }
            }
            None if is_store => {
                // A `store` needs a proven address: open the session with a `ping` first.
                let ping = self.next_internal;
                self.next_internal -= 1;
                let transmit = Transmit {
                    id: ping,
                    to,
                    request: Request::Ping,
                };
                let body = wire::encode_body_with(
                    &Body::Message(Message::Request {
                        id: ping,
                        request: Request::Ping,
                    }),
                    &Envelope::role(self.config.role),
                )
                .unwrap_or_default();
                let rto = self.rto(to.id.as_ref());
                let outgoing = Outgoing::new(transmit, body, rto, now, true);
                self.pending.insert(ping, outgoing);
                self.dispatch(now, ping);
                self.dispatch(now, id);
            }
            None => self.initiate(now, id),
        }
    }

    /// Opens a session to request `id`'s address with an `initial` carrying it.
    fn initiate(&mut self, now: Time, id: u64) {
        let Some(outgoing) = self.pending.get(&id) else {
            return;
        };
        let (to, body) = (outgoing.transmit.to, outgoing.body.clone());
        let network = self.config.network.as_str().as_bytes().to_vec();
        if body.len() > Initial::room(network.len()) {
            let outgoing = self.pending.remove(&id);
            if let Some(outgoing) = outgoing {
                self.fall_back(outgoing.transmit);
            }
            return;
        }
        let secret = self.random.bytes32();
        let ephemeral = C::ephemeral_public(&secret);
        let sid = self.fresh_sid();
        let mut initial = Initial {
            flags: if self.config.announce {
                FLAG_ANNOUNCE
            } else {
                0
            },
            sid,
            ephemeral,
            public_key: self.public_key,
            network,
            body,
            signature: [0; 64],
        };
        initial.signature = self
            .suite
            .sign(&Initial::signed_message(&initial.signed_part()));
        let bytes = initial.encode();
        self.make_room();
        self.sessions.insert(
            sid,
            Session {
                addr: to.addr,
                peer: None,
                announce: true,
                said_client: false,
                state: State::Initiating(Box::new(Initiating {
                    secret,
                    ephemeral,
                    initial: bytes.clone(),
                    expected: to.id,
                    carried: id,
                })),
                last: now,
                heard: now,
            },
        );
        self.by_addr.insert(to.addr, sid);
        self.push_datagram(to.addr, bytes);
        self.armed(now, id, Some(sid));
    }

    /// Request `id` went out (again) on session `sid`: when to try again.
    fn armed(&mut self, now: Time, id: u64, sid: Option<u64>) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.tries += 1;
            p.session = sid;
            p.sent = now;
            p.first_sent.get_or_insert(now);
            p.next = now + p.rto;
            p.rto = (p.rto * 2).min(self.config.max_rto);
        }
    }

    /// Request `id`'s time ran out: send it again, or give up.
    fn retry(&mut self, now: Time, id: u64) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        let (tries, session, addr) = (p.tries, p.session, p.transmit.to.addr);
        let (first_sent, reopened) = (p.first_sent, p.reopened);
        let state = session.and_then(|sid| self.sessions.get(&sid).map(|s| (sid, s.is_open())));
        match state {
            Some((sid, false)) => {
                // Still opening: the `initial` carried this request, or it waits behind it.
                if tries >= self.config.initial_tries {
                    self.no_datagrams(now, sid, addr);
                } else if self.carried_by(sid) == Some(id) {
                    if let Some(Session {
                        state: State::Initiating(opening),
                        ..
                    }) = self.sessions.get(&sid)
                    {
                        let bytes = opening.initial.clone();
                        self.push_datagram(addr, bytes);
                        self.stats.retransmits += 1;
                    }
                    self.armed(now, id, Some(sid));
                } else if let Some(p) = self.pending.get_mut(&id) {
                    p.next = now + p.rto;
                }
            }
            Some((sid, true))
                if tries >= self.config.tries
                    && !reopened
                    && self.silent_since(sid, first_sent) =>
            {
                // Nothing at all came back on the session since the request first went out:
                // the peer may have forgotten it, or, behind a NAT whose mapping expired while
                // the session idled, see this node at a new port and drop what comes from
                // there as stray, without a word. The session is dropped and the request
                // opens a new one (from wherever this node now is), once; requests still
                // waiting on the old session follow it there.
                self.remove_session(sid);
                self.stats.silent_sessions += 1;
                if let Some(p) = self.pending.get_mut(&id) {
                    p.reopened = true;
                    p.tries = 0;
                }
                self.stats.retransmits += 1;
                self.dispatch(now, id);
            }
            Some((sid, true)) if tries >= self.config.tries => {
                // Out of tries. The parts of a split `nodes` answer that did arrive are an
                // answer still: any of a peer's closest contacts help a lookup.
                let partial = self.pending.get_mut(&id).and_then(|p| {
                    let nodes: Vec<Contact> = p.parts.drain(..).flatten().flatten().collect();
                    (!nodes.is_empty()).then_some(nodes)
                });
                match partial {
                    Some(nodes) => {
                        let nodes = Response::Nodes(nodes);
                        self.deliver(now, sid, id, nodes, Envelope::default());
                    }
                    None => self.give_up(id),
                }
            }
            _ if tries >= self.config.tries => self.give_up(id),
            Some((sid, true)) => {
                let body = self
                    .pending
                    .get(&id)
                    .map(|p| p.body.clone())
                    .unwrap_or_default();
                self.send_data(sid, &body);
                self.stats.retransmits += 1;
                self.armed(now, id, Some(sid));
            }
            None => {
                // Its session is gone (the peer forgot it): open another.
                self.stats.retransmits += 1;
                self.dispatch(now, id);
            }
        }
    }

    /// Whether nothing arrived on session `sid` since `since` (a request's first sending).
    fn silent_since(&self, sid: u64, since: Option<Time>) -> bool {
        self.sessions
            .get(&sid)
            .zip(since)
            .is_some_and(|(s, since)| s.heard < since)
    }

    /// Request `id` had no answer after every try.
    fn give_up(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id).filter(|p| !p.internal) {
            self.events.push_back(PlaneEvent::Failed {
                id,
                to: p.transmit.to.addr,
                reason: DatagramFailure::NoAnswer,
            });
        }
    }

    /// The request an opening session's `initial` carries.
    fn carried_by(&self, sid: u64) -> Option<u64> {
        match self.sessions.get(&sid) {
            Some(Session {
                state: State::Initiating(opening),
                ..
            }) => Some(opening.carried),
            _ => None,
        }
    }

    /// `addr` never answered session `sid`'s `initial`: it is reached over TCP for a while,
    /// and every request waiting on the session goes there now.
    fn no_datagrams(&mut self, now: Time, sid: u64, addr: SocketAddr) {
        self.tcp_only.insert(addr, now + self.config.fallback_for);
        for p in self.end_session(sid) {
            self.fall_back(p.transmit);
        }
    }

    /// Drops session `sid` and hands back the node's requests that went on it (the plane's
    /// own `ping`s end with it).
    fn end_session(&mut self, sid: u64) -> Vec<Outgoing> {
        self.remove_session(sid);
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.session == Some(sid))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .filter(|p| !p.internal)
            .collect()
    }

    fn fall_back(&mut self, transmit: Transmit) {
        self.stats.fallbacks += 1;
        self.events.push_back(PlaneEvent::Fallback(transmit));
    }

    /// Seals `body` into a `data` on open session `sid` and sends it, within the
    /// amplification limit.
    fn send_data(&mut self, sid: u64, body: &[u8]) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let addr = session.addr;
        let Some(open) = session.open() else {
            return;
        };
        let pn = open.next_pn;
        open.next_pn += 1;
        let header = packet::data_header(open.peer_sid, pn);
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&C::seal(&open.send_key, pn, &header, body));
        self.send_limited(sid, addr, bytes);
    }

    /// The `accept` of responder session `sid`, carrying `body`.
    fn seal_accept(&mut self, sid: u64, body: &[u8]) -> Vec<u8> {
        let Some(open) = self.open_mut(sid) else {
            return Vec::new();
        };
        let pn = open.next_pn;
        open.next_pn += 1;
        let header = open
            .unproven
            .as_ref()
            .map(|u| u.header.clone())
            .unwrap_or_default();
        let key = open.send_key;
        let mut bytes = header.clone();
        bytes.extend_from_slice(&C::seal(&key, pn, &header, body));
        bytes
    }

    /// Sends `bytes` on session `sid` if the amplification limit allows it.
    fn send_limited(&mut self, sid: u64, addr: SocketAddr, bytes: Vec<u8>) {
        if let Some(open) = self.open_mut(sid) {
            if !open.may_send(bytes.len()) {
                self.stats.amplification_limited += 1;
                return;
            }
            if let Some(u) = open.unproven.as_mut() {
                u.sent += bytes.len();
            }
        }
        self.push_datagram(addr, bytes);
    }

    fn push_datagram(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.sent_to.insert(self.now, to);
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        self.datagrams.push_back((to, bytes));
    }

    // --- receiving ------------------------------------------------------------------------

    fn on_initial(&mut self, now: Time, from: SocketAddr, bytes: &[u8]) {
        if bytes.len() != MAX_DATAGRAM {
            // Not padded: answering it could amplify; not even a refusal goes back.
            self.stats.malformed += 1;
            return;
        }
        if packet::version(bytes) != Some(VERSION) {
            // Another version: say which this node speaks (the refusal is small).
            let sid = bytes
                .get(3..11)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            let message = "this node speaks datagram version 2";
            self.push_datagram(from, packet::refuse(sid, ErrorCode::MISMATCH, message));
            return;
        }
        let Some(initial) = Initial::parse(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        if initial.network != self.config.network.as_str().as_bytes() {
            let message = format!("this node is on network {:?}", self.config.network.as_str());
            self.push_datagram(
                from,
                packet::refuse(initial.sid, ErrorCode::MISMATCH, &message),
            );
            return;
        }
        // A repeat of an `initial` already accepted: the `accept` went missing.
        if let Some(sid) = self.repeated_initial(from, &initial) {
            let accept = self.sessions.get_mut(&sid).and_then(|s| {
                s.last = now;
                s.heard = now;
                let unproven = s.open()?.unproven.as_mut()?;
                unproven.received += bytes.len();
                unproven.accept.clone()
            });
            if let Some(accept) = accept {
                self.stats.duplicates += 1;
                self.send_limited(sid, from, accept);
            }
            return;
        }
        // The signature is checked once the initiator proves its address (its first `data`),
        // off the first request's path: until then its identity counts for nothing (no table
        // place, no store), exactly as a TCP request pipelined before `auth`.
        let check = Check {
            public_key: initial.public_key,
            message: Initial::signed_message(&initial.signed_part()),
            signature: initial.signature,
        };
        let Ok((body, envelope)) = wire::decode_body_with(&initial.body) else {
            self.stats.malformed += 1;
            return;
        };
        let Body::Message(Message::Request { id, request }) = body else {
            self.stats.malformed += 1;
            return;
        };
        // Open the session.
        let secret = self.random.bytes32();
        let ephemeral = C::ephemeral_public(&secret);
        let Some((forward, back)) = session_keys::<C>(
            &secret,
            &initial.ephemeral,
            (&initial.ephemeral, &initial.public_key),
            (&ephemeral, &self.public_key),
        ) else {
            self.stats.malformed += 1;
            return;
        };
        let sid = self.fresh_sid();
        let network = initial.network.clone();
        let signature = self.suite.sign(&Accept::signed_message(
            &network,
            (initial.sid, &initial.ephemeral, &initial.public_key),
            (sid, &ephemeral, &self.public_key),
        ));
        let header = Accept {
            initiator_sid: initial.sid,
            sid,
            ephemeral,
            public_key: self.public_key,
            signature,
        }
        .header();
        let peer = NodeId::of_public_key(&initial.public_key);
        // A peer that says it is a client enters no table, whatever its flag says.
        let announce = initial.flags & FLAG_ANNOUNCE != 0 && envelope.role != Some(Mode::Client);
        self.make_room();
        self.sessions.insert(
            sid,
            Session {
                addr: from,
                peer: Some(peer),
                announce,
                said_client: envelope.role == Some(Mode::Client),
                state: State::Open(Box::new(Open {
                    peer_sid: initial.sid,
                    send_key: back,
                    recv_key: forward,
                    next_pn: 0,
                    window: Window::default(),
                    unproven: Some(Box::new(Unproven {
                        received: bytes.len(),
                        sent: 0,
                        accept_for: Some(id),
                        header,
                        accept: None,
                        check,
                    })),
                    initial_key: Some(initial.ephemeral),
                    serving: vec![(id, false)],
                    answers: Default::default(),
                })),
                last: now,
                heard: now,
            },
        );
        self.stats.sessions_accepted += 1;
        let from_requester = requester(peer, from, announce, false, sid);
        let reply = Reply { session: sid, id };
        match request {
            Request::Ping | Request::FindNode { .. } | Request::FindValue { .. } => {
                self.events.push_back(PlaneEvent::Request {
                    reply,
                    from: from_requester,
                    request,
                    role: envelope.role,
                });
            }
            Request::Store { .. } => {
                self.stats.unproven_stores += 1;
                let refusal = ErrorReply::new(
                    ErrorCode::BAD_REQUEST,
                    "a store needs a session: send it after the accept",
                );
                self.answer(now, reply, Response::Error(refusal));
            }
            Request::Listen { .. } | Request::Unlisten { .. } => {
                let refusal = ErrorReply::new(ErrorCode::BAD_REQUEST, "listen goes over TCP");
                self.answer(now, reply, Response::Error(refusal));
            }
            Request::Reach { .. }
            | Request::Probe { .. }
            | Request::Register
            | Request::Introduce { .. }
            | Request::Relay { .. }
            | Request::Meet { .. } => {
                let refusal = ErrorReply::new(
                    ErrorCode::BAD_REQUEST,
                    "reach, probe, register, introduce and meet need a session: send them after the accept",
                );
                self.answer(now, reply, Response::Error(refusal));
            }
        }
    }

    /// The responder session an `initial` repeats, if any: same address, session id and key.
    fn repeated_initial(&self, from: SocketAddr, initial: &Initial) -> Option<u64> {
        self.sessions.iter().find_map(|(sid, s)| match &s.state {
            State::Open(open)
                if s.addr == from
                    && open.peer_sid == initial.sid
                    && open.initial_key == Some(initial.ephemeral) =>
            {
                Some(*sid)
            }
            _ => None,
        })
    }

    fn on_accept(&mut self, now: Time, from: SocketAddr, bytes: &[u8]) {
        let Some((accept, header, sealed)) = Accept::parse(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let sid = accept.initiator_sid;
        let Some(session) = self.sessions.get(&sid).filter(|s| s.addr == from) else {
            self.stats.stray += 1;
            return;
        };
        let State::Initiating(opening) = &session.state else {
            // Accepted already: a repeat.
            self.stats.stray += 1;
            return;
        };
        let (secret, ephemeral, expected) = (opening.secret, opening.ephemeral, opening.expected);
        let network = self.config.network.as_str().as_bytes();
        let signed = Accept::signed_message(
            network,
            (sid, &ephemeral, &self.public_key),
            (accept.sid, &accept.ephemeral, &accept.public_key),
        );
        if !C::verify(&accept.public_key, &signed, &accept.signature) {
            self.stats.bad_signature += 1;
            return;
        }
        let peer = NodeId::of_public_key(&accept.public_key);
        let Some((forward, back)) = session_keys::<C>(
            &secret,
            &accept.ephemeral,
            (&ephemeral, &self.public_key),
            (&accept.ephemeral, &accept.public_key),
        ) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(body) = C::open(&back, 0, header, sealed) else {
            self.stats.bad_tag += 1;
            return;
        };
        if expected.is_some_and(|e| e != peer) {
            self.fail_session(sid, DatagramFailure::UnexpectedPeer(peer));
            return;
        }
        let mut window = Window::default();
        window.mark(0);
        if let Some(session) = self.sessions.get_mut(&sid) {
            session.peer = Some(peer);
            session.last = now;
            session.heard = now;
            session.state = State::Open(Box::new(Open {
                peer_sid: accept.sid,
                send_key: forward,
                recv_key: back,
                next_pn: 1,
                window,
                unproven: None,
                initial_key: None,
                serving: Vec::new(),
                answers: Default::default(),
            }));
        }
        self.stats.sessions_initiated += 1;
        self.by_addr.insert(from, sid);
        self.on_body(now, sid, &body);
        // The requests that waited for the session go now; if none, a `confirm` proves this
        // node's address, so that the peer may add it to its table.
        let waiting: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.session == Some(sid) && p.tries == 0)
            .map(|(id, _)| *id)
            .collect();
        if waiting.is_empty() && self.config.announce {
            self.send_data(sid, &[]);
        }
        for id in waiting {
            self.dispatch(now, id);
        }
    }

    fn on_data(&mut self, now: Time, from: SocketAddr, bytes: &[u8]) {
        let Some((sid, pn, header, sealed)) = packet::parse_data(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(session) = self.sessions.get_mut(&sid) else {
            self.stats.stray += 1;
            self.push_datagram(from, packet::unknown(sid));
            return;
        };
        if session.addr != from {
            self.stats.stray += 1;
            return;
        }
        let (peer, announce) = (session.peer, session.announce);
        let Some(open) = session.open() else {
            self.stats.stray += 1;
            return;
        };
        if !open.window.fresh(pn) {
            self.stats.replayed += 1;
            return;
        }
        let Some(body) = C::open(&open.recv_key, pn, header, sealed) else {
            self.stats.bad_tag += 1;
            return;
        };
        let newly_proven = !open.proven();
        if let Some(check) = open.unproven.as_ref().map(|u| &u.check) {
            if !C::verify(&check.public_key, &check.message, &check.signature) {
                self.stats.bad_signature += 1;
                self.remove_session(sid);
                return;
            }
        }
        open.window.mark(pn);
        open.unproven = None;
        session.last = now;
        session.heard = now;
        if newly_proven {
            self.by_addr.entry(from).or_insert(sid);
            if let (Some(peer), true) = (peer, announce) {
                self.events
                    .push_back(PlaneEvent::Verified(requester(peer, from, true, true, sid)));
            }
        }
        if !body.is_empty() {
            self.on_body(now, sid, &body);
        }
    }

    /// A body that arrived in open session `sid`.
    fn on_body(&mut self, now: Time, sid: u64, body: &[u8]) {
        let Ok((body, envelope)) = wire::decode_body_with(body) else {
            self.stats.malformed += 1;
            return;
        };
        match body {
            Body::Message(Message::Request { id, request }) => {
                self.on_request(now, sid, id, request, envelope.role)
            }
            Body::Message(Message::Response { id, response }) => {
                self.on_response(now, sid, id, response, envelope)
            }
            Body::NodesPart {
                id,
                part,
                parts,
                nodes,
            } => self.on_part(now, sid, id, (part, parts), nodes, envelope),
            Body::Held { id } => {
                if self.answered_on(sid, id) {
                    if let Some(p) = self.pending.remove(&id) {
                        self.fall_back(p.transmit);
                    }
                }
            }
            Body::Message(_) => self.stats.malformed += 1,
        }
    }

    fn on_request(&mut self, now: Time, sid: u64, id: u64, request: Request, role: Option<Mode>) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        match role {
            // Its last word: it takes no requests here, so it must not enter a table (a
            // session that announced stops announcing).
            Some(Mode::Client) => {
                session.announce = false;
                session.said_client = true;
            }
            // A client that became a server (auto mode) says so in the sessions it opened as
            // a client: it takes requests here now. Only after it said `client` here: a peer
            // that never did, and whose `initial` did not announce, stays as it was.
            Some(Mode::Server) if session.said_client => session.announce = true,
            _ => {}
        }
        let (peer, addr, announce) = (session.peer, session.addr, session.announce);
        let Some(open) = session.open() else {
            return;
        };
        if open.serving.iter().any(|(s, _)| *s == id) {
            self.stats.duplicates += 1;
            return;
        }
        if let Some(sent) = open.answers.iter_mut().find(|s| s.id == id) {
            sent.repeats += 1;
            let mut bodies = sent.bodies.clone();
            let turn = sent.repeats % bodies.len().max(1);
            bodies.rotate_left(turn);
            self.stats.duplicates += 1;
            for body in bodies {
                self.send_data(sid, &body);
            }
            return;
        }
        let Some(peer) = peer else {
            return;
        };
        let reply = Reply { session: sid, id };
        match request {
            Request::Listen { .. } | Request::Unlisten { .. } => {
                open.serving.push((id, false));
                let refusal = ErrorReply::new(ErrorCode::BAD_REQUEST, "listen goes over TCP");
                self.answer(now, reply, Response::Error(refusal));
            }
            Request::Reach { nonce } => {
                open.serving.push((id, false));
                self.events.push_back(PlaneEvent::Reach {
                    reply,
                    from: requester(peer, addr, announce, true, sid),
                    source: addr,
                    nonce,
                });
            }
            request @ (Request::Register | Request::Introduce { .. } | Request::Relay { .. }) => {
                open.serving.push((id, false));
                self.events.push_back(PlaneEvent::Rendezvous {
                    reply,
                    from: requester(peer, addr, announce, true, sid),
                    source: addr,
                    request,
                });
            }
            request => {
                // Only a `store` changes what the node holds: its answer is kept, so that a
                // repeat is answered without being stored again. A repeated lookup request is
                // simply answered again, and keeps nothing in memory.
                let store = matches!(request, Request::Store { .. });
                open.serving.push((id, store));
                self.events.push_back(PlaneEvent::Request {
                    reply,
                    from: requester(peer, addr, announce, true, sid),
                    request,
                    role,
                });
            }
        }
    }

    /// A `probe` arrived: reported if this node never sent to its source, vouched if the
    /// record of destinations can say so.
    fn on_probe(&mut self, now: Time, from: SocketAddr, bytes: &[u8]) {
        let Some(nonce) = packet::parse_probe(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        if self.sent_to.contains(&from) {
            self.stats.probes_from_contacted += 1;
            return;
        }
        let vouched = self.sent_to.vouches(now);
        if !vouched {
            self.stats.probes_unvouched += 1;
        }
        self.events.push_back(PlaneEvent::Probe {
            from,
            nonce,
            vouched,
        });
    }

    /// Whether request `id` is out on the session `sid` (so an answer there is its answer).
    fn answered_on(&self, sid: u64, id: u64) -> bool {
        let Some(p) = self.pending.get(&id) else {
            return false;
        };
        self.sessions
            .get(&sid)
            .is_some_and(|s| s.addr == p.transmit.to.addr)
    }

    fn on_response(
        &mut self,
        now: Time,
        sid: u64,
        id: u64,
        response: Response,
        envelope: Envelope,
    ) {
        if !self.answered_on(sid, id) {
            self.stats.stray += 1;
            return;
        }
        self.deliver(now, sid, id, response, envelope);
    }

    fn on_part(
        &mut self,
        now: Time,
        sid: u64,
        id: u64,
        (part, parts): (u8, u8),
        nodes: Vec<Contact>,
        envelope: Envelope,
    ) {
        if !self.answered_on(sid, id) {
            self.stats.stray += 1;
            return;
        }
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        if p.parts.len() != usize::from(parts) {
            p.parts = vec![None; usize::from(parts)];
        }
        p.parts[usize::from(part)] = Some(nodes);
        if p.parts.iter().all(Option::is_some) {
            let all: Vec<Contact> = p
                .parts
                .drain(..)
                .flatten()
                .flatten()
                .take(wire::MAX_NODES)
                .collect();
            self.deliver(now, sid, id, Response::Nodes(all), envelope);
        }
    }

    /// Request `id` was answered on session `sid`, in a body whose envelope was `envelope`.
    fn deliver(&mut self, now: Time, sid: u64, id: u64, response: Response, envelope: Envelope) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let (Some(peer), addr) = (session.peer, session.addr) else {
            return;
        };
        if p.tries == 1 {
            // Karn's rule: only a request sent once times its round trip.
            self.rtt.sample(&peer, now.since(p.sent));
        }
        if envelope.role == Some(Mode::Client) {
            if let Some(session) = self.sessions.get_mut(&sid) {
                session.announce = false;
            }
        }
        if let Some(observed) = envelope.observed {
            // A request goes only on a session whose peer's key and address are proven (by
            // its `accept`, or by its first `data` and its `initial`'s signature), and this
            // node chose whom to ask: the answer's word counts, whoever opened the session.
            // The plane's own pings count too.
            self.events.push_back(PlaneEvent::Observed {
                by: Contact::new(peer, addr),
                observed,
            });
        }
        if !p.internal {
            self.events.push_back(PlaneEvent::Response {
                from: Contact::new(peer, addr),
                id,
                response,
                role: envelope.role,
            });
        }
    }

    fn on_unknown(&mut self, now: Time, from: SocketAddr, bytes: &[u8]) {
        let Some(peer_sid) = packet::parse_unknown(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        // Only a session to that address, under the id the peer chose, can be named: an
        // off-path attacker does not know the id.
        let gone = self.sessions.iter().find_map(|(sid, s)| match &s.state {
            State::Open(open) if s.addr == from && open.peer_sid == peer_sid => Some(*sid),
            _ => None,
        });
        if let Some(sid) = gone {
            self.remove_session(sid);
            for p in self.pending.values_mut().filter(|p| p.session == Some(sid)) {
                // Sent again at once, in a new session.
                p.session = None;
                p.next = now;
            }
        }
    }

    fn on_refuse(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Some((sid, code, message)) = packet::parse_refuse(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let opening = self
            .sessions
            .get(&sid)
            .is_some_and(|s| s.addr == from && !s.is_open());
        if opening {
            self.fail_session(sid, DatagramFailure::Refused { code, message });
        } else {
            self.stats.stray += 1;
        }
    }

    /// Fails every request on session `sid` with `reason` and drops the session.
    fn fail_session(&mut self, sid: u64, reason: DatagramFailure) {
        for p in self.end_session(sid) {
            self.events.push_back(PlaneEvent::Failed {
                id: p.transmit.id,
                to: p.transmit.to.addr,
                reason: reason.clone(),
            });
        }
    }

    // --- bookkeeping ----------------------------------------------------------------------

    fn open_mut(&mut self, sid: u64) -> Option<&mut Open> {
        self.sessions.get_mut(&sid).and_then(Session::open)
    }

    fn remove_session(&mut self, sid: u64) {
        if let Some(session) = self.sessions.remove(&sid) {
            if self.by_addr.get(&session.addr) == Some(&sid) {
                self.by_addr.remove(&session.addr);
                // Another open session to the address, if any, takes over.
                let other = self
                    .sessions
                    .iter()
                    .find(|(_, s)| s.addr == session.addr && s.is_open())
                    .map(|(sid, _)| *sid);
                if let Some(other) = other {
                    self.by_addr.insert(session.addr, other);
                }
            }
        }
    }

    /// Makes room for one more session: drops the one idle longest when the table is full.
    fn make_room(&mut self) {
        if self.sessions.len() < self.config.max_sessions {
            return;
        }
        let oldest = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last)
            .map(|(sid, _)| *sid);
        if let Some(sid) = oldest {
            self.remove_session(sid);
        }
    }

    /// Drops idle sessions, old answers and expired TCP-only marks.
    fn sweep(&mut self, now: Time) {
        let idle = self.config.session_idle;
        let busy: std::collections::HashSet<u64> =
            self.pending.values().filter_map(|p| p.session).collect();
        let stale: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(sid, s)| now.since(s.last) >= idle && !busy.contains(sid))
            .map(|(sid, _)| *sid)
            .collect();
        for sid in stale {
            self.remove_session(sid);
        }
        let keep = self.config.answers_for;
        for session in self.sessions.values_mut() {
            if let Some(open) = session.open() {
                open.answers.retain(|a| now.since(a.at) < keep);
                if open.answers.is_empty() {
                    open.answers = Default::default();
                }
            }
        }
        self.tcp_only.retain(|_, until| *until > now);
    }

    fn fresh_sid(&mut self) -> u64 {
        loop {
            let sid = self.random.u64();
            if sid != 0 && !self.sessions.contains_key(&sid) {
                return sid;
            }
        }
    }

    /// The retransmission timeout of a request to `id`.
    ///
    /// Half the contact's RFC 6298 timeout (`srtt + 4 x rttvar`): a lookup stops waiting on a
    /// request at that full timeout (its slot deadline, at least 100 ms), so a lost request
    /// must go again, and be answered, before. A contact with no estimate of its own gets
    /// `initial_rto`: the estimate over all contacts would send a far contact's every request
    /// twice, and a request sent twice never gives it an estimate (Karn's rule).
    fn rto(&self, id: Option<&NodeId>) -> Duration {
        match id.filter(|id| self.rtt.knows(id)) {
            Some(id) => {
                let full = self.rtt.timeout(Some(id), Duration::ZERO, Duration::MAX);
                (full / 2).clamp(self.config.min_rto, self.config.max_rto)
            }
            None => self.config.initial_rto,
        }
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }
}

/// A session's two keys (initiator to responder, and back) from this side's ephemeral `secret`
/// and the peer's ephemeral key `theirs`; `None` when the agreement is all zeros (a low-order
/// key: anyone could compute the keys).
fn session_keys<C: Suite>(
    secret: &[u8; 32],
    theirs: &[u8; 32],
    initiator: (&[u8; 32], &[u8; 32]),
    responder: (&[u8; 32], &[u8; 32]),
) -> Option<([u8; 32], [u8; 32])> {
    let shared = C::agree(secret, theirs);
    (shared != [0; 32]).then(|| derive_keys(&shared, initiator, responder))
}

/// A requester as the node sees it.
fn requester(id: NodeId, from: SocketAddr, announce: bool, verified: bool, sid: u64) -> Requester {
    Requester {
        id,
        addr: announce.then_some(from),
        verified,
        source: from.ip(),
        connection: sid,
    }
}

/// Bytes of body a `data` can carry.
fn data_room() -> usize {
    MAX_DATAGRAM - DATA_HEADER - TAG_LEN
}

/// Bytes of body an `accept` can carry.
fn accept_room() -> usize {
    MAX_DATAGRAM - ACCEPT_HEADER - TAG_LEN
}

/// The bodies answering request `id` with `response`: one, or the parts of a `nodes` answer
/// too large for one datagram, or `held` for an item that does not fit. Each body carries
/// `envelope`'s keys (the `observed` address), and is measured with them: the first must fit
/// `first_room` bytes (an `accept`'s), the others a `data`'s.
fn answer_bodies(
    id: u64,
    response: Response,
    envelope: &Envelope,
    first_room: usize,
) -> Vec<Vec<u8>> {
    let encode = |body: &Body| wire::encode_body_with(body, envelope).unwrap_or_default();
    let whole = encode(&Body::Message(Message::Response {
        id,
        response: response.clone(),
    }));
    if whole.len() <= first_room {
        return vec![whole];
    }
    match response {
        Response::Nodes(nodes) => {
            // Each contact's share of a part's bytes, measured once (a part's size is its
            // empty form, its contacts' entries, and at most 2 bytes more for the array's
            // header once it holds 16): linear, where encoding the growing part after each
            // contact was quadratic.
            let part = |nodes: Vec<Contact>| Body::NodesPart {
                id,
                part: MAX_PARTS - 1,
                parts: MAX_PARTS,
                nodes,
            };
            let empty = encode(&part(Vec::new())).len();
            let mut parts: Vec<Vec<Contact>> = Vec::new();
            let mut current: Vec<Contact> = Vec::new();
            let mut size = empty + 2;
            for contact in nodes {
                let room = if parts.is_empty() {
                    first_room
                } else {
                    data_room()
                };
                let entry = encode(&part(vec![contact])).len().saturating_sub(empty);
                if size + entry > room && !current.is_empty() {
                    parts.push(std::mem::take(&mut current));
                    size = empty + 2;
                }
                current.push(contact);
                size += entry;
            }
            if !current.is_empty() {
                parts.push(current);
            }
            parts.truncate(usize::from(MAX_PARTS));
            let count = u8::try_from(parts.len()).unwrap_or(MAX_PARTS);
            if count == 1 {
                let nodes = parts.pop().unwrap_or_default();
                return vec![encode(&Body::Message(Message::Response {
                    id,
                    response: Response::Nodes(nodes),
                }))];
            }
            parts
                .into_iter()
                .enumerate()
                .map(|(i, nodes)| {
                    encode(&Body::NodesPart {
                        id,
                        part: u8::try_from(i).unwrap_or(0),
                        parts: count,
                        nodes,
                    })
                })
                .collect()
        }
        Response::Value { .. } => vec![encode(&Body::Held { id })],
        _ => {
            let refusal =
                ErrorReply::new(ErrorCode::INTERNAL, "the answer does not fit in a datagram");
            vec![encode(&Body::Message(Message::Response {
                id,
                response: Response::Error(refusal),
            }))]
        }
    }
}

/// Random bytes from a 32-byte seed: SHA-512 over the seed and a counter. The driver seeds it
/// from the operating system, the simulator from its run's seed.
struct Random {
    seed: [u8; 32],
    counter: u64,
}

impl Random {
    fn new(seed: [u8; 32]) -> Self {
        Random { seed, counter: 0 }
    }

    fn block(&mut self) -> [u8; 64] {
        self.counter += 1;
        let mut h = Sha512::new();
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        h.finalize().into()
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(&self.block()[..32]);
        out
    }

    fn u64(&mut self) -> u64 {
        let block = self.block();
        let mut out = [0; 8];
        out.copy_from_slice(&block[..8]);
        u64::from_be_bytes(out)
    }
}

#[cfg(test)]
mod envelope_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
