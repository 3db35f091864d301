//! The node's address as others see it (`docs/design.md`, "Observed address"): votes from the
//! `observed` key of datagram answers, one table per address family.
//!
//! Implementation notes, the rules in one place:
//! - a vote comes only from an answer to a request this node chose to send, in a datagram
//!   session whose peer's key and address are proven (the plane reports only those; the body
//!   is sealed, so nobody on the path can change it). Whichever side opened the session: a
//!   node reuses the sessions its peers opened, and in a small network most of its sessions
//!   are those;
//! - one vote per responder id and one per responder subnet (IPv4 /`nat_subnet_prefix_v4`,
//!   24 by default; IPv6 /48): a new vote replaces any earlier one from the same id or the
//!   same subnet, so a responder that moves, or many identities in one subnet, count once;
//! - at most [`MAX_VOTES`] votes per family, the oldest dropped; a vote expires after
//!   [`VOTE_TTL`];
//! - the address seen is the `ip:port` with the most votes, once it holds at least
//!   [`QUORUM`] votes and more than half of those held; behind a NAT that maps each
//!   destination to another port, the IP alone, once at least [`QUORUM`] votes and more than
//!   half agree on it while no port holds half of them. Until one passes, none is known. One
//!   that passes stays the address seen (the table is evaluated at each vote) until another
//!   passes and replaces it: that is a change, reported once;
//! - the mapping is `independent` when the address seen holds at least 2/3 of the live votes,
//!   `dependent` when only the IP passes as above, `unknown` otherwise.
//!
//! So one liar cannot move the address: it has one vote, and a change needs [`QUORUM`] votes
//! from as many subnets and a majority.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::id::NodeId;
use crate::message::Contact;
use crate::subnet::Prefix;
use crate::time::Time;

/// The most votes kept per address family.
pub const MAX_VOTES: usize = 16;
/// How long a vote counts.
pub const VOTE_TTL: Duration = Duration::from_secs(600);
/// Votes an address (or, behind a dependent mapping, an IP) needs at least, beside a majority.
pub const QUORUM: usize = 3;
/// The IPv6 prefix length of one voter's subnet.
const SUBNET_V6: u8 = 48;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// IPv4 (an IPv4-mapped IPv6 address counts as IPv4).
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// The family of `ip` (an IPv4-mapped IPv6 address is IPv4).
    pub fn of(ip: IpAddr) -> Family {
        match ip.to_canonical() {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// `ipv4` or `ipv6`: the label of metrics and `/v1/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the node's NAT, if any, maps its address, as the votes show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mapping {
    /// One `ip:port` for every peer: at least 2/3 of the votes agree on it.
    Independent,
    /// One IP, another port per peer: a majority agrees on the IP, no port holds half of it.
    Dependent,
    /// Not enough agreement to say.
    Unknown,
}

impl Mapping {
    /// `independent`, `dependent` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mapping::Independent => "independent",
            Mapping::Dependent => "dependent",
            Mapping::Unknown => "unknown",
        }
    }
}

/// What the node is seen as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    /// One address.
    Addr(SocketAddr),
    /// One IP, a port per peer (a dependent mapping); written `ip:*`.
    Ip(IpAddr),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Addr(addr) => write!(f, "{addr}"),
            Seen::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:*"),
            Seen::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:*"),
        }
    }
}

/// The address seen changed (or became known): reported once per change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObservedChange {
    /// The family whose address changed.
    pub family: Family,
    /// The address seen before, if one was.
    pub from: Option<Seen>,
    /// The address seen now.
    pub to: Seen,
}

/// One family's state, for `/v1/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObservedReport {
    /// The address seen, if one passed the test yet.
    pub seen: Option<Seen>,
    /// The mapping kind the live votes show.
    pub mapping: Mapping,
    /// Live votes held.
    pub votes: usize,
    /// Times the address seen changed (the first time it became known included).
    pub changes: u64,
}

/// One vote: `voter` (in `subnet`) saw this node's request come from `observed` at `at`.
#[derive(Clone, Copy, Debug)]
struct Vote {
    voter: NodeId,
    subnet: Prefix,
    observed: SocketAddr,
    at: Time,
}

/// The votes of one family, oldest first, and the address they settled on.
#[derive(Debug, Default)]
struct Votes {
    votes: Vec<Vote>,
    seen: Option<Seen>,
    changes: u64,
}

