//! Client mode and the `role` a peer says: a client refuses to hold anything for others, and a
//! peer that says it is a client never stays in the routing table.

use super::*;

fn lone(mode: Mode) -> Node<MemoryStore> {
    let mut node = Node::new(
        node_id(1),
        Config::default(),
        MemoryStore::new(StoreLimits::default()),
    );
    node.set_mode(mode);
    node
}

fn requester(n: u8) -> Requester {
    Requester {
        id: node_id(n),
        addr: Some(addr(n)),
        verified: true,
        source: addr(n).ip(),
        connection: u64::from(n),
    }
}

fn code(answer: Answer) -> Option<ErrorCode> {
    match answer.response {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

#[test]
fn a_client_refuses_stores_and_listens_and_answers_lookups() {
    let mut node = lone(Mode::Client);
    let item = signed(2, "a", b"x", 1);
    let key = *item.key();
    let stored = node.handle_request(T0, requester(2), 1, Request::Store { item });
    assert_eq!(code(stored), Some(ErrorCode::UNAVAILABLE));
    assert_eq!(node.store().len(), 0, "it holds nothing for others");
    let listen = node.handle_request(T0, requester(2), 2, Request::Listen { key, seq: 0 });
    assert_eq!(code(listen), Some(ErrorCode::UNAVAILABLE));
    assert_eq!(node.subscription_count(), 0);
    let ping = node.handle_request(T0, requester(2), 3, Request::Ping);
    assert_eq!(ping.response, Response::Pong);
    let found = node.handle_request(T0, requester(2), 4, Request::FindValue { key });
    assert!(matches!(found.response, Response::Nodes(_)));
    // The same requests to a server are taken.
    let mut server = lone(Mode::Server);
    let item = signed(2, "a", b"x", 1);
    let stored = server.handle_request(T0, requester(2), 1, Request::Store { item });
    assert_eq!(code(stored), None);
}

/// A node that sent a `find_node` to `n`, so that an answer from `n` is expected.
fn asking(n: u8) -> (Node<MemoryStore>, u64) {
    let mut node = lone(Mode::Server);
    node.restore_contacts(T0, [contact(n)]);
    node.find_node(T0, node_id(9));
    let sent = std::iter::from_fn(|| node.poll_transmit())
        .find(|t| t.to.id == Some(node_id(n)))
        .expect("a request to the contact");
    (node, sent.id)
}

#[test]
fn a_peer_that_answers_as_a_client_leaves_the_table_and_a_legacy_one_stays() {
    for (role, stays) in [
        (Some(Mode::Client), false),
        (Some(Mode::Server), true),
        (None, true),
    ] {
        let (mut node, id) = asking(2);
        assert!(node.routing_table().entry(&node_id(2)).is_some());
        let answer = Response::Nodes(vec![contact(3)]);
        node.handle_response_from(T0, contact(2), role, id, answer);
        let held = node.routing_table().entry(&node_id(2)).is_some();
        assert_eq!(held, stays, "{role:?}");
    }
    // A client that answers is not added either, and its answer is still used.
    let (mut node, id) = asking(2);
    node.handle_client(T0, &node_id(2));
    assert!(node.routing_table().is_empty());
    let answer = Response::Nodes(vec![contact(3)]);
    node.handle_response_from(T0, contact(2), Some(Mode::Client), id, answer);
    assert!(node.routing_table().entry(&node_id(2)).is_none());
    let asked_next =
        std::iter::from_fn(|| node.poll_transmit()).any(|t| t.to.id == Some(node_id(3)));
    assert!(asked_next, "the contacts a client gave are asked");
}

#[test]
fn a_request_that_says_client_removes_its_sender() {
    let mut node = lone(Mode::Server);
    node.handle_request(T0, requester(2), 1, Request::Ping);
    assert!(node.routing_table().entry(&node_id(2)).is_some());
    // The driver takes the role: the sender leaves, and its request carries no address.
    node.handle_client(T0, &node_id(2));
    let client = Requester {
        addr: None,
        ..requester(2)
    };
    assert_eq!(
        node.handle_request(T0, client, 2, Request::Ping).response,
        Response::Pong
    );
    assert!(node.routing_table().entry(&node_id(2)).is_none());
    assert!(
        node.poll_event()
            .is_some_and(|e| e == Event::ContactAdded(contact(2)))
    );
    assert_eq!(node.poll_event(), Some(Event::ContactRemoved(node_id(2))));
}
