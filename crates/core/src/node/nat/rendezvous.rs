//! Reaching a node behind a NAT by its key (`docs/design.md`, "Rendezvous and punching"):
//! both sides of it, as parts of their own.
//!
//! - [`Points`]: a node that is a client (behind a NAT, or said so) keeps up to [`POINTS`]
//!   servers near its id as rendezvous points, registers with each every [`KEEPALIVE`] (which
//!   holds its NAT's mapping open to them), says which they are in a signed record
//!   ([`RECORD_NAME`]), and, asked `meet` by one of them, sends a `punch` to the node it is
//!   introduced to, within bounds;
//! - [`Registry`]: a server keeps the registrations of the nodes that chose it, and relays an
//!   `introduce` to the registered node as a `meet`, answering the asker once the target did.
//!
//! Implementation notes, the bounds in one place:
//! - a server keeps at most [`MAX_REGISTERED`] registrations, at most [`REGISTERED_PER_IP`]
//!   from one IP (an IPv6 /64 counts as one IP), each for [`REGISTRATION_TTL`] seconds after
//!   its last `register`; past a bound, 429;
//! - it relays at most [`MAX_INTRODUCTIONS`] `introduce` requests at once and at most
//!   [`INTRODUCTIONS_PER_ASKER`] per asking IP per [`WINDOW`]; past them, 429;
//! - a registered node takes `meet` only from its rendezvous points, and sends at most
//!   [`PUNCHES_PER_TARGET`] punches to one IP per [`WINDOW`] and [`PUNCHES_PER_SECOND`] in any
//!   second (429 past them). A punch is 17 bytes, smaller than the `meet` that asked for it:
//!   a rendezvous cannot use the node to flood an address;
//! - the punch and the `introduced` answer go only to the address the `introduce` came from,
//!   as the server saw it: an asker cannot aim either at a third party.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::id::NodeId;
use crate::message::{Contact, ErrorCode, ErrorReply, REGISTRATION_TTL, Response};
use crate::subnet::Prefix;
use crate::time::Time;

use super::window::HostWindows;

/// Rendezvous points a client keeps.
pub const POINTS: usize = 3;
/// How often a client registers again with each of its points: below the 30 s that most
/// NATs keep an idle UDP mapping, so that the mapping to each point stays open.
pub const KEEPALIVE: Duration = Duration::from_secs(25);
/// How soon a client that knew no server to register with tries again.
pub const RETRY: Duration = Duration::from_secs(2);
/// How soon a client with fewer than [`POINTS`] points looks for more.
pub const FILL: Duration = Duration::from_secs(5);
/// The name of the signed item under which a client lists its points (its key is the signed
/// item key of the node's public key and this name).
pub const RECORD_NAME: &str = "cairn/rendezvous";
/// How long a record lives.
pub const RECORD_TTL: Duration = Duration::from_secs(600);
/// How often a client publishes its record again while its points stay the same.
pub const RECORD_REFRESH: Duration = Duration::from_secs(300);
/// Registrations a server keeps, at most.
pub const MAX_REGISTERED: usize = 1_024;
/// Registrations a server keeps from one IP (an IPv6 /64), at most.
pub const REGISTERED_PER_IP: usize = 4;
/// `introduce` requests a server relays at once, at most.
pub const MAX_INTRODUCTIONS: usize = 64;
/// `introduce` requests a server relays per asking IP per [`WINDOW`], at most.
pub const INTRODUCTIONS_PER_ASKER: usize = 8;
/// Punches a client sends to one IP per [`WINDOW`], at most.
pub const PUNCHES_PER_TARGET: usize = 4;
/// Punches a client sends in any one second, at most.
pub const PUNCHES_PER_SECOND: usize = 16;
/// Hosts a window remembers at once, at most: past it, new hosts are refused (429) until
/// some leave.
pub const WINDOW_HOSTS: usize = 4_096;
/// The window of the per-IP bounds.
pub const WINDOW: Duration = Duration::from_secs(10);

/// What a node counted of rendezvous, both sides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RendezvousReport {
    /// Rendezvous points this node is registered with now.
    pub points: usize,
    /// Registrations held here now, for other nodes.
    pub registered: usize,
    /// `introduce` requests this node relayed to a registered node.
    pub introduced: u64,
    /// `register` and `introduce` requests refused (over a bound, not registered, a client).
    pub refused: u64,
    /// Punches this node sent, asked by its points.
    pub punches: u64,
    /// `meet` requests refused (not from a point, or over a bound).
    pub meets_refused: u64,
}

