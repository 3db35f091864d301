//! Whether this node can be reached (`docs/design.md`, "Reachability"): it asks a few servers
//! (B) to have a third node (C) send a `probe` datagram to the address B saw its request come
//! from, and decides from what arrives.
//!
//! Implementation notes, the rules in one place:
//! - a check asks up to [`ASKS`] servers of the routing table, one per subnet (IPv4
//!   /`nat_subnet_prefix_v4`, IPv6 /48), each with a nonce of its own; when the table holds
//!   fewer subnets than that, other servers of the same subnets, and when it holds fewer
//!   servers (a young network), the same servers again, each time with another nonce, up to
//!   [`ASKS`] asks;
//! - a probe counts as received only if its nonce is one still awaited, it came from an
//!   address this node never sent a datagram to (the plane checks that) and not from the IP
//!   of the server asked (which could send it itself);
//! - a probe the plane cannot vouch for (destinations pushed out of its record were sent to
//!   within a NAT mapping's life: the probe may have come in through a mapping this node
//!   opened) settles its ask as neither received nor silent: it proves nothing, and
//!   dropping it would count it silent, toward `private`;
//! - an ask is settled when its probe arrives, when its server answers with an error or not at
//!   all, or [`PROBE_WAIT`] after its server said the probe went out;
//! - the verdict, once every ask is settled or [`CHECK_LIMIT`] passed: `public` when probes
//!   arrived through at least [`PUBLIC_SUCCESSES`] servers of distinct subnets, from as many
//!   IPs; or, only while the table holds servers of fewer subnets than that, from at least
//!   [`PUBLIC_SUCCESSES`] IPs through the one server (so the first nodes of a network, which
//!   know one server, can become servers: a lying seed could fool them, but a seed they
//!   cannot trust feeds their whole table anyway); `private` when at least
//!   [`PRIVATE_SILENCES`] servers said the probe went out and none arrived; otherwise the check
//!   decided nothing. A check that decides nothing leaves the status as it was, unless
//!   [`UNDECIDED_LIMIT`] checks in a row decided nothing: then it is `unknown`;
//! - the next check: [`RECHECK_PUBLIC`] after a `public` verdict, [`RECHECK_PRIVATE`] after a
//!   `private` one, [`RECHECK_UNDECIDED`] after none (doubling with each more in a row, up to
//!   [`RECHECK_PUBLIC`]) or after one through fewer than [`ASKS`]
//!   servers (a young network: the node looks for more servers too), [`RETRY_EMPTY`] when
//!   there was nobody to ask; and at once when the observed address changes (a running check is dropped: its
//!   probes went to the old address).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sha2::{Digest, Sha512};

use crate::message::Contact;
use crate::subnet::Prefix;
use crate::time::Time;

/// Servers asked per check at most.
pub const ASKS: usize = 4;
/// Servers through which a probe must arrive for `public`.
pub const PUBLIC_SUCCESSES: usize = 2;
/// Probes confirmed sent, none arrived, for `private`.
pub const PRIVATE_SILENCES: usize = 3;
/// How long a probe its server confirmed is waited for. C sends it before it answers B, and
/// B answers this node after that: on any path that delivers datagrams it arrives before the
/// confirmation, so the wait only covers reordering and a slow host; a few seconds are
/// plenty, and short enough that a check ends well within a minute.
pub const PROBE_WAIT: Duration = Duration::from_secs(3);
/// A check that runs this long ends with what it has.
pub const CHECK_LIMIT: Duration = Duration::from_secs(30);
/// When to check again after a `public` verdict.
pub const RECHECK_PUBLIC: Duration = Duration::from_secs(600);
/// When to check again after a `private` verdict.
pub const RECHECK_PRIVATE: Duration = Duration::from_secs(120);
/// When to check again after a check that decided nothing.
pub const RECHECK_UNDECIDED: Duration = Duration::from_secs(10);
/// When to look again for servers to ask, when the table had none.
pub const RETRY_EMPTY: Duration = Duration::from_secs(2);
/// Checks in a row that decide nothing before the status becomes `unknown`.
pub const UNDECIDED_LIMIT: u32 = 3;
/// The IPv6 prefix length of one server's subnet.
const SUBNET_V6: u8 = 48;

