//! The datagram mode of the transport model ([`crate::Transport::datagrams`]): each node's
//! requests go through its own [`Plane`], and the plane's datagrams travel between nodes as
//! bytes, each after one one-way delay of the latency model.
//!
//! What the network does to a datagram, and nothing more: the sim's loss drops it (there is no
//! TCP under it to send it again; the plane's own retransmission does), a partition drops it,
//! and a node that is not running drops it, whether its host is gone or up (no ICMP is
//! modelled, so a stopped node looks like a killed one to a datagram). What the plane hands
//! back to TCP ([`PlaneEvent::Fallback`]) pays for connections as the TCP mode does.
//!
//! Implementation notes:
//! - The planes use [`Simulated`] primitives: the real sizes, none of the CPU cost.
//! - A plane knows its peers by the id of their public key, while the simulator's nodes have
//!   any ids their callers chose. Each node's plane signs with the first half of its node id
//!   as public key, and ids are translated at the border: node ids to plane ids on the way
//!   into the plane (the id a request expects), plane ids to node ids on the way out (who
//!   asked, who answered). The translation is one-to-one, so the plane's check that the
//!   expected node answered means what it means on a real network.
//! - Datagrams between two nodes arrive in the order sent ([`Paths`]); loss is the only
//!   disorder modelled.
//! - A node that stops or dies loses its plane with its process (its sessions were in
//!   memory); it gets a fresh one, seeded anew, when it comes back. Its peers' sessions to it
//!   are then unknown to it, and the plane's `unknown` reply makes them open new ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cairn_core::datagram::{Plane, PlaneConfig, PlaneEvent, PlaneStats, Simulated};
use cairn_core::{Contact, Id, NetworkName, NodeId, Peer, Requester, Time, Transmit};
use rand::Rng;
use serde::Serialize;

use crate::disk::Held;
use crate::nat::Outbound;
use crate::{Action, Durable, Sim};

/// What the datagram planes did in a whole run, summed over every node (planes lost when
/// their node stopped or died included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DatagramTotals {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams the network lost (the sim's loss, a partition, a node not running).
    pub lost: u64,
    /// Sessions opened (`initial`s accepted).
    pub sessions: u64,
    /// Requests sent again after their retransmission timeout.
    pub retransmits: u64,
    /// Repeated requests answered from the answers kept.
    pub duplicates: u64,
    /// Requests handed to TCP (`listen`, items too large, peers that never answered).
    pub fallbacks: u64,
    /// Requests the node stopped waiting for while the plane still tried them: sent no more,
    /// never handed to TCP.
    pub cancelled: u64,
    /// Datagrams held back by the 3x amplification limit.
    pub amplification_limited: u64,
    /// Datagrams a NAT dropped (its filter found no entry for them, or it had no port left).
    pub nat_dropped: u64,
}

impl DatagramTotals {
    /// Adds one plane's counters.
    fn add(&mut self, stats: &PlaneStats) {
        self.sessions += stats.sessions_initiated;
        self.retransmits += stats.retransmits;
        self.duplicates += stats.duplicates;
        self.fallbacks += stats.fallbacks;
        self.cancelled += stats.cancelled;
        self.amplification_limited += stats.amplification_limited;
    }
}

/// The last arrival on each directed path that has had datagrams lately: datagrams one node
/// sends another arrive in the order sent, as on one network path. (The latency model draws
/// its jitter per message; without this, an answer's parts sent back to back would overtake
/// each other far more often than on a real path.)
pub(crate) struct Paths {
    last: HashMap<(usize, usize), Time>,
    /// When arrivals already past were last forgotten.
    pruned: Time,
}

/// How often the arrivals already past are forgotten.
const PRUNE_PATHS: Duration = Duration::from_secs(5);

impl Paths {
    /// No datagram in flight, as of `now`.
    pub(crate) fn new(now: Time) -> Self {
        Paths {
            last: HashMap::new(),
            pruned: now,
        }
    }

    /// When a datagram from `from` to `to`, due at `due`, arrives: no earlier than the one
    /// sent before it on the same path.
    fn arrival(&mut self, from: usize, to: usize, due: Time, now: Time) -> Time {
        if now.since(self.pruned) >= PRUNE_PATHS {
            self.last.retain(|_, at| *at > now);
            self.pruned = now;
        }
        let last = self.last.entry((from, to)).or_insert(due);
        *last = due.max(*last);
        *last
    }
}

/// The public key node `id`'s plane signs with: the first half of the id (ids are random or
/// hashes, so halves are as distinct as the ids).
pub(crate) fn public_key(id: &NodeId) -> [u8; 32] {
    let mut key = [0; 32];
    key.copy_from_slice(&id.as_bytes()[..32]);
    key
}

/// The id node `id` has on the datagram plane.
pub(crate) fn plane_id(id: &NodeId) -> NodeId {
    NodeId::of_public_key(&public_key(id))
}

