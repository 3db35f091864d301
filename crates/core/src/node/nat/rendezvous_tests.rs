//! The rules of `rendezvous.rs`, both sides: each test fails when its rule is undone.

use std::net::SocketAddr;

use super::*;

fn node(n: u8) -> NodeId {
    NodeId::hash(&[n])
}

fn server(n: u8) -> Contact {
    let addr: SocketAddr = format!("198.51.100.{n}:4000").parse().expect("an address");
    Contact::new(node(n), addr)
}

fn at(text: &str) -> SocketAddr {
    text.parse().expect("an address")
}

const T0: Time = Time::from_secs(1_000);

fn code(answer: Result<impl std::fmt::Debug, ErrorReply>) -> u16 {
    answer.expect_err("refused").code.0
}

#[test]
fn a_server_keeps_a_few_registrations_per_host_and_serves_other_hosts() {
    let mut registry = Registry::default();
    for n in 0..REGISTERED_PER_IP {
        let source = at(&format!("203.0.113.5:{}", 5000 + n));
        let id = node(u8::try_from(n).expect("few"));
        assert!(
            registry.register(T0, id, source).is_ok(),
            "registration {n}"
        );
    }
    let crowded = registry.register(T0, node(100), at("203.0.113.5:6000"));
    assert_eq!(code(crowded), 429, "one host past its share");
    assert!(
        registry
            .register(T0, node(101), at("203.0.113.6:6000"))
            .is_ok(),
        "another host is served"
    );
    // A registered node renews without counting twice.
    assert!(
        registry
            .register(T0, node(0), at("203.0.113.5:5000"))
            .is_ok()
    );
}

#[test]
fn an_ipv6_host_is_its_64_for_registrations() {
    let mut registry = Registry::default();
    for n in 0..REGISTERED_PER_IP {
        let source = at(&format!("[2001:db8:1:2::{}]:5000", n + 1));
        let id = node(u8::try_from(n).expect("few"));
        assert!(registry.register(T0, id, source).is_ok());
    }
    let same_64 = registry.register(T0, node(100), at("[2001:db8:1:2::ff]:5000"));
    assert_eq!(code(same_64), 429);
    let other_64 = registry.register(T0, node(101), at("[2001:db8:1:3::1]:5000"));
    assert!(other_64.is_ok());
}

#[test]
fn an_introduction_goes_to_the_registered_address_until_the_registration_expires() {
    let mut registry = Registry::default();
    let registered = at("203.0.113.7:41000");
    registry
        .register(T0, node(1), registered)
        .expect("registers");
    let asker = at("192.0.2.9:5000");
    assert_eq!(
        registry.introduce(T0, asker, &node(1)),
        Ok(Introduce::Meet(registered))
    );
    let token = registry.relay(77, asker, node(1), registered);
    // The asker's retransmission waits on the same `meet` rather than sending another.
    let Ok(Introduce::Joined(repeat)) = registry.introduce(T0, asker, &node(1)) else {
        panic!("a repeat joins the introduction under way");
    };
    registry.relayed(77, Some(Response::Met));
    let introduced = Response::Introduced { addr: registered };
    assert_eq!(registry.pop_answer(), Some((token, introduced.clone())));
    assert_eq!(registry.pop_answer(), Some((repeat, introduced)));
    // A target that does not answer its `meet`: 503 to the asker.
    assert!(registry.introduce(T0, asker, &node(1)).is_ok());
    let token = registry.relay(78, asker, node(1), registered);
    registry.relayed(78, None);
    match registry.pop_answer() {
        Some((t, Response::Error(e))) => assert_eq!((t, e.code.0), (token, 503)),
        other => panic!("{other:?}"),
    }
    // Unknown, then expired: 404.
    assert_eq!(code(registry.introduce(T0, asker, &node(2))), 404);
    let later = T0 + Duration::from_secs(u64::from(REGISTRATION_TTL));
    assert_eq!(code(registry.introduce(later, asker, &node(1))), 404);
}

