//! The NAT model: private nodes sit behind NATs that translate and filter their datagrams as
//! a home router running Linux does.
//!
//! In RFC 4787's terms, each [`Nat`] has:
//! - a **mapping** that is either [`Mapping::Independent`] (one external port per internal
//!   endpoint whatever the destination, the internal port itself when free: Linux
//!   `masquerade`) or [`Mapping::Dependent`] (a new random external port for each remote
//!   `ip:port`: `masquerade random`);
//! - **address-and-port-dependent filtering**: a datagram from outside passes only from a
//!   remote `ip:port` the internal endpoint sent to through that mapping (Linux conntrack);
//! - **timers**: an entry lives [`UNREPLIED`] after its last datagram until a reply has come
//!   in, then [`REPLIED`] (the kernel's `nf_conntrack_udp_timeout` and
//!   `nf_conntrack_udp_timeout_stream` defaults).
//!
//! [`Nats`] holds every NAT of a run, which node sits behind which, and what they dropped. The
//! simulator calls it at two points only: when a datagram leaves a node (its source is
//! translated) and when one reaches a NAT's external address (filtered, translated back).
//! A private node's own address is in a range nothing is addressed at, so a TCP connection to
//! it is never answered, as a SYN a NAT drops.
//!
//! Implementation notes:
//! - Deterministic: entries change only when the simulator hands a datagram in, at virtual
//!   time; expiry is computed from that time, never from a clock. Ports are drawn from each
//!   NAT's own RNG, seeded from the run's seed and the NAT's index, never from the
//!   simulation's RNG: a run without private nodes makes the same draws as one without this
//!   module. Tables are `BTreeMap`s, so no iteration order depends on a hasher.
//! - One node per NAT, and a port belongs to one internal endpoint at a time (Linux would
//!   also share a port between endpoints talking to different remotes; with one node per NAT
//!   the difference never shows).
//! - Only datagrams are translated. A private node's TCP connections go out and their answers
//!   come back on them (an established connection passes any NAT); nothing opens one inwards.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use cairn_core::{Id, NodeId, Time};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long an entry lives after its last datagram while no reply has come in (Linux's
/// `nf_conntrack_udp_timeout`).
pub const UNREPLIED: Duration = Duration::from_secs(30);

/// How long an entry lives after its last datagram once a reply has come in (Linux's
/// `nf_conntrack_udp_timeout_stream`).
pub const REPLIED: Duration = Duration::from_secs(120);

/// The lowest external port a NAT picks at random.
const LOWEST_RANDOM_PORT: u16 = 1_024;

/// How a NAT picks the external port of a new entry (RFC 4787, section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Mapping {
    /// Endpoint-independent: an internal endpoint keeps one external port for every
    /// destination, its own port if free (port-preserving, as Linux `masquerade`). Punchable.
    Independent,
    /// Address-and-port-dependent: each remote `ip:port` gets a new random external port (as
    /// Linux `masquerade random`). Not punchable.
    Dependent,
}

/// One conntrack entry: an internal endpoint's flow to one remote endpoint.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The external port its datagrams leave from.
    port: u16,
    /// Whether a datagram came back in on it.
    replied: bool,
    /// When it dies unless a datagram refreshes it.
    expires: Time,
}

/// One NAT: its external address and its conntrack table.
#[derive(Debug)]
pub struct Nat {
    external: IpAddr,
    mapping: Mapping,
    rng: StdRng,
    /// The entries, by internal endpoint and remote endpoint.
    entries: BTreeMap<(SocketAddr, SocketAddr), Entry>,
    /// The same entries by external port and remote endpoint: what an arriving datagram finds.
    inbound: BTreeMap<(u16, SocketAddr), SocketAddr>,
    /// The entries by expiry, to drop the dead ones in order.
    expiry: BTreeSet<(Time, SocketAddr, SocketAddr)>,
    /// Live entries per external port.
    ports: BTreeMap<u16, usize>,
}

impl Nat {
    /// A NAT with external address `external`, mapping as `mapping` says, drawing its ports
    /// from `seed`.
    pub fn new(external: IpAddr, mapping: Mapping, seed: [u8; 32]) -> Self {
        Nat {
            external,
            mapping,
            rng: StdRng::from_seed(seed),
            entries: BTreeMap::new(),
            inbound: BTreeMap::new(),
            expiry: BTreeSet::new(),
            ports: BTreeMap::new(),
        }
    }

