//! The node's reachability checks and its part in its peers' (`docs/design.md`,
//! "Reachability"): routes inputs to `nat::Reach` (this node's checks) and `nat::Probes`
//! (relaying and sending probes), and sends their requests.

use std::net::SocketAddr;

use sha2::{Digest, Sha512};

use super::event::Event;
use super::requests::Purpose;
use super::{Answer, Node, Requester};
use crate::message::{Contact, ErrorCode, ErrorReply, Request, Response};
use crate::store::Store;
use crate::subnet::Prefix;
use crate::time::Time;

use super::nat::{self, ProbeReport, ReachReport};

impl<S: Store> Node<S> {
    /// Starts this node's reachability checks, the first at `first` (or as soon after as
    /// the routing table holds a server); `seed` (32 random bytes) makes their nonces.
    /// Without it the node checks nothing and stays `unknown`: a driver without datagrams,
    /// or a simulation, leaves them off.
    pub fn start_reach_checks(&mut self, first: Time, seed: [u8; 32]) {
        self.reach.switch_on(first, seed);
    }

    /// This node's reachability and its checks' counters.
    pub fn reachability(&self) -> ReachReport {
        self.reach.report()
    }

    /// What this node did for its peers' checks.
    pub fn probe_report(&self) -> ProbeReport {
        self.probes.report()
    }

    /// `from` asked `reach` over a proven datagram session from `source`: relays it to a
    /// third node as a `probe` to `source`. `Ok(token)`: the answer comes later from
    /// [`Node::poll_reach_answer`] with this token; `Err(refusal)`: answer this error at once.
    pub fn handle_reach(
        &mut self,
        now: Time,
        from: Requester,
        source: SocketAddr,
        nonce: [u8; 16],
    ) -> Result<u64, ErrorReply> {
        self.start_housekeeping(now);
        self.stats.requests_handled += 1;
        if let (true, Some(addr)) = (from.verified, from.addr) {
            self.saw(now, Contact::new(from.id, addr));
        }
        if !from.verified {
            self.probes.refused_relay();
            return Err(ErrorReply::new(
                ErrorCode::BAD_REQUEST,
                "reach needs a session",
            ));
        }
        if !self.probes.room() {
            self.probes.refused_relay();
            let refusal = ErrorReply::new(ErrorCode::OVER_LIMIT, "too many checks under way here");
            return Err(refusal);
        }
        let third = self.third_node(now, &from, source, &nonce);
        self.probes.asked(now, Contact::new(from.id, source));
        let Some(third) = third else {
            self.probes.refused_relay();
            let refusal = ErrorReply::new(ErrorCode::UNAVAILABLE, "no third node to probe from");
            return Err(refusal);
        };
        let request = Request::Probe { to: source, nonce };
        let id = self
            .requests
            .send(now, third.into(), request, Purpose::Probe);
        Ok(self.probes.relay(id))
    }

    /// A `probe` datagram with `nonce` arrived from `from`, an address this node never sent
    /// a datagram to (the plane's [`PlaneEvent::Probe`](crate::datagram::PlaneEvent), whose
    /// `vouched` says whether the plane's record of destinations could vouch for that: an
    /// unvouched probe settles its ask as proving nothing).
    pub fn handle_probe(&mut self, now: Time, from: SocketAddr, nonce: [u8; 16], vouched: bool) {
        self.reach.probe(now, from, &nonce, vouched);
        self.reach_verdict(now);
    }

    /// The next answer to a relayed `reach`: the token [`Node::handle_reach`] gave, and the
    /// answer. Drain it with the other outputs.
    pub fn poll_reach_answer(&mut self) -> Option<(u64, Response)> {
        self.probes.pop_answer()
    }

    /// The probe datagram `probe` of an [`Answer`] went out (`sent`), or could not be sent
    /// (no socket of its address family, or the send failed): the answer to its `probe`
    /// request. Only a probe that went out is confirmed (`probed`); otherwise the asker gets
    /// an error 503, which its checker counts as a failed ask, never as a silent probe.
    pub fn handle_probe_sent(&mut self, probe: u64, sent: bool) -> Response {
        self.probes.sent(probe, sent)
    }

