//! The driver's side of the datagram plane: the node's requests go to the
//! [`Plane`](cairn_core::datagram::Plane) first, the plane's datagrams to the UDP sockets, and
//! what the plane reports to the node, exactly as the connections' messages are.
//!
//! A request that arrives over datagrams meets the limits a TCP request meets, through the
//! same function ([`connection::over_rate`]): the same per-host buckets, the same 429, the same
//! counters; a host cannot get around a limit by switching transport.

use cairn_core::datagram::{DatagramFailure, Plane, PlaneConfig, PlaneEvent, Real};
use cairn_core::{ErrorCode, Response, Store, Transmit};
use rand::RngCore;

use super::Driver;
use crate::connection;
use crate::error::SeedFailure;
use crate::outcome::DatagramStatus;
use crate::shared::Shared;

/// The plane of a node with datagrams on.
pub(super) fn plane(shared: &Shared, now: cairn_core::Time) -> Option<Plane<Real>> {
    shared.udp.as_ref()?;
    let mut config = PlaneConfig::new(shared.config.network.clone());
    // A client announces no address (the `initial` flag clear, no confirm) and says so.
    config.role = shared.mode.get();
    config.announce = shared.mode.get() == cairn_core::Mode::Server;
    config.max_rto = shared.config.protocol.request_timeout;
    // A lost request goes again, and is answered, before a lookup stops waiting on it (its
    // slot deadline, at least `min_slot_timeout`).
    config.min_rto = config
        .min_rto
        .min(shared.config.protocol.min_slot_timeout / 2);
    let mut seed = [0; 32];
    rand::rng().fill_bytes(&mut seed);
    let suite = shared.identity.suite();
    Some(Plane::new(suite, config, seed, now))
}

impl<S: Store> Driver<S> {
    /// Sends a request of the node's: over datagrams when the node has them, else (or when
    /// the plane hands it back) over a dialed connection.
    pub(super) fn transmit(&mut self, transmit: Transmit) {
        match &mut self.plane {
            Some(plane) => plane.send(self.clock.now(), transmit),
            None => self.transmit_tcp(transmit),
        }
    }

    pub(super) fn transmit_tcp(&mut self, Transmit { id, to, request }: Transmit) {
        if !self.pool.send(to, (id, Box::new(request))) {
            self.node.handle_failure(self.clock.now(), id);
        }
    }

    /// Sends the plane's datagrams and hands its reports to the node. Whether it reported
    /// anything (the node may then have more to send).
    pub(super) fn drain_plane(&mut self) -> bool {
        let Some(plane) = &mut self.plane else {
            return false;
        };
        let mut out = Vec::new();
        while let Some(datagram) = plane.poll_datagram() {
            out.push(datagram);
        }
        let mut events = Vec::new();
        while let Some(event) = plane.poll_event() {
            events.push(event);
        }
        for (to, bytes) in out {
            self.send_datagram(to, &bytes);
        }
        let any = !events.is_empty();
        for event in events {
            self.plane_event(event);
        }
        any
    }

    fn plane_event(&mut self, event: PlaneEvent) {
        let now = self.clock.now();
        let Some(event) = self.through_circuits(event) else {
            return;
        };
        match event {
            PlaneEvent::Request {
                reply,
                from,
                request,
                role,
            } => {
                // Only a proven sender's word counts: an `initial` may claim anyone's key until
                // its sender proves its address (its signature is checked then).
                if role == Some(cairn_core::Mode::Client) && from.verified {
                    self.node.handle_client(now, &from.id);
                }
                let name = request.name();
                let answer = match connection::over_rate(&self.shared, from.source, &request) {
                    Some(refusal) => cairn_core::Answer {
                        response: refusal,
                        commit: None,
                        probe: None,
                    },
                    None => {
                        let answer = self.node.handle_request(now, from, reply.id, request);
                        self.send_probe(answer)
                    }
                };
                let error = match &answer.response {
                    Response::Error(e) => Some(e.code.0),
                    _ => None,
                };
                self.observer.request_received(name, error);
                match answer.commit {
                    Some(commit) => self.waiters.hold_datagram(commit, reply),
                    None => {
                        if let Some(plane) = &mut self.plane {
                            // A `meet`'s punch goes out before its `met`: the introduced node
                            // sends once it hears `introduced`, which `met` leads to, and must
                            // find the hole open (`docs/design.md`, "Rendezvous and punching").
                            while let Some((to, nonce)) = self.node.poll_punch() {
                                plane.punch(to, &nonce);
                            }
                            plane.answer(now, reply, answer.response);
                        }
                    }
                }
            }
            PlaneEvent::Response {
                from,
                id,
                response,
                role,
            } => self
                .node
                .handle_response_from(now, from, role, id, response),
            PlaneEvent::Failed { id, to, reason } => {
                if let DatagramFailure::Refused { code, message } = &reason {
                    let failure = if *code == ErrorCode::MISMATCH {
                        SeedFailure::WrongNetwork(message.clone())
                    } else {
                        SeedFailure::Other(format!("refused ({code}): {message}"))
                    };
                    self.waiters.dial_failed(to, &failure);
                }
                self.node.handle_failure(now, id);
            }
            PlaneEvent::Fallback(transmit) => self.transmit_tcp(transmit),
            PlaneEvent::Verified(requester) => self.node.handle_verified(now, requester),
            PlaneEvent::Observed { by, observed } => self.node.handle_observed(now, by, observed),
            PlaneEvent::Reach {
                reply,
                from,
                source,
                nonce,
            } => self.on_reach(reply, from, source, nonce),
            PlaneEvent::Probe {
                from,
                nonce,
                vouched,
            } => self.node.handle_probe(now, from, nonce, vouched),
            PlaneEvent::Rendezvous {
                reply,
                from,
                source,
                request,
            } => self.on_rendezvous(reply, from, source, request),
        }
    }