    /// Its external address.
    pub fn external(&self) -> IpAddr {
        self.external
    }

    /// Its mapping behaviour.
    pub fn mapping(&self) -> Mapping {
        self.mapping
    }

    /// A datagram leaves internal endpoint `inside` for `remote` at `now`: the source it
    /// carries on the outside, its entry created or refreshed. `None` if no port is free.
    pub fn outbound(
        &mut self,
        now: Time,
        inside: SocketAddr,
        remote: SocketAddr,
    ) -> Option<SocketAddr> {
        self.expire(now);
        let port = match self.entries.get(&(inside, remote)) {
            Some(entry) => entry.port,
            None => self.new_port(inside)?,
        };
        let replied = self
            .entries
            .get(&(inside, remote))
            .is_some_and(|e| e.replied);
        let life = if replied { REPLIED } else { UNREPLIED };
        self.keep(
            inside,
            remote,
            Entry {
                port,
                replied,
                expires: now + life,
            },
        );
        Some(SocketAddr::new(self.external, port))
    }

    /// A datagram from `remote` reaches external port `port` at `now`: the internal endpoint
    /// it goes to, or `None` if the filter drops it (no live entry for that port and remote).
    pub fn inbound(&mut self, now: Time, port: u16, remote: SocketAddr) -> Option<SocketAddr> {
        self.expire(now);
        let inside = *self.inbound.get(&(port, remote))?;
        let entry = Entry {
            port,
            replied: true,
            expires: now + REPLIED,
        };
        self.keep(inside, remote, entry);
        Some(inside)
    }

    /// The external port for a new entry of `inside`.
    fn new_port(&mut self, inside: SocketAddr) -> Option<u16> {
        if self.mapping == Mapping::Independent {
            // One port per internal endpoint: the one its live entries use, else its own.
            // (IPv4 0.0.0.0:0 is the least address: an IPv4 one sorts before every IPv6 one.)
            let mapped = self
                .entries
                .range((inside, SocketAddr::from(([0, 0, 0, 0], 0)))..)
                .take_while(|((i, _), _)| *i == inside)
                .map(|(_, e)| e.port)
                .next();
            if let Some(port) = mapped {
                return Some(port);
            }
            if !self.ports.contains_key(&inside.port()) {
                return Some(inside.port());
            }
        }
        self.random_port()
    }

    /// A free port drawn at random, or `None` if every one is taken.
    fn random_port(&mut self) -> Option<u16> {
        let range = usize::from(u16::MAX - LOWEST_RANDOM_PORT) + 1;
        if self.ports.len() >= range {
            return None;
        }
        loop {
            let port = self.rng.random_range(LOWEST_RANDOM_PORT..=u16::MAX);
            if !self.ports.contains_key(&port) {
                return Some(port);
            }
        }
    }

    /// Stores `entry` for `inside` and `remote`, replacing the one it had.
    fn keep(&mut self, inside: SocketAddr, remote: SocketAddr, entry: Entry) {
        match self.entries.insert((inside, remote), entry) {
            Some(old) => {
                self.expiry.remove(&(old.expires, inside, remote));
            }
            None => {
                *self.ports.entry(entry.port).or_insert(0) += 1;
                self.inbound.insert((entry.port, remote), inside);
            }
        }
        self.expiry.insert((entry.expires, inside, remote));
    }

    /// Drops the entries dead at `now`.
    fn expire(&mut self, now: Time) {
        while let Some(&(expires, inside, remote)) = self.expiry.first() {
            if expires > now {
                break;
            }
            self.expiry.pop_first();
            if let Some(entry) = self.entries.remove(&(inside, remote)) {
                self.inbound.remove(&(entry.port, remote));
                if let Some(count) = self.ports.get_mut(&entry.port) {
                    *count -= 1;
                    if *count == 0 {
                        self.ports.remove(&entry.port);
                    }
                }
            }
        }
    }
}

/// What a NAT does to a datagram leaving a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outbound {
    /// The node is public: its datagram leaves as it is.
    Public,
    /// The node is private: its datagram leaves from this address.
    Translated(SocketAddr),
    /// The node's NAT has no port free: the datagram is dropped.
    Dropped,
}

