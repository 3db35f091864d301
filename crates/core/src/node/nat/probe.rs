//! The other nodes' side of reachability checks (`docs/design.md`, "Reachability"): as the
//! server asked (B), relaying a `reach` to a third node as a `probe`; as that third node (C),
//! sending `probe` datagrams within bounds.
//!
//! Implementation notes, the bounds in one place:
//! - B relays at most [`MAX_RELAYS`] `reach` requests at once; past it, 429;
//! - C sends a probe only for a verified server (a proven session whose peer announces an
//!   address), at most [`PER_TARGET`] per target IP per [`TARGET_WINDOW`], and at most
//!   [`PER_SECOND`] in any second overall; it remembers at most [`MAX_TARGETS`] target IPs
//!   (when full, it refuses until some expire). Every refusal is a 429 and counted;
//! - the probe datagram is [`PROBE_LEN`](crate::datagram::PROBE_LEN) bytes: smaller than any
//!   `probe` request (a sealed `data` with the message in it), so C never amplifies.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::message::{ErrorCode, ErrorReply, Response};
use crate::time::Time;

/// `reach` requests being relayed at once, at most.
pub const MAX_RELAYS: usize = 64;
/// Probes sent to one IP per [`TARGET_WINDOW`], at most.
pub const PER_TARGET: usize = 4;
/// The window of [`PER_TARGET`].
pub const TARGET_WINDOW: Duration = Duration::from_secs(10);
/// Probes sent in any one second, at most.
pub const PER_SECOND: usize = 16;
/// Target IPs remembered, at most.
pub const MAX_TARGETS: usize = 1_024;

/// Counters of the serving side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// `reach` requests relayed to a third node.
    pub relayed: u64,
    /// `reach` requests refused: no third node, too many at once, or not over a session.
    pub relays_refused: u64,
    /// Probe datagrams sent.
    pub sent: u64,
    /// `probe` requests refused: over a limit (429) or not from a server (403).
    pub refused: u64,
}

/// What a relay waits for: the token its answer is reported under.
#[derive(Debug, Default)]
pub(in crate::node) struct Probes {
    /// Relayed `reach` requests by the id of the `probe` request sent for them: the token.
    relays: HashMap<u64, u64>,
    next_token: u64,
    answers: VecDeque<(u64, Response)>,
    /// Recent probe times per target IP, oldest first.
    targets: HashMap<IpAddr, VecDeque<Time>>,
    /// Probe times in the last second, oldest first.
    recent: VecDeque<Time>,
    datagrams: VecDeque<(SocketAddr, [u8; 16])>,
    report: ProbeReport,
}

impl Probes {
    /// The counters.
    pub(in crate::node) fn report(&self) -> ProbeReport {
        self.report
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

    /// A `probe` to `to` with `nonce` asked at `now` by a server: sent (queued) if within
    /// the limits, else refused.
    pub(in crate::node) fn probe(
        &mut self,
        now: Time,
        to: SocketAddr,
        nonce: [u8; 16],
    ) -> Response {
        self.forget_old(now);
        let ip = to.ip().to_canonical();
        let known = self.targets.contains_key(&ip);
        let per_target = self.targets.get(&ip).map_or(0, VecDeque::len);
        let over = if self.recent.len() >= PER_SECOND {
            Some("over this node's probes per second")
        } else if per_target >= PER_TARGET {
            Some("over this node's probes to that address")
        } else if !known && self.targets.len() >= MAX_TARGETS {
            Some("over this node's probe targets")
        } else {
            None
        };
        if let Some(why) = over {
            self.report.refused += 1;
            return Response::Error(ErrorReply::new(ErrorCode::OVER_LIMIT, why));
        }
        self.targets.entry(ip).or_default().push_back(now);
        self.recent.push_back(now);
        self.datagrams.push_back((to, nonce));
        self.report.sent += 1;
        Response::Probed
    }

    /// A `probe` refused for who asked (not a verified server).
    pub(in crate::node) fn refused_probe(&mut self) {
        self.report.refused += 1;
    }

    /// The next probe datagram to send: where, and its nonce.
    pub(in crate::node) fn pop_datagram(&mut self) -> Option<(SocketAddr, [u8; 16])> {
        self.datagrams.pop_front()
    }

    fn forget_old(&mut self, now: Time) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        self.targets.retain(|_, times| {
            while times
                .front()
                .is_some_and(|t| now.since(*t) >= TARGET_WINDOW)
            {
                times.pop_front();
            }
            !times.is_empty()
        });
    }
}