impl Votes {
    /// Records `vote` in place of any from the same voter or subnet; the address seen if it
    /// changed.
    fn record(&mut self, vote: Vote) -> Option<(Option<Seen>, Seen)> {
        self.votes
            .retain(|v| v.voter != vote.voter && v.subnet != vote.subnet && live(v, vote.at));
        self.votes.push(vote);
        if self.votes.len() > MAX_VOTES {
            self.votes.remove(0);
        }
        let tally = Tally::of(self.votes.iter());
        let passed = tally
            .address()
            .map(Seen::Addr)
            .or(tally.ip().map(Seen::Ip))?;
        if self.seen == Some(passed) {
            return None;
        }
        let from = self.seen.replace(passed);
        self.changes += 1;
        Some((from, passed))
    }

    fn report(&self, now: Time) -> ObservedReport {
        let live: Vec<&Vote> = self.votes.iter().filter(|v| live(v, now)).collect();
        let tally = Tally::of(live.iter().copied());
        let mapping = match tally.best {
            Some((_, n)) if n >= QUORUM && 3 * n >= 2 * tally.total => Mapping::Independent,
            _ if tally.ip().is_some() => Mapping::Dependent,
            _ => Mapping::Unknown,
        };
        ObservedReport {
            seen: self.seen,
            mapping,
            votes: live.len(),
            changes: self.changes,
        }
    }
}

/// Whether `vote` still counts at `now`.
fn live(vote: &Vote, now: Time) -> bool {
    now.since(vote.at) < VOTE_TTL
}

/// The counts of a set of votes: the address with the most, and the IP with the most with the
/// most votes any one port of it has.
struct Tally {
    total: usize,
    best: Option<(SocketAddr, usize)>,
    best_ip: Option<(IpAddr, usize, usize)>,
}

impl Tally {
    /// Counts `votes` (at most [`MAX_VOTES`]): each distinct address once, then each IP from
    /// its addresses, so a vote costs a pass over the distinct addresses rather than the
    /// three nested passes over every vote this replaced (5% of a node's CPU in a put-heavy
    /// `cairn testnet`). Ties go as `max_by_key` over the votes in order would send them: to
    /// the one voted last.
    fn of<'a>(votes: impl Iterator<Item = &'a Vote>) -> Tally {
        let votes: Vec<SocketAddr> = votes.map(|v| v.observed).collect();
        // Distinct addresses with their votes, and distinct IPs with their votes and the
        // most votes any one port of theirs holds.
        let mut addrs: Vec<(SocketAddr, usize)> = Vec::with_capacity(votes.len());
        for vote in &votes {
            match addrs.iter_mut().find(|(a, _)| a == vote) {
                Some((_, n)) => *n += 1,
                None => addrs.push((*vote, 1)),
            }
        }
        let mut ips: Vec<(IpAddr, usize, usize)> = Vec::with_capacity(addrs.len());
        for &(addr, n) in &addrs {
            match ips.iter_mut().find(|(ip, _, _)| *ip == addr.ip()) {
                Some((_, on_ip, top_port)) => {
                    *on_ip += n;
                    *top_port = (*top_port).max(n);
                }
                None => ips.push((addr.ip(), n, n)),
            }
        }
        let of_addr = |a: &SocketAddr| addrs.iter().find(|(b, _)| b == a).map_or(0, |e| e.1);
        let of_ip = |ip: IpAddr| {
            ips.iter()
                .find(|(other, _, _)| *other == ip)
                .copied()
                .unwrap_or((ip, 0, 0))
        };
        let best = votes
            .iter()
            .map(|a| (*a, of_addr(a)))
            .max_by_key(|(_, n)| *n);
        let best_ip = votes
            .iter()
            .map(|a| of_ip(a.ip()))
            .max_by_key(|(_, n, _)| *n);
        Tally {
            total: votes.len(),
            best,
            best_ip,
        }
    }

    /// The address that passes: at least [`QUORUM`] votes and more than half.
    fn address(&self) -> Option<SocketAddr> {
        let (addr, n) = self.best?;
        (n >= QUORUM && 2 * n > self.total).then_some(addr)
    }

    /// The IP that passes as a dependent mapping's: at least [`QUORUM`] votes and more than
    /// half agree on it, and no port of it holds half of those.
    fn ip(&self) -> Option<IpAddr> {
        let (ip, n, top_port) = self.best_ip?;
        (n >= QUORUM && 2 * n > self.total && 2 * top_port < n).then_some(ip)
    }
}

