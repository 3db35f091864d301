//! The datagram plane's session layer (`cairn_core::datagram::Plane`) under a fuzzer-chosen
//! sequence of events: node A (the one checked) and an honest node B exchange requests and
//! answers over a network that the input drops, duplicates, reorders and delays, while an
//! attacker injects arbitrary datagrams, replays B's and flips bytes in them.
//!
//! The input is a sequence of operations, one byte each and its operands (`cairn_fuzz::op`
//! documents the encoding). Holds:
//! - no panic;
//! - a datagram that is not B's never makes A report an answer, a verified peer or a verified
//!   request (a request in an `initial` is reported unverified by design, and only from an
//!   `initial`); one of B's makes A report such a thing at most once, however often it
//!   arrives (replays do nothing);
//! - every request of A's ends exactly once (an answer, a failure or a fallback to TCP), and
//!   an answer comes from B, at B's address, and is of the kind the request asked for;
//! - A holds at most `max_sessions` sessions; once the network goes quiet every request ends
//!   and every session is dropped, and a node woken at its timeout never asks to be woken
//!   again at once.
#![no_main]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::datagram::{INITIAL, PROBE, Plane, PlaneEvent, Reply, Simulated};
use cairn_core::{Contact, ImmutableItem, Item, NodeId, Peer, Request, Response, Time, Transmit};
use cairn_fuzz::op;
use libfuzzer_sys::fuzz_target;

const MAX_SESSIONS: usize = 4;

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 4000))
}

/// The kinds of request, by the answer each allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ping,
    FindNode,
    FindValue,
    Store,
}

fn request(kind: Kind, big: bool) -> Request {
    let value = if big { vec![1u8; 1_500] } else { b"v".to_vec() };
    let item: Item = ImmutableItem::new(Bytes::from(value)).into();
    match kind {
        Kind::Ping => Request::Ping,
        Kind::FindNode => Request::FindNode {
            target: NodeId::hash(b"target"),
        },
        Kind::FindValue => Request::FindValue {
            key: NodeId::hash(&[u8::from(big)]),
        },
        Kind::Store => Request::Store { item },
    }
}

/// An honest answer to `request`: `nodes` answers are large enough to be split.
fn answer(request: &Request, big: bool) -> Response {
    match request {
        Request::Ping => Response::Pong,
        Request::FindNode { .. } => Response::Nodes(
            (0..20u16)
                .map(|i| {
                    let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i);
                    Contact::new(NodeId::hash(&i.to_be_bytes()), (ip, 7400 + i).into())
                })
                .collect(),
        ),
        Request::FindValue { .. } => {
            let value = if big { vec![2u8; 1_500] } else { b"w".to_vec() };
            Response::value(ImmutableItem::new(Bytes::from(value)).into())
        }
        _ => Response::Stored,
    }
}

fn allowed(kind: Kind, response: &Response) -> bool {
    matches!(
        (kind, response),
        (Kind::Ping, Response::Pong)
            | (Kind::FindNode, Response::Nodes(_))
            | (Kind::FindValue, Response::Value { .. } | Response::Nodes(_))
            | (Kind::Store, Response::Stored | Response::Error(_))
            | (_, Response::Error(_))
    )
}

/// What went through the network between A (1) and B (2).
struct World {
    now: Time,
    a: Plane<Simulated>,
    b: Plane<Simulated>,
    b_id: NodeId,
    /// A's datagrams to B not yet delivered.
    to_b: VecDeque<Vec<u8>>,
    /// Every datagram B sent A, and whether A reported something authenticated on taking it
    /// (an answer, a verified peer or request): after that, taking it again is a replay.
    captured: Vec<(Vec<u8>, bool)>,
    /// How many authenticated reports A made.
    authenticated: u64,
    /// B's datagrams to A not yet delivered (indices into `captured`).
    to_a: VecDeque<usize>,
    /// A's requests not yet ended, and their kind.
    outstanding: BTreeMap<u64, Kind>,
    next_id: u64,
    /// Requests each node was asked and has not answered.
    asked_a: Vec<(Reply, Request)>,
    asked_b: Vec<(Reply, Request)>,
    big_answers: bool,
    /// `CAIRN_FUZZ_TRACE` set: print each operation and what A reports (to replay a failure).
    trace: bool,
    /// Whether A sent anything to B's address yet (a probe from there no longer counts).
    sent_to_b: bool,
}

impl World {
    fn new() -> Self {
        let now = Time::from_secs(1_000_000);
        World {
            now,
            a: cairn_fuzz::plane(1, MAX_SESSIONS, now),
            b: cairn_fuzz::plane(2, MAX_SESSIONS, now),
            b_id: cairn_fuzz::plane_id(2),
            to_b: VecDeque::new(),
            captured: Vec::new(),
            authenticated: 0,
            to_a: VecDeque::new(),
            outstanding: BTreeMap::new(),
            next_id: 1,
            asked_a: Vec::new(),
            asked_b: Vec::new(),
            big_answers: false,
            trace: std::env::var_os("CAIRN_FUZZ_TRACE").is_some(),
            sent_to_b: false,
        }
    }

