//! The destinations a plane sent datagrams to, to tell a `probe` from one a NAT let in only
//! because this node had contacted its sender (`docs/design.md`, "Reachability").
//!
//! Implementation notes:
//! - at most [`SENT_TO_KEPT`] destinations, the one sent to least recently pushed out first
//!   (a send to a destination kept makes it the most recent again);
//! - every answer to an unproven source is a send, so spoofed junk can push real contacts
//!   out. The record therefore remembers the last send to the most recent destination it
//!   pushed out, and vouches that a source it does not hold was never contacted only once
//!   that send is [`MAPPING_LIFE`] old: until then a NAT mapping this node opened toward a
//!   pushed-out destination may still let that destination in.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::time::Time;

/// How many destinations the plane remembers having sent datagrams to, to tell a `probe`
/// from one a NAT let in only because this node had contacted its sender.
pub const SENT_TO_KEPT: usize = 4_096;

/// How long a NAT may keep a UDP mapping open after the last datagram out: RFC 4787 asks
/// for at least 2 minutes and recommends 5; most NATs forget one within that.
pub const MAPPING_LIFE: Duration = Duration::from_secs(300);

/// The last [`SENT_TO_KEPT`] destinations datagrams went to.
#[derive(Debug, Default)]
pub(super) struct SentTo {
    /// The last send to each destination kept.
    last: HashMap<SocketAddr, Time>,
    /// Sends, oldest first; one that is not its destination's last is stale and skipped.
    /// At most twice [`SENT_TO_KEPT`] (then the stale ones are dropped).
    order: VecDeque<(SocketAddr, Time)>,
    /// The last send to the most recent destination pushed out, if any was.
    evicted: Option<Time>,
}

impl SentTo {
    /// A datagram went to `to` at `now`.
    pub(super) fn insert(&mut self, now: Time, to: SocketAddr) {
        let to = canonical(to);
        if self.last.insert(to, now) == Some(now) {
            return;
        }
        self.order.push_back((to, now));
        while self.last.len() > SENT_TO_KEPT {
            let Some((oldest, at)) = self.order.pop_front() else {
                break;
            };
            if self.last.get(&oldest) == Some(&at) {
                self.last.remove(&oldest);
                self.evicted = Some(self.evicted.map_or(at, |e| e.max(at)));
            }
        }
        if self.order.len() > 2 * SENT_TO_KEPT {
            let last = &self.last;
            self.order.retain(|(addr, at)| last.get(addr) == Some(at));
        }
    }

    /// Whether a datagram went to `from` (of the destinations kept).
    pub(super) fn contains(&self, from: &SocketAddr) -> bool {
        self.last.contains_key(&canonical(*from))
    }

    /// Whether, at `now`, a source not kept can be taken for one never contacted: no
    /// destination pushed out was sent to within the last [`MAPPING_LIFE`].
    pub(super) fn vouches(&self, now: Time) -> bool {
        self.evicted.is_none_or(|at| now.since(at) >= MAPPING_LIFE)
    }
}

/// `addr` with an IPv4-mapped IPv6 address written as IPv4 (a dual-stack socket reports both).
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
