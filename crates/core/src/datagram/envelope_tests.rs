//! The envelope keys of a body. `observed`: every answer carries the address its request came
//! from, the split of a `nodes` answer still fits with it, and answers to a node's own requests
//! are its votes, whoever opened the session. `role`: a peer that says `client` is never
//! announced, whatever its `initial` flag said.

use std::net::{Ipv6Addr, SocketAddr};

use ed25519_dalek::SigningKey;

use super::*;
use crate::message::Peer;

const T0: Time = Time::from_millis(1_000_000);

fn plane(n: u8) -> Plane<Real> {
    let key = SigningKey::from_bytes(&[n; 32]);
    let config = PlaneConfig::new(NetworkName::new("cairn").unwrap_or_else(|_| unreachable!()));
    Plane::new(Real::new(key), config, [n; 32], T0)
}

fn id_of(n: u8) -> NodeId {
    NodeId::of_public_key(&SigningKey::from_bytes(&[n; 32]).verifying_key().to_bytes())
}

/// Twenty contacts whose addresses take the most bytes: IPv6 in its longest text form.
fn twenty_long_contacts() -> Vec<Contact> {
    (0..20u16)
        .map(|i| {
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, i);
            Contact::new(id_of(100 + i as u8), SocketAddr::from((ip, 65535)))
        })
        .collect()
}

/// Carries every datagram of `from` (at `from_addr`) to `to` (at `to_addr`); what `to` reports.
fn carry(
    from: &mut Plane<Real>,
    from_addr: SocketAddr,
    to: &mut Plane<Real>,
    sizes: &mut Vec<usize>,
) -> Vec<PlaneEvent> {
    while let Some((_, bytes)) = from.poll_datagram() {
        sizes.push(bytes.len());
        to.handle_datagram(T0, from_addr, &bytes);
    }
    std::iter::from_fn(|| to.poll_event()).collect()
}

/// Node 1 at `a` asks node 2 at `b` a `find_node` answered with twenty long contacts; node 1's
/// events, and the size of every datagram either way.
fn exchange(a: SocketAddr, b: SocketAddr) -> (Vec<PlaneEvent>, Vec<usize>) {
    let (mut one, mut two) = (plane(1), plane(2));
    let to = Peer {
        id: Some(id_of(2)),
        addr: b,
    };
    let request = Request::FindNode { target: id_of(9) };
    one.send(T0, Transmit { id: 7, to, request });
    let mut sizes = Vec::new();
    let mut events = Vec::new();
    for _ in 0..4 {
        for event in carry(&mut one, a, &mut two, &mut sizes) {
            if let PlaneEvent::Request { reply, .. } = event {
                two.answer(T0, reply, Response::Nodes(twenty_long_contacts()));
            }
        }
        events.extend(carry(&mut two, b, &mut one, &mut sizes));
    }
    (events, sizes)
}

#[test]
fn a_split_nodes_answer_with_observed_fits_over_ipv4_and_ipv6() {
    let v4 = (
        SocketAddr::from(([198, 51, 100, 1], 7400)),
        SocketAddr::from(([198, 51, 100, 2], 7400)),
    );
    let long = |last| {
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, last);
        SocketAddr::from((ip, 65535))
    };
    for (a, b) in [v4, (long(1), long(2))] {
        let (events, sizes) = exchange(a, b);
        assert!(
            sizes.iter().all(|s| *s <= MAX_DATAGRAM),
            "every datagram at most 1,200 bytes: {sizes:?}"
        );
        // An initial, an accept and two more parts, a confirm: `observed` and `role` cost no
        // fourth part (the design brief's worry), IPv6 included.
        assert_eq!(sizes.len(), 5, "{sizes:?}");
        assert_eq!(
            events,
            vec![
                PlaneEvent::Observed {
                    by: Contact::new(id_of(2), b),
                    observed: a,
                },
                PlaneEvent::Response {
                    from: Contact::new(id_of(2), b),
                    id: 7,
                    response: Response::Nodes(twenty_long_contacts()),
                    role: Some(Mode::Server),
                },
            ]
        );
    }
}

#[test]
fn every_part_carries_observed_and_is_measured_with_it() {
    let observed = SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6), 65535));
    let envelope = Envelope {
        observed: Some(observed),
        role: None,
    };
    let bodies = answer_bodies(
        3,
        Response::Nodes(twenty_long_contacts()),
        &envelope,
        accept_room(),
    );
    assert!((2..=usize::from(MAX_PARTS)).contains(&bodies.len()));
    assert!(bodies[0].len() <= accept_room());
    assert!(bodies[1..].iter().all(|b| b.len() <= data_room()));
    let mut contacts = Vec::new();
    for body in &bodies {
        let (body, read) = wire::decode_body_with(body).expect("a body");
        assert_eq!(read, envelope);
        let Body::NodesPart { nodes, .. } = body else {
            panic!("a part: {body:?}");
        };
        contacts.extend(nodes);
    }
    assert_eq!(contacts, twenty_long_contacts());
}