    /// Starts a check if one is due, and ends the running one if it is settled.
    pub(super) fn reach_round(&mut self, now: Time) {
        if self.reach.due(now) {
            let servers: Vec<Contact> = self.table.entries().map(|e| e.contact).collect();
            if !servers.is_empty() && servers.len() < nat::ASKS {
                // Too few servers to ask: a young network, or one joined while its nodes were
                // clients. A lookup of itself finds those that became servers since.
                let _ = self.bootstrap(now, &[]);
            }
            for (via, nonce) in self.reach.start(now, servers) {
                let request = Request::Reach { nonce };
                let id = self.requests.send(now, via.into(), request, Purpose::Reach);
                self.reach.requested(&nonce, id);
            }
        }
        self.reach_verdict(now);
    }

    fn reach_verdict(&mut self, now: Time) {
        if let Some((from, to)) = self.reach.handle_timeout(now) {
            self.events.push(Event::ReachabilityChanged { from, to });
        }
    }

    /// Request `request`, an ask or a relay's `probe`, ended with `response` (`None`: failed
    /// or timed out).
    pub(super) fn reach_answered(&mut self, now: Time, request: u64, response: Option<Response>) {
        if self.probes.is_relay(request) {
            self.probes.relayed(request, response);
        } else if self.reach.is_ask(request) {
            let sent = matches!(response, Some(Response::Probed));
            self.reach.answered(now, request, sent);
            self.reach_verdict(now);
        }
    }

    /// Answers a `probe` request from `from`: only a verified server may ask, within limits.
    /// An accepted one waits on its datagram's send ([`Answer::probe`]).
    pub(super) fn serve_probe(
        &mut self,
        now: Time,
        from: &Requester,
        to: SocketAddr,
        nonce: [u8; 16],
    ) -> Answer {
        let (response, probe) = if !from.verified || from.addr.is_none() {
            self.probes.refused_probe();
            let refusal = ErrorReply::new(ErrorCode::BAD_SIGNATURE, "only a server asks probes");
            (Response::Error(refusal), None)
        } else {
            match self.probes.probe(now, from.source, to, nonce) {
                Ok(probe) => (Response::Error(nat::unsent()), Some(probe)),
                Err(refusal) => (Response::Error(refusal), None),
            }
        };
        Answer {
            response,
            commit: None,
            probe,
        }
    }

    /// The node to send a probe for `asker` at `source`: a server of the table or a recent
    /// asker, neither the asker nor at its IP; another subnet than the asker's if one is
    /// known; in turn among them.
    fn third_node(
        &mut self,
        now: Time,
        asker: &Requester,
        source: SocketAddr,
        nonce: &[u8; 16],
    ) -> Option<Contact> {
        let prefix = self.config.nat_subnet_prefix_v4;
        let subnet = |ip| Prefix::of(ip, prefix, 48);
        let ip = source.ip().to_canonical();
        let eligible = |c: &Contact| c.id != asker.id && c.addr.ip().to_canonical() != ip;
        let mut candidates: Vec<Contact> = self
            .table
            .entries()
            .map(|e| e.contact)
            .filter(eligible)
            .collect();
        for asker in self.probes.askers(now).filter(eligible) {
            if candidates.iter().all(|c| c.id != asker.id) {
                candidates.push(asker);
            }
        }
        let elsewhere: Vec<Contact> = candidates
            .iter()
            .copied()
            .filter(|c| subnet(c.addr.ip()) != subnet(ip))
            .collect();
        let pool = if elsewhere.is_empty() {
            candidates
        } else {
            elsewhere
        };
        // Which one: in turn, from where the nonce says, so that the asks of one check, which
        // come one after the other, go to as many third nodes as there are.
        let hash = Sha512::digest(nonce);
        let start = u64::from_be_bytes(hash[..8].try_into().ok()?);
        let turn = start.wrapping_add(self.probes.turn());
        let len = u64::try_from(pool.len()).ok()?;
        let index = usize::try_from(turn.checked_rem(len)?).ok()?;
        pool.get(index).copied()
    }
}