/// What the NATs of a run did, and what the run's check found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NatTotals {
    /// Nodes behind a NAT.
    pub private: usize,
    /// Of those, nodes behind a NAT with a dependent ("random") mapping.
    pub dependent: usize,
    /// Datagrams a NAT dropped: its filter found no live entry for them, or it had no port.
    pub dropped: u64,
    /// Times a private node entered a public node's routing table (every
    /// [`cairn_core::Event::ContactAdded`] of a public node is checked).
    pub private_in_public_tables: u64,
}

/// Every NAT of a run, the nodes behind them, and the check that no public node's routing
/// table takes a private node.
#[derive(Debug)]
pub(crate) struct Nats {
    seed: u64,
    nats: Vec<Nat>,
    /// The node behind each NAT, by NAT index.
    hosts: Vec<usize>,
    /// Each private node's NAT, by node index.
    behind: HashMap<usize, usize>,
    /// Each NAT by its external address.
    by_external: HashMap<IpAddr, usize>,
    /// The ids of the private nodes.
    private_ids: BTreeSet<NodeId>,
    /// Whether private nodes announce themselves as public ones do (they do not by default:
    /// they run as clients).
    announce: bool,
    /// How long private nodes' planes keep a session with no datagram in, if not the plane's
    /// default.
    session_idle: Option<Duration>,
    totals: NatTotals,
}

impl Nats {
    /// No NAT yet, in a run of seed `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Nats {
            seed,
            nats: Vec::new(),
            hosts: Vec::new(),
            behind: HashMap::new(),
            by_external: HashMap::new(),
            private_ids: BTreeSet::new(),
            announce: false,
            session_idle: None,
            totals: NatTotals::default(),
        }
    }

    /// Puts node `node` (id `id`) behind a new NAT mapping as `mapping` says. Returns the
    /// node's own address from now on: one in a range nothing is addressed at.
    pub(crate) fn put_behind(&mut self, node: usize, id: NodeId, mapping: Mapping) -> SocketAddr {
        let index = self.nats.len();
        let external = address(0xfd01, index).ip();
        self.nats
            .push(Nat::new(external, mapping, nat_seed(self.seed, index)));
        self.hosts.push(node);
        self.behind.insert(node, index);
        self.by_external.insert(external, index);
        self.private_ids.insert(id);
        self.totals.private += 1;
        if mapping == Mapping::Dependent {
            self.totals.dependent += 1;
        }
        address(0xfd02, node)
    }

    /// Makes private nodes announce themselves (or not, the default).
    pub(crate) fn set_announce(&mut self, announce: bool) {
        self.announce = announce;
    }

    /// Makes private nodes' planes drop a session after `idle` with no datagram in (`None`:
    /// the plane's default).
    pub(crate) fn set_session_idle(&mut self, idle: Option<Duration>) {
        self.session_idle = idle;
    }

    /// How long node `node`'s plane keeps an idle session, if not the plane's default.
    pub(crate) fn session_idle(&self, node: usize) -> Option<Duration> {
        self.session_idle.filter(|_| self.is_private(node))
    }

    /// Whether node `node` is behind a NAT.
    pub(crate) fn is_private(&self, node: usize) -> bool {
        self.behind.contains_key(&node)
    }

    /// Whether node `node` announces an address (public nodes do; private ones only if told).
    pub(crate) fn announces(&self, node: usize) -> bool {
        self.announce || !self.is_private(node)
    }

    /// Node `node`'s NAT, if it is behind one.
    pub(crate) fn nat(&self, node: usize) -> Option<&Nat> {
        self.behind.get(&node).map(|n| &self.nats[*n])
    }

    /// The node behind the NAT whose external address is `addr`'s.
    pub(crate) fn host_at(&self, addr: &SocketAddr) -> Option<usize> {
        self.by_external.get(&addr.ip()).map(|n| self.hosts[*n])
    }

    /// A datagram leaves node `node` (own address `inside`) for `remote` at `now`.
    pub(crate) fn outbound(
        &mut self,
        now: Time,
        node: usize,
        inside: SocketAddr,
        remote: SocketAddr,
    ) -> Outbound {
        let Some(&nat) = self.behind.get(&node) else {
            return Outbound::Public;
        };
        match self.nats[nat].outbound(now, inside, remote) {
            Some(source) => Outbound::Translated(source),
            None => {
                self.totals.dropped += 1;
                Outbound::Dropped
            }
        }
    }

    /// A datagram from `remote` reaches node `node`'s NAT on port `port` at `now`: whether its
    /// filter lets it through (a public node's datagrams always arrive).
    pub(crate) fn inbound(
        &mut self,
        now: Time,
        node: usize,
        port: u16,
        remote: SocketAddr,
    ) -> bool {
        let Some(&nat) = self.behind.get(&node) else {
            return true;
        };
        let passed = self.nats[nat].inbound(now, port, remote).is_some();
        if !passed {
            self.totals.dropped += 1;
        }
        passed
    }

    /// Node `node` added `id` to its routing table: counted if a public node took a private
    /// one.
    pub(crate) fn contact_added(&mut self, node: usize, id: &NodeId) {
        if !self.is_private(node) && self.private_ids.contains(id) {
            self.totals.private_in_public_tables += 1;
        }
    }

    /// Whether `id` is a private node's.
    pub(crate) fn is_private_id(&self, id: &NodeId) -> bool {
        self.private_ids.contains(id)
    }

    /// What the NATs did so far.
    pub(crate) fn totals(&self) -> NatTotals {
        self.totals
    }
}