/// Whether the node can be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reachability {
    /// Probes from nodes it never contacted reach it.
    Public,
    /// Probes that servers confirmed sent never reach it.
    Private,
    /// Not decided (yet).
    #[default]
    Unknown,
}

impl Reachability {
    /// `public`, `private` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Public => "public",
            Reachability::Private => "private",
            Reachability::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The checks so far, for `/v1/status` and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReachReport {
    /// The status now.
    pub status: Reachability,
    /// When the last check ended, if one did.
    pub checked_at: Option<Time>,
    /// Checks ended.
    pub checks: u64,
    /// `reach` requests sent.
    pub asked: u64,
    /// Probes servers said went out.
    pub sent: u64,
    /// Probes that arrived in time and counted.
    pub received: u64,
    /// `reach` requests that failed: refused, unanswered, no third node.
    pub failed: u64,
    /// Probes that arrived and did not count: unknown or late nonce, or from the server asked.
    pub ignored: u64,
    /// Times the status changed.
    pub changes: u64,
}

/// One server asked.
#[derive(Clone, Copy, Debug)]
struct Ask {
    via: Contact,
    nonce: [u8; 16],
    /// The `reach` request's id, once sent.
    request: Option<u64>,
    state: AskState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AskState {
    Asked,
    /// The server said the probe went out at this time.
    Sent(Time),
    /// The probe arrived from this IP.
    Received(IpAddr),
    /// A probe arrived that the plane could not vouch came from a node never contacted.
    Unvouched,
    Failed,
}

/// A check under way.
#[derive(Debug)]
struct Check {
    started: Time,
    asks: Vec<Ask>,
    /// The subnets its servers are in.
    subnets: Vec<Prefix>,
    /// How many servers it asked.
    servers: usize,
}

impl Check {
    fn settled(&self, now: Time) -> bool {
        self.asks.iter().all(|a| match a.state {
            AskState::Asked => false,
            AskState::Sent(at) => now >= at + PROBE_WAIT,
            AskState::Received(_) | AskState::Unvouched | AskState::Failed => true,
        })
    }

    /// The verdict of this check's asks, `None` when they decide nothing.
    fn verdict(&self, prefix_v4: u8) -> Option<Reachability> {
        let mut servers: Vec<Prefix> = Vec::new();
        let mut sources: Vec<IpAddr> = Vec::new();
        for ask in &self.asks {
            if let AskState::Received(from) = ask.state {
                let subnet = Prefix::of(ask.via.addr.ip(), prefix_v4, SUBNET_V6);
                if !servers.contains(&subnet) {
                    servers.push(subnet);
                }
                if !sources.contains(&from) {
                    sources.push(from);
                }
            }
        }
        let received = if self.subnets.len() >= PUBLIC_SUCCESSES {
            servers.len().min(sources.len())
        } else {
            sources.len()
        };
        let silent = self
            .asks
            .iter()
            .filter(|a| matches!(a.state, AskState::Sent(_)))
            .count();
        if received >= PUBLIC_SUCCESSES {
            Some(Reachability::Public)
        } else if received == 0 && silent >= PRIVATE_SILENCES {
            Some(Reachability::Private)
        } else {
            None
        }
    }
}

/// A status change: from, to.
pub type ReachChange = (Reachability, Reachability);

/// This node's reachability checks. Inputs: [`Reach::start`] when [`Reach::due`],
/// [`Reach::requested`] for each ask sent, [`Reach::answered`], [`Reach::probe`],
/// [`Reach::observed_changed`]; output: [`Reach::handle_timeout`]'s change, then
/// [`Reach::next_deadline`].
#[derive(Debug)]
pub(in crate::node) struct Reach {
    status: Reachability,
    check: Option<Check>,
    /// When the next check starts, `None` until checks are switched on.
    next: Option<Time>,
    undecided: u32,
    seed: [u8; 32],
    counter: u64,
    prefix_v4: u8,
    report: ReachReport,
}

impl Reach {
    /// No check yet, none due: checks start with [`Reach::switch_on`].
    pub(in crate::node) fn new(prefix_v4: u8) -> Self {
        Reach {
            status: Reachability::Unknown,
            check: None,
            next: None,
            undecided: 0,
            seed: [0; 32],
            counter: 0,
            prefix_v4,
            report: ReachReport::default(),
        }
    }

