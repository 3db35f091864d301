//! The verdict rules of `reach.rs`, one test per rule: each fails when its rule is undone.

use std::net::SocketAddr;

use super::*;
use crate::id::NodeId;

fn server(n: u8) -> Contact {
    let addr: SocketAddr = format!("198.51.{n}.1:4000").parse().expect("an address");
    Contact::new(NodeId::hash(&[n]), addr)
}

/// A third node, never contacted, in another subnet than every server.
fn third() -> SocketAddr {
    "203.0.113.9:5000".parse().expect("an address")
}

/// Another third node.
fn other() -> SocketAddr {
    "203.0.113.10:5000".parse().expect("an address")
}

/// Checks switched on at 0 and one started with `servers` servers: the asks, each sent as
/// request 100 + its place.
fn started(servers: u8) -> (Reach, Vec<(Contact, [u8; 16], u64)>) {
    let mut reach = Reach::new(24);
    reach.switch_on(Time::from_secs(0), [7; 32]);
    assert!(reach.due(Time::from_secs(0)));
    let asks = reach.start(Time::from_secs(0), (1..=servers).map(server));
    let asks: Vec<_> = asks
        .into_iter()
        .zip(100..)
        .map(|((via, nonce), id)| {
            reach.requested(&nonce, id);
            (via, nonce, id)
        })
        .collect();
    (reach, asks)
}

#[test]
fn asks_at_most_four_servers_one_per_subnet() {
    let (_, asks) = started(9);
    assert_eq!(asks.len(), ASKS);
    let mut reach = Reach::new(24);
    reach.switch_on(Time::from_secs(0), [1; 32]);
    // Three servers in one /24, one in another: one of each subnet first, then the others
    // of the /24; each once.
    let same: Vec<Contact> = (1..=3)
        .map(|n| {
            let addr = format!("198.51.100.{n}:4000").parse().expect("an address");
            Contact::new(NodeId::hash(&[n]), addr)
        })
        .chain([server(9)])
        .collect();
    let asks = reach.start(Time::from_secs(0), same);
    assert_eq!(asks.len(), ASKS);
    let subnet = |c: &Contact| c.addr.ip().to_string().starts_with("198.51.100.");
    assert_ne!(subnet(&asks[0].0), subnet(&asks[1].0), "two subnets first");
    let servers: std::collections::BTreeSet<String> =
        asks.iter().map(|a| a.0.addr.to_string()).collect();
    assert_eq!(servers.len(), ASKS, "four servers, none twice");
    let nonces: std::collections::BTreeSet<[u8; 16]> = asks.iter().map(|a| a.1).collect();
    assert_eq!(nonces.len(), ASKS, "a nonce per ask");
}

#[test]
fn fewer_servers_than_asks_are_asked_again_and_checked_again_soon() {
    let (mut reach, asks) = started(2);
    assert_eq!(asks[0].0, asks[2].0);
    assert_eq!(asks[1].0, asks[3].0);
    let t = Time::from_secs(1);
    for (_, _, id) in &asks {
        reach.answered(t, *id, true);
    }
    let end = t + PROBE_WAIT;
    assert_eq!(
        reach.handle_timeout(end),
        Some((Reachability::Unknown, Reachability::Private))
    );
    assert_eq!(reach.next_deadline(), Some(end + RECHECK_UNDECIDED));
}

#[test]
fn two_probes_through_one_server_of_two_subnets_do_not_make_public() {
    // Two servers, each asked twice: both probes through the same server.
    let (mut reach, asks) = started(2);
    let t = Time::from_secs(1);
    let same: Vec<_> = asks.iter().filter(|a| a.0 == asks[0].0).collect();
    assert_eq!(same.len(), 2);
    reach.probe(t, third(), &same[0].1, true);
    reach.probe(t, other(), &same[1].1, true);
    for (_, _, id) in asks.iter().filter(|a| a.0 != asks[0].0) {
        reach.answered(t, *id, false);
    }
    assert_eq!(reach.handle_timeout(t), None);
}

