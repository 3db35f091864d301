//! A deterministic discrete-event simulator of cairn networks.
//!
//! [`Sim`] runs any number of [`cairn_core::Node`]s on a virtual clock. Messages are delivered
//! after a latency drawn from a seeded RNG: uniform, or from where the two nodes are
//! ([`Latency::Regions`]). With a [`Transport`], each node keeps a pool of connections as the
//! real driver does, and a request to a peer it has no open connection to first pays for one
//! (the TCP handshake, and the cairn handshake unless requests are pipelined behind `hello`).
//! A killed node's host is gone: its messages vanish, and its peers learn of its death by
//! timeouts. A stopped node's host is up: a new connection to it is refused after one round
//! trip. A lost message is retransmitted, as TCP would, after a retransmission timeout. In the
//! datagram mode ([`Transport::datagrams`]) each node runs the real datagram plane: requests
//! travel as datagrams, a new contact costs no connection, a lost datagram is lost and the
//! plane sends the request again. There is no socket and no thread; the same seed replays the
//! same run event for event.
//!
//! The loop is the one every cairn driver runs: feed one input into a node, drain its
//! `poll_transmit` and `poll_event`, re-arm its timer at `poll_timeout`.

#![deny(missing_docs)]

mod adversary;
pub mod churn;
mod command;
mod datagrams;
mod delivery;
mod disk;
mod latency;
mod nat;
pub mod partition;
pub mod plot;
pub mod scenario;
mod scheduler;
pub mod swarm;
mod transport;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cairn_core::datagram::{Plane, Simulated};
use cairn_core::{
    Config, Contact, Event, Id, Item, Key, MemoryStore, Node, NodeId, QueryId, Request, Requester,
    Response, StoreLimits, Time, WatchId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use command::{Command, Ticket};
pub use datagrams::DatagramTotals;
pub use delivery::NetworkFaults;
pub use disk::Durable;
use disk::{Disk, Held};
use latency::Place;
pub use latency::{Latency, REGION_RTT_MS, REGIONS, Region};
use nat::Nats;
pub use nat::{Mapping, NatTotals, REPLIED, UNREPLIED};
use scheduler::Scheduler;
use transport::Pool;
pub use transport::Transport;

enum Action {
    Deliver {
        to: usize,
        from: usize,
        id: u64,
        message: Delivery,
    },
    /// A connection for request `id` was refused.
    Refused {
        node: usize,
        id: u64,
    },
    Timer {
        node: usize,
    },
    /// A datagram from node `from` reaches node `to`'s host (or its NAT), sent from `source`
    /// (node `from`'s address, or its NAT's translation of it) to port `port`.
    Datagram {
        to: usize,
        from: usize,
        source: SocketAddr,
        port: u16,
        bytes: Vec<u8>,
    },
    /// Node `node`'s datagram plane's timer.
    PlaneTimer {
        node: usize,
    },
    Run {
        node: usize,
        command: Command,
        ticket: Ticket,
    },
    /// Node `node`'s store finishes the commits it has pending (in its `life`-th life).
    Flush {
        node: usize,
        life: u64,
    },
}

enum Delivery {
    Request(Request),
    Response(Response),
    /// A `notify` for the `listen` request with the action's id.
    Notify(Item),
}

struct SimNode<S> {
    node: Node<S>,
    contact: Contact,
    alive: bool,
    /// Whether the node's host is up (a stopped node's is; a killed node's is not).
    host_up: bool,
    /// Where it sits in the latency model.
    place: Place,
    /// Its open connections to peers (with a [`Transport`]).
    pool: Pool,
    /// Answers as an adversary instead of by the protocol ([`Sim::make_malicious`]).
    malicious: bool,
    /// The deadline the node's one timer is armed for.
    timer: Option<Time>,
    /// Its datagram plane (in the datagram mode), started at its first datagram; dropped when
    /// the node stops or dies, as its process's memory is.
    plane: Option<Plane<Simulated>>,
    /// The deadline the plane's timer is armed for.
    plane_timer: Option<Time>,
    /// How many planes it has started (each life's is seeded apart).
    lives: u64,
    /// How far ahead of the simulation's clock this node's clock runs.
    skew: Duration,
    /// Its store's commits, and the answers waiting on them.
    disk: Disk,
    /// The seeds of its last bootstrap, given again at each restart, as a real node's
    /// configured bootstrap addresses are.
    seeds: Vec<SocketAddr>,
}

/// The requests of every node, dead ones included: where a run's time went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestTotals {
    /// Requests the nodes sent.
    pub sent: u64,
    /// Requests that failed or timed out.
    pub failed: u64,
    /// Lookup requests that gave up their slot before their answer came (or never did).
    pub slow: u64,
}