    /// Checks start at `now`; `seed` (random bytes) makes the nonces.
    pub(in crate::node) fn switch_on(&mut self, now: Time, seed: [u8; 32]) {
        self.seed = seed;
        self.next = Some(now);
    }

    /// Whether checks are switched on (the driver has datagrams).
    pub(in crate::node) fn is_on(&self) -> bool {
        self.next.is_some() || self.check.is_some()
    }

    /// The status and counters.
    pub(in crate::node) fn report(&self) -> ReachReport {
        ReachReport {
            status: self.status,
            ..self.report
        }
    }

    /// Whether a check should start now.
    pub(in crate::node) fn due(&self, now: Time) -> bool {
        self.check.is_none() && self.next.is_some_and(|next| next <= now)
    }

    /// When [`Reach::handle_timeout`] must next be called.
    pub(in crate::node) fn next_deadline(&self) -> Option<Time> {
        match &self.check {
            Some(check) => {
                let waits = check.asks.iter().filter_map(|a| match a.state {
                    AskState::Sent(at) => Some(at + PROBE_WAIT),
                    _ => None,
                });
                waits.chain([check.started + CHECK_LIMIT]).min()
            }
            None => self.next,
        }
    }

    /// Starts a check among `servers` (the routing table's contacts): the servers to ask
    /// and the nonce of each. None when there is nobody to ask (then it tries again soon).
    pub(in crate::node) fn start(
        &mut self,
        now: Time,
        servers: impl IntoIterator<Item = Contact>,
    ) -> Vec<(Contact, [u8; 16])> {
        let mut servers: Vec<(Vec<u8>, Contact)> = servers
            .into_iter()
            .map(|c| (self.shuffle_key(c), c))
            .collect();
        servers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subnets: Vec<Prefix> = Vec::new();
        let mut chosen: Vec<Contact> = Vec::new();
        // One per subnet first; then other servers; then the same ones again.
        for (_, via) in &servers {
            let subnet = Prefix::of(via.addr.ip(), self.prefix_v4, SUBNET_V6);
            if chosen.len() < ASKS && !subnets.contains(&subnet) {
                subnets.push(subnet);
                chosen.push(*via);
            }
        }
        for (_, via) in &servers {
            if chosen.len() < ASKS && !chosen.contains(via) {
                chosen.push(*via);
            }
        }
        if chosen.is_empty() {
            self.next = Some(now + RETRY_EMPTY);
            return Vec::new();
        }
        let distinct = chosen.len();
        let mut asks = Vec::with_capacity(ASKS);
        for i in 0..ASKS {
            let nonce = self.nonce();
            asks.push(Ask {
                via: chosen[i % distinct],
                nonce,
                request: None,
                state: AskState::Asked,
            });
        }
        let out = asks.iter().map(|a| (a.via, a.nonce)).collect();
        self.report.asked += asks.len() as u64;
        self.check = Some(Check {
            started: now,
            asks,
            subnets,
            servers: distinct,
        });
        out
    }

    /// The ask with `nonce` went out as request `request`.
    pub(in crate::node) fn requested(&mut self, nonce: &[u8; 16], request: u64) {
        if let Some(ask) = self.ask_mut(|a| a.nonce == *nonce) {
            ask.request = Some(request);
        }
    }

    /// Whether request `request` is one of this check's asks.
    pub(in crate::node) fn is_ask(&self, request: u64) -> bool {
        self.check
            .as_ref()
            .is_some_and(|c| c.asks.iter().any(|a| a.request == Some(request)))
    }

    /// The server answered request `request`: the probe went out (`sent`), or not.
    pub(in crate::node) fn answered(&mut self, now: Time, request: u64, sent: bool) {
        let Some(ask) = self.ask_mut(|a| a.request == Some(request)) else {
            return;
        };
        if ask.state != AskState::Asked {
            return;
        }
        ask.state = if sent {
            AskState::Sent(now)
        } else {
            AskState::Failed
        };
        if sent {
            self.report.sent += 1;
        } else {
            self.report.failed += 1;
        }
    }

