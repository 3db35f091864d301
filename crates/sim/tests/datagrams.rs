//! The datagram mode of the transport model: requests go through each node's real datagram
//! plane, a new contact costs no connection, loss is loss (the plane sends again), and what
//! does not fit in a datagram still arrives over TCP.

use std::time::Duration;

use bytes::Bytes;
use cairn_core::{Config, Event, Id, ImmutableItem, Item, StoreLimits};
use cairn_sim::scenario::{self, Report, Scenario};
use cairn_sim::{Command, EPOCH, Latency, Sim, Ticket, Transport};
use rand::Rng;

const ONE_WAY: Duration = Duration::from_millis(10);
const ROUND_TRIP: Duration = Duration::from_millis(20);

/// Two nodes 10 ms apart, node 1 joined through node 0, over `transport`.
fn pair(transport: Transport) -> Sim {
    let mut sim = Sim::new(1, Latency::Fixed(ONE_WAY));
    sim.set_transport(Some(transport));
    for n in 0..2u8 {
        sim.add_node(Id::hash(&[n]), Config::default(), StoreLimits::default());
    }
    let join = sim.schedule(EPOCH, 1, Command::Bootstrap(vec![0]));
    assert!(sim.run_until_done(&[join]));
    sim
}

/// How long node `from`'s lookup of a fresh id takes, and how many contacts it found.
fn lookup(sim: &mut Sim, from: usize, target: &[u8]) -> (Duration, usize) {
    let ticket = sim.schedule(sim.now(), from, Command::FindNode(Id::hash(target)));
    assert!(sim.run_until_done(&[ticket]));
    match sim.outcome(ticket) {
        Some(Event::FindNodeDone { closest, stats, .. }) => (stats.duration, closest.len()),
        other => panic!("unexpected {other:?}"),
    }
}

fn datagram_scenario(nodes: usize, items: usize, seed: u64) -> Scenario {
    Scenario {
        nodes,
        items,
        seed,
        transport: Some(Transport::datagrams()),
        ..Scenario::default()
    }
}

/// Runs `tickets` and returns how many gets among them found their item.
fn found(sim: &mut Sim, tickets: &[Ticket]) -> usize {
    assert!(sim.run_until_done(tickets));
    tickets
        .iter()
        .filter(|t| matches!(sim.outcome(**t), Some(Event::GetDone { result: Ok(_), .. })))
        .count()
}

/// Puts `items` from random nodes and returns them.
fn put(sim: &mut Sim, items: Vec<Item>) -> Vec<Item> {
    let tickets: Vec<Ticket> = items
        .iter()
        .map(|item| {
            let n = sim.len();
            let node = sim.rng().random_range(0..n);
            sim.schedule(sim.now(), node, Command::Put(item.clone()))
        })
        .collect();
    assert!(sim.run_until_done(&tickets));
    for t in &tickets {
        assert!(
            matches!(sim.outcome(*t), Some(Event::PutDone { result: Ok(n), .. }) if *n > 0),
            "{:?}",
            sim.outcome(*t)
        );
    }
    items
}

/// Gets every item from a random node.
fn get_all(sim: &mut Sim, items: &[Item]) -> usize {
    let tickets: Vec<Ticket> = items
        .iter()
        .map(|item| {
            let n = sim.len();
            let node = sim.rng().random_range(0..n);
            sim.schedule(sim.now(), node, Command::Get(*item.key()))
        })
        .collect();
    found(sim, &tickets)
}

#[test]
fn a_new_contact_costs_no_connection_over_datagrams() {
    // Over TCP, node 0's first request to node 1 waits for a connection.
    let mut tcp = pair(Transport::default());
    assert_eq!(lookup(&mut tcp, 0, b"target"), (ROUND_TRIP * 2, 1));
    // Over datagrams, node 0 answered node 1's join in a session both can use: one round
    // trip, and no connection opened.
    // The join itself asked its bootstrap address over TCP (its node id is not known yet):
    // that is the one connection, and the one request handed to TCP.
    let mut datagrams = pair(Transport::datagrams());
    assert_eq!(datagrams.connections_opened(), 1, "the join's bootstrap");
    assert_eq!(lookup(&mut datagrams, 0, b"target"), (ROUND_TRIP, 1));
    assert_eq!(
        datagrams.connections_opened(),
        1,
        "no connection for the lookup"
    );
    let totals = datagrams.datagram_totals();
    assert_eq!(
        totals.sessions, 2,
        "node 1's join opened one session, held at both ends"
    );
    assert_eq!((totals.lost, totals.fallbacks), (0, 1));
}

#[test]
fn a_stopped_or_killed_node_drops_datagrams_and_a_partition_cuts_them() {
    let mut stopped = pair(Transport::datagrams());
    stopped.stop(1);
    // No ICMP is modelled: a stopped node is as silent as a dead one to a datagram.
    assert_eq!(
        lookup(&mut stopped, 0, b"a"),
        (Config::default().request_timeout, 0)
    );
    assert!(stopped.datagram_totals().lost > 0);

    let mut cut = pair(Transport::datagrams());
    cut.partition(vec![false, true]);
    assert_eq!(lookup(&mut cut, 0, b"b").1, 0, "node 1 is silent");
    cut.heal();
    assert_eq!(lookup(&mut cut, 0, b"c").1, 1, "node 1 answers again");

    // A revived node has a new plane: node 0's session to it is unknown there, and node 0
    // opens a new one.
    let mut revived = pair(Transport::datagrams());
    revived.kill(1);
    revived.revive(1);
    assert_eq!(lookup(&mut revived, 0, b"d").1, 1);
    assert_eq!(revived.datagram_totals().sessions, 2);
}

