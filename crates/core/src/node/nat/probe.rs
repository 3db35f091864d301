//! The other nodes' side of reachability checks (`docs/design.md`, "Reachability"): as the
//! server asked (B), relaying a `reach` to a third node as a `probe`; as that third node (C),
//! sending `probe` datagrams within bounds.
//!
//! Implementation notes, the bounds in one place:
//! - B relays at most [`MAX_RELAYS`] `reach` requests at once; past it, 429. Its third node
//!   is a server of its table or one of the last [`MAX_ASKERS`] nodes that asked it `reach`
//!   in the last [`ASKER_TTL`] (clients, perhaps private: a probe only goes out from them, and
//!   a young network has one server, whose other nodes can only become servers by probing
//!   each other through it), taken in turn;
//! - C sends a probe only for a verified server (a proven session whose peer announces an
//!   address), at most [`PER_TARGET`] per target host and [`PER_ASKER`] per asking server's
//!   host per [`TARGET_WINDOW`] (a host is an IPv4 address or an IPv6 /64, [`Prefix::host`]:
//!   one IPv6 host owns a whole /64, and would otherwise get [`PER_TARGET`] probes for each of
//!   its addresses), and at most [`PER_SECOND`] in any second overall (so one server
//!   flooding cannot use up what honest ones are served); it remembers at most
//!   [`MAX_TARGETS`] hosts of each kind (when full, it refuses new ones until some expire).
//!   Every refusal is a 429 and counted;
//! - C confirms (`probed`) only a probe the driver reports sent ([`ProbeSend`]); one it could
//!   not send (no socket of the target's family, the send failed) is answered 503, which the
//!   checker counts as a failed ask: a confirmed probe that never arrives says `private`, so
//!   C must never confirm one that never left. It remembers at most [`PER_SECOND`] probes
//!   awaiting their report (the driver reports each at once);
//! - the probe datagram is [`PROBE_LEN`](crate::datagram::PROBE_LEN) bytes: smaller than any
//!   `probe` request (a sealed `data` with the message in it), so C never amplifies.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::message::{Contact, ErrorCode, ErrorReply, Response};
use crate::subnet::Prefix;
use crate::time::Time;

use super::window::HostWindows;

/// `reach` requests being relayed at once, at most.
pub const MAX_RELAYS: usize = 64;
/// Probes sent to one host (an IPv4 address, an IPv6 /64) per [`TARGET_WINDOW`], at most.
pub const PER_TARGET: usize = 4;
/// Probes sent for one asking server's host (an IPv4 address, an IPv6 /64) per
/// [`TARGET_WINDOW`], at most.
pub const PER_ASKER: usize = 16;
/// The window of [`PER_TARGET`] and [`PER_ASKER`].
pub const TARGET_WINDOW: Duration = Duration::from_secs(10);
/// Probes sent in any one second, at most.
pub const PER_SECOND: usize = 32;
/// Target hosts remembered, at most (and as many asking servers' hosts).
pub const MAX_TARGETS: usize = 1_024;
/// Askers kept as third nodes, at most.
pub const MAX_ASKERS: usize = 32;
/// How long an asker is kept as a third node: its session, and its NAT's mapping, live
/// that long after its `reach` with room to spare.
pub const ASKER_TTL: Duration = Duration::from_secs(60);

/// Counters of the serving side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// `reach` requests relayed to a third node.
    pub relayed: u64,
    /// `reach` requests refused: no third node, too many at once, or not over a session.
    pub relays_refused: u64,
    /// Probe datagrams sent (the driver reported them out).
    pub sent: u64,
    /// Probes accepted that the driver could not send (no socket of the target's family, or
    /// the send failed): answered 503.
    pub unsent: u64,
    /// `probe` requests refused: over a limit (429) or not from a server (403).
    pub refused: u64,
}

/// A probe datagram to send, for an accepted `probe` request: where, its nonce
/// ([`datagram::probe`](crate::datagram::probe) makes its bytes) and the id to report its send
/// under ([`Node::handle_probe_sent`](crate::Node::handle_probe_sent)). Send it from a socket
/// of its own, not the node's: its source port is then one the target never sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSend {
    /// The id its report carries.
    pub id: u64,
    /// The target: the checking node's address as its server saw it.
    pub to: SocketAddr,
    /// The nonce the datagram carries.
    pub nonce: [u8; 16],
}

/// The answer to an accepted `probe` request until its datagram is reported sent.
pub(in crate::node) fn unsent() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::UNAVAILABLE,
        "the probe could not be sent from here",
    )
}

