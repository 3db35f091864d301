//! The driver's side of rendezvous (`docs/design.md`, "Rendezvous and punching"): `register`
//! and `introduce` requests go to the node and their answers back to the plane, punches go
//! out from the node's socket, a record of the node's points is signed and published, and
//! single exchanges carry a [`crate::Dht::ping_key`].

use cairn_core::datagram::Reply;
use cairn_core::{Deferred, Event, Requester, Response, Store};

use super::Driver;

impl<S: Store> Driver<S> {
    /// A peer asked `register` or `introduce` from `source` over a proven session.
    pub(super) fn on_rendezvous(
        &mut self,
        reply: Reply,
        from: Requester,
        source: std::net::SocketAddr,
        request: cairn_core::Request,
    ) {
        let now = self.clock.now();
        let name = request.name();
        let deferred = match crate::connection::over_rate(&self.shared, from.source, &request) {
            Some(refusal) => Deferred::Now(refusal),
            None => self.node.handle_rendezvous(now, from, source, request),
        };
        match deferred {
            Deferred::Now(response) => self.answer_rendezvous(reply, name, response),
            Deferred::Later(token) => {
                self.introductions.insert(token, reply);
            }
        }
    }

    /// Sends the answers to relayed `introduce`s, the punches, and the record, if due.
    pub(super) fn drain_rendezvous(&mut self) {
        while let Some((token, response)) = self.node.poll_rendezvous_answer() {
            if let Some(reply) = self.introductions.remove(&token) {
                self.answer_rendezvous(reply, "introduce", response);
            }
        }
        while let Some((to, nonce)) = self.node.poll_punch() {
            if let Some(plane) = &mut self.plane {
                plane.punch(to, &nonce);
            }
        }
        if let Some(points) = self.node.poll_rendezvous_record() {
            self.publish_record(&points);
        }
    }

    /// An exchange ended: its answer goes to whoever waits.
    pub(super) fn exchanged(&mut self, event: Event) {
        if let Event::Exchanged { exchange, result } = event {
            if let Some(reply) = self.exchanges.remove(&exchange) {
                let _ = reply.send(result);
            }
        }
    }

    /// Publishes the record naming `points`, signed with the node's key; nobody waits on it.
    fn publish_record(&mut self, points: &[cairn_core::Contact]) {
        let value = match cairn_core::wire::encode_rendezvous_record(points) {
            Ok(value) => bytes::Bytes::from(value),
            Err(e) => {
                tracing::warn!("cannot encode the rendezvous record: {e}");
                return;
            }
        };
        let now = self.clock.now();
        let key = self.shared.identity.signing_key();
        let ttl = Some(cairn_core::RENDEZVOUS_RECORD_TTL);
        match self
            .node
            .publish(now, key, cairn_core::RENDEZVOUS_RECORD, value, ttl)
        {
            Ok(_) => tracing::debug!(points = points.len(), "rendezvous record published"),
            Err(e) => tracing::warn!("cannot publish the rendezvous record: {e}"),
        }
    }

    /// Rendezvous counters for `/v1/status`.
    pub(super) fn rendezvous_counts(&self) -> crate::outcome::RendezvousCounts {
        let r = self.node.rendezvous_report();
        let relay = self.node.relay_report();
        crate::outcome::RendezvousCounts {
            circuits: relay.circuits,
            circuits_opened: relay.opened,
            relayed_bytes: relay.bytes,
            relay_refused: relay.refused,
            points: r.points,
            registered: r.registered,
            introduced: r.introduced,
            refused: r.refused,
            punches_sent: r.punches,
            punches_received: self.plane.as_ref().map_or(0, |p| p.stats().punches_in),
            meets_refused: r.meets_refused,
        }
    }

    fn answer_rendezvous(&mut self, reply: Reply, name: &'static str, response: Response) {
        let error = match &response {
            Response::Error(e) => Some(e.code.0),
            _ => None,
        };
        self.observer.request_received(name, error);
        if let Some(plane) = &mut self.plane {
            plane.answer(self.clock.now(), reply, response);
        }
    }
}