/// Recent events per host within [`WINDOW`], for at most [`WINDOW_HOSTS`] hosts.
type Windows = HostWindows<{ WINDOW.as_secs() }, WINDOW_HOSTS>;

/// A registration held by a server.
#[derive(Clone, Copy, Debug)]
struct Registration {
    /// The source address of the `register`: where the node's NAT maps it towards us.
    addr: SocketAddr,
    until: Time,
}

/// An `introduce` being relayed: whom to answer, and where the target is.
#[derive(Clone, Debug)]
struct Introduction {
    /// The tokens to answer under: the request's, and its repeats'.
    tokens: Vec<u64>,
    asker: SocketAddr,
    target_id: NodeId,
    target: SocketAddr,
}

/// Answers to one relayed `introduce` and its repeats, at most: a repeat (the asker's
/// retransmission, while the target's `meet` is under way) waits on the same `meet` rather
/// than sending another, which would cost the target a punch of its budget each.
pub const REPEATS_JOINED: usize = 8;

/// What to do with an `introduce` that passed the bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::node) enum Introduce {
    /// Send the target (registered at this address) a `meet`, then [`Registry::relay`] it.
    Meet(SocketAddr),
    /// The same introduction is under way: its answer comes under this token.
    Joined(u64),
}

/// The server's side: registrations, and `introduce` requests relayed as `meet`.
#[derive(Debug, Default)]
pub(in crate::node) struct Registry {
    registered: HashMap<NodeId, Registration>,
    /// Relayed `introduce` requests by the id of the `meet` request sent for them.
    relays: HashMap<u64, Introduction>,
    next_token: u64,
    answers: VecDeque<(u64, Response)>,
    asking: Windows,
    introduced: u64,
    refused: u64,
}

impl Registry {
    /// `id` asked `register` from `source` at `now`.
    pub(in crate::node) fn register(
        &mut self,
        now: Time,
        id: NodeId,
        source: SocketAddr,
    ) -> Result<Response, ErrorReply> {
        self.expire(now);
        let until = now + Duration::from_secs(u64::from(REGISTRATION_TTL));
        if let Some(held) = self.registered.get_mut(&id) {
            *held = Registration {
                addr: source,
                until,
            };
            return Ok(Response::Registered {
                ttl: REGISTRATION_TTL,
            });
        }
        let from_host = self
            .registered
            .values()
            .filter(|r| Prefix::host(r.addr.ip()) == Prefix::host(source.ip()))
            .count();
        if self.registered.len() >= MAX_REGISTERED || from_host >= REGISTERED_PER_IP {
            return Err(self.refuse(ErrorCode::OVER_LIMIT, "too many registrations here"));
        }
        self.registered.insert(
            id,
            Registration {
                addr: source,
                until,
            },
        );
        Ok(Response::Registered {
            ttl: REGISTRATION_TTL,
        })
    }

    /// Where `target` is registered (its registration is live), or 404.
    fn registration(&mut self, now: Time, target: &NodeId) -> Result<SocketAddr, ErrorReply> {
        self.expire(now);
        match self.registered.get(target) {
            Some(registration) => Ok(registration.addr),
            None => Err(self.refuse(ErrorCode::NOT_FOUND, "that node is not registered here")),
        }
    }

    /// A refusal, counted.
    fn refuse(&mut self, code: ErrorCode, message: &str) -> ErrorReply {
        self.refused += 1;
        ErrorReply::new(code, message)
    }

    /// `asker` (the source of its session) asked to be introduced to `target`: where
    /// `target` is registered, if it is and the asker's bounds allow, or the token of the
    /// same introduction under way.
    pub(in crate::node) fn introduce(
        &mut self,
        now: Time,
        asker: SocketAddr,
        target: &NodeId,
    ) -> Result<Introduce, ErrorReply> {
        let registration = self.registration(now, target)?;
        let under_way = self
            .relays
            .values_mut()
            .find(|r| r.asker == asker && r.target_id == *target);
        if let Some(relay) = under_way.filter(|r| r.tokens.len() < REPEATS_JOINED) {
            self.next_token += 1;
            relay.tokens.push(self.next_token);
            return Ok(Introduce::Joined(self.next_token));
        }
        if self.relays.len() >= MAX_INTRODUCTIONS
            || !self
                .asking
                .take(now, Prefix::host(asker.ip()), INTRODUCTIONS_PER_ASKER)
        {
            return Err(self.refuse(ErrorCode::OVER_LIMIT, "too many introductions"));
        }
        Ok(Introduce::Meet(registration))
    }