/// What a relay waits for: the token its answer is reported under.
#[derive(Debug, Default)]
pub(in crate::node) struct Probes {
    /// Relayed `reach` requests by the id of the `probe` request sent for them: the token.
    relays: HashMap<u64, u64>,
    next_token: u64,
    answers: VecDeque<(u64, Response)>,
    /// Recent probe times per target host.
    targets: HostWindows<{ TARGET_WINDOW.as_secs() }, MAX_TARGETS>,
    /// Recent probe times per asking server's host.
    asking: HostWindows<{ TARGET_WINDOW.as_secs() }, MAX_TARGETS>,
    /// Probe times in the last second, oldest first.
    recent: VecDeque<Time>,
    /// Accepted probes whose send is not reported yet, oldest first (at most
    /// [`PER_SECOND`]), and the id of the last one.
    unreported: VecDeque<u64>,
    last_probe: u64,
    /// The last nodes that asked `reach`, at the address they asked from, oldest first.
    askers: VecDeque<(Contact, Time)>,
    /// Third nodes chosen so far: whose turn it is.
    turns: u64,
    report: ProbeReport,
}

impl Probes {
    /// The counters.
    pub(in crate::node) fn report(&self) -> ProbeReport {
        self.report
    }

    /// `asker` asked `reach` at `now`: it may be a third node for others for a while.
    pub(in crate::node) fn asked(&mut self, now: Time, asker: Contact) {
        self.askers.retain(|(c, _)| c.id != asker.id);
        self.askers.push_back((asker, now));
        if self.askers.len() > MAX_ASKERS {
            self.askers.pop_front();
        }
    }

