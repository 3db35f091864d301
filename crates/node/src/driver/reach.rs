//! The driver's side of reachability (`docs/design.md`, "Reachability"): `reach` requests go
//! to the node and their answers, which come later, back to the plane; probe datagrams go out
//! from a socket of their own; a verdict switches an auto node between server and client.

use cairn_core::datagram::Reply;
use cairn_core::{Answer, Mode, Reachability, Requester, Response, Store};

use super::Driver;
use crate::mode::ModeSetting;
use crate::outcome::{ProbeCounts, ServedCounts};

impl<S: Store> Driver<S> {
    /// A peer asked `reach` from `source` over a proven session.
    pub(super) fn on_reach(
        &mut self,
        reply: Reply,
        from: Requester,
        source: std::net::SocketAddr,
        nonce: [u8; 16],
    ) {
        let now = self.clock.now();
        let request = cairn_core::Request::Reach { nonce };
        let refusal = match crate::connection::over_rate(&self.shared, from.source, &request) {
            Some(refusal) => Err(refusal),
            None => self
                .node
                .handle_reach(now, from, source, nonce)
                .map_err(Response::Error),
        };
        match refusal {
            Ok(token) => {
                self.relays.insert(token, reply);
            }
            Err(response) => self.answer_reach(reply, response),
        }
    }

    /// Sends the relays' answers that came.
    pub(super) fn drain_reach(&mut self) {
        while let Some((token, response)) = self.node.poll_reach_answer() {
            if let Some(reply) = self.relays.remove(&token) {
                self.answer_reach(reply, response);
            }
        }
    }

    /// Sends the probe datagram `answer` waits on, if any (an accepted `probe`), and makes
    /// its response what the node answers once it knows whether the probe went out: only a
    /// probe sent is confirmed.
    pub(super) fn send_probe(&mut self, mut answer: Answer) -> Answer {
        if let Some(probe) = answer.probe.take() {
            let bytes = cairn_core::datagram::probe(&probe.nonce);
            let udp = self.shared.udp.as_ref();
            let sent = udp.is_some_and(|udp| udp.send_probe(probe.to, &bytes));
            answer.response = self.node.handle_probe_sent(probe.id, sent);
        }
        answer
    }

    fn answer_reach(&mut self, reply: Reply, response: Response) {
        let error = match &response {
            Response::Error(e) => Some(e.code.0),
            _ => None,
        };
        self.observer.request_received("reach", error);
        if let Some(plane) = &mut self.plane {
            plane.answer(self.clock.now(), reply, response);
        }
    }

    /// The node joined a network (a bootstrap with seeds): an auto node that has no verdict
    /// yet is a client from now on, until its checks find it public. A node without
    /// datagrams cannot be checked, and stays a server.
    pub(super) fn joined(&mut self) {
        if self.shared.config.mode == ModeSetting::Auto
            && self.plane.is_some()
            && self.node.reachability().checks == 0
            && self.node.reachability().status == Reachability::Unknown
        {
            self.switch_mode(Mode::Client);
        }
    }

    /// A bootstrap ended: an auto node that is a client and knows no server at all (its
    /// peers all turned out to be clients, as when a whole network restarts at once on its
    /// saved peers, or none answered) is the first node of its network, and a server, as
    /// one started without peers is; its checks make it a client again if it is private.
    /// Without this, a network whose nodes all restarted as clients would stay so for good.
    pub(super) fn bootstrapped(&mut self) {
        if self.shared.config.mode == ModeSetting::Auto
            && self.node.mode() == Mode::Client
            && self.node.routing_table().is_empty()
        {
            tracing::info!("auto mode: no server known after joining; acting as the first node");
            self.switch_mode(Mode::Server);
        }
    }

    /// A check changed the node's reachability: logged, and an auto node switches.
    pub(super) fn reachability_changed(&mut self, from: Reachability, to: Reachability) {
        tracing::info!(%from, %to, "reachability: this node is {to} (was {from})");
        if self.shared.config.mode != ModeSetting::Auto {
            return;
        }
        match to {
            Reachability::Public => self.switch_mode(Mode::Server),
            Reachability::Private => self.switch_mode(Mode::Client),
            // Nothing learnt: it stays what it is.
            _ => {}
        }
    }

    fn switch_mode(&mut self, mode: Mode) {
        if self.node.mode() == mode {
            return;
        }
        tracing::info!(%mode, "auto mode: this node is a {mode} now");
        let now = self.clock.now();
        self.node.set_mode(mode);
        self.shared.mode.set(mode);
        if let Some(plane) = &mut self.plane {
            plane.set_role(mode);
        }
        // Its neighbours hear it say so at once: a lookup of itself asks the nodes closest
        // to it, those whose tables would hold it (nobody waits on the lookup).
        if !self.node.routing_table().is_empty() {
            let _ = self.node.bootstrap(now, &[]);
        }
        self.shared
            .metrics
            .mode_switches
            .get_or_create(&crate::metrics::ModeLabel {
                mode: mode.as_str(),
            })
            .inc();
    }

    /// Reachability for `/v1/status`.
    pub(super) fn reach_status(&self) -> (ProbeCounts, ServedCounts, Option<u64>) {
        let r = self.node.reachability();
        let s = self.node.probe_report();
        let from_contacted = self
            .plane
            .as_ref()
            .map_or(0, |p| p.stats().probes_from_contacted);
        let probes = ProbeCounts {
            asked: r.asked,
            sent: r.sent,
            received: r.received,
            failed: r.failed,
            ignored: r.ignored + from_contacted,
        };
        let served = ServedCounts {
            relayed: s.relayed,
            relays_refused: s.relays_refused,
            sent: s.sent,
            refused: s.refused,
            unsent: s.unsent,
        };
        let checked_at = r.checked_at.map(|at| {
            let ago = self.clock.now().since(at);
            std::time::SystemTime::now()
                .checked_sub(ago)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        });
        (probes, served, checked_at)
    }

    /// Brings the reachability metrics up to the node's counters (before a scrape).
    pub(super) fn update_reach_metrics(&self) {
        let m = &self.shared.metrics;
        let status = self.node.reachability().status;
        for s in [
            Reachability::Public,
            Reachability::Private,
            Reachability::Unknown,
        ] {
            let label = crate::metrics::StatusLabel { status: s.as_str() };
            m.reachability
                .get_or_create(&label)
                .set(i64::from(s == status));
        }
        let (probes, served, _) = self.reach_status();
        let behind = |family: &prometheus_client::metrics::family::Family<
            crate::metrics::OutcomeLabel,
            prometheus_client::metrics::counter::Counter,
        >,
                      outcome: &'static str,
                      total: u64| {
            let counter = family.get_or_create(&crate::metrics::OutcomeLabel { outcome });
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        for (outcome, total) in [
            ("asked", probes.asked),
            ("sent", probes.sent),
            ("received", probes.received),
            ("failed", probes.failed),
            ("ignored", probes.ignored),
        ] {
            behind(&m.reach_probes, outcome, total);
        }
        for (outcome, total) in [
            ("relayed", served.relayed),
            ("relay_refused", served.relays_refused),
            ("sent", served.sent),
            ("refused", served.refused),
            ("unsent", served.unsent),
        ] {
            behind(&m.probes_served, outcome, total);
        }
    }
}
