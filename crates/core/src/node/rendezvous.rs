//! Reaching a node behind a NAT by its key (`docs/design.md`, "Rendezvous and punching"):
//! routes inputs to `nat::Points` (this node's rendezvous points, when it is a client) and
//! `nat::Registry` (the registrations it holds for others, when it is a server), sends their
//! requests, and runs single request-answer exchanges for a driver that reaches a peer itself.

use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest, Sha512};

use super::event::{Event, ExchangeId};
use super::requests::Purpose;
use super::{Node, Requester};
use crate::message::{Contact, ErrorCode, ErrorReply, Mode, Peer, Request, Response};
use crate::store::Store;
use crate::time::Time;

use super::nat::{Introduce, RelayReport, RendezvousReport};

/// What a `register` or `introduce` gets: an answer now, or later under a token.
// Lives for one call, as `Response` itself (which carries an item) does.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deferred {
    /// Answer this at once.
    Now(Response),
    /// The answer comes from [`Node::poll_rendezvous_answer`] with this token.
    Later(u64),
}

impl<S: Store> Node<S> {
    /// `from` asked `register` or `introduce` over a proven datagram session from `source`
    /// (the plane's [`PlaneEvent::Rendezvous`](crate::datagram::PlaneEvent)).
    pub fn handle_rendezvous(
        &mut self,
        now: Time,
        from: Requester,
        source: SocketAddr,
        request: Request,
    ) -> Deferred {
        self.start_housekeeping(now);
        self.stats.requests_handled += 1;
        if let (true, Some(addr)) = (from.verified, from.addr) {
            self.saw(now, Contact::new(from.id, addr));
        }
        let refuse =
            |code, message: &str| Deferred::Now(Response::Error(ErrorReply::new(code, message)));
        if !from.verified {
            self.registry.refused();
            return refuse(
                ErrorCode::BAD_REQUEST,
                "register and introduce need a session",
            );
        }
        if self.mode == Mode::Client {
            self.registry.refused();
            return refuse(
                ErrorCode::UNAVAILABLE,
                "this node is a client: it is nobody's rendezvous",
            );
        }
        match request {
            Request::Register => match self.registry.register(now, from.id, source) {
                Ok(response) => Deferred::Now(response),
                Err(refusal) => Deferred::Now(Response::Error(refusal)),
            },
            Request::Introduce { target } => {
                let addr = match self.registry.introduce(now, source, &target) {
                    Ok(Introduce::Meet(addr)) => addr,
                    Ok(Introduce::Joined(token)) => return Deferred::Later(token),
                    Err(refusal) => return Deferred::Now(Response::Error(refusal)),
                };
                let mut nonce = [0; 16];
                let hash = Sha512::new()
                    .chain_update(b"cairn-meet")
                    .chain_update(self.id.as_bytes())
                    .chain_update(self.requests.sent().to_be_bytes())
                    .finalize();
                nonce.copy_from_slice(&hash[..16]);
                let to = Peer {
                    id: Some(target),
                    addr,
                };
                let meet = Request::Meet { to: source, nonce };
                let id = self.requests.send(now, to, meet, Purpose::Meet);
                Deferred::Later(self.registry.relay(id, source, target, addr))
            }
            Request::Relay { target } => {
                let opened = self
                    .registry
                    .relay_to(now, source, &target)
                    .and_then(|addr| self.relays.open(now, &self.id, source, target, addr));
                match opened {
                    Ok(circuit) => Deferred::Now(Response::Relaying { circuit }),
                    Err(refusal) => Deferred::Now(Response::Error(refusal)),
                }
            }
            other => refuse(
                ErrorCode::BAD_REQUEST,
                &format!("{} is not a rendezvous request", other.name()),
            ),
        }
    }

    /// The next answer to a relayed `introduce`: the token [`Node::handle_rendezvous`] gave,
    /// and the answer. Drain it with the other outputs.
    pub fn poll_rendezvous_answer(&mut self) -> Option<(u64, Response)> {
        self.registry.pop_answer()
    }

    /// The next `punch` datagram to send, from the node's socket: where, and its nonce
    /// ([`Plane::punch`](crate::datagram::Plane::punch) sends it). Drain it with the other
    /// outputs.
    pub fn poll_punch(&mut self) -> Option<(SocketAddr, [u8; 16])> {
        self.points.pop_punch()
    }