    /// What a peer reached through a circuit (`relay.rs`) may do: it is served as a client,
    /// says nothing of this node's address, enters no table, and asks no `reach` nor
    /// rendezvous request (their address would be the circuit's).
    fn through_circuits(&mut self, event: PlaneEvent) -> Option<PlaneEvent> {
        use super::relay::{circuit_ip, circuit_of};
        let circuit = |addr: std::net::SocketAddr| circuit_of(addr).is_some();
        let refused = match event {
            PlaneEvent::Request {
                reply,
                request: cairn_core::Request::Meet { .. },
                from,
                ..
            } if circuit_ip(from.source) => reply,
            PlaneEvent::Reach { reply, source, .. }
            | PlaneEvent::Rendezvous { reply, source, .. }
                if circuit(source) =>
            {
                reply
            }
            PlaneEvent::Request {
                reply,
                mut from,
                request,
                role,
            } if circuit_ip(from.source) => {
                from.addr = None;
                return Some(PlaneEvent::Request {
                    reply,
                    from,
                    request,
                    role,
                });
            }
            PlaneEvent::Verified(from) if circuit_ip(from.source) => return None,
            PlaneEvent::Observed { by, .. } if circuit(by.addr) => return None,
            PlaneEvent::Probe { from, .. } if circuit(from) => return None,
            PlaneEvent::Response {
                from, id, response, ..
            } if circuit(from.addr) => {
                return Some(PlaneEvent::Response {
                    from,
                    id,
                    response,
                    role: Some(cairn_core::Mode::Client),
                });
            }
            // A circuit address has no TCP: the request fails.
            PlaneEvent::Fallback(transmit) if circuit(transmit.to.addr) => {
                self.node.handle_failure(self.clock.now(), transmit.id);
                return None;
            }
            event => return Some(event),
        };
        let refusal = cairn_core::ErrorReply::new(ErrorCode::BAD_REQUEST, "not through a relay");
        if let Some(plane) = &mut self.plane {
            plane.answer(self.clock.now(), refused, Response::Error(refusal));
        }
        None
    }

    /// Hands the answers to requests over datagrams that waited on a commit to the plane.
    pub(super) fn answer_datagrams(
        &mut self,
        answers: Vec<(cairn_core::datagram::Reply, Response)>,
    ) {
        let now = self.clock.now();
        if let Some(plane) = &mut self.plane {
            for (reply, response) in answers {
                plane.answer(now, reply, response);
            }
        }
    }

    /// The plane's counters for `/v1/status`.
    pub(super) fn datagram_status(&self) -> DatagramStatus {
        let m = &self.shared.metrics;
        let refused = |reason| {
            m.datagrams_refused
                .get_or_create(&crate::metrics::ReasonLabel { reason })
                .get()
        };
        let Some(plane) = &self.plane else {
            return DatagramStatus::default();
        };
        let s = plane.stats();
        DatagramStatus {
            enabled: true,
            received: s.datagrams_in,
            sent: s.datagrams_out,
            sessions: s.sessions,
            sessions_initiated: s.sessions_initiated,
            sessions_accepted: s.sessions_accepted,
            retransmits: s.retransmits,
            duplicates: s.duplicates,
            fallbacks: s.fallbacks,
            silent_sessions: s.silent_sessions,
            cancelled: s.cancelled,
            too_large: refused("too_large"),
            handshake_rate: refused("handshake_rate"),
            malformed: s.malformed,
            bad_signature: s.bad_signature,
            bad_tag: s.bad_tag,
            replayed: s.replayed,
            stray: s.stray,
            amplification_limit: s.amplification_limited,
            unproven_stores: s.unproven_stores,
        }
    }

    /// Brings the datagram metrics up to the plane's counters (before a scrape).
    pub(super) fn update_datagram_metrics(&self) {
        let Some(plane) = &self.plane else {
            return;
        };
        let m = &self.shared.metrics;
        let s = plane.stats();
        let behind = |counter: &prometheus_client::metrics::counter::Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        for (direction, total) in [("inbound", s.datagrams_in), ("outbound", s.datagrams_out)] {
            let label = crate::metrics::DirectionLabel { direction };
            behind(&m.datagrams.get_or_create(&label), total);
        }
        for (reason, total) in [
            ("malformed", s.malformed),
            ("bad_signature", s.bad_signature),
            ("bad_tag", s.bad_tag),
            ("replayed", s.replayed),
            ("stray", s.stray),
            ("amplification_limit", s.amplification_limited),
            ("unproven_store", s.unproven_stores),
        ] {
            let label = crate::metrics::ReasonLabel { reason };
            behind(&m.datagrams_refused.get_or_create(&label), total);
        }
        behind(&m.datagram_retransmits, s.retransmits);
        behind(&m.datagram_fallbacks, s.fallbacks);
        behind(&m.silent_sessions, s.silent_sessions);
        behind(&m.datagram_cancels, s.cancelled);
        m.sessions
            .set(i64::try_from(s.sessions).unwrap_or(i64::MAX));
    }
}