/// The votes of both families.
#[derive(Debug)]
pub(in crate::node) struct Observed {
    v4: Votes,
    v6: Votes,
    /// The IPv4 prefix length of one voter's subnet.
    prefix_v4: u8,
}

impl Observed {
    /// No votes yet; an IPv4 voter's subnet is its first `prefix_v4` bits.
    pub(in crate::node) fn new(prefix_v4: u8) -> Self {
        Observed {
            v4: Votes::default(),
            v6: Votes::default(),
            prefix_v4,
        }
    }

    /// `by` answered one of this node's requests, saying it came from
    /// `observed`. A vote whose address is of another family than `by`'s address is ignored
    /// (a peer reached over IPv4 cannot have seen an IPv6 source). The change it makes, if any.
    pub(in crate::node) fn vote(
        &mut self,
        now: Time,
        by: &Contact,
        observed: SocketAddr,
    ) -> Option<ObservedChange> {
        let family = Family::of(by.addr.ip());
        let observed = SocketAddr::new(observed.ip().to_canonical(), observed.port());
        if Family::of(observed.ip()) != family {
            return None;
        }
        let vote = Vote {
            voter: by.id,
            subnet: Prefix::of(by.addr.ip(), self.prefix_v4, SUBNET_V6),
            observed,
            at: now,
        };
        let (from, to) = self.family_mut(family).record(vote)?;
        Some(ObservedChange { family, from, to })
    }

    /// `family`'s state at `now`.
    pub(in crate::node) fn report(&self, family: Family, now: Time) -> ObservedReport {
        match family {
            Family::Ipv4 => self.v4.report(now),
            Family::Ipv6 => self.v6.report(now),
        }
    }