/// A new plane for node `index` (id `id`) in its `life`-th life, announcing its address or
/// not. Seeded by the run's seed, the node and its life, never by the sim's RNG, so that
/// starting a plane changes no other draw.
fn start_plane(
    seed: u64,
    (index, life): (usize, u64),
    id: &NodeId,
    (announce, session_idle): (bool, Option<Duration>),
    now: Time,
) -> Plane<Simulated> {
    let mut input = seed.to_be_bytes().to_vec();
    input.extend_from_slice(&(index as u64).to_be_bytes());
    input.extend_from_slice(&life.to_be_bytes());
    let mut plane_seed = [0; 32];
    plane_seed.copy_from_slice(&Id::hash(&input).as_bytes()[..32]);
    let default = PlaneConfig::new(NetworkName::default());
    let config = PlaneConfig {
        announce,
        session_idle: session_idle.unwrap_or(default.session_idle),
        ..default
    };
    Plane::new(Simulated::new(public_key(id)), config, plane_seed, now)
}

impl<S: Durable> Sim<S> {
    /// Whether requests go over datagrams.
    pub(crate) fn datagram_mode(&self) -> bool {
        self.transport.is_some_and(|t| t.datagrams)
    }

    /// What the datagram planes did so far.
    pub fn datagram_totals(&self) -> DatagramTotals {
        let mut totals = self.datagrams;
        totals.nat_dropped = self.nats.totals().dropped;
        for plane in self.nodes.iter().filter_map(|n| n.plane.as_ref()) {
            totals.add(&plane.stats());
        }
        totals
    }

    /// Node `index`'s plane, started now if it has none.
    pub(crate) fn plane(&mut self, index: usize) -> &mut Plane<Simulated> {
        let (seed, now) = (self.seed, self.node_now(index));
        let settings = (self.nats.announces(index), self.nats.session_idle(index));
        let node = &mut self.nodes[index];
        if node.plane.is_none() {
            node.lives += 1;
            self.plane_ids.insert(plane_id(&node.contact.id), index);
        }
        let (id, lives) = (node.contact.id, node.lives);
        node.plane
            .get_or_insert_with(|| start_plane(seed, (index, lives), &id, settings, now))
    }

    /// Node `index` stopped or died: its plane goes with its process.
    pub(crate) fn drop_plane(&mut self, index: usize) {
        if let Some(plane) = self.nodes[index].plane.take() {
            self.datagrams.add(&plane.stats());
        }
        self.nodes[index].plane_timer = None;
    }

    /// Hands node `index`'s request to its plane.
    pub(crate) fn send_over_plane(&mut self, index: usize, transmit: Transmit) {
        let to = Peer {
            id: transmit.to.id.as_ref().map(plane_id),
            addr: transmit.to.addr,
        };
        let now = self.node_now(index);
        self.plane(index).send(now, Transmit { to, ..transmit });
    }

    /// Moves what node `index`'s plane produced: its datagrams onto the network, its events
    /// into the node. Returns whether the node was fed anything (and may have output more).
    pub(crate) fn drain_plane(&mut self, index: usize) -> bool {
        let Some(plane) = self.nodes[index].plane.as_mut() else {
            return false;
        };
        let mut datagrams = Vec::new();
        while let Some(datagram) = plane.poll_datagram() {
            datagrams.push(datagram);
        }
        let mut events = Vec::new();
        while let Some(event) = plane.poll_event() {
            events.push(event);
        }
        for (to, bytes) in datagrams {
            self.send_datagram(index, to, bytes);
        }
        let fed = !events.is_empty();
        for event in events {
            self.on_plane_event(index, event);
        }
        fed
    }

    /// Re-arms node `index`'s plane timer at the plane's deadline.
    pub(crate) fn arm_plane_timer(&mut self, index: usize) {
        let next = self.nodes[index]
            .plane
            .as_ref()
            .and_then(Plane::poll_timeout);
        if next.is_some() && next != self.nodes[index].plane_timer {
            self.nodes[index].plane_timer = next;
            if let Some(at) = next {
                let at = at - self.nodes[index].skew;
                self.push(at, Action::PlaneTimer { node: index });
            }
        }
    }

    /// Node `index`'s plane timer is due.
    pub(crate) fn on_plane_timer(&mut self, index: usize) {
        let now = self.node_now(index);
        let node = &mut self.nodes[index];
        if !node.alive || node.plane_timer.is_none_or(|t| t > now) {
            return;
        }
        node.plane_timer = None;
        if let Some(plane) = node.plane.as_mut() {
            plane.handle_timeout(now);
        }
        self.drain(index);
    }