    /// `asker` asked a circuit to `target`: where `target` is registered, if it is and the
    /// asker's bounds (those of introductions) allow.
    pub(in crate::node) fn relay_to(
        &mut self,
        now: Time,
        asker: SocketAddr,
        target: &NodeId,
    ) -> Result<SocketAddr, ErrorReply> {
        let registration = self.registration(now, target)?;
        if !self
            .asking
            .take(now, Prefix::host(asker.ip()), INTRODUCTIONS_PER_ASKER)
        {
            return Err(self.refuse(ErrorCode::OVER_LIMIT, "too many introductions"));
        }
        Ok(registration)
    }

    /// The `meet` request `request` went to `target_id`, registered at `target`, for an
    /// `introduce` from `asker`: the token its answer will come back under.
    pub(in crate::node) fn relay(
        &mut self,
        request: u64,
        asker: SocketAddr,
        target_id: NodeId,
        target: SocketAddr,
    ) -> u64 {
        self.next_token += 1;
        let token = self.next_token;
        let relay = Introduction {
            tokens: vec![token],
            asker,
            target_id,
            target,
        };
        self.relays.insert(request, relay);
        token
    }

    /// The relayed `meet` `request` ended with `response` (`None`: failed or timed out).
    pub(in crate::node) fn relayed(&mut self, request: u64, response: Option<Response>) {
        let Some(relay) = self.relays.remove(&request) else {
            return;
        };
        let answer = match response {
            Some(Response::Met) => {
                self.introduced += 1;
                Response::Introduced { addr: relay.target }
            }
            Some(Response::Error(e)) => Response::Error(e),
            _ => Response::Error(ErrorReply::new(
                ErrorCode::UNAVAILABLE,
                "the node did not answer its rendezvous",
            )),
        };
        for token in relay.tokens {
            self.answers.push_back((token, answer.clone()));
        }
    }

    /// The next answer to a relayed `introduce`.
    pub(in crate::node) fn pop_answer(&mut self) -> Option<(u64, Response)> {
        self.answers.pop_front()
    }

    /// A refusal made by the node around the registry (a client asked to register).
    pub(in crate::node) fn refused(&mut self) {
        self.refused += 1;
    }

    fn expire(&mut self, now: Time) {
        self.registered.retain(|_, r| r.until > now);
    }

    fn held(&self) -> usize {
        self.registered.len()
    }
}

/// A rendezvous point of this node.
#[derive(Clone, Copy, Debug)]
struct Point {
    contact: Contact,
    /// Its last `register` was answered `registered`.
    registered: bool,
}

/// The client's side: its rendezvous points, its record, and the punches it owes.
#[derive(Debug, Default)]
pub(in crate::node) struct Points {
    points: Vec<Point>,
    /// `register` requests out, by request id.
    asks: HashMap<u64, NodeId>,
    /// When the next round of registrations is due; `None` while the node is not a client.
    next_round: Option<Time>,
    /// The points the last record named, and when it went out.
    published: Option<(Vec<Contact>, Time)>,
    /// A record to publish, waiting for the driver.
    record: Option<Vec<Contact>>,
    targets: Windows,
    recent: VecDeque<Time>,
    punches: VecDeque<(SocketAddr, [u8; 16])>,
    sent: u64,
    refused: u64,
}

impl Points {
    /// The node became a client (`on`) or a server: a client starts registering at `now`; a
    /// server drops its points (its record expires on its own).
    pub(in crate::node) fn switch(&mut self, now: Time, on: bool) {
        match (on, self.next_round.is_some()) {
            (true, false) => self.next_round = Some(now),
            (false, true) => {
                self.next_round = None;
                self.points.clear();
                self.asks.clear();
                self.published = None;
                self.record = None;
            }
            _ => {}
        }
    }

    /// Whether a round of registrations is due.
    pub(in crate::node) fn due(&self, now: Time) -> bool {
        self.next_round.is_some_and(|at| at <= now)
    }

    pub(in crate::node) fn next_deadline(&self) -> Option<Time> {
        self.next_round
    }