/// A simulated network of nodes keeping items in stores of type `S`.
pub struct Sim<S = MemoryStore> {
    nodes: Vec<SimNode<S>>,
    by_addr: HashMap<SocketAddr, usize>,
    /// The virtual clock and what is due on it.
    scheduler: Scheduler<Action>,
    rng: StdRng,
    /// The run's seed (the datagram planes are seeded from it, apart from `rng`).
    seed: u64,
    latency: Latency,
    transport: Option<Transport>,
    connections_opened: u64,
    /// New connections whose handshake failed (another node than the one expected).
    handshakes_failed: u64,
    loss: f64,
    /// While the network is cut in two: each node's side (nodes added since are on side 0).
    sides: Option<Vec<bool>>,
    tickets: HashMap<(usize, QueryId), Ticket>,
    /// The contacts of the malicious nodes, which they hand out to each other's victims.
    adversaries: Vec<Contact>,
    outcomes: HashMap<Ticket, Event>,
    /// When each outcome arrived.
    finished: HashMap<Ticket, Time>,
    next_ticket: u64,
    delivered: u64,
    /// What each watch reported, when.
    watched: HashMap<(usize, WatchId), Vec<(Time, Item)>>,
    /// Each node by the id its datagram plane has (see `datagrams.rs`).
    plane_ids: HashMap<NodeId, usize>,
    /// The datagram counters of the network, and of the planes that are gone.
    datagrams: DatagramTotals,
    /// The order of the datagrams in flight on each path.
    paths: datagrams::Paths,
    /// Duplication, reordering and delay spikes on the network (none by default).
    faults: NetworkFaults,
    /// The NATs private nodes sit behind (none by default).
    nats: Nats,
}

/// The simulated time at which every run starts: 2026-01-01T00:00:00Z.
pub const EPOCH: Time = Time::from_secs(1_767_225_600);

impl Sim<MemoryStore> {
    /// An empty network of nodes with in-memory stores, whose randomness all comes from `seed`.
    pub fn new(seed: u64, latency: Latency) -> Self {
        Sim::with_stores(seed, latency)
    }

    /// Adds a node with id `id` and an in-memory store of `limits`, and returns its index.
    pub fn add_node(&mut self, id: NodeId, config: Config, limits: StoreLimits) -> usize {
        self.add_node_with(id, config, MemoryStore::new(limits))
    }
}

impl<S: Durable> Sim<S> {
    /// An empty network whose randomness all comes from `seed`, of nodes given their stores
    /// by [`Sim::add_node_with`].
    pub fn with_stores(seed: u64, latency: Latency) -> Self {
        Sim {
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            scheduler: Scheduler::new(EPOCH),
            rng: StdRng::seed_from_u64(seed),
            seed,
            latency,
            transport: None,
            connections_opened: 0,
            handshakes_failed: 0,
            loss: 0.0,
            sides: None,
            tickets: HashMap::new(),
            adversaries: Vec::new(),
            outcomes: HashMap::new(),
            finished: HashMap::new(),
            next_ticket: 0,
            delivered: 0,
            watched: HashMap::new(),
            plane_ids: HashMap::new(),
            datagrams: DatagramTotals::default(),
            paths: datagrams::Paths::new(EPOCH),
            faults: NetworkFaults::default(),
            nats: Nats::new(seed),
        }
    }

    /// Loses each message with probability `loss` (0 to 1). Without a [`Transport`] a lost
    /// message is gone; with one it arrives a retransmission timeout late, as over TCP; in the
    /// datagram mode a lost datagram is gone (the plane sends its request again).
    pub fn set_loss(&mut self, loss: f64) {
        self.loss = loss.clamp(0.0, 1.0);
    }