    /// Puts a datagram from node `from` on the network to `to`: through its NAT first if it
    /// is behind one, and to the node behind the NAT if `to` is a NAT's address.
    fn send_datagram(&mut self, from: usize, to: SocketAddr, bytes: Vec<u8>) {
        self.datagrams.sent += 1;
        let own = self.nodes[from].contact.addr;
        let source = match self.nats.outbound(self.now(), from, own, to) {
            Outbound::Public => own,
            Outbound::Translated(source) => source,
            Outbound::Dropped => return,
        };
        let port = to.port();
        // An address nobody has is a host that never answers.
        let Some(to) = self
            .by_addr
            .get(&to)
            .copied()
            .or_else(|| self.nats.host_at(&to))
        else {
            self.datagrams.lost += 1;
            return;
        };
        let delay = self.delay(from, to);
        if self.loss > 0.0 && self.rng.random_bool(self.loss) {
            self.datagrams.lost += 1;
            return;
        }
        let now = self.now();
        let (delay, in_order) = self.faults.disturb(delay, &mut self.rng);
        let at = if in_order {
            self.paths.arrival(from, to, now + delay, now)
        } else {
            now + delay
        };
        if let Some(again) = self.faults.duplicate(delay, &mut self.rng) {
            let copy = bytes.clone();
            self.push(
                now + again,
                Action::Datagram {
                    to,
                    from,
                    source,
                    port,
                    bytes: copy,
                },
            );
        }
        self.push(
            at,
            Action::Datagram {
                to,
                from,
                source,
                port,
                bytes,
            },
        );
    }

    /// A datagram from node `from`, sent from `source`, reaches node `to`'s host on `port`
    /// (through its NAT's filter first, if it is behind one).
    pub(crate) fn on_datagram(
        &mut self,
        to: usize,
        (from, source): (usize, SocketAddr),
        port: u16,
        bytes: &[u8],
    ) {
        if self.is_cut(from, to) {
            self.datagrams.lost += 1;
            return;
        }
        // The NAT filters whether or not its node runs.
        if !self.nats.inbound(self.now(), to, port, source) {
            return;
        }
        if !self.nodes[to].alive {
            self.datagrams.lost += 1;
            return;
        }
        self.delivered += 1;
        let now = self.node_now(to);
        self.plane(to).handle_datagram(now, source, bytes);
        self.drain(to);
    }

    /// Feeds one of node `index`'s plane events into the node.
    fn on_plane_event(&mut self, index: usize, event: PlaneEvent) {
        let now = self.node_now(index);
        match event {
            PlaneEvent::Request {
                reply,
                from,
                request,
                ..
            } => {
                let Some(from) = self.requester(from) else {
                    return;
                };
                let response = if self.nodes[index].malicious {
                    self.adversary_answer(index, &request)
                } else {
                    let id = reply.id;
                    let answer = self.nodes[index]
                        .node
                        .handle_request(now, from, id, request);
                    if let Some(commit) = answer.commit {
                        // A `stored` from a durable store goes out once its commit is.
                        self.nodes[index]
                            .disk
                            .hold(commit, Held::Datagram { reply });
                        return;
                    }
                    answer.response
                };
                self.plane(index).answer(now, reply, response);
            }
            PlaneEvent::Response {
                from, id, response, ..
            } => {
                if let Some(&peer) = self.plane_ids.get(&from.id) {
                    let contact = Contact::new(self.nodes[peer].contact.id, from.addr);
                    self.nodes[index]
                        .node
                        .handle_response(now, contact, id, response);
                }
            }
            PlaneEvent::Failed { id, .. } => self.nodes[index].node.handle_failure(now, id),
            PlaneEvent::Fallback(transmit) => {
                // The TCP path finds the node by its address; a new connection's handshake
                // then checks it is the one expected (the id is the plane's already).
                if let Some(&target) = self.by_addr.get(&transmit.to.addr) {
                    let request = (transmit.id, transmit.request);
                    self.send_request((index, target), request, transmit.to.id);
                }
            }
            PlaneEvent::Verified(from) => {
                if let Some(from) = self.requester(from) {
                    self.nodes[index].node.handle_verified(now, from);
                }
            }
            // Votes on a node's address need NATs to say anything; the model has none yet.
            PlaneEvent::Observed { .. } => {}
            // The model's nodes run no reachability checks (`start_reach_checks` is never
            // called), so no peer asks `reach` and no probe arrives: docs/simulation.md.
            PlaneEvent::Reach { .. } | PlaneEvent::Probe { .. } => {}
            // Nor keep rendezvous points (they start with the checks): nobody registers or
            // asks an introduction.
            PlaneEvent::Rendezvous { .. } => {}
        }
    }

    /// A requester as the plane names it, with its node id instead of its plane id.
    fn requester(&self, from: Requester) -> Option<Requester> {
        let peer = *self.plane_ids.get(&from.id)?;
        Some(Requester {
            id: self.nodes[peer].contact.id,
            ..from
        })
    }
}