#[test]
fn with_one_server_known_two_probes_from_two_ips_make_public() {
    let (mut reach, asks) = started(1);
    assert_eq!(asks.len(), ASKS);
    let t = Time::from_secs(1);
    // From one IP twice: one source.
    reach.probe(t, third(), &asks[0].1, true);
    reach.probe(t, third(), &asks[1].1, true);
    reach.answered(t, asks[2].2, false);
    reach.answered(t, asks[3].2, false);
    assert_eq!(reach.handle_timeout(t), None);
    let (mut reach, asks) = started(1);
    reach.probe(t, third(), &asks[0].1, true);
    reach.probe(t, other(), &asks[1].1, true);
    reach.answered(t, asks[2].2, false);
    reach.answered(t, asks[3].2, false);
    assert_eq!(
        reach.handle_timeout(t),
        Some((Reachability::Unknown, Reachability::Public))
    );
}

#[test]
fn two_probes_through_distinct_servers_make_public() {
    let (mut reach, asks) = started(4);
    let t = Time::from_secs(1);
    reach.probe(t, third(), &asks[0].1, true);
    assert_eq!(reach.handle_timeout(t), None, "one success is not enough");
    reach.probe(t, other(), &asks[1].1, true);
    for (_, _, id) in &asks[2..] {
        reach.answered(t, *id, false);
    }
    assert_eq!(
        reach.handle_timeout(t),
        Some((Reachability::Unknown, Reachability::Public))
    );
    assert_eq!(reach.report().received, 2);
    assert_eq!(reach.next_deadline(), Some(t + RECHECK_PUBLIC));
}

#[test]
fn three_confirmed_silent_probes_make_private() {
    let (mut reach, asks) = started(4);
    let t = Time::from_secs(1);
    for (_, _, id) in &asks[..3] {
        reach.answered(t, *id, true);
    }
    reach.answered(t, asks[3].2, false);
    assert_eq!(
        reach.handle_timeout(t),
        None,
        "the probes are still awaited"
    );
    let later = t + PROBE_WAIT;
    assert_eq!(
        reach.handle_timeout(later),
        Some((Reachability::Unknown, Reachability::Private))
    );
    assert_eq!(reach.next_deadline(), Some(later + RECHECK_PRIVATE));
}

#[test]
fn two_silences_decide_nothing() {
    let (mut reach, asks) = started(4);
    let t = Time::from_secs(1);
    for (_, _, id) in &asks[..2] {
        reach.answered(t, *id, true);
    }
    for (_, _, id) in &asks[2..] {
        reach.answered(t, *id, false);
    }
    assert_eq!(reach.handle_timeout(t + PROBE_WAIT), None);
    assert_eq!(reach.report().status, Reachability::Unknown);
    assert_eq!(
        reach.next_deadline(),
        Some(t + PROBE_WAIT + RECHECK_UNDECIDED)
    );
}

#[test]
fn one_probe_received_keeps_silences_from_saying_private() {
    let (mut reach, asks) = started(4);
    let t = Time::from_secs(1);
    reach.probe(t, third(), &asks[0].1, true);
    for (_, _, id) in &asks[1..] {
        reach.answered(t, *id, true);
    }
    assert_eq!(reach.handle_timeout(t + PROBE_WAIT), None);
}

#[test]
fn a_probe_from_the_server_asked_or_with_an_unknown_nonce_does_not_count() {
    let (mut reach, asks) = started(2);
    let t = Time::from_secs(1);
    reach.probe(t, asks[0].0.addr, &asks[0].1, true);
    reach.probe(t, third(), &[0; 16], true);
    reach.probe(t, third(), &asks[1].1, true);
    assert_eq!(reach.report().received, 1);
    assert_eq!(reach.report().ignored, 2);
}

#[test]
fn a_probe_after_its_wait_does_not_count() {
    let (mut reach, asks) = started(2);
    let t = Time::from_secs(1);
    reach.answered(t, asks[0].2, true);
    reach.probe(t + PROBE_WAIT, third(), &asks[0].1, true);
    assert_eq!(reach.report().received, 0);
}