    /// The rendezvous points to name in this node's record ([`crate::RENDEZVOUS_RECORD`],
    /// signed with the node's key, to live [`crate::RENDEZVOUS_RECORD_TTL`]), when a record is
    /// due: the points changed, or the last record is old. Drain it with the other outputs.
    pub fn poll_rendezvous_record(&mut self) -> Option<Vec<Contact>> {
        self.points.pop_record()
    }

    /// A `relayed` datagram of `len` bytes came from `from` on circuit `circuit`: where this
    /// node, its relay, sends it on and on which circuit id, or `None` to drop it. A driver
    /// asks this first; if this node relays no such circuit, the datagram may be for this
    /// node itself, an end of a circuit ([`Node::is_point_at`]).
    pub fn handle_relayed(
        &mut self,
        now: Time,
        from: SocketAddr,
        circuit: u64,
        len: usize,
    ) -> Option<(SocketAddr, u64)> {
        self.relays.forward(now, from, circuit, len)
    }

    /// Whether one of this node's rendezvous points is at `addr`: a client takes `relayed`
    /// datagrams only from its points (the relay picks the circuit ids it hears on).
    pub fn is_point_at(&self, addr: SocketAddr) -> bool {
        self.points.is_point_at(addr)
    }

    /// The relay's counters.
    pub fn relay_report(&self) -> RelayReport {
        self.relays.report()
    }

    /// The counters of both sides of rendezvous.
    pub fn rendezvous_report(&self) -> RendezvousReport {
        self.points.report(&self.registry)
    }

    /// Sends `request` to `to` and reports its answer or failure as [`Event::Exchanged`]
    /// with the id returned: for a driver that reaches a peer step by step itself (a `ping` to
    /// see how it answers, an `introduce` to a rendezvous).
    pub fn exchange(&mut self, now: Time, to: Peer, request: Request) -> ExchangeId {
        self.start_housekeeping(now);
        let id = self.requests.send(now, to, request, Purpose::Exchange);
        ExchangeId(id)
    }

    /// Starts a round of registrations if one is due, and starts or stops keeping points as
    /// the node becomes a client or a server.
    pub(super) fn rendezvous_round(&mut self, now: Time) {
        self.keep_points(now);
        if !self.points.due(now) {
            return;
        }
        let mut servers: Vec<Contact> = self.table.entries().map(|e| e.contact).collect();
        servers.sort_by_key(|c| c.id.distance(&self.id));
        for point in self.points.round(now, &servers) {
            let id = self
                .requests
                .send(now, point.into(), Request::Register, Purpose::Register);
            self.points.asked(id, point.id);
        }
    }

    /// Starts keeping points if the node is a client with checks on (its first round is due
    /// at once), or stops if it is not. Called on every answer and timeout, so that a node
    /// that joins as a client registers as soon as it knows servers.
    pub(super) fn keep_points(&mut self, now: Time) {
        self.points
            .switch(now, self.mode == Mode::Client && self.reach.is_on());
    }

    /// Request `request`, a `register`, a relayed `meet` or an exchange, ended with
    /// `response` (`None`: failed or timed out) after `round_trip`.
    pub(super) fn rendezvous_answered(
        &mut self,
        now: Time,
        request: u64,
        purpose: Purpose,
        response: Option<(Contact, Response)>,
        round_trip: Duration,
    ) {
        match purpose {
            Purpose::Register => {
                let ok = matches!(response, Some((_, Response::Registered { .. })));
                self.points.answered(now, request, ok);
            }
            Purpose::Meet => self.registry.relayed(request, response.map(|(_, r)| r)),
            Purpose::Exchange => {
                let result = response.map(|(from, response)| super::event::Exchanged {
                    from,
                    response,
                    round_trip,
                });
                self.events.push(Event::Exchanged {
                    exchange: ExchangeId(request),
                    result,
                });
            }
            _ => {}
        }
    }

    /// Answers a `meet` from `from`: only from one of this node's rendezvous points.
    pub(super) fn serve_meet(
        &mut self,
        now: Time,
        from: &Requester,
        to: SocketAddr,
        nonce: [u8; 16],
    ) -> Response {
        if !from.verified {
            let refusal = ErrorReply::new(ErrorCode::BAD_SIGNATURE, "meet needs a session");
            return Response::Error(refusal);
        }
        self.points.meet(now, &from.id, to, nonce)
    }
}