    /// Duplicates, reorders and delays messages as `faults` says (nothing by default).
    pub fn set_network_faults(&mut self, faults: NetworkFaults) {
        self.faults = faults;
    }

    /// Sets node `index`'s clock `skew` ahead of the simulation's (for nodes added already).
    pub fn set_skew(&mut self, index: usize, skew: Duration) {
        self.nodes[index].skew = skew;
    }

    /// Charges connections as `transport` says; `None` (the default) makes every request travel
    /// as if a connection were already open. [`Transport::datagrams`] sends requests over the
    /// nodes' datagram planes. Set it before the nodes start sending.
    pub fn set_transport(&mut self, transport: Option<Transport>) {
        self.transport = transport;
    }

    /// Connections opened so far (with a [`Transport`]).
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened
    }

    /// Connections opened whose handshake failed: the node at the address was not the one
    /// the dialer expected.
    pub fn handshakes_failed(&self) -> u64 {
        self.handshakes_failed
    }

    /// The requests of every node so far, dead ones included.
    pub fn request_totals(&self) -> RequestTotals {
        let mut totals = RequestTotals::default();
        for n in &self.nodes {
            let stats = n.node.stats();
            totals.sent += stats.requests_sent;
            totals.failed += stats.requests_failed;
            totals.slow += stats.requests_slow;
        }
        totals
    }

    /// The simulation's RNG, for scenarios that need randomness of the same seed.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// The virtual time.
    pub fn now(&self) -> Time {
        self.scheduler.now()
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// How many nodes exist, dead ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `index`'s state machine.
    pub fn node(&self, index: usize) -> &Node<S> {
        &self.nodes[index].node
    }

    /// Whether node `index` is alive.
    pub fn is_alive(&self, index: usize) -> bool {
        self.nodes[index].alive
    }

    /// Adds a node with id `id` keeping items in `store`, and returns its index. Its address
    /// is a label only: the simulator sends nothing anywhere.
    pub fn add_node_with(&mut self, id: NodeId, config: Config, store: S) -> usize {
        let index = self.nodes.len();
        // Each node a network of its own (an IPv6 /48 of the unique-local range), as nodes on
        // the internet mostly are, so that the routing table's diversity limits see a network
        // of many networks. A label only: nothing is ever sent.
        let addr = nat::address(0xfd00, index);
        self.by_addr.insert(addr, index);
        let node = Node::new(id, config, store);
        let place = self.latency.place(&mut self.rng);
        self.nodes.push(SimNode {
            node,
            contact: Contact::new(id, addr),
            alive: true,
            host_up: true,
            place,
            pool: Pool::new(self.now()),
            malicious: false,
            timer: None,
            plane: None,
            plane_timer: None,
            lives: 0,
            skew: Duration::ZERO,
            disk: Disk::default(),
            seeds: Vec::new(),
        });
        index
    }

    /// Puts node `index` behind a NAT of its own, mapping as `mapping` says (see `nat.rs`).
    /// Its own address becomes one no node can reach: its datagrams leave with the NAT's
    /// translated source, datagrams to the NAT's address pass only as replies, and a TCP
    /// connection to it is never answered. It runs as a client (it announces no address,
    /// so that no peer adds it to a routing table) unless [`Sim::set_private_announce`] says
    /// otherwise. Call it before the node sends anything.
    pub fn put_behind_nat(&mut self, index: usize, mapping: Mapping) {
        let node = &mut self.nodes[index];
        assert!(
            node.plane.is_none() && !self.nats.is_private(index),
            "node {index} has sent datagrams already, or is behind a NAT already"
        );
        self.by_addr.remove(&node.contact.addr);
        node.contact.addr = self.nats.put_behind(index, node.contact.id, mapping);
    }

    /// Makes private nodes announce themselves as public nodes do (`initial` flag `0x01` set,
    /// `hello.port` their port): what every node did before client mode, for comparison.
    /// Default `false`. Set it before the nodes start sending.
    pub fn set_private_announce(&mut self, announce: bool) {
        self.nats.set_announce(announce);
    }

    /// Makes private nodes' datagram planes drop a session after `idle` with no datagram in
    /// (`PlaneConfig::session_idle`; `None`, the default, keeps the plane's 300 s). A session
    /// that dies before its NAT entry is never used from a new port. Set it before the nodes
    /// start sending.
    pub fn set_private_session_idle(&mut self, idle: Option<Duration>) {
        self.nats.set_session_idle(idle);
    }

    /// Whether node `index` is behind a NAT.
    pub fn is_private(&self, index: usize) -> bool {
        self.nats.is_private(index)
    }

    /// The mapping of node `index`'s NAT, if it is behind one.
    pub fn nat_mapping(&self, index: usize) -> Option<Mapping> {
        self.nats.nat(index).map(nat::Nat::mapping)
    }

    /// What the NATs did so far, and how often a public node's routing table took a private
    /// node.
    pub fn nat_totals(&self) -> NatTotals {
        self.nats.totals()
    }

    /// How many private nodes the live public nodes' routing tables hold now (a scan of every
    /// table, to cross-check the count of additions in [`NatTotals`]).
    pub fn private_in_public_tables_now(&self) -> usize {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.alive && !self.nats.is_private(*i))
            .map(|(_, n)| {
                n.node
                    .routing_table()
                    .entries()
                    .filter(|e| self.nats.is_private_id(&e.contact.id))
                    .count()
            })
            .sum()
    }

    /// Turns node `index` into an adversary colluding with the others: it answers every
    /// `find_node`, and every `find_value` of a key it holds no copy of, with the malicious
    /// nodes closest to the target (trying to eclipse it); it serves the copies it held before
    /// it turned, stale once their items are updated; and it acknowledges every `store` while
    /// keeping nothing. It still answers pings, so it stays in routing tables.
    pub fn make_malicious(&mut self, index: usize) {
        if !self.nodes[index].malicious {
            self.nodes[index].malicious = true;
            self.adversaries.push(self.nodes[index].contact);
        }
    }

    /// Whether node `index` is an adversary.
    pub fn is_malicious(&self, index: usize) -> bool {
        self.nodes[index].malicious
    }

    /// Kills node `index` with its host: from now on it neither answers nor sends, and a
    /// connection to it is never answered either.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].alive = false;
        self.nodes[index].host_up = false;
        self.nodes[index].pool.clear();
        self.drop_plane(index);
        self.nodes[index].disk.stop();
        // Its subscribers hear nothing: a host that vanished sends no FIN.
        self.close_subscriptions(index, false);
    }

    /// Ends the subscriptions peers held at node `index` (its connections are gone); with
    /// `tell`, each subscriber learns after a one-way delay, as from a FIN.
    fn close_subscriptions(&mut self, index: usize, tell: bool) {
        let subscribers: Vec<(u64, u64)> = self.nodes[index].node.subscribers().collect();
        for (connection, listen) in subscribers {
            self.nodes[index].node.connection_closed(connection);
            let dialer = connection as usize;
            if tell && dialer < self.nodes.len() {
                let at = self.now() + self.base_latency(index, dialer);
                self.push(
                    at,
                    Action::Refused {
                        node: dialer,
                        id: listen,
                    },
                );
            }
        }
    }

    /// Stops node `index` while its host stays up: it neither answers nor sends, its
    /// connections close, and a new connection to it is refused after one round trip.
    pub fn stop(&mut self, index: usize) {
        self.nodes[index].alive = false;
        self.nodes[index].host_up = true;
        self.nodes[index].pool.clear();
        self.drop_plane(index);
        self.nodes[index].disk.stop();
        self.close_subscriptions(index, true);
    }

    /// Starts watching `key` on node `node` now ([`Node::watch`]); what it reports is kept
    /// for [`Sim::watched`].
    pub fn watch(&mut self, node: usize, key: Key) -> WatchId {
        let now = self.node_now(node);
        let watch = self.nodes[node].node.watch(now, key);
        self.watched.entry((node, watch)).or_default();
        self.drain(node);
        watch
    }

    /// What watch `watch` of node `node` has reported so far, with when.
    pub fn watched(&self, node: usize, watch: WatchId) -> &[(Time, Item)] {
        self.watched.get(&(node, watch)).map_or(&[], Vec::as_slice)
    }

    /// Node `index`'s region, an index into [`REGIONS`] (0 unless [`Latency::Regions`]).
    pub fn region(&self, index: usize) -> usize {
        self.nodes[index].place.region
    }

    /// Cuts the network in two: from now on nothing crosses between the nodes for which
    /// `side` is true and the others (nodes past its end, and nodes added later, are on the
    /// false side). A message in flight across the cut is lost, a new connection across it is
    /// never answered (as to a dead host), and open connections across it are dropped: to
    /// each side, the other has gone silent.
    pub fn partition(&mut self, side: Vec<bool>) {
        for from in 0..self.nodes.len() {
            let here = side.get(from).copied().unwrap_or(false);
            self.nodes[from]
                .pool
                .retain(|to| side.get(to).copied().unwrap_or(false) == here);
        }
        self.sides = Some(side);
    }

    /// Ends the partition: messages cross between the sides again.
    pub fn heal(&mut self) {
        self.sides = None;
    }

    /// Whether a partition separates `a` and `b` now.
    pub fn is_cut(&self, a: usize, b: usize) -> bool {
        self.sides.as_ref().is_some_and(|side| {
            side.get(a).copied().unwrap_or(false) != side.get(b).copied().unwrap_or(false)
        })
    }

    /// Brings node `index` back with the state it had when it died (its store and routing
    /// table), as a restarted node with a disk would. Requests it had in flight are lost.
    pub fn revive(&mut self, index: usize) {
        self.nodes[index].alive = true;
        self.nodes[index].host_up = true;
        self.nodes[index].timer = None;
        let now = self.node_now(index);
        self.nodes[index].node.handle_timeout(now);
        self.drain(index);
    }

    /// Whether node `index` holds a valid copy of `key` now.
    pub fn holds(&self, index: usize, key: &Key) -> bool {
        self.nodes[index]
            .node
            .store()
            .get(key, self.node_now(index))
            .is_ok_and(|item| item.is_some())
    }

    /// The indices of the `n` live nodes closest to `key`.
    pub fn closest_live(&self, key: &Key, n: usize) -> Vec<usize> {
        let mut live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive)
            .collect();
        live.sort_by_key(|i| self.nodes[*i].contact.id.distance(key));
        live.truncate(n);
        live
    }

    /// Schedules `command` on node `node` at `at` (or now, if that has passed).
    pub fn schedule(&mut self, at: Time, node: usize, command: Command) -> Ticket {
        let ticket = Ticket::new(self.next_ticket);
        self.next_ticket += 1;
        self.push(
            at.max(self.now()),
            Action::Run {
                node,
                command,
                ticket,
            },
        );
        ticket
    }

    /// The completion event of a command, once it has finished.
    pub fn outcome(&self, ticket: Ticket) -> Option<&Event> {
        self.outcomes.get(&ticket)
    }

    /// When a command's completion event arrived (on the simulation's clock).
    pub fn finished_at(&self, ticket: Ticket) -> Option<Time> {
        self.finished.get(&ticket).copied()
    }

    /// Records the outcome of `ticket`, arrived now.
    pub(crate) fn finish(&mut self, ticket: Ticket, event: Event) {
        let now = self.now();
        self.outcomes.insert(ticket, event);
        self.finished.insert(ticket, now);
    }

    /// Processes events until `done` says to stop or nothing is left. Returns whether `done`
    /// was met.
    pub fn run_until(&mut self, mut done: impl FnMut(&Sim<S>) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let Some(action) = self.scheduler.pop() else {
                return false;
            };
            self.apply(action);
        }
    }

    /// Runs until every ticket has an outcome. Returns whether they all finished.
    pub fn run_until_done(&mut self, tickets: &[Ticket]) -> bool {
        loop {
            let missing = tickets
                .iter()
                .filter(|t| !self.outcomes.contains_key(t))
                .count();
            if missing == 0 {
                return true;
            }
            // Outcomes only accumulate: wait until enough have arrived, then check again,
            // rather than rescanning every ticket after every event.
            let target = self.outcomes.len() + missing;
            if !self.run_until(|sim| sim.outcomes.len() >= target) {
                return tickets.iter().all(|t| self.outcomes.contains_key(t));
            }
        }
    }

    /// Advances the clock to `until`, processing everything due before it.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now() + duration;
        self.run_until(|sim| sim.scheduler.next_due().is_none_or(|at| at > until));
        self.scheduler.advance_to(until);
    }

    fn push(&mut self, at: Time, action: Action) {
        self.scheduler.push(at, action);
    }

    /// The one-way latency from `from` to `to` without jitter.
    fn base_latency(&self, from: usize, to: usize) -> Duration {
        let (a, b) = (self.nodes[from].place, self.nodes[to].place);
        self.latency.base(a, b)
    }

    /// The latency of one message from `from` to `to`.
    fn delay(&mut self, from: usize, to: usize) -> Duration {
        let (a, b) = (self.nodes[from].place, self.nodes[to].place);
        self.latency.draw(a, b, &mut self.rng)
    }

    /// The time on node `index`'s clock.
    pub(crate) fn node_now(&self, index: usize) -> Time {
        self.now() + self.nodes[index].skew
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Run {
                node,
                command,
                ticket,
            } => {
                if !self.nodes[node].alive {
                    return;
                }
                if let Some(query) = self.run_command(node, command) {
                    self.tickets.insert((node, query), ticket);
                }
                self.drain(node);
            }
            Action::Timer { node } => {
                let now = self.node_now(node);
                let sim_node = &mut self.nodes[node];
                if !sim_node.alive || sim_node.timer.is_none_or(|t| t > now) {
                    return;
                }
                sim_node.timer = None;
                sim_node.node.handle_timeout(now);
                self.drain(node);
            }
            Action::Datagram {
                to,
                from,
                source,
                port,
                bytes,
            } => self.on_datagram(to, (from, source), port, &bytes),
            Action::PlaneTimer { node } => self.on_plane_timer(node),
            Action::Flush { node, life } => self.flush(node, life),
            Action::Refused { node, id } => {
                if !self.nodes[node].alive {
                    return;
                }
                let now = self.node_now(node);
                self.nodes[node].node.handle_failure(now, id);
                self.drain(node);
            }
            Action::Deliver {
                to,
                from,
                id,
                message,
            } => {
                if !self.nodes[to].alive || self.is_cut(from, to) {
                    return;
                }
                self.delivered += 1;
                match message {
                    Delivery::Request(request) => self.on_request(to, from, id, request),
                    Delivery::Response(response) => {
                        let now = self.node_now(to);
                        let contact = self.nodes[from].contact;
                        self.nodes[to]
                            .node
                            .handle_response(now, contact, id, response);
                        self.drain(to);
                    }
                    Delivery::Notify(item) => {
                        let now = self.node_now(to);
                        let contact = self.nodes[from].contact;
                        self.nodes[to].node.handle_notify(now, contact, id, item);
                        self.drain(to);
                    }
                }
            }
        }
    }

    fn run_command(&mut self, node: usize, command: Command) -> Option<QueryId> {
        let now = self.node_now(node);
        let seeds: Vec<SocketAddr> = match &command {
            Command::Bootstrap(seeds) => {
                let seeds: Vec<SocketAddr> =
                    seeds.iter().map(|s| self.nodes[*s].contact.addr).collect();
                self.nodes[node].seeds.clone_from(&seeds);
                seeds
            }
            _ => Vec::new(),
        };
        command.start(&mut self.nodes[node].node, now, &seeds)
    }

    fn on_request(&mut self, to: usize, from: usize, id: u64, request: Request) {
        let contact = self.nodes[from].contact;
        // Seen from the other end, a private node's connection comes from its NAT, and a
        // client announces no port (`hello.port = 0`).
        let source = self
            .nats
            .nat(from)
            .map_or(contact.addr.ip(), nat::Nat::external);
        let requester = Requester {
            id: contact.id,
            addr: self
                .nats
                .announces(from)
                .then(|| SocketAddr::new(source, contact.addr.port())),
            verified: true,
            source,
            // One connection per pair of nodes: the dialer's index names it.
            connection: from as u64,
        };
        if self.nodes[to].malicious {
            let response = self.adversary_answer(to, &request);
            self.send(to, from, id, Delivery::Response(response));
            return;
        }
        let now = self.node_now(to);
        let answer = self.nodes[to]
            .node
            .handle_request(now, requester, id, request);
        match answer.commit {
            // A `stored` from a durable store goes out once its commit is.
            Some(commit) => self.nodes[to]
                .disk
                .hold(commit, Held::Stored { to: from, id }),
            None => self.send(to, from, id, Delivery::Response(answer.response)),
        }
        self.drain(to);
    }

    /// What adversary `index` answers `request` with.
    fn adversary_answer(&self, index: usize, request: &Request) -> Response {
        let held = match request {
            Request::FindValue { key } => self.nodes[index]
                .node
                .store()
                .get(key, self.node_now(index))
                .ok()
                .flatten(),
            _ => None,
        };
        adversary::answer(&self.adversaries, held, request)
    }

    pub(crate) fn send(&mut self, from: usize, to: usize, id: u64, message: Delivery) {
        self.send_after(from, to, id, message, Duration::ZERO);
    }

    /// Sends a message that leaves `setup` from now (a connection being opened first).
    fn send_after(&mut self, from: usize, to: usize, id: u64, message: Delivery, setup: Duration) {
        let delay = self.delay(from, to);
        // TCP hides duplicates and reordering; only a spike of delay reaches the message.
        let mut delay = self.faults.spiked(delay, &mut self.rng);
        if self.loss > 0.0 && self.rng.random_bool(self.loss) {
            match self.transport {
                None => return,
                Some(t) => delay += t.resend_after(self.base_latency(from, to) * 2),
            }
        }
        let at = self.now() + setup + delay;
        self.push(
            at,
            Action::Deliver {
                to,
                from,
                id,
                message,
            },
        );
    }

    /// Sends request `id` from `from` to node `to` over a pooled connection, or over a new one
    /// once it is open and its handshake done; a stopped node's host refuses
    /// the connection, a killed one's never answers, and a handshake that finds another node
    /// than `expected` (an id as the handshake sees it: the hash of a public key) fails the
    /// request when `welcome` comes back.
    fn send_request(
        &mut self,
        (from, to): (usize, usize),
        (id, request): (u64, Request),
        expected: Option<NodeId>,
    ) {
        let Some(transport) = self.transport else {
            self.send(from, to, id, Delivery::Request(request));
            return;
        };
        let now = self.now();
        self.nodes[from].pool.prune(now, transport.idle);
        let pooled = self.nodes[from].pool.is_open(to, now, transport.idle);
        if pooled && self.nodes[to].alive && !self.is_cut(from, to) {
            self.nodes[from].pool.touch(to, now);
            self.send(from, to, id, Delivery::Request(request));
            return;
        }
        self.nodes[from].pool.remove(to);
        let round_trip = self.base_latency(from, to) * 2;
        if self.is_cut(from, to) {
            // Nothing comes back across a cut: the connection is never answered.
            return;
        }
        if !self.nodes[to].alive {
            if self.nodes[to].host_up {
                self.push(now + round_trip, Action::Refused { node: from, id });
            }
            return;
        }
        self.connections_opened += 1;
        let (dialer, listener) = (&self.nodes[from].contact, &self.nodes[to].contact);
        if !transport::handshake(dialer, listener, expected, (now, self.connections_opened)) {
            // The dialer finds out when `welcome` is back: TCP's round trip, then hello's.
            self.handshakes_failed += 1;
            self.push(now + round_trip * 2, Action::Refused { node: from, id });
            return;
        }
        self.nodes[from].pool.open(to, now, transport.pool);
        let setup = transport.setup(round_trip);
        self.send_after(from, to, id, Delivery::Request(request), setup);
    }

    /// Drains a node's outputs after an input, as a driver would (and, in the datagram mode,
    /// its plane's, until neither has anything left).
    fn drain(&mut self, index: usize) {
        self.drain_node(index);
        if self.datagram_mode() {
            while self.drain_plane(index) {
                self.drain_node(index);
            }
            self.arm_plane_timer(index);
        }
        self.schedule_flush(index);
        let next = self.nodes[index].node.poll_timeout();
        if next.is_some() && next != self.nodes[index].timer {
            self.nodes[index].timer = next;
            if let Some(at) = next {
                let at = at - self.nodes[index].skew;
                self.push(at, Action::Timer { node: index });
            }
        }
    }

    /// Moves a node's notifications, requests and events where they go.
    fn drain_node(&mut self, index: usize) {
        while let Some(n) = self.nodes[index].node.poll_notification() {
            let dialer = n.connection as usize;
            match n.commit {
                // A copy goes out once it is durable.
                Some(commit) => self.nodes[index].disk.hold(
                    commit,
                    Held::Notify {
                        to: dialer,
                        id: n.id,
                        item: n.item,
                    },
                ),
                None => self.send(index, dialer, n.id, Delivery::Notify(n.item)),
            }
        }
        let datagrams = self.datagram_mode();
        while let Some(transmit) = self.nodes[index].node.poll_transmit() {
            if datagrams {
                self.send_over_plane(index, transmit);
            } else if let Some(&target) = self.by_addr.get(&transmit.to.addr) {
                // An address nobody has is a host that never answers: the request times out.
                let expected = transmit.to.id.as_ref().map(datagrams::plane_id);
                let request = (transmit.id, transmit.request);
                self.send_request((index, target), request, expected);
            }
        }
        let now = self.node_now(index);
        while let Some(id) = self.nodes[index].node.poll_cancelled() {
            // A plane not started has nothing to cancel.
            if let Some(plane) = self.nodes[index].plane.as_mut() {
                plane.cancel(now, id);
            }
        }
        while let Some(event) = self.nodes[index].node.poll_event() {
            if let Event::ContactAdded(contact) = &event {
                self.nats.contact_added(index, &contact.id);
                continue;
            }
            if let Event::WatchUpdate { watch, item } = event {
                let now = self.now();
                self.watched
                    .entry((index, watch))
                    .or_default()
                    .push((now, item));
                continue;
            }
            let Some(query) = event.query() else {
                continue;
            };
            if let Some(ticket) = self.tickets.remove(&(index, query)) {
                match &event {
                    // A put is done once its local copy is durable.
                    Event::PutDone {
                        commit: Some(commit),
                        ..
                    } => {
                        let commit = *commit;
                        self.nodes[index]
                            .disk
                            .hold(commit, Held::Put { ticket, event });
                    }
                    _ => self.finish(ticket, event),
                }
            }
        }
    }

    /// A random id from the simulation's RNG.
    pub fn random_id(&mut self) -> Id {
        let mut bytes = [0u8; 64];
        self.rng.fill(&mut bytes[..]);
        Id::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dial to a node's address expecting another node: the handshake fails, the dialer
    /// hears so when `welcome` is back (two round trips), and no connection stays open.
    #[test]
    fn a_connection_that_meets_another_node_than_expected_fails_at_welcome() {
        let one_way = Duration::from_millis(10);
        let mut sim = Sim::new(1, Latency::Fixed(one_way));
        sim.set_transport(Some(Transport::default()));
        for n in 0..3u8 {
            sim.add_node(Id::hash(&[n]), Config::default(), StoreLimits::default());
        }
        let (to, other) = (sim.nodes[1].contact, sim.nodes[2].contact);
        let start = sim.now();
        let expected = Some(datagrams::plane_id(&other.id));
        sim.send_request((0, 1), (7, Request::Ping), expected);
        assert_eq!(sim.handshakes_failed(), 1);
        assert_eq!(sim.connections_opened(), 1);
        assert!(!sim.nodes[0].pool.is_open(1, start, Duration::from_secs(60)));
        let mut refused_at = None;
        while let Some(action) = sim.scheduler.pop() {
            if let Action::Refused { node: 0, id: 7 } = action {
                refused_at = Some(sim.scheduler.now());
                break;
            }
        }
        assert_eq!(refused_at, Some(start + one_way * 4));

        // The node it expected is the one there: the request goes out after TCP's round trip.
        let expected = Some(datagrams::plane_id(&to.id));
        sim.send_request((0, 1), (8, Request::Ping), expected);
        assert_eq!(sim.handshakes_failed(), 1);
        assert!(sim.nodes[0].pool.is_open(1, start, Duration::from_secs(60)));
    }
}