    fn family_mut(&mut self, family: Family) -> &mut Votes {
        match family {
            Family::Ipv4 => &mut self.v4,
            Family::Ipv6 => &mut self.v6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Time = Time::from_millis(1_000_000);

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    /// A voter numbered `n` in subnet 10.0.`n`.0/24 (IPv4) or 2001:db8:`n`::/48 (IPv6).
    fn voter(n: u16, v6: bool) -> Contact {
        let at = if v6 {
            addr(&format!("[2001:db8:{n:x}::1]:7400"))
        } else {
            addr(&format!("10.0.{n}.1:7400"))
        };
        Contact::new(NodeId::hash(&n.to_be_bytes()), at)
    }

    fn observed() -> Observed {
        Observed::new(24)
    }

    /// Votes from voters `from..to` for `seen` at `now`; the changes they made.
    fn votes(
        o: &mut Observed,
        now: Time,
        voters: std::ops::Range<u16>,
        seen: &str,
    ) -> Vec<ObservedChange> {
        voters
            .filter_map(|n| o.vote(now, &voter(n, seen.starts_with('[')), addr(seen)))
            .collect()
    }

    #[test]
    fn three_subnets_and_a_majority_are_needed() {
        let mut o = observed();
        assert!(votes(&mut o, T0, 0..2, "198.51.100.1:7400").is_empty());
        assert_eq!(
            o.report(Family::Ipv4, T0).seen,
            None,
            "two votes are not enough"
        );
        // A third voter in a subnet already voting replaces that vote, adds nothing.
        let same_subnet = Contact::new(NodeId::hash(b"other"), addr("10.0.1.99:7400"));
        assert_eq!(o.vote(T0, &same_subnet, addr("198.51.100.1:7400")), None);
        assert_eq!(o.report(Family::Ipv4, T0).votes, 2);
        // So does the same voter again, from another subnet.
        let moved = Contact::new(voter(0, false).id, addr("10.0.77.1:7400"));
        assert_eq!(o.vote(T0, &moved, addr("198.51.100.1:7400")), None);
        assert_eq!(o.report(Family::Ipv4, T0).votes, 2);
        let changes = votes(&mut o, T0, 2..3, "198.51.100.1:7400");
        let seen = Seen::Addr(addr("198.51.100.1:7400"));
        assert_eq!(
            changes,
            vec![ObservedChange {
                family: Family::Ipv4,
                from: None,
                to: seen
            }]
        );
        let report = o.report(Family::Ipv4, T0);
        assert_eq!(
            (report.seen, report.mapping),
            (Some(seen), Mapping::Independent)
        );
        assert_eq!(o.report(Family::Ipv6, T0).seen, None, "families are apart");
    }

    #[test]
    fn one_liar_cannot_flip_it() {
        let mut o = observed();
        votes(&mut o, T0, 0..3, "198.51.100.1:7400");
        let truth = Some(Seen::Addr(addr("198.51.100.1:7400")));
        // The liar votes as often as it likes: it holds one vote.
        for _ in 0..20 {
            assert!(votes(&mut o, T0, 9..10, "203.0.113.66:1").is_empty());
        }
        assert_eq!(o.report(Family::Ipv4, T0).seen, truth);
        // Even when the honest votes are as few as the quorum and the liar's ties them: no
        // majority, no change.
        let mut o = observed();
        votes(&mut o, T0, 0..3, "198.51.100.1:7400");
        votes(&mut o, T0, 10..12, "203.0.113.66:1");
        assert_eq!(o.report(Family::Ipv4, T0).seen, truth);
        assert_eq!(
            o.report(Family::Ipv4, T0).mapping,
            Mapping::Unknown,
            "3 of 5"
        );
        // A vote of the other family than the voter's address is ignored.
        let liar = voter(20, false);
        assert_eq!(o.vote(T0, &liar, addr("[2001:db8::66]:1")), None);
        assert_eq!(o.report(Family::Ipv6, T0).votes, 0);
    }

    #[test]
    fn a_change_is_detected_once() {
        let mut o = observed();
        votes(&mut o, T0, 0..3, "198.51.100.1:7400");
        // The node moved: the same peers (and new ones) now see another address.
        let later = T0 + Duration::from_secs(60);
        let changes = votes(&mut o, later, 0..6, "198.51.100.2:7400");
        let from = Some(Seen::Addr(addr("198.51.100.1:7400")));
        let to = Seen::Addr(addr("198.51.100.2:7400"));
        assert_eq!(
            changes,
            vec![ObservedChange {
                family: Family::Ipv4,
                from,
                to
            }]
        );
        assert_eq!(o.report(Family::Ipv4, later).changes, 2);
        assert_eq!(
            o.report(Family::Ipv4, later).votes,
            6,
            "each voter replaced its vote"
        );
    }

    #[test]
    fn a_port_per_peer_is_a_dependent_mapping() {
        let mut o = observed();
        let changes: Vec<ObservedChange> = (0..4)
            .filter_map(|n| {
                let seen = addr(&format!("198.51.100.1:{}", 40_000 + n));
                o.vote(T0, &voter(n, false), seen)
            })
            .collect();
        let ip = Seen::Ip("198.51.100.1".parse().expect("an ip"));
        assert_eq!(changes.last().map(|c| c.to), Some(ip));
        let report = o.report(Family::Ipv4, T0);
        assert_eq!(
            (report.seen, report.mapping),
            (Some(ip), Mapping::Dependent)
        );
        assert_eq!(ip.to_string(), "198.51.100.1:*");
    }

    #[test]
    fn votes_expire() {
        let mut o = observed();
        votes(&mut o, T0, 0..3, "198.51.100.1:7400");
        // Ten minutes on, those votes are gone: three new ones decide alone.
        let later = T0 + VOTE_TTL;
        assert_eq!(o.report(Family::Ipv4, later).votes, 0);
        assert_eq!(o.report(Family::Ipv4, later).mapping, Mapping::Unknown);
        let changes = votes(&mut o, later, 10..13, "198.51.100.2:7400");
        assert_eq!(
            changes.last().map(|c| c.to),
            Some(Seen::Addr(addr("198.51.100.2:7400")))
        );
        // Just before ten minutes the old votes would still have tied them.
        let mut o = observed();
        votes(&mut o, T0, 0..3, "198.51.100.1:7400");
        let almost = T0 + VOTE_TTL - Duration::from_millis(1);
        assert!(votes(&mut o, almost, 10..13, "198.51.100.2:7400").is_empty());
    }

    #[test]
    fn at_most_sixteen_votes_are_kept_and_the_oldest_goes() {
        let mut o = observed();
        votes(&mut o, T0, 0..3, "198.51.100.1:7400");
        let later = T0 + Duration::from_secs(1);
        votes(&mut o, later, 3..19, "198.51.100.2:7400");
        let report = o.report(Family::Ipv4, later);
        assert_eq!(report.votes, MAX_VOTES);
        assert_eq!(report.seen, Some(Seen::Addr(addr("198.51.100.2:7400"))));
        assert_eq!(report.mapping, Mapping::Independent);
    }

    #[test]
    fn ipv6_votes_count_per_48_and_mapped_ipv4_is_ipv4() {
        let mut o = observed();
        let changes = votes(&mut o, T0, 0..3, "[2001:db8:ffff::7]:7400");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].family, Family::Ipv6);
        // A dual-stack socket reports IPv4 peers as mapped addresses: they vote as IPv4.
        let mapped = |n: u8| {
            Contact::new(
                NodeId::hash(&[n]),
                addr(&format!("[::ffff:10.1.{n}.1]:7400")),
            )
        };
        for n in 0..3 {
            o.vote(T0, &mapped(n), addr("[::ffff:198.51.100.9]:7400"));
        }
        assert_eq!(
            o.report(Family::Ipv4, T0).seen,
            Some(Seen::Addr(addr("198.51.100.9:7400")))
        );
    }