#[test]
fn a_check_out_of_time_ends_with_what_it_has() {
    let (mut reach, asks) = started(4);
    let t = Time::from_secs(1);
    reach.probe(t, third(), &asks[0].1, true);
    reach.probe(t, other(), &asks[1].1, true);
    // Two servers never answer.
    assert_eq!(reach.handle_timeout(t), None);
    let end = Time::from_secs(0) + CHECK_LIMIT;
    assert_eq!(
        reach.handle_timeout(end),
        Some((Reachability::Unknown, Reachability::Public))
    );
}

#[test]
fn a_status_holds_through_undecided_checks_until_the_limit() {
    let (mut reach, asks) = started(2);
    let t = Time::from_secs(1);
    reach.probe(t, third(), &asks[0].1, true);
    reach.probe(t, other(), &asks[1].1, true);
    for (_, _, id) in &asks[2..] {
        reach.answered(t, *id, false);
    }
    assert!(reach.handle_timeout(t).is_some());
    let mut now = t + RECHECK_PUBLIC;
    for round in 1..=UNDECIDED_LIMIT {
        assert!(reach.due(now));
        let asks = reach.start(now, (1..=2).map(server));
        for (i, (_, nonce)) in asks.iter().enumerate() {
            reach.requested(nonce, 1_000 * u64::from(round) + i as u64);
            reach.answered(now, 1_000 * u64::from(round) + i as u64, false);
        }
        let change = reach.handle_timeout(now);
        if round < UNDECIDED_LIMIT {
            assert_eq!(change, None, "check {round}");
            assert_eq!(reach.report().status, Reachability::Public);
        } else {
            assert_eq!(change, Some((Reachability::Public, Reachability::Unknown)));
        }
        let next = reach.next_deadline().expect("a next check");
        assert_eq!(
            next,
            now + RECHECK_UNDECIDED * 2u32.pow(round - 1),
            "the wait doubles"
        );
        now = next;
    }
}

#[test]
fn a_changed_observed_address_checks_again_at_once() {
    let (mut reach, asks) = started(2);
    let t = Time::from_secs(1);
    reach.probe(t, third(), &asks[0].1, true);
    reach.probe(t, other(), &asks[1].1, true);
    for (_, _, id) in &asks[2..] {
        reach.answered(t, *id, false);
    }
    assert!(reach.handle_timeout(t).is_some());
    assert!(!reach.due(t + Duration::from_secs(5)));
    reach.observed_changed(t + Duration::from_secs(5));
    assert!(reach.due(t + Duration::from_secs(5)));
}

#[test]
fn no_check_before_checks_are_switched_on_and_none_without_servers() {
    let mut reach = Reach::new(24);
    assert!(!reach.due(Time::from_secs(100)));
    assert_eq!(reach.next_deadline(), None);
    reach.observed_changed(Time::from_secs(100));
    assert!(!reach.due(Time::from_secs(100)));
    reach.switch_on(Time::from_secs(100), [0; 32]);
    assert!(reach.start(Time::from_secs(100), []).is_empty());
    assert_eq!(
        reach.next_deadline(),
        Some(Time::from_secs(100) + RETRY_EMPTY)
    );
}

#[test]
fn an_unvouched_probe_is_neither_a_success_nor_a_silence() {
    // Found in review: spoofed junk the plane answers can push real contacts out of its
    // record, and a probe from one then passed for a stranger's: a false `public`. The plane
    // says so (`vouched: false`); such a probe proves nothing, and is no silence either.
    let (mut reach, asks) = started(4);
    let t = Time::from_secs(1);
    for (_, _, id) in &asks {
        reach.answered(t, *id, true);
    }
    reach.probe(t, third(), &asks[0].1, false);
    reach.probe(t, other(), &asks[1].1, false);
    let later = t + PROBE_WAIT;
    assert_eq!(
        reach.handle_timeout(later),
        None,
        "neither public nor private"
    );
    let report = reach.report();
    assert_eq!((report.received, report.ignored), (0, 2), "{report:?}");
}