#[test]
fn one_asker_meets_its_bound_on_introductions_and_another_is_served() {
    let mut registry = Registry::default();
    registry
        .register(T0, node(1), at("203.0.113.7:41000"))
        .expect("registers");
    // Each from another port of one host (a repeat from the same port would join).
    let asker = |port: u16| SocketAddr::new(at("192.0.2.9:0").ip(), port);
    for n in 0..INTRODUCTIONS_PER_ASKER {
        let port = u16::try_from(5000 + n).expect("a port");
        assert!(registry.introduce(T0, asker(port), &node(1)).is_ok());
    }
    assert_eq!(code(registry.introduce(T0, asker(6000), &node(1))), 429);
    assert!(
        registry
            .introduce(T0, at("192.0.2.10:5000"), &node(1))
            .is_ok()
    );
    // The window passes.
    assert!(
        registry
            .introduce(T0 + WINDOW, asker(6001), &node(1))
            .is_ok()
    );
}

#[test]
fn a_client_punches_only_for_its_points_and_within_bounds() {
    let mut points = Points::default();
    points.switch(T0, true);
    let chosen = points.round(T0, &[server(1), server(2)]);
    assert_eq!(chosen, vec![server(1), server(2)]);
    let stranger = points.meet(T0, &node(9), at("192.0.2.1:5000"), [1; 16]);
    assert!(matches!(stranger, Response::Error(e) if e.code.0 == 403));
    assert_eq!(points.pop_punch(), None, "no punch for a stranger");
    // A point chosen but whose `register` is not answered yet is no point yet.
    let early = points.meet(T0, &node(1), at("192.0.2.1:5000"), [1; 16]);
    assert!(matches!(early, Response::Error(e) if e.code.0 == 403));
    for (request, contact) in chosen.iter().enumerate() {
        points.asked(request as u64, contact.id);
        points.answered(T0, request as u64, true);
    }

    let target = at("192.0.2.1:5000");
    for n in 0..PUNCHES_PER_TARGET {
        let port = u16::try_from(5000 + n).expect("a port");
        let to = SocketAddr::new(target.ip(), port);
        assert_eq!(points.meet(T0, &node(1), to, [2; 16]), Response::Met);
        assert_eq!(points.pop_punch(), Some((to, [2; 16])));
    }
    let over = points.meet(T0, &node(1), target, [2; 16]);
    assert!(matches!(over, Response::Error(e) if e.code.0 == 429));
    assert_eq!(points.pop_punch(), None);
    let other = at("192.0.2.2:5000");
    assert_eq!(points.meet(T0, &node(2), other, [3; 16]), Response::Met);
}

#[test]
fn a_client_keeps_the_closest_three_that_answer_and_says_so_in_its_record() {
    let mut points = Points::default();
    assert!(!points.due(T0), "a server keeps no points");
    points.switch(T0, true);
    assert!(points.due(T0));
    let closest: Vec<Contact> = (1..=5).map(server).collect();
    let chosen = points.round(T0, &closest);
    assert_eq!(chosen, closest[..POINTS].to_vec());
    for (request, contact) in chosen.iter().enumerate() {
        points.asked(request as u64, contact.id);
    }
    points.answered(T0, 0, true);
    points.answered(T0, 1, false);
    points.answered(T0, 2, true);
    let mut named = points.pop_record().expect("a record");
    named.sort_by_key(|c| c.id);
    let mut expected = vec![server(1), server(3)];
    expected.sort_by_key(|c| c.id);
    assert_eq!(
        named, expected,
        "the registered points, not the one that failed"
    );
    // The next keep-alive renews the two and fills the third place from the closest again
    // (the one that failed is tried anew while it is among the closest).
    assert!(!points.due(T0 + KEEPALIVE - Duration::from_secs(1)));
    let renewed = points.round(T0 + KEEPALIVE, &closest);
    assert_eq!(renewed, vec![server(1), server(3), server(2)]);

    for (request, contact) in renewed.iter().enumerate() {
        points.asked(10 + request as u64, contact.id);
    }
    points.answered(T0 + KEEPALIVE, 10, true);
    points.answered(T0 + KEEPALIVE, 11, true);
    assert_eq!(points.pop_record(), None, "the same points, a fresh record");
    points.answered(T0 + KEEPALIVE, 12, true);
    assert_eq!(
        points.pop_record().map(|r| r.len()),
        Some(3),
        "a third point"
    );
    // One that is no longer among the closest is replaced by the next.
    let without_2: Vec<Contact> = [1, 3, 4, 5].map(server).to_vec();
    let moved = points.round(T0 + KEEPALIVE * 2, &without_2);
    assert_eq!(moved, vec![server(1), server(3), server(4)]);
    // A server keeps none.
    points.switch(T0 + KEEPALIVE, false);
    assert!(!points.due(T0 + KEEPALIVE * 2));
    assert_eq!(points.report(&Registry::default()).points, 0);
}