    #[test]
    fn the_subnet_unit_is_a_knob() {
        // A test network on one /24: with /32 every host votes.
        let host = |n: u8| Contact::new(NodeId::hash(&[n]), addr(&format!("127.0.0.{n}:7400")));
        let mut wide = Observed::new(24);
        let mut narrow = Observed::new(32);
        for n in 1..4 {
            wide.vote(T0, &host(n), addr("127.0.0.9:7400"));
            narrow.vote(T0, &host(n), addr("127.0.0.9:7400"));
        }
        assert_eq!(wide.report(Family::Ipv4, T0).votes, 1);
        assert_eq!(narrow.report(Family::Ipv4, T0).votes, 3);
        assert!(narrow.report(Family::Ipv4, T0).seen.is_some());
    }

    /// The tally as first written: every vote counted against every other, and each IP's
    /// ports against all again. [`Tally::of`] must agree with it, ties included.
    fn naive_tally(votes: &[SocketAddr]) -> Tally {
        let count = |f: &dyn Fn(&SocketAddr) -> bool| votes.iter().filter(|a| f(a)).count();
        let best = votes
            .iter()
            .map(|a| (*a, count(&|b| b == a)))
            .max_by_key(|(_, n)| *n);
        let best_ip = votes
            .iter()
            .map(|a| {
                let on_ip = count(&|b| b.ip() == a.ip());
                let top_port = votes
                    .iter()
                    .filter(|b| b.ip() == a.ip())
                    .map(|b| count(&|c| c == b))
                    .max()
                    .unwrap_or(0);
                (a.ip(), on_ip, top_port)
            })
            .max_by_key(|(_, n, _)| *n);
        Tally {
            total: votes.len(),
            best,
            best_ip,
        }
    }

    proptest::proptest! {
        #[test]
        fn the_tally_agrees_with_counting_every_vote_against_every_other(
            picks in proptest::collection::vec((0u8..4, 0u16..3), 0..=MAX_VOTES),
        ) {
            // Few IPs and ports, so that ties and shared IPs are common.
            let observed: Vec<SocketAddr> = picks
                .iter()
                .map(|&(ip, port)| SocketAddr::from(([198, 51, 100, ip], 7400 + port)))
                .collect();
            let votes: Vec<Vote> = observed
                .iter()
                .enumerate()
                .map(|(n, &at)| Vote {
                    voter: NodeId::hash(&n.to_be_bytes()),
                    subnet: Prefix::subnet(at.ip()),
                    observed: at,
                    at: T0,
                })
                .collect();
            let fast = Tally::of(votes.iter());
            let naive = naive_tally(&observed);
            proptest::prop_assert_eq!(fast.total, naive.total);
            proptest::prop_assert_eq!(fast.best, naive.best);
            proptest::prop_assert_eq!(fast.best_ip, naive.best_ip);
        }
    }
}