    /// Moves what each node sent into the network, and checks what A reports. `forged`:
    /// the last datagram A took was not one of B's, or was one A had taken before.
    fn pump(&mut self, forged: Option<&[u8]>) {
        while let Some((to, bytes)) = self.a.poll_datagram() {
            if to == addr(2) {
                self.sent_to_b = true;
                self.to_b.push_back(bytes);
            }
        }
        while let Some((to, bytes)) = self.b.poll_datagram() {
            if to == addr(1) {
                self.to_a.push_back(self.captured.len());
                self.captured.push((bytes, false));
            }
        }
        while let Some(event) = self.b.poll_event() {
            if let PlaneEvent::Request { reply, request, .. } = event {
                self.asked_b.push((reply, request));
            }
        }
        while let Some(event) = self.a.poll_event() {
            self.check(event, forged);
        }
        assert!(self.a.stats().sessions <= MAX_SESSIONS as u64);
    }

    fn check(&mut self, event: PlaneEvent, forged: Option<&[u8]>) {
        if self.trace {
            eprintln!("  A reports {event:?}");
        }
        if let Some(bytes) = forged {
            let unauthenticated_ok = match &event {
                PlaneEvent::Request { from, .. } => !from.verified && bytes[0] == INITIAL,
                // A probe is a bare nonce: anyone may send one, and only its nonce counts.
                PlaneEvent::Probe { .. } => bytes[0] == PROBE,
                PlaneEvent::Failed { .. } | PlaneEvent::Fallback(_) => true,
                _ => false,
            };
            assert!(
                unauthenticated_ok,
                "a datagram that did not authenticate made A report {event:?}"
            );
        }
        if matches!(
            &event,
            PlaneEvent::Response { .. }
                | PlaneEvent::Verified(_)
                | PlaneEvent::Reach { .. }
                | PlaneEvent::Rendezvous { .. }
                | PlaneEvent::Request {
                    from: cairn_core::Requester { verified: true, .. },
                    ..
                }
        ) {
            self.authenticated += 1;
        }
        match event {
            PlaneEvent::Request {
                reply,
                from,
                request,
                role: _,
            } => {
                if from.verified {
                    assert_eq!(from.id, self.b_id, "a verified request not from B");
                }
                self.asked_a.push((reply, request));
            }
            PlaneEvent::Response {
                from,
                id,
                response,
                role: _,
            } => {
                let kind = self.outstanding.remove(&id);
                let kind = kind.unwrap_or_else(|| panic!("an answer to {id}, not outstanding"));
                assert_eq!(
                    (from.id, from.addr),
                    (self.b_id, addr(2)),
                    "answer not from B"
                );
                assert!(allowed(kind, &response), "{kind:?} answered {response:?}");
            }
            PlaneEvent::Failed { id, .. } => {
                assert!(
                    self.outstanding.remove(&id).is_some(),
                    "a failure of {id}, not outstanding"
                );
            }
            PlaneEvent::Fallback(transmit) => {
                assert!(
                    self.outstanding.remove(&transmit.id).is_some(),
                    "a fallback of {}, not outstanding",
                    transmit.id
                );
            }
            PlaneEvent::Verified(requester) => {
                assert_eq!(requester.id, self.b_id, "verified a peer that is not B");
            }
            PlaneEvent::Reach { from, source, .. } => {
                // B never asks `reach` here; anything else is a forgery that authenticated.
                assert_eq!((from.id, source), (self.b_id, addr(2)), "a reach not from B");
            }
            PlaneEvent::Rendezvous { from, source, .. } => {
                // Nor `register`, `introduce` or `relay`.
                assert_eq!(
                    (from.id, source),
                    (self.b_id, addr(2)),
                    "a rendezvous request not from B"
                );
            }
            PlaneEvent::Probe { from, .. } => {
                // Never from an address A sent to.
                assert!(
                    !(self.sent_to_b && from == addr(2)),
                    "a probe from an address A sent to"
                );
            }
            PlaneEvent::Observed { by, .. } => {
                // A vote only from B, at its address, and only for an outstanding request.
                assert_eq!((by.id, by.addr), (self.b_id, addr(2)), "a vote not from B");
                assert!(!self.outstanding.is_empty(), "a vote with no request out");
            }
        }
    }

    /// A takes `bytes` from `from`; `legit`: B sent them and A has not yet reported anything
    /// authenticated on taking them.
    fn a_takes(&mut self, from: SocketAddr, bytes: &[u8], legit: bool) {
        if self.trace {
            let kind = bytes.first().copied().unwrap_or_default();
            eprintln!(
                "  A takes {} bytes, kind {kind}, legit {legit}",
                bytes.len()
            );
        }
        self.a.handle_datagram(self.now, from, bytes);
        self.pump((!legit).then_some(bytes));
    }

    /// Delivers B's captured datagram `index` to A.
    fn deliver_captured(&mut self, index: usize) {
        let (bytes, spent) = self.captured[index].clone();
        let before = self.authenticated;
        self.a_takes(addr(2), &bytes, !spent);
        if self.authenticated > before {
            self.captured[index].1 = true;
        }
    }