/// The address `fd__:high:low::1` port 7400 of index `index`, in the unique-local prefix
/// `prefix`: each index a /48 of its own.
pub(crate) fn address(prefix: u16, index: usize) -> SocketAddr {
    let [a, b, c, d] = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
    let (high, low) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
    let ip = Ipv6Addr::new(prefix, high, low, 0, 0, 0, 0, 1);
    SocketAddr::new(ip.into(), 7400)
}

/// NAT `index`'s RNG seed in a run of seed `seed`.
fn nat_seed(seed: u64, index: usize) -> [u8; 32] {
    let mut input = b"cairn-sim nat".to_vec();
    input.extend_from_slice(&seed.to_be_bytes());
    input.extend_from_slice(&(index as u64).to_be_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(&Id::hash(&input).as_bytes()[..32]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Time {
        crate::EPOCH + Duration::from_secs(secs)
    }

    fn endpoint(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, last], port))
    }

    fn behind(mapping: Mapping) -> (Nat, SocketAddr) {
        let external = IpAddr::from([198, 51, 100, 1]);
        let inside = SocketAddr::from(([192, 0, 2, 10], 7400));
        (Nat::new(external, mapping, nat_seed(1, 0)), inside)
    }

    #[test]
    fn the_filter_drops_what_was_not_asked_for_and_passes_replies() {
        let (mut nat, inside) = behind(Mapping::Independent);
        let (peer, other) = (endpoint(1, 7400), endpoint(2, 7400));
        assert_eq!(nat.inbound(at(0), 7400, peer), None, "nothing sent yet");
        let source = nat.outbound(at(1), inside, peer);
        assert_eq!(source, Some(SocketAddr::new(nat.external(), 7400)));
        assert_eq!(nat.inbound(at(2), 7400, peer), Some(inside), "a reply");
        assert_eq!(nat.inbound(at(2), 7400, other), None, "another host");
        let same_host = endpoint(1, 7401);
        assert_eq!(nat.inbound(at(2), 7400, same_host), None, "another port");
        assert_eq!(
            nat.inbound(at(2), 7401, peer),
            None,
            "another external port"
        );
    }

    #[test]
    fn an_independent_mapping_keeps_one_port_for_every_destination() {
        let (mut nat, inside) = behind(Mapping::Independent);
        let first = nat.outbound(at(0), inside, endpoint(1, 7400));
        let second = nat.outbound(at(0), inside, endpoint(2, 9000));
        assert_eq!(first, second);
        assert_eq!(
            first.map(|s| s.port()),
            Some(inside.port()),
            "port-preserving"
        );
        // Port-dependent filtering still: the second peer's reply passes, a third's does not.
        assert_eq!(nat.inbound(at(1), 7400, endpoint(2, 9000)), Some(inside));
        assert_eq!(nat.inbound(at(1), 7400, endpoint(3, 7400)), None);
    }

    #[test]
    fn a_dependent_mapping_gives_each_destination_a_port_of_its_own() {
        let (mut nat, inside) = behind(Mapping::Dependent);
        let peers: Vec<SocketAddr> = (1..=20).map(|n| endpoint(n, 7400)).collect();
        let ports: Vec<u16> = peers
            .iter()
            .filter_map(|p| nat.outbound(at(0), inside, *p).map(|s| s.port()))
            .collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), peers.len(), "{ports:?}");
        assert!(ports.iter().all(|p| *p >= LOWEST_RANDOM_PORT));
        // The same destination keeps its port; each reply passes only on its own port.
        assert_eq!(
            nat.outbound(at(1), inside, peers[0]).map(|s| s.port()),
            Some(ports[0])
        );
        assert_eq!(nat.inbound(at(1), ports[0], peers[0]), Some(inside));
        assert_eq!(nat.inbound(at(1), ports[1], peers[0]), None);
        // Another NAT of the same run draws other ports; the same NAT again, the same ones.
        let (mut twin, _) = behind(Mapping::Dependent);
        assert_eq!(
            twin.outbound(at(0), inside, peers[0]).map(|s| s.port()),
            Some(ports[0])
        );
        let mut other = Nat::new(nat.external(), Mapping::Dependent, nat_seed(1, 1));
        let theirs: Vec<u16> = peers
            .iter()
            .filter_map(|p| other.outbound(at(0), inside, *p).map(|s| s.port()))
            .collect();
        assert_ne!(theirs, ports);
    }

    #[test]
    fn an_entry_lives_30_s_unreplied_and_120_s_once_replied() {
        let (mut nat, inside) = behind(Mapping::Independent);
        let (peer, late) = (endpoint(1, 7400), endpoint(2, 7400));
        nat.outbound(at(0), inside, peer);
        nat.outbound(at(0), inside, late);
        assert_eq!(nat.inbound(at(29), 7400, peer), Some(inside));
        assert_eq!(nat.inbound(at(30), 7400, late), None, "unreplied for 30 s");
        // Replied at 29 s: it lives until 149 s, and each datagram extends it.
        assert_eq!(nat.inbound(at(148), 7400, peer), Some(inside));
        assert_eq!(nat.inbound(at(268), 7400, peer), None);
    }

    #[test]
    fn a_dependent_mapping_rebinds_after_its_entry_dies() {
        let (mut nat, inside) = behind(Mapping::Dependent);
        let peer = endpoint(1, 7400);
        let before = nat.outbound(at(0), inside, peer);
        let after = nat.outbound(at(31), inside, peer);
        assert!(before.is_some() && after.is_some());
        assert_ne!(before, after, "a new port: the peer sees a new address");
        // An independent mapping comes back on the same port.
        let (mut keeps, inside) = behind(Mapping::Independent);
        assert_eq!(
            keeps.outbound(at(0), inside, peer),
            keeps.outbound(at(31), inside, peer)
        );
    }

    #[test]
    fn only_private_nodes_are_translated_and_counted() {
        let mut nats = Nats::new(1);
        let id = Id::hash(b"private");
        let own = nats.put_behind(3, id, Mapping::Independent);
        let peer = address(0xfd00, 1);
        assert_eq!(nats.outbound(at(0), 1, peer, own), Outbound::Public);
        let Outbound::Translated(source) = nats.outbound(at(0), 3, own, peer) else {
            panic!("a private node's datagram is translated");
        };
        assert_ne!(source, own);
        assert_eq!(nats.host_at(&source), Some(3));
        assert!(nats.inbound(at(1), 3, source.port(), peer));
        assert!(!nats.inbound(at(1), 3, source.port(), address(0xfd00, 2)));
        assert!(nats.inbound(at(1), 1, 7400, address(0xfd00, 2)), "public");
        nats.contact_added(1, &id);
        nats.contact_added(4, &Id::hash(b"public"));
        let totals = nats.totals();
        assert_eq!((totals.private, totals.dropped), (1, 1));
        assert_eq!(totals.private_in_public_tables, 1);
        assert!(!nats.announces(3) && nats.announces(1));
    }
}