    /// The askers of the last [`ASKER_TTL`].
    pub(in crate::node) fn askers(&self, now: Time) -> impl Iterator<Item = Contact> + '_ {
        self.askers
            .iter()
            .filter(move |(_, at)| now.since(*at) < ASKER_TTL)
            .map(|(c, _)| *c)
    }

    /// The next turn in choosing third nodes (one more each call).
    pub(in crate::node) fn turn(&mut self) -> u64 {
        self.turns += 1;
        self.turns
    }

    /// Whether another relay may start.
    pub(in crate::node) fn room(&self) -> bool {
        self.relays.len() < MAX_RELAYS
    }

    /// A `reach` was refused before any relay (its answer is given at once).
    pub(in crate::node) fn refused_relay(&mut self) {
        self.report.relays_refused += 1;
    }

    /// The `probe` request `request` went out for a `reach`: the token its answer will carry.
    pub(in crate::node) fn relay(&mut self, request: u64) -> u64 {
        self.next_token += 1;
        self.relays.insert(request, self.next_token);
        self.report.relayed += 1;
        self.next_token
    }

    /// Whether request `request` is a relay's `probe`.
    pub(in crate::node) fn is_relay(&self, request: u64) -> bool {
        self.relays.contains_key(&request)
    }

    /// The third node answered the relay's `probe` request `request` (`None`: it failed).
    pub(in crate::node) fn relayed(&mut self, request: u64, answer: Option<Response>) {
        let Some(token) = self.relays.remove(&request) else {
            return;
        };
        let response = match answer {
            Some(Response::Probed) => Response::Probed,
            Some(Response::Error(e)) => Response::Error(ErrorReply::new(
                e.code,
                format!("the third node refused: {}", e.message),
            )),
            _ => Response::Error(ErrorReply::new(
                ErrorCode::UNAVAILABLE,
                "the third node did not answer",
            )),
        };
        self.answers.push_back((token, response));
    }

    /// The next relay answer: its token and what to answer the `reach` with.
    pub(in crate::node) fn pop_answer(&mut self) -> Option<(u64, Response)> {
        self.answers.pop_front()
    }

    /// A `probe` to `to` with `nonce` asked at `now` by a server at `asker`: the datagram to
    /// send if within the limits, else the refusal.
    pub(in crate::node) fn probe(
        &mut self,
        now: Time,
        asker: IpAddr,
        to: SocketAddr,
        nonce: [u8; 16],
    ) -> Result<ProbeSend, ErrorReply> {
        self.forget_old(now);
        let host = Prefix::host(to.ip());
        let asker = Prefix::host(asker);
        let over = if self.asking.full(asker, PER_ASKER) {
            Some("over this node's probes for one server")
        } else if self.recent.len() >= PER_SECOND {
            Some("over this node's probes per second")
        } else if self.targets.full(host, PER_TARGET) {
            Some("over this node's probes to that address")
        } else {
            None
        };
        if let Some(why) = over {
            self.report.refused += 1;
            return Err(ErrorReply::new(ErrorCode::OVER_LIMIT, why));
        }
        self.targets.count(host, now);
        self.asking.count(asker, now);
        self.recent.push_back(now);
        self.last_probe += 1;
        self.unreported.push_back(self.last_probe);
        if self.unreported.len() > PER_SECOND {
            // Never reported: the driver answered it with the error it was given.
            self.unreported.pop_front();
        }
        Ok(ProbeSend {
            id: self.last_probe,
            to,
            nonce,
        })
    }

    /// The driver sent the probe `id` (`sent`), or could not: the answer to its request.
    pub(in crate::node) fn sent(&mut self, id: u64, sent: bool) -> Response {
        let Some(at) = self.unreported.iter().position(|p| *p == id) else {
            return Response::Error(unsent());
        };
        self.unreported.remove(at);
        if sent {
            self.report.sent += 1;
            Response::Probed
        } else {
            self.report.unsent += 1;
            Response::Error(unsent())
        }
    }

    /// A `probe` refused for who asked (not a verified server).
    pub(in crate::node) fn refused_probe(&mut self) {
        self.report.refused += 1;
    }

    fn forget_old(&mut self, now: Time) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        self.targets.forget_old(now);
        self.asking.forget_old(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    /// Asks a probe and, if accepted, reports it sent: the answer.
    fn ask(probes: &mut Probes, now: Time, asker: IpAddr, to: SocketAddr) -> Response {
        match probes.probe(now, asker, to, [0; 16]) {
            Ok(probe) => probes.sent(probe.id, true),
            Err(refusal) => Response::Error(refusal),
        }
    }

    fn refused(response: &Response) -> bool {
        matches!(response, Response::Error(e) if e.code == ErrorCode::OVER_LIMIT)
    }

    #[test]
    fn an_ipv6_target_counts_as_its_64() {
        let mut probes = Probes::default();
        let now = Time::from_secs(100);
        let asker: IpAddr = "192.0.2.1".parse().expect("an address");
        // Five addresses of one /64, each once: one host, four probes.
        for n in 1..=PER_TARGET {
            let to = addr(&format!("[2001:db8:1:2::{n:x}]:9"));
            assert_eq!(ask(&mut probes, now, asker, to), Response::Probed);
        }
        let fifth = ask(&mut probes, now, asker, addr("[2001:db8:1:2:ffff::5]:9"));
        assert!(refused(&fifth), "{fifth:?}");
        // Another /64 is another host.
        let other = ask(&mut probes, now, asker, addr("[2001:db8:1:3::1]:9"));
        assert_eq!(other, Response::Probed);
        assert_eq!(probes.report().sent, PER_TARGET as u64 + 1);
        assert_eq!(probes.report().refused, 1);
    }

    #[test]
    fn an_ipv6_asker_counts_as_its_64() {
        let mut probes = Probes::default();
        let now = Time::from_secs(100);
        // Each probe to a host of its own, each asked from another address of one /64.
        let to = |n: usize| addr(&format!("198.51.100.{n}:9"));
        let asker = |n: usize| format!("2001:db8:1:2::{n:x}").parse().expect("an address");
        for n in 1..=PER_ASKER {
            assert_eq!(ask(&mut probes, now, asker(n), to(n)), Response::Probed);
        }
        let next = PER_ASKER + 1;
        assert!(refused(&ask(&mut probes, now, asker(next), to(next))));
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("an address");
        assert_eq!(ask(&mut probes, now, elsewhere, to(next)), Response::Probed);
    }

    #[test]
    fn only_a_probe_reported_sent_is_confirmed() {
        let mut probes = Probes::default();
        let now = Time::from_secs(100);
        let asker: IpAddr = "192.0.2.1".parse().expect("an address");
        let to = addr("[2001:db8::1]:9");
        let first = probes
            .probe(now, asker, to, [1; 16])
            .expect("within the limits");
        let second = probes
            .probe(now, asker, to, [2; 16])
            .expect("within the limits");
        assert_eq!((first.to, first.nonce), (to, [1; 16]));
        // Not sent (no socket of its family, or the send failed): 503, counted apart.
        let answer = probes.sent(first.id, false);
        assert!(
            matches!(&answer, Response::Error(e) if e.code == ErrorCode::UNAVAILABLE),
            "{answer:?}"
        );
        assert_eq!(probes.sent(second.id, true), Response::Probed);
        // A report of no awaited probe confirms nothing.
        assert_ne!(probes.sent(first.id, true), Response::Probed);
        let report = probes.report();
        assert_eq!((report.sent, report.unsent), (1, 1));
    }
}