    fn a_sends(&mut self, k: u8) {
        let kind = [Kind::Ping, Kind::FindNode, Kind::FindValue, Kind::Store][usize::from(k % 4)];
        let (to, expected) = if k & 0x10 != 0 {
            (addr(3), Some(NodeId::hash(b"nobody")))
        } else {
            (addr(2), Some(self.b_id))
        };
        let id = self.next_id;
        self.next_id += 1;
        self.outstanding.insert(id, kind);
        let transmit = Transmit {
            id,
            to: Peer {
                id: expected,
                addr: to,
            },
            request: request(kind, k & 0x04 != 0),
        };
        self.a.send(self.now, transmit);
        self.pump(None);
    }

    fn b_sends(&mut self, k: u8) {
        let kind = [Kind::Ping, Kind::FindNode, Kind::FindValue, Kind::Store][usize::from(k % 4)];
        let transmit = Transmit {
            id: u64::from(k) << 32 | self.next_id,
            to: Peer {
                id: Some(cairn_fuzz::plane_id(1)),
                addr: addr(1),
            },
            request: request(kind, k & 0x04 != 0),
        };
        self.next_id += 1;
        self.b.send(self.now, transmit);
        self.pump(None);
    }

    fn answer_all(&mut self, on_a: bool) {
        let asked = std::mem::take(if on_a {
            &mut self.asked_a
        } else {
            &mut self.asked_b
        });
        for (reply, request) in asked {
            let response = answer(&request, self.big_answers);
            if on_a {
                self.a.answer(self.now, reply, response);
            } else {
                self.b.answer(self.now, reply, response);
            }
        }
        self.pump(None);
    }

    fn tick(&mut self, millis: u64) {
        self.now += Duration::from_millis(millis);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.pump(None);
    }

    /// The network goes quiet for longer than every timeout: every request of A's must end,
    /// and every session go.
    fn quiesce(&mut self) {
        let end = self.now + Duration::from_secs(700);
        // From timeout to timeout (each node's next, every sweep included), not by the tick.
        while let Some(next) = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .filter(|next| *next <= end)
        {
            self.to_a.clear();
            self.to_b.clear();
            self.tick(next.since(self.now).as_millis() as u64);
            for timeout in [self.a.poll_timeout(), self.b.poll_timeout()] {
                assert!(
                    timeout.is_none_or(|t| t > self.now),
                    "a timeout due at once, again"
                );
            }
        }
        self.to_a.clear();
        self.to_b.clear();
        self.tick(end.since(self.now).as_millis() as u64);
        assert!(
            self.outstanding.is_empty(),
            "never ended: {:?}",
            self.outstanding
        );
        assert_eq!(self.a.pending(), 0);
        assert_eq!(
            self.a.stats().sessions,
            0,
            "sessions kept after the network went quiet"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut world = World::new();
    let mut input = op::Reader::new(data);
    let mut steps = 0;
    while let Some(operation) = input.next() {
        steps += 1;
        if steps > 256 {
            break;
        }
        if world.trace {
            eprintln!("{operation:?}");
        }
        match operation {
            op::Op::ASend(k) => world.a_sends(k),
            op::Op::BSend(k) => world.b_sends(k),
            op::Op::DeliverToB(fate) => {
                if let Some(bytes) = world.to_b.pop_front() {
                    if fate % 3 != 1 {
                        world.b.handle_datagram(world.now, addr(1), &bytes);
                    }
                    if fate % 3 == 2 {
                        world.b.handle_datagram(world.now, addr(1), &bytes);
                    }
                    world.pump(None);
                }
            }
            op::Op::DeliverToA(fate) => {
                if let Some(index) = world.to_a.pop_front() {
                    if fate % 3 != 1 {
                        world.deliver_captured(index);
                    }
                    if fate % 3 == 2 {
                        world.deliver_captured(index);
                    }
                }
            }
            op::Op::Inject { from, bytes } => {
                let from = addr(from % 4 + 1);
                let known = world.captured.iter().position(|(b, _)| *b == bytes);
                match known {
                    Some(index) if from == addr(2) => world.deliver_captured(index),
                    _ if bytes.is_empty() => {}
                    _ => world.a_takes(from, &bytes, false),
                }
            }
            op::Op::Mutate { index, at, xor } => {
                if world.captured.is_empty() {
                    continue;
                }
                let index = usize::from(index) % world.captured.len();
                let mut bytes = world.captured[index].0.clone();
                if let Some(byte) = bytes.get_mut(usize::from(at)) {
                    *byte ^= xor;
                }
                if bytes == world.captured[index].0 {
                    world.deliver_captured(index);
                } else {
                    world.a_takes(addr(2), &bytes, false);
                }
            }
            op::Op::Replay(index) => {
                if !world.captured.is_empty() {
                    world.deliver_captured(usize::from(index) % world.captured.len());
                }
            }
            op::Op::Tick(millis) => world.tick(u64::from(millis)),
            op::Op::AnswerA => world.answer_all(true),
            op::Op::AnswerB(big) => {
                world.big_answers = big;
                world.answer_all(false);
            }
        }
    }
    world.quiesce();
});