#[test]
fn a_small_network_finds_every_item_over_datagrams() {
    let seed = 11;
    println!("seed {seed}");
    let report = scenario::run(&datagram_scenario(200, 20, seed));
    print!("{report}");
    assert_eq!(report.network.failed_joins, 0);
    assert_eq!(report.network.gets.attempted, 40);
    assert_eq!(report.network.gets.succeeded, 40, "every item is found");
    assert!(
        report.after_kill.success_percent >= 99.9,
        "after the kill only {:.2}% of gets succeeded",
        report.after_kill.success_percent
    );
    assert!(report.datagrams.sent > 0);
    assert!(report.datagrams.lost > 0, "the killed nodes drop datagrams");
}

#[test]
fn lookups_succeed_with_30_percent_of_datagrams_lost() {
    let seed = 12;
    println!("seed {seed}");
    let (mut sim, _, failed) = scenario::network(&datagram_scenario(200, 0, seed));
    assert_eq!(failed, 0);
    let items: Vec<Item> = (0..30u32)
        .map(|i| ImmutableItem::new(Bytes::from(format!("item {i}"))).into())
        .collect();
    let items = put(&mut sim, items);
    sim.set_loss(0.3);
    let before = sim.datagram_totals();
    assert_eq!(get_all(&mut sim, &items), items.len(), "every get succeeds");
    let after = sim.datagram_totals();
    assert!(after.lost > before.lost && after.retransmits > before.retransmits);
}

#[test]
fn an_item_too_large_for_a_datagram_is_fetched_over_tcp() {
    let seed = 13;
    println!("seed {seed}");
    let (mut sim, _, failed) = scenario::network(&datagram_scenario(100, 0, seed));
    assert_eq!(failed, 0);
    let large: Item = ImmutableItem::new(Bytes::from(vec![7u8; 4_000])).into();
    let items = put(&mut sim, vec![large]);
    assert!(sim.connections_opened() > 0, "the store went over TCP");
    assert_eq!(
        sim.handshakes_failed(),
        0,
        "each connection found the node the plane expected"
    );
    assert_eq!(get_all(&mut sim, &items), 1);
    assert!(sim.datagram_totals().fallbacks > 0);
}

#[test]
fn a_seed_replays_identically_over_datagrams() {
    let seed = 14;
    println!("seed {seed}");
    let scenario = Scenario {
        malicious_fraction: 0.1,
        ..datagram_scenario(150, 10, seed)
    };
    let first = scenario::run(&scenario);
    let second = scenario::run(&scenario);
    print!("{first}");
    assert!(first.datagrams.sent > 0);
    assert_eq!(
        Report {
            wall: first.wall,
            ..second
        },
        first
    );
}

#[test]
fn gets_succeed_through_churn_and_a_partition_over_datagrams() {
    use cairn_sim::churn::{self, Churn};
    use cairn_sim::partition::{self, Partition};
    let seed = 15;
    println!("seed {seed}");
    // Half an hour of churn in 150 nodes, sessions of 20 minutes at the median; half the
    // leavers' hosts stay up, which a datagram cannot tell from a dead one.
    let churned = churn::run(&Churn {
        base: datagram_scenario(150, 10, seed),
        duration: Duration::from_secs(1_800),
        median_session: Duration::from_secs(1_200),
        gets_per_minute: 10,
        ..Churn::default()
    });
    print!("{churned}");
    assert!(churned.left >= 20, "a good part of the network left");
    assert_eq!(churned.failed_joins, 0);
    assert_eq!(
        churned.gets.succeeded, churned.gets.attempted,
        "every get that ran to its end found its item"
    );
    assert!(churned.datagrams.sent > 0 && churned.datagrams.lost > 0);

    let cut = partition::run(&Partition {
        base: datagram_scenario(100, 10, seed),
        cut: Duration::from_secs(600),
        settle: Duration::from_secs(3_700),
    });
    print!("{cut}");
    for side in 0..2 {
        assert_eq!(cut.during[side].succeeded, cut.during[side].attempted);
        assert_eq!(cut.settled[side].succeeded, cut.settled[side].attempted);
        assert_eq!(
            cut.settled_stale[side], 0,
            "side {side} finds the newest versions"
        );
    }
}

#[test]
fn a_watch_listens_over_tcp_while_lookups_go_over_datagrams() {
    let seed = 16;
    println!("seed {seed}");
    let (mut sim, keys, failed) = scenario::network(&datagram_scenario(100, 0, seed));
    assert_eq!(failed, 0);
    let (publisher, watcher) = (0, 1);
    let key = cairn_core::signed_key(&keys[publisher].verifying_key().to_bytes(), "news");
    let watch = sim.watch(watcher, key);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.node(watcher).watch_peers(watch).len(), 3, "subscribed");
    let before = sim.connections_opened();
    assert!(before > 0, "`listen` needs a stream: it went over TCP");
    for round in 0..3u32 {
        let command = Command::Publish {
            key: Box::new(keys[publisher].clone()),
            name: "news".to_owned(),
            value: Bytes::from(format!("version {round}")),
            ttl: None,
        };
        let ticket = sim.schedule(sim.now(), publisher, command);
        assert!(sim.run_until_done(&[ticket]));
        sim.run_for(Duration::from_secs(5));
    }
    let seen: Vec<Bytes> = sim
        .watched(watcher, watch)
        .iter()
        .map(|(_, item)| item.value().clone())
        .collect();
    assert_eq!(
        seen.last(),
        Some(&Bytes::from("version 2")),
        "the watch saw the newest version: {seen:?}"
    );
}
