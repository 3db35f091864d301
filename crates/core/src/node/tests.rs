//! Node state machine tests, stepping a handful of nodes and the clock by hand.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;

use super::*;
use crate::id::Id;
use crate::item::{ImmutableItem, SignedItem};
use crate::message::{ErrorCode, ErrorReply};
use crate::store::{MemoryStore, StoreLimits};

const T0: Time = Time::from_secs(1_800_000_000);

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn node_id(n: u8) -> NodeId {
    NodeId::of_public_key(&key(n).verifying_key().to_bytes())
}

/// Node `n`'s address: a host in a /24 of its own, as on the internet.
fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, n, 0, 1], 7400))
}

fn contact(n: u8) -> Contact {
    Contact::new(node_id(n), addr(n))
}

fn signed(n: u8, name: &str, value: &'static [u8], seq: u64) -> Item {
    SignedItem::sign(&key(n), name, Bytes::from_static(value), seq, 0)
        .expect("valid")
        .into()
}

/// Nodes that deliver every message at once, in order; `down` nodes never answer.
struct Net {
    nodes: HashMap<SocketAddr, Node<MemoryStore>>,
    down: Vec<SocketAddr>,
    now: Time,
    events: Vec<(SocketAddr, Event)>,
}

impl Net {
    fn new(count: u8) -> Self {
        Self::with_config(count, Config::default())
    }

    fn with_config(count: u8, config: Config) -> Self {
        let nodes = (1..=count)
            .map(|n| {
                (
                    addr(n),
                    Node::new(node_id(n), config.clone(), MemoryStore::default()),
                )
            })
            .collect();
        Net {
            nodes,
            down: Vec::new(),
            now: T0,
            events: Vec::new(),
        }
    }

    fn node(&mut self, n: u8) -> &mut Node<MemoryStore> {
        self.nodes.get_mut(&addr(n)).expect("node exists")
    }