    /// A `probe` with `nonce` arrived from `from`, an address this node never sent to
    /// (`vouched`: of the destinations the plane can vouch for, [`PlaneEvent::Probe`]).
    ///
    /// [`PlaneEvent::Probe`]: crate::datagram::PlaneEvent::Probe
    pub(in crate::node) fn probe(
        &mut self,
        now: Time,
        from: SocketAddr,
        nonce: &[u8; 16],
        vouched: bool,
    ) {
        let ask = self.ask_mut(|a| a.nonce == *nonce).filter(|a| {
            let waiting = match a.state {
                AskState::Asked => true,
                AskState::Sent(at) => now < at + PROBE_WAIT,
                AskState::Received(_) | AskState::Unvouched | AskState::Failed => false,
            };
            waiting && a.via.addr.ip().to_canonical() != from.ip().to_canonical()
        });
        match ask {
            Some(ask) if vouched => {
                ask.state = AskState::Received(from.ip().to_canonical());
                self.report.received += 1;
            }
            Some(ask) => {
                ask.state = AskState::Unvouched;
                self.report.ignored += 1;
            }
            None => self.report.ignored += 1,
        }
    }

    /// The observed address changed: check again now.
    pub(in crate::node) fn observed_changed(&mut self, now: Time) {
        if self.next.is_some() {
            self.check = None;
            self.next = Some(now);
        }
    }

    /// Time has reached `now`: ends the check if it is settled or out of time; the status
    /// change, if any.
    pub(in crate::node) fn handle_timeout(&mut self, now: Time) -> Option<ReachChange> {
        let check = self.check.as_ref()?;
        if !check.settled(now) && now < check.started + CHECK_LIMIT {
            return None;
        }
        let verdict = check.verdict(self.prefix_v4);
        let thin = check.servers < ASKS;
        self.check = None;
        self.report.checks += 1;
        self.report.checked_at = Some(now);
        let (status, wait) = match verdict {
            Some(status) => {
                self.undecided = 0;
                let wait = match status {
                    // Through fewer servers than it would ask, a young network's: soon again.
                    _ if thin => RECHECK_UNDECIDED,
                    Reachability::Public => RECHECK_PUBLIC,
                    _ => RECHECK_PRIVATE,
                };
                (status, wait)
            }
            None => {
                self.undecided += 1;
                let status = if self.undecided >= UNDECIDED_LIMIT {
                    Reachability::Unknown
                } else {
                    self.status
                };
                // Checks that keep deciding nothing (nodes of one host, which cannot probe
                // each other) come ever less often: doubling, up to [`RECHECK_PUBLIC`].
                let doublings = (self.undecided - 1).min(6);
                let wait = (RECHECK_UNDECIDED * 2u32.pow(doublings)).min(RECHECK_PUBLIC);
                (status, wait)
            }
        };
        self.next = Some(now + wait);
        let from = std::mem::replace(&mut self.status, status);
        (from != status).then(|| {
            self.report.changes += 1;
            (from, status)
        })
    }

    fn ask_mut(&mut self, which: impl Fn(&Ask) -> bool) -> Option<&mut Ask> {
        self.check.as_mut()?.asks.iter_mut().find(|a| which(a))
    }

    fn nonce(&mut self) -> [u8; 16] {
        self.counter += 1;
        let hash = Sha512::new()
            .chain_update(b"cairn-reach-nonce")
            .chain_update(self.seed)
            .chain_update(self.counter.to_be_bytes())
            .finalize();
        let mut nonce = [0; 16];
        nonce.copy_from_slice(&hash[..16]);
        nonce
    }

    /// An order of the servers that changes from check to check.
    fn shuffle_key(&self, contact: Contact) -> Vec<u8> {
        Sha512::new()
            .chain_update(b"cairn-reach-order")
            .chain_update(self.seed)
            .chain_update(self.counter.to_be_bytes())
            .chain_update(contact.id.as_bytes())
            .finalize()
            .to_vec()
    }
}

#[cfg(test)]
#[path = "reach_tests.rs"]
mod tests;
