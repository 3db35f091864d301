//! The simulator charges connections as the real transport does: a new contact costs the TCP
//! handshake (and the hello/welcome round trip without pipelining), an open connection
//! nothing, a stopped node's host refuses after one round trip, a killed one never answers,
//! and a lost message arrives a retransmission timeout late. Every new connection runs the
//! core's handshake.

use std::time::Duration;

use cairn_core::{Config, Event, Id, StoreLimits};
use cairn_sim::{Command, EPOCH, Latency, Sim, Transport};

const ONE_WAY: Duration = Duration::from_millis(10);
const ROUND_TRIP: Duration = Duration::from_millis(20);

/// Two nodes, 10 ms apart; node 1 has joined through node 0, so node 0 knows node 1 but has
/// no connection to it.
fn pair(transport: Option<Transport>) -> Sim {
    pair_with(transport, Config::default())
}

fn pair_with(transport: Option<Transport>, config: Config) -> Sim {
    let mut sim = Sim::new(1, Latency::Fixed(ONE_WAY));
    sim.set_transport(transport);
    for n in 0..2u8 {
        sim.add_node(Id::hash(&[n]), config.clone(), StoreLimits::default());
    }
    let join = sim.schedule(EPOCH, 1, Command::Bootstrap(vec![0]));
    assert!(sim.run_until_done(&[join]));
    sim
}

/// How long node 0's lookup of a fresh id takes (it asks node 1), and what it found.
fn lookup(sim: &mut Sim) -> (Duration, usize) {
    let ticket = sim.schedule(sim.now(), 0, Command::FindNode(Id::hash(b"target")));
    assert!(sim.run_until_done(&[ticket]));
    match sim.outcome(ticket) {
        Some(Event::FindNodeDone { closest, stats, .. }) => (stats.duration, closest.len()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_new_contact_costs_a_round_trip_more_and_an_open_connection_nothing() {
    let mut free = pair(None);
    assert_eq!(lookup(&mut free), (ROUND_TRIP, 1));

    let mut pipelined = pair(Some(Transport::default()));
    let opened = pipelined.connections_opened();
    assert_eq!(
        lookup(&mut pipelined),
        (ROUND_TRIP * 2, 1),
        "TCP, then the request"
    );
    assert_eq!(pipelined.connections_opened(), opened + 1);
    assert_eq!(
        lookup(&mut pipelined),
        (ROUND_TRIP, 1),
        "the connection is open"
    );
    assert_eq!(pipelined.connections_opened(), opened + 1);
    // Every connection ran cairn's handshake, and each found the node it expected.
    assert_eq!(pipelined.handshakes_failed(), 0);

    let without = Transport {
        pipelining: false,
        ..Transport::default()
    };
    let mut handshake = pair(Some(without));
    assert_eq!(
        lookup(&mut handshake),
        (ROUND_TRIP * 3, 1),
        "TCP, hello and welcome, then the request"
    );
}

#[test]
fn an_idle_connection_closes_and_the_next_request_opens_another() {
    let transport = Transport {
        idle: Duration::from_secs(5),
        ..Transport::default()
    };
    let mut sim = pair(Some(transport));
    assert_eq!(lookup(&mut sim).0, ROUND_TRIP * 2);
    sim.run_for(Duration::from_secs(6));
    let opened = sim.connections_opened();
    assert_eq!(lookup(&mut sim).0, ROUND_TRIP * 2);
    assert_eq!(sim.connections_opened(), opened + 1);
}

#[test]
fn a_stopped_node_is_refused_after_a_round_trip_and_a_dead_host_waits_for_a_timeout() {
    let mut stopped = pair(Some(Transport::default()));
    stopped.stop(1);
    assert_eq!(
        lookup(&mut stopped),
        (ROUND_TRIP, 0),
        "refused after one round trip"
    );

    // Node 0 has asked nobody yet: with no round trip known, a request to a dead host holds
    // its slot for the whole request timeout.
    let mut killed = pair(Some(Transport::default()));
    killed.kill(1);
    assert_eq!(lookup(&mut killed), (Config::default().request_timeout, 0));

    // Once node 0 has heard one answer (40 ms, a new connection's), the slot is freed after
    // three times that, RFC 6298's timeout after a first sample.
    let mut known = pair(Some(Transport::default()));
    assert_eq!(lookup(&mut known).0, ROUND_TRIP * 2);
    known.kill(1);
    assert_eq!(lookup(&mut known), (ROUND_TRIP * 6, 0));
}

#[test]
fn a_lost_message_arrives_a_retransmission_timeout_late_over_tcp_and_never_without() {
    // A floor above the retransmission delay, so that the lookup waits for the late answer.
    let patient = Config {
        min_slot_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let mut tcp = pair_with(Some(Transport::default()), patient);
    assert_eq!(lookup(&mut tcp).0, ROUND_TRIP * 2);
    tcp.set_loss(1.0);
    // Both the request and its answer are retransmitted once, 200 ms late each.
    let (took, found) = lookup(&mut tcp);
    assert_eq!((took, found), (ROUND_TRIP + Duration::from_millis(400), 1));

    let mut lossy = pair(None);
    lossy.set_loss(1.0);
    assert_eq!(lookup(&mut lossy).1, 0, "the request is lost");
}

#[test]
fn the_regions_model_places_nodes_by_share_and_charges_distance() {
    use cairn_sim::{REGION_RTT_MS, REGIONS};
    let mut sim = Sim::new(3, Latency::Regions);
    for n in 0..2_000u32 {
        sim.add_node(
            Id::hash(&n.to_be_bytes()),
            Config::default(),
            StoreLimits::default(),
        );
    }
    let mut counts = [0usize; REGIONS.len()];
    for i in 0..sim.len() {
        counts[sim.region(i)] += 1;
    }
    for (region, count) in REGIONS.iter().zip(counts) {
        let share = count as f64 / sim.len() as f64;
        assert!(
            (share - region.share).abs() < 0.05,
            "{}: {share}",
            region.name
        );
    }
    // The round trips are symmetric, and longer between regions than within one.
    assert_eq!(REGION_RTT_MS.len(), REGIONS.len());
    for (a, row) in REGION_RTT_MS.iter().enumerate() {
        for (b, rtt) in row.iter().enumerate() {
            assert_eq!(*rtt, REGION_RTT_MS[b][a]);
            assert!(a == b || *rtt > row[a]);
        }
    }
}

#[test]
fn nothing_crosses_a_partition_until_it_heals() {
    let mut sim = pair(Some(Transport::default()));
    assert_eq!(lookup(&mut sim).1, 1, "node 1 answers");
    sim.partition(vec![false, true]);
    assert!(sim.is_cut(0, 1) && !sim.is_cut(0, 0));
    assert_eq!(
        lookup(&mut sim).1,
        0,
        "node 1 is silent, over the open connection too"
    );
    sim.heal();
    assert!(!sim.is_cut(0, 1));
    assert_eq!(lookup(&mut sim).1, 1, "node 1 answers again");
}