    /// Delivers everything outstanding, answering requests synchronously.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            let addrs: Vec<SocketAddr> = self.nodes.keys().copied().collect();
            for from in addrs {
                while let Some(t) = self.nodes.get_mut(&from).and_then(Node::poll_transmit) {
                    moved = true;
                    if self.down.contains(&t.to.addr) {
                        continue;
                    }
                    let sender = self.nodes[&from].id;
                    let requester = Requester {
                        id: sender,
                        addr: Some(from),
                        verified: true,
                        source: std::net::IpAddr::from([127, 0, 0, 1]),
                    };
                    let Some(target) = self.nodes.get_mut(&t.to.addr) else {
                        continue;
                    };
                    let answer = target
                        .handle_request(self.now, requester, t.request)
                        .response;
                    let from_contact = Contact::new(target.id, t.to.addr);
                    let now = self.now;
                    if let Some(sender) = self.nodes.get_mut(&from) {
                        sender.handle_response(now, from_contact, t.id, answer);
                    }
                }
                while let Some(e) = self.nodes.get_mut(&from).and_then(Node::poll_event) {
                    self.events.push((from, e));
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances the clock from timeout to timeout until no command or request is running.
    fn run_timers(&mut self) {
        self.settle();
        while self
            .nodes
            .values()
            .any(|n| n.running_queries() > 0 || n.pending_requests() > 0)
        {
            let Some(next) = self.nodes.values().filter_map(Node::poll_timeout).min() else {
                return;
            };
            self.now = self.now.max(next);
            for node in self.nodes.values_mut() {
                node.handle_timeout(self.now);
            }
            self.settle();
        }
    }

    fn join_all(&mut self) {
        let count = self.nodes.len() as u8;
        for n in 2..=count {
            let now = self.now;
            let _ = self.node(n).bootstrap(now, &[addr(1)]);
            self.settle();
        }
    }

    fn done(&self, at: u8, query: QueryId) -> Option<&Event> {
        self.events
            .iter()
            .find(|(a, e)| *a == addr(at) && e.query() == Some(query))
            .map(|(_, e)| e)
    }

    fn get(&mut self, at: u8, key: Key) -> Result<Item, GetError> {
        let now = self.now;
        let query = self.node(at).get(now, key);
        self.run_timers();
        match self.done(at, query) {
            Some(Event::GetDone { result, .. }) => result.clone(),
            other => panic!("get did not finish: {other:?}"),
        }
    }

    fn put(&mut self, at: u8, item: Item) -> Result<usize, PutError> {
        let now = self.now;
        let query = self.node(at).put(now, item);
        self.run_timers();
        match self.done(at, query) {
            Some(Event::PutDone { result, .. }) => result.clone(),
            other => panic!("put did not finish: {other:?}"),
        }
    }
}

#[test]
fn a_lone_node_puts_and_gets_from_its_own_store() {
    let mut net = Net::new(1);
    let item = signed(1, "solo", b"v", 1);
    assert_eq!(net.put(1, item.clone()), Ok(1));
    assert_eq!(net.get(1, *item.key()), Ok(item));
    let missing = Id::hash(b"nothing");
    assert_eq!(
        net.get(1, missing),
        Err(GetError::NotFound {
            key: missing,
            asked: 0
        })
    );
}

#[test]
fn bootstrap_fills_tables_and_items_are_found_from_other_nodes() {
    let mut net = Net::new(12);
    net.join_all();
    for n in 1..=12 {
        assert!(
            net.node(n).routing_table().len() >= 5,
            "node {n} knows too few peers"
        );
    }
    let signed_item = signed(3, "doc", b"one", 1);
    assert_eq!(
        net.put(3, signed_item.clone()),
        Ok(12),
        "every node of 12 is among k = 20"
    );
    let blob: Item = ImmutableItem::new(Bytes::from_static(b"blob")).into();
    assert_eq!(net.put(5, blob.clone()), Ok(12));
    assert_eq!(net.get(9, *signed_item.key()), Ok(signed_item.clone()));
    assert_eq!(net.get(10, *blob.key()), Ok(blob));

    // An update with a higher seq is what a later get returns.
    let update = signed(3, "doc", b"two", 2);
    assert_eq!(net.put(3, update.clone()), Ok(12));
    assert_eq!(net.get(11, *signed_item.key()), Ok(update));
}

#[test]
fn a_get_returns_the_highest_seq_and_writes_it_back() {
    // A quorum above the network's size makes the get ask every node.
    let quorum = std::num::NonZeroUsize::new(10).expect("nonzero");
    let config = Config {
        get_quorum: quorum,
        ..Config::default()
    };
    let mut net = Net::with_config(6, config);
    net.join_all();
    let old = signed(2, "doc", b"old", 1);
    let new = signed(2, "doc", b"new", 2);
    let now = net.now;
    for n in 1..=6 {
        let item = if n <= 4 { old.clone() } else { new.clone() };
        // Planted through a peer's `store`, as a stale replica would be.
        let planter = Requester {
            id: node_id(99),
            addr: None,
            verified: false,
            source: std::net::IpAddr::from([127, 0, 0, 1]),
        };
        let answer = net
            .node(n)
            .handle_request(now, planter, Request::Store { item });
        assert_eq!(answer.response, Response::Stored);
    }
    assert_eq!(net.get(1, *old.key()), Ok(new.clone()));
    net.settle();
    let now = net.now;
    for n in 2..=6 {
        assert_eq!(
            net.node(n).store().get(old.key(), now),
            Some(new.clone()),
            "node {n} was written back"
        );
    }
}

#[test]
fn store_refusals_carry_the_right_codes() {
    let mut node = Node::new(
        node_id(1),
        Config::default(),
        MemoryStore::new(StoreLimits {
            max_items: 2,
            max_bytes: 1 << 20,
            ..StoreLimits::default()
        }),
    );
    let from = Requester {
        id: node_id(2),
        addr: None,
        verified: false,
        source: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let store = |node: &mut Node<MemoryStore>, item: Item| match node
        .handle_request(T0, from, Request::Store { item })
        .response
    {
        Response::Stored => None,
        Response::Error(ErrorReply { code, .. }) => Some(code),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(store(&mut node, signed(2, "a", b"x", 5)), None);
    assert_eq!(
        store(&mut node, signed(2, "a", b"x", 4)),
        Some(ErrorCode::CONFLICT),
        "stale"
    );
    assert_eq!(
        store(&mut node, signed(2, "a", b"y", 5)),
        Some(ErrorCode::CONFLICT),
        "conflict"
    );
    let expired: Item = SignedItem::sign(&key(2), "b", Bytes::new(), 1, T0.as_secs() - 1)
        .expect("valid")
        .into();
    assert_eq!(store(&mut node, expired), Some(ErrorCode::BAD_REQUEST));
    let big: Item = ImmutableItem::new(Bytes::from(vec![0; 65_537])).into();
    assert_eq!(store(&mut node, big), Some(ErrorCode::TOO_LARGE));
    let fits: Item = ImmutableItem::new(Bytes::from(vec![0; 65_536])).into();
    assert_eq!(store(&mut node, fits), None);
    assert_eq!(
        store(&mut node, signed(2, "c", b"z", 1)),
        Some(ErrorCode::OVER_LIMIT),
        "full"
    );
    // A full node still serves what it holds.
    let key_a = *signed(2, "a", b"x", 5).key();
    assert!(matches!(
        node.handle_request(T0, from, Request::FindValue { key: key_a })
            .response,
        Response::Value(_)
    ));
    // An unverified requester does not enter the routing table.
    assert!(node.routing_table().is_empty());
}

#[test]
fn find_node_never_returns_the_requester() {
    let mut net = Net::new(5);
    net.join_all();
    let from = Requester {
        id: node_id(2),
        addr: Some(addr(2)),
        verified: true,
        source: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let response = net
        .node(1)
        .handle_request(T0, from, Request::FindNode { target: node_id(2) })
        .response;
    let Response::Nodes(nodes) = response else {
        panic!("expected nodes")
    };
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|c| c.id != node_id(2)));
    let target = node_id(2);
    assert!(
        nodes
            .windows(2)
            .all(|w| w[0].id.distance(&target) < w[1].id.distance(&target))
    );
}

#[test]
fn silent_peers_time_out_and_are_dropped_after_max_failures() {
    let mut net = Net::new(4);
    net.join_all();
    net.down.push(addr(4));
    let gone = node_id(4);
    assert!(net.node(1).routing_table().entry(&gone).is_some());
    for round in 0..3 {
        let missing = Id::hash(&[round]);
        assert!(net.get(1, missing).is_err());
    }
    assert!(
        net.node(1).routing_table().entry(&gone).is_none(),
        "three timeouts remove it"
    );
    assert!(
        net.events
            .iter()
            .any(|(a, e)| *a == addr(1) && *e == Event::ContactRemoved(gone))
    );
    // Every request was settled: nothing is left waiting.
    assert_eq!(net.node(1).pending_requests(), 0);
    assert_eq!(net.node(1).running_queries(), 0);
}

#[test]
fn a_bootstrap_with_no_answer_fails_clearly() {
    let mut net = Net::new(1);
    let now = net.now;
    let query = net
        .node(1)
        .bootstrap(now, &["127.0.0.99:1".parse().expect("valid")]);
    net.run_timers();
    assert!(matches!(
        net.done(1, query),
        Some(Event::BootstrapDone {
            result: Err(BootstrapError::NoContact),
            ..
        })
    ));
}

#[test]
fn a_full_bucket_pings_its_oldest_contact_and_keeps_it_when_it_answers() {
    let config = Config {
        k: std::num::NonZeroUsize::MIN,
        ..Config::default()
    };
    let own = node_id(1);
    let mut node = Node::new(own, config, MemoryStore::default());
    // Find two peers in the same bucket of `own`.
    let peers: Vec<u8> = (2..=255).collect();
    let bucket = |n: &u8| own.distance(&node_id(*n)).bucket_index();
    let a = peers[0];
    let b = *peers[1..]
        .iter()
        .find(|n| bucket(n) == bucket(&a))
        .expect("two share a bucket");
    let req = |n: u8| Requester {
        id: node_id(n),
        addr: Some(addr(n)),
        verified: true,
        source: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let _ = node.handle_request(T0, req(a), Request::Ping);
    let _ = node.handle_request(T0, req(b), Request::Ping);
    let ping = node.poll_transmit().expect("the oldest is pinged");
    assert_eq!(
        (ping.to.id, &ping.request),
        (Some(node_id(a)), &Request::Ping)
    );
    node.handle_response(T0, contact(a), ping.id, Response::Pong);
    assert!(
        node.routing_table().entry(&node_id(a)).is_some(),
        "it answered, so it stays"
    );
    assert!(node.routing_table().entry(&node_id(b)).is_none());

    // Next time the oldest stays silent, and the newcomer takes its place.
    let _ = node.handle_request(T0, req(b), Request::Ping);
    let ping = node.poll_transmit().expect("pinged again");
    node.handle_timeout(T0 + Duration::from_secs(2));
    assert_eq!(node.pending_requests(), 0, "ping {} timed out", ping.id);
    assert!(node.routing_table().entry(&node_id(a)).is_none());
    assert!(node.routing_table().entry(&node_id(b)).is_some());
}

#[test]
fn an_answer_from_the_wrong_node_counts_as_a_failure() {
    let mut net = Net::new(3);
    net.join_all();
    let node = net.node(1);
    let _ = node.find_node(T0, Id::hash(b"x"));
    let sent = node.poll_transmit().expect("a request");
    let failed_before = node.stats().requests_failed;
    // Someone other than the node asked answers: the answer is not taken.
    let impostor = if sent.to.id == Some(node_id(3)) {
        contact(2)
    } else {
        contact(3)
    };
    node.handle_response(T0, impostor, sent.id, Response::Nodes(vec![]));
    assert_eq!(node.stats().requests_failed, failed_before + 1);
}

#[test]
fn a_value_under_the_wrong_key_is_not_taken() {
    let mut net = Net::new(2);
    net.join_all();
    let wanted = *ImmutableItem::new(Bytes::from_static(b"wanted")).key();
    let impostor: Item = ImmutableItem::new(Bytes::from_static(b"other")).into();
    let node = net.node(1);
    let query = node.get(T0, wanted);
    let sent = node.poll_transmit().expect("asks node 2");
    assert_eq!(sent.request, Request::FindValue { key: wanted });
    node.handle_response(T0, contact(2), sent.id, Response::Value(impostor));
    net.run_timers();
    assert!(matches!(
        net.done(1, query),
        Some(Event::GetDone {
            result: Err(GetError::NotFound { .. }),
            ..
        })
    ));
}

#[test]
fn a_dead_contact_frees_its_lookup_slot_at_its_round_trip_timeout_and_still_counts_as_failed() {
    let config = Config {
        min_slot_timeout: Duration::from_millis(100),
        request_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let mut net = Net::with_config(6, config);
    net.join_all();
    // Every contact answered at once during the joins: the round-trip timeout is the floor.
    let gone = node_id(6);
    net.down.push(addr(6));
    let now = net.now;
    let query = net.node(1).get(now, Id::hash(b"missing"));
    net.run_timers();
    let Some(Event::GetDone { result, stats, .. }) = net.done(1, query).cloned() else {
        panic!("the get did not finish")
    };
    assert!(result.is_err(), "nothing was stored");
    // The get ended once the dead contact's slot was freed, not at its request timeout...
    assert_eq!(stats.duration, Duration::from_millis(100));
    assert_eq!(net.node(1).stats().requests_slow, 1);
    // ...and its request was still awaited to its deadline and counted as a failure.
    assert_eq!(net.node(1).pending_requests(), 0);
    assert_eq!(net.now, T0 + Duration::from_secs(2));
    assert_eq!(net.node(1).stats().requests_failed, 1);
    assert!(
        net.node(1).routing_table().entry(&gone).is_some(),
        "one failure is not three"
    );
}