#[test]
fn answers_in_either_sessions_are_votes_and_unasked_answers_are_not() {
    let (a, b) = (
        SocketAddr::from(([198, 51, 100, 1], 7400)),
        SocketAddr::from(([198, 51, 100, 2], 7400)),
    );
    let (mut one, mut two) = (plane(1), plane(2));
    let peer = |n, addr| Peer {
        id: Some(id_of(n)),
        addr,
    };
    one.send(
        T0,
        Transmit {
            id: 1,
            to: peer(2, b),
            request: Request::Ping,
        },
    );
    let mut sizes = Vec::new();
    let mut pong_reply = None;
    for event in carry(&mut one, a, &mut two, &mut sizes) {
        if let PlaneEvent::Request { reply, .. } = event {
            pong_reply = Some(reply);
            two.answer(T0, reply, Response::Pong);
        }
    }
    let at_one = carry(&mut two, b, &mut one, &mut sizes);
    assert!(at_one.contains(&PlaneEvent::Observed {
        by: Contact::new(id_of(2), b),
        observed: a,
    }));
    // Node 1's confirm proves its address; node 2 then asks node 1 in the session node 1
    // opened, and node 1's answer is node 2's vote just the same: node 2 chose to ask it, and
    // both its key and its address are proven.
    carry(&mut one, a, &mut two, &mut sizes);
    two.send(
        T0,
        Transmit {
            id: 5,
            to: peer(1, a),
            request: Request::Ping,
        },
    );
    for event in carry(&mut two, b, &mut one, &mut sizes) {
        if let PlaneEvent::Request { reply, .. } = event {
            one.answer(T0, reply, Response::Pong);
        }
    }
    let at_two = carry(&mut one, a, &mut two, &mut sizes);
    let by = Contact::new(id_of(1), a);
    let pong = PlaneEvent::Response {
        from: by,
        id: 5,
        response: Response::Pong,
        role: Some(Mode::Server),
    };
    assert_eq!(at_two, vec![PlaneEvent::Observed { by, observed: b }, pong]);
    // An answer to nothing node 1 asked (node 2 answering request 1 again, as if forged in
    // the session): stray, and no vote.
    if let Some(reply) = pong_reply {
        two.answer(T0, reply, Response::Pong);
    }
    let stray = one.stats().stray;
    assert!(carry(&mut two, b, &mut one, &mut sizes).is_empty());
    assert_eq!(one.stats().stray, stray + 1);
}

#[test]
fn a_peer_that_says_client_is_never_announced_whatever_its_flag() {
    let (a, b) = (
        SocketAddr::from(([198, 51, 100, 1], 7400)),
        SocketAddr::from(([198, 51, 100, 2], 7400)),
    );
    for (role, announced) in [(Mode::Server, true), (Mode::Client, false)] {
        // Node 1 keeps the announce flag set, and says `role` in its bodies.
        let key = SigningKey::from_bytes(&[1; 32]);
        let mut config =
            PlaneConfig::new(NetworkName::new("cairn").unwrap_or_else(|_| unreachable!()));
        config.role = role;
        let mut one = Plane::new(Real::new(key), config, [1; 32], T0);
        let mut two = plane(2);
        let to = Peer {
            id: Some(id_of(2)),
            addr: b,
        };
        one.send(
            T0,
            Transmit {
                id: 1,
                to,
                request: Request::Ping,
            },
        );
        let mut sizes = Vec::new();
        let mut at_two = carry(&mut one, a, &mut two, &mut sizes);
        for event in &at_two {
            if let PlaneEvent::Request { reply, .. } = event {
                two.answer(T0, *reply, Response::Pong);
            }
        }
        carry(&mut two, b, &mut one, &mut sizes);
        // Node 1's confirm proves its address.
        at_two.extend(carry(&mut one, a, &mut two, &mut sizes));
        let requests: Vec<(Option<SocketAddr>, Option<Mode>)> = at_two
            .iter()
            .filter_map(|e| match e {
                PlaneEvent::Request { from, role, .. } => Some((from.addr, *role)),
                _ => None,
            })
            .collect();
        assert_eq!(requests, vec![(announced.then_some(a), Some(role))]);
        let verified = at_two.iter().any(|e| matches!(e, PlaneEvent::Verified(_)));
        assert_eq!(verified, announced, "{role:?}");
    }
}