    /// Starts a round: keeps the registered points that are still among `closest` (the
    /// servers nearest this node, nearest first), fills up to [`POINTS`] from them, and returns
    /// whom to send `register` to (every point: a `register` renews the registration and
    /// holds the NAT's mapping open).
    pub(in crate::node) fn round(&mut self, now: Time, closest: &[Contact]) -> Vec<Contact> {
        self.next_round = Some(now + KEEPALIVE);
        self.points
            .retain(|p| p.registered && closest.iter().any(|c| c.id == p.contact.id));
        for contact in closest {
            if self.points.len() >= POINTS {
                break;
            }
            if self.points.iter().all(|p| p.contact.id != contact.id) {
                self.points.push(Point {
                    contact: *contact,
                    registered: false,
                });
            }
        }
        if self.points.is_empty() {
            // No server known yet (the node is joining): try again soon.
            self.next_round = Some(now + RETRY);
        } else if self.points.len() < POINTS {
            // Fewer servers known than points wanted (joining, or a small network): look for
            // more sooner than a keep-alive.
            self.next_round = Some(now + FILL);
        }
        self.points.iter().map(|p| p.contact).collect()
    }

    /// The `register` request `request` went to `to`.
    pub(in crate::node) fn asked(&mut self, request: u64, to: NodeId) {
        self.asks.insert(request, to);
    }

    /// A `register` ended: registered or not (`None`: failed). A point that refused or did
    /// not answer is dropped, and replaced at the next round.
    pub(in crate::node) fn answered(&mut self, now: Time, request: u64, ok: bool) {
        let Some(id) = self.asks.remove(&request) else {
            return;
        };
        if ok {
            if let Some(point) = self.points.iter_mut().find(|p| p.contact.id == id) {
                point.registered = true;
            }
        } else {
            self.points.retain(|p| p.contact.id != id);
        }
        self.consider_record(now);
    }

    /// Queues a record to publish if the registered points changed, or the last record is
    /// due to be refreshed.
    fn consider_record(&mut self, now: Time) {
        let mut named: Vec<Contact> = self
            .points
            .iter()
            .filter(|p| p.registered)
            .map(|p| p.contact)
            .collect();
        named.sort_by_key(|c| c.id);
        if named.is_empty() {
            return;
        }
        let fresh = self
            .published
            .as_ref()
            .is_some_and(|(last, at)| *last == named && now.since(*at) < RECORD_REFRESH);
        if !fresh {
            self.published = Some((named.clone(), now));
            self.record = Some(named);
        }
    }

    /// The record to publish now, if one is due: the points to name.
    pub(in crate::node) fn pop_record(&mut self) -> Option<Vec<Contact>> {
        self.record.take()
    }

    /// `from` asked `meet`: a punch to `to` if `from` is a point and the bounds allow.
    pub(in crate::node) fn meet(
        &mut self,
        now: Time,
        from: &NodeId,
        to: SocketAddr,
        nonce: [u8; 16],
    ) -> Response {
        if !self
            .points
            .iter()
            .any(|p| p.registered && p.contact.id == *from)
        {
            self.refused += 1;
            let refusal = ErrorReply::new(
                ErrorCode::BAD_SIGNATURE,
                "meet is taken only from a rendezvous of this node",
            );
            return Response::Error(refusal);
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= PUNCHES_PER_SECOND
            || !self
                .targets
                .take(now, Prefix::host(to.ip()), PUNCHES_PER_TARGET)
        {
            self.refused += 1;
            let refusal = ErrorReply::new(ErrorCode::OVER_LIMIT, "too many punches");
            return Response::Error(refusal);
        }
        self.recent.push_back(now);
        self.sent += 1;
        self.punches.push_back((to, nonce));
        Response::Met
    }

    /// Whether a registered point of this node is at `addr`.
    pub(in crate::node) fn is_point_at(&self, addr: SocketAddr) -> bool {
        self.points
            .iter()
            .any(|p| p.registered && p.contact.addr == addr)
    }

    /// The next punch to send: where, and its nonce.
    pub(in crate::node) fn pop_punch(&mut self) -> Option<(SocketAddr, [u8; 16])> {
        self.punches.pop_front()
    }

    /// The counters of both sides.
    pub(in crate::node) fn report(&self, registry: &Registry) -> RendezvousReport {
        RendezvousReport {
            points: self.points.iter().filter(|p| p.registered).count(),
            registered: registry.held(),
            introduced: registry.introduced,
            refused: registry.refused,
            punches: self.sent,
            meets_refused: self.refused,
        }
    }
}

#[cfg(test)]
#[path = "rendezvous_tests.rs"]
mod tests;
