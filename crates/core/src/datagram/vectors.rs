//! The datagram test vectors of `docs/vectors/datagram.md`, checked against the crate: the
//! hex below was computed by `docs/vectors/datagram.py`, an implementation written from
//! `docs/protocol.md` alone. The crate must build the same bytes from the same inputs, and its
//! plane must take the Python-made datagrams.
//!
//! A plane draws its session ids and ephemeral keys from its private seeded `Random`, so no
//! seed makes it draw the vectors' `sid_i` and ephemeral secret. The test that hands the
//! Python `accept` to an initiating plane therefore puts the vectors' `sid_i` and secret into
//! the session the plane opened (this module is the plane's child, so it can); everything the
//! plane then does with the `accept` is its own code.

use std::net::SocketAddr;

use ed25519_dalek::SigningKey;

use super::*;
use crate::id::to_hex;
use crate::message::Peer;

const INITIATOR_SEED: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];
const RESPONDER_SEED: [u8; 32] = [0x22; 32];
const NETWORK: &str = "cairn";
const SID_I: u64 = 0x0102_0304_0506_0708;
const SID_R: u64 = 0x1112_1314_1516_1718;
const EPH_I_SECRET: [u8; 32] = [0x44; 32];
const EPH_R_SECRET: [u8; 32] = [0x55; 32];
const REFUSE_MESSAGE: &str = "this node is on network \"cairn\"";
const T0: Time = Time::from_millis(1_000_000);

// From `python3 docs/vectors/datagram.py`.
const PK_I: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
const PK_R: &str = "a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0";
const NODE_ID_R: &str = "ef16b2a301070ea1aec8194591438ae5cb1a79a407957e1e4ffd0f1d211ad8cc29fd542c8794ca145e640185bee864f31a5474cdb1b6030c4b9de532339042c0";
const EPH_I: &str = "ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b";
const EPH_R: &str = "38ab664bd86f77d7e66bdd9ae0792913a94fd8b33a1260027e4b46c1f4884c67";
const BODY_FIND_NODE: &str = "83a474797065a966696e645f6e6f6465a2696401a6746172676574c440ef16b2a301070ea1aec8194591438ae5cb1a79a407957e1e4ffd0f1d211ad8cc29fd542c8794ca145e640185bee864f31a5474cdb1b6030c4b9de532339042c0";
const INITIAL_SIGNED_MESSAGE: &str = "636169726e2d696e697469616c2d76320102010102030405060708ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b805636169726e005d83a474797065a966696e645f6e6f6465a2696401a6746172676574c440ef16b2a301070ea1aec8194591438ae5cb1a79a407957e1e4ffd0f1d211ad8cc29fd542c8794ca145e640185bee864f31a5474cdb1b6030c4b9de532339042c0";
const INITIAL_SIGNATURE: &str = "de1d0cc5b969f54cf9ff1d158799d2744207f51dcf5c674e4f402b2e1a449a0999d78ff457e563cdb376795ac0f9baa4bba403b233ef1f59dcb85b34ec28760b";
/// The `initial` up to its signature's end; zeros follow to 1,200 bytes.
const INITIAL: &str = "0102010102030405060708ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b805636169726e005d83a474797065a966696e645f6e6f6465a2696401a6746172676574c440ef16b2a301070ea1aec8194591438ae5cb1a79a407957e1e4ffd0f1d211ad8cc29fd542c8794ca145e640185bee864f31a5474cdb1b6030c4b9de532339042c0de1d0cc5b969f54cf9ff1d158799d2744207f51dcf5c674e4f402b2e1a449a0999d78ff457e563cdb376795ac0f9baa4bba403b233ef1f59dcb85b34ec28760b";
const SHARED: &str = "1eafcf380080d1f4d8a308284691b84a06aa5ca32c723c9a327b7a28c504ad1d";
const KEY_I_TO_R: &str = "af665888e5b0ba61cb4d2e033b5352093459d6cac47508cf348f669a97bbb8cf";
const KEY_R_TO_I: &str = "7a5f5dc695d955bf9a279412dd6f01d9d69a6de8334d572a8f3ace308728cfe2";
const BODY_PONG_1: &str = "82a474797065a4706f6e67a2696401";
const ACCEPT_SIGNED_MESSAGE: &str = "636169726e2d6163636570742d763205636169726e0102030405060708ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8111213141516171838ab664bd86f77d7e66bdd9ae0792913a94fd8b33a1260027e4b46c1f4884c67a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0";
const ACCEPT_SIGNATURE: &str = "1b1a41ebd829b9e6a6738bccdbb6624eedb5dc284f6bc9fa94a05976505a7273e02e5b010ff3d078861ec9a7d1385797ee2c738c32787351a342821672d8d00b";
const ACCEPT: &str = "02020102030405060708111213141516171838ab664bd86f77d7e66bdd9ae0792913a94fd8b33a1260027e4b46c1f4884c67a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f01b1a41ebd829b9e6a6738bccdbb6624eedb5dc284f6bc9fa94a05976505a7273e02e5b010ff3d078861ec9a7d1385797ee2c738c32787351a342821672d8d00b2ed7481f2e396215a9f17670a036e4856fc98916b1ff90fab12a127071e033";
const BODY_PING_2: &str = "82a474797065a470696e67a2696402";
const DATA_I: &str = "031112131415161718000000000000000100b8576eff0fee02521def71c0cdc99021b844bf114a1a46048aa5a6b07597";
const BODY_PONG_2: &str = "82a474797065a4706f6e67a2696402";
const DATA_R: &str = "030102030405060708000000000000000112a8139d910259e9a2aa94d5a2e8f2335219cc271c4919bd8c69ed5e6a258a";
const OBSERVED: &str = "c63364071ce8";
const BODY_PONG_3_OBSERVED: &str =
    "83a474797065a4706f6e67a2696403a86f62736572766564c406c63364071ce8";
const DATA_R_OBSERVED: &str = "0301020304050607080000000000000002fa90fc4f8dea475955d92f6da0b06bdc2d941e796f65aac07666e9735031f63caddb0484bb223c78cb2c88f1e7c98a1f";
const BODY_PING_2_ROLE: &str = "83a474797065a470696e67a2696402a4726f6c65a6736572766572";
const DATA_I_ROLE: &str = "031112131415161718000000000000000101b8576eff0fee02521def71c0cdc97ab1ac46aa4c5fa63b4678ae80abd45d3121203e70be06c468892057";
const REACH_NONCE: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
const BODY_REACH_4: &str = "84a474797065a57265616368a2696404a56e6f6e6365c410a0a1a2a3a4a5a6a7a8a9aaabacadaeafa4726f6c65a6636c69656e74";
const DATA_I_REACH: &str = "031112131415161718000000000000000320d9fc4afbb1b4c221746ef25f825d0e8010b30114ca26d9f18a9845d20876b3dceed72f557f4ed00f9ca97c8ddbdeb6584e4a263916f5f84f4245f607eea0c05a625b29";
const BODY_PROBE_9: &str = "85a474797065a570726f6265a2696409a56e6f6e6365c410a0a1a2a3a4a5a6a7a8a9aaabacadaeafa2746fc406c63364071ce8a4726f6c65a6736572766572";
const BODY_PROBED_4: &str =
    "84a474797065a670726f626564a2696404a86f62736572766564c406c63364071ce8a4726f6c65a6736572766572";
const DATA_R_PROBED: &str = "03010203040506070800000000000000036cdaa87ef7b52f82524db57a06a4d088805a9dfbe57665f04d7c8b7fc14224d216de7a065b754d3119743e736d2382613b64cd1b718190ad9d231ec5a422";
const PROBE_DATAGRAM: &str = "06a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const CONFIRM: &str = "031112131415161718000000000000000247c476f1d76b3596501541f3aa0491f6";
const UNKNOWN_VECTOR: &str = "041112131415161718";
const REFUSE_VECTOR: &str =
    "0502010203040506070801aa1f74686973206e6f6465206973206f6e206e6574776f726b2022636169726e22";

fn bytes(hex: &str) -> Vec<u8> {
    crate::id::from_hex(hex).unwrap_or_else(|| panic!("a test vector is not hex: {hex}"))
}

/// The Python `initial`, padded as it goes on the wire.
fn python_initial() -> Vec<u8> {
    let mut initial = bytes(INITIAL);
    initial.resize(MAX_DATAGRAM, 0);
    initial
}

fn initiator() -> Real {
    Real::new(SigningKey::from_bytes(&INITIATOR_SEED))
}

fn responder() -> Real {
    Real::new(SigningKey::from_bytes(&RESPONDER_SEED))
}

fn responder_id() -> NodeId {
    NodeId::of_public_key(&responder().public_key())
}

fn request(id: u64, request: Request) -> Vec<u8> {
    wire::encode_body(&Body::Message(Message::Request { id, request })).unwrap_or_default()
}

fn response(id: u64, response: Response) -> Vec<u8> {
    wire::encode_body(&Body::Message(Message::Response { id, response })).unwrap_or_default()
}

/// The session keys, as the crate derives them from the vectors' ephemeral secrets.
fn keys() -> ([u8; 32], [u8; 32]) {
    let (eph_i, eph_r) = (
        Real::ephemeral_public(&EPH_I_SECRET),
        Real::ephemeral_public(&EPH_R_SECRET),
    );
    let shared = Real::agree(&EPH_I_SECRET, &eph_r);
    derive_keys(
        &shared,
        (&eph_i, &initiator().public_key()),
        (&eph_r, &responder().public_key()),
    )
}

fn the_initial() -> Initial {
    let mut initial = Initial {
        flags: FLAG_ANNOUNCE,
        sid: SID_I,
        ephemeral: Real::ephemeral_public(&EPH_I_SECRET),
        public_key: initiator().public_key(),
        network: NETWORK.as_bytes().to_vec(),
        body: request(
            1,
            Request::FindNode {
                target: responder_id(),
            },
        ),
        signature: [0; 64],
    };
    initial.signature = initiator().sign(&Initial::signed_message(&initial.signed_part()));
    initial
}

fn accept_signed_message() -> Vec<u8> {
    let (pk_i, pk_r) = (initiator().public_key(), responder().public_key());
    let (eph_i, eph_r) = (
        Real::ephemeral_public(&EPH_I_SECRET),
        Real::ephemeral_public(&EPH_R_SECRET),
    );
    Accept::signed_message(
        NETWORK.as_bytes(),
        (SID_I, &eph_i, &pk_i),
        (SID_R, &eph_r, &pk_r),
    )
}

fn data(sid: u64, pn: u64, key: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let header = packet::data_header(sid, pn);
    [header.to_vec(), Real::seal(key, pn, &header, body)].concat()
}

#[test]
fn keys_and_bodies_match_the_vectors() {
    assert_eq!(to_hex(&initiator().public_key()), PK_I);
    assert_eq!(to_hex(&responder().public_key()), PK_R);
    assert_eq!(responder_id().to_hex(), NODE_ID_R);
    assert_eq!(to_hex(&Real::ephemeral_public(&EPH_I_SECRET)), EPH_I);
    assert_eq!(to_hex(&Real::ephemeral_public(&EPH_R_SECRET)), EPH_R);
    let shared = Real::agree(&EPH_I_SECRET, &Real::ephemeral_public(&EPH_R_SECRET));
    assert_eq!(to_hex(&shared), SHARED);
    let other_side = Real::agree(&EPH_R_SECRET, &Real::ephemeral_public(&EPH_I_SECRET));
    assert_eq!(to_hex(&other_side), SHARED);
    let (forward, back) = keys();
    assert_eq!(to_hex(&forward), KEY_I_TO_R);
    assert_eq!(to_hex(&back), KEY_R_TO_I);
    assert_eq!(to_hex(&the_initial().body), BODY_FIND_NODE);
    assert_eq!(to_hex(&response(1, Response::Pong)), BODY_PONG_1);
    assert_eq!(to_hex(&request(2, Request::Ping)), BODY_PING_2);
    assert_eq!(to_hex(&response(2, Response::Pong)), BODY_PONG_2);
}

#[test]
fn the_crate_builds_the_initial_and_accept_of_the_vectors() {
    let initial = the_initial();
    let signed = Initial::signed_message(&initial.signed_part());
    assert_eq!(to_hex(&signed), INITIAL_SIGNED_MESSAGE);
    assert_eq!(to_hex(&initial.signature), INITIAL_SIGNATURE);
    assert_eq!(initial.encode(), python_initial());

    let message = accept_signed_message();
    assert_eq!(to_hex(&message), ACCEPT_SIGNED_MESSAGE);
    let accept = Accept {
        initiator_sid: SID_I,
        sid: SID_R,
        ephemeral: Real::ephemeral_public(&EPH_R_SECRET),
        public_key: responder().public_key(),
        signature: responder().sign(&message),
    };
    assert_eq!(to_hex(&accept.signature), ACCEPT_SIGNATURE);
    let header = accept.header();
    assert_eq!(header.len(), ACCEPT_HEADER);
    let (_, back) = keys();
    let sealed = Real::seal(&back, 0, &header, &response(1, Response::Pong));
    assert_eq!(to_hex(&[header, sealed].concat()), ACCEPT);
}

#[test]
fn the_crate_builds_the_data_unknown_and_refuse_of_the_vectors() {
    let (forward, back) = keys();
    let ping = request(2, Request::Ping);
    assert_eq!(to_hex(&data(SID_R, 1, &forward, &ping)), DATA_I);
    let pong = response(2, Response::Pong);
    assert_eq!(to_hex(&data(SID_I, 1, &back, &pong)), DATA_R);
    let confirm = data(SID_R, 2, &forward, &[]);
    assert_eq!(confirm.len(), DATA_HEADER + TAG_LEN);
    assert_eq!(to_hex(&confirm), CONFIRM);
    assert_eq!(to_hex(&packet::unknown(SID_R)), UNKNOWN_VECTOR);
    let refuse = packet::refuse(SID_I, ErrorCode::MISMATCH, REFUSE_MESSAGE);
    assert_eq!(to_hex(&refuse), REFUSE_VECTOR);
    let parsed = packet::parse_refuse(&refuse);
    assert_eq!(
        parsed,
        Some((SID_I, ErrorCode::MISMATCH, REFUSE_MESSAGE.to_owned()))
    );
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 4000))
}

fn plane(suite: Real, network: &str, seed: u8) -> Plane<Real> {
    let network = NetworkName::new(network).unwrap_or_else(|_| unreachable!());
    Plane::new(suite, PlaneConfig::new(network), [seed; 32], T0)
}

fn drain(plane: &mut Plane<Real>) -> (Vec<(SocketAddr, Vec<u8>)>, Vec<PlaneEvent>) {
    let datagrams = std::iter::from_fn(|| plane.poll_datagram()).collect();
    let events = std::iter::from_fn(|| plane.poll_event()).collect();
    (datagrams, events)
}

/// The responder's plane takes the Python `initial` and asks its node for the answer; its
/// `accept` opens with the keys the vectors' initiator derives.
#[test]
fn a_plane_answers_the_python_initial() {
    let mut b = plane(responder(), NETWORK, 2);
    b.handle_datagram(T0, addr(1), &python_initial());
    let (datagrams, events) = drain(&mut b);
    assert!(datagrams.is_empty(), "the node answers, not the plane");
    let [
        PlaneEvent::Request {
            reply,
            from,
            request,
            ..
        },
    ] = events.as_slice()
    else {
        panic!("expected one request, got {events:?}");
    };
    assert_eq!(reply.id, 1);
    let target = responder_id();
    assert_eq!(*request, Request::FindNode { target });
    assert_eq!(from.id, NodeId::of_public_key(&initiator().public_key()));
    assert_eq!(
        from.addr,
        Some(addr(1)),
        "flags 0x01: it takes requests there"
    );
    assert!(!from.verified, "its address is not proven yet");

    b.answer(T0, *reply, Response::Pong);
    let (datagrams, _) = drain(&mut b);
    let [(to, accept)] = datagrams.as_slice() else {
        panic!("expected one accept, got {datagrams:?}");
    };
    assert_eq!(*to, addr(1));
    let Some((accept, header, sealed)) = Accept::parse(accept) else {
        panic!("the plane's accept does not parse");
    };
    assert_eq!(accept.initiator_sid, SID_I);
    let (pk_i, eph_i) = (initiator().public_key(), bytes(EPH_I));
    let eph_i: [u8; 32] = eph_i.try_into().unwrap_or_default();
    let signed = Accept::signed_message(
        NETWORK.as_bytes(),
        (SID_I, &eph_i, &pk_i),
        (accept.sid, &accept.ephemeral, &accept.public_key),
    );
    assert!(Real::verify(&accept.public_key, &signed, &accept.signature));
    let shared = Real::agree(&EPH_I_SECRET, &accept.ephemeral);
    let (_, back) = derive_keys(
        &shared,
        (&eph_i, &pk_i),
        (&accept.ephemeral, &accept.public_key),
    );
    // The answer carries the address the initial came from (the vectors' pong, plus
    // `observed`).
    let opened = Real::open(&back, 0, header, sealed).unwrap_or_default();
    let envelope = Envelope {
        observed: Some(addr(1)),
        role: Some(Mode::Server),
    };
    let pong = Body::Message(Message::Response {
        id: 1,
        response: Response::Pong,
    });
    assert_eq!(
        wire::decode_body_with(&opened),
        Ok((pong.clone(), envelope))
    );
    assert_eq!(
        opened,
        wire::encode_body_with(&pong, &envelope).unwrap_or_default()
    );
}

/// The `observed` vectors: the crate writes the same address, body and `data`.
#[test]
fn the_crate_builds_the_observed_vectors() {
    let observed: SocketAddr = "198.51.100.7:7400"
        .parse()
        .unwrap_or_else(|_| unreachable!());
    assert_eq!(to_hex(&wire::compact_addr(observed)), OBSERVED);
    let envelope = Envelope {
        observed: Some(observed),
        role: None,
    };
    let pong = Body::Message(Message::Response {
        id: 3,
        response: Response::Pong,
    });
    let body = wire::encode_body_with(&pong, &envelope).unwrap_or_default();
    assert_eq!(to_hex(&body), BODY_PONG_3_OBSERVED);
    let (forward, back) = keys();
    assert_eq!(to_hex(&data(SID_I, 2, &back, &body)), DATA_R_OBSERVED);
    // And `role`, written after the message's keys.
    let ping = Body::Message(Message::Request {
        id: 2,
        request: Request::Ping,
    });
    let body = wire::encode_body_with(&ping, &Envelope::role(Mode::Server)).unwrap_or_default();
    assert_eq!(to_hex(&body), BODY_PING_2_ROLE);
    assert_eq!(to_hex(&data(SID_R, 1, &forward, &body)), DATA_I_ROLE);
}

/// The reachability vectors: the crate writes the same `reach`, `probe`, `probed` and probe
/// datagram, reads the Python bodies back, and a plane reports the Python probe.
#[test]
fn the_crate_builds_the_reach_vectors() {
    let observed: SocketAddr = "198.51.100.7:7400"
        .parse()
        .unwrap_or_else(|_| unreachable!());
    let body = |message: Message, envelope: Envelope| {
        wire::encode_body_with(&Body::Message(message), &envelope).unwrap_or_default()
    };
    let reach = Message::Request {
        id: 4,
        request: Request::Reach { nonce: REACH_NONCE },
    };
    let reach_body = body(reach.clone(), Envelope::role(Mode::Client));
    assert_eq!(to_hex(&reach_body), BODY_REACH_4);
    let (forward, back) = keys();
    assert_eq!(to_hex(&data(SID_R, 3, &forward, &reach_body)), DATA_I_REACH);
    let probe = Message::Request {
        id: 9,
        request: Request::Probe {
            to: observed,
            nonce: REACH_NONCE,
        },
    };
    assert_eq!(
        to_hex(&body(probe.clone(), Envelope::role(Mode::Server))),
        BODY_PROBE_9
    );
    let probed = Message::Response {
        id: 4,
        response: Response::Probed,
    };
    let envelope = Envelope {
        observed: Some(observed),
        role: Some(Mode::Server),
    };
    let probed_body = body(probed.clone(), envelope);
    assert_eq!(to_hex(&probed_body), BODY_PROBED_4);
    assert_eq!(to_hex(&data(SID_I, 3, &back, &probed_body)), DATA_R_PROBED);
    assert_eq!(to_hex(&packet::probe(&REACH_NONCE)), PROBE_DATAGRAM);
    for (hex, message) in [
        (BODY_REACH_4, reach),
        (BODY_PROBE_9, probe),
        (BODY_PROBED_4, probed),
    ] {
        let decoded = wire::decode_body_with(&bytes(hex)).map(|(b, _)| b);
        assert_eq!(decoded, Ok(Body::Message(message)));
    }
    // A plane that never sent to the probe's source reports it; one that did drops it.
    let mut a = plane(initiator(), NETWORK, 1);
    a.handle_datagram(T0, addr(9), &bytes(PROBE_DATAGRAM));
    assert_eq!(
        a.poll_event(),
        Some(PlaneEvent::Probe {
            from: addr(9),
            nonce: REACH_NONCE,
            vouched: true
        })
    );
    let transmit = Transmit {
        id: 1,
        to: Peer {
            id: Some(responder_id()),
            addr: addr(9),
        },
        request: Request::Ping,
    };
    a.send(T0, transmit);
    while a.poll_datagram().is_some() {}
    a.handle_datagram(T0, addr(9), &bytes(PROBE_DATAGRAM));
    assert_eq!(a.poll_event(), None);
    assert_eq!(a.stats().probes_from_contacted, 1);
    // Anything else of the probe's kind is malformed.
    a.handle_datagram(T0, addr(8), &bytes(PROBE_DATAGRAM)[..16]);
    assert_eq!(a.stats().malformed, 1);
}

/// The Python `accept`, taken apart by the crate's own parts: parse, signature, keys, open.
#[test]
fn the_crate_opens_the_python_accept() {
    let python = bytes(ACCEPT);
    let Some((accept, header, sealed)) = Accept::parse(&python) else {
        panic!("the Python accept does not parse");
    };
    assert_eq!((accept.initiator_sid, accept.sid), (SID_I, SID_R));
    assert_eq!(to_hex(&accept.ephemeral), EPH_R);
    assert_eq!(to_hex(&accept.public_key), PK_R);
    assert!(Real::verify(
        &accept.public_key,
        &accept_signed_message(),
        &accept.signature
    ));
    let (_, back) = keys();
    let Some(body) = Real::open(&back, 0, header, sealed) else {
        panic!("the Python accept's body does not open");
    };
    let decoded = wire::decode_body(&body);
    let pong = Body::Message(Message::Response {
        id: 1,
        response: Response::Pong,
    });
    assert_eq!(decoded, Ok(pong));
}

/// An initiating plane takes the Python `accept` and the responder's `data`, and sends the
/// vectors' `data` for the request that waited behind the `initial`.
#[test]
fn a_plane_takes_the_python_accept_and_data() {
    let mut a = plane(initiator(), NETWORK, 1);
    let to = Peer {
        id: Some(responder_id()),
        addr: addr(2),
    };
    let target = responder_id();
    let find_node = Request::FindNode { target };
    a.send(
        T0,
        Transmit {
            id: 1,
            to,
            request: find_node,
        },
    );
    a.send(
        T0,
        Transmit {
            id: 2,
            to,
            request: Request::Ping,
        },
    );
    let (datagrams, _) = drain(&mut a);
    assert_eq!(datagrams.len(), 1, "the ping waits for the session");
    use_the_vectors_session(&mut a);

    a.handle_datagram(T0, addr(2), &bytes(ACCEPT));
    let (datagrams, events) = drain(&mut a);
    let pong = PlaneEvent::Response {
        from: Contact::new(responder_id(), addr(2)),
        id: 1,
        response: Response::Pong,
        // The Python side predates roles.
        role: None,
    };
    assert_eq!(events, vec![pong]);
    // The waiting ping goes as the vectors' step 3 with `role` (a node that knows roles).
    assert_eq!(datagrams, vec![(addr(2), bytes(DATA_I_ROLE))]);

    a.handle_datagram(T0, addr(2), &bytes(DATA_R));
    let (datagrams, events) = drain(&mut a);
    assert!(datagrams.is_empty());
    let pong = PlaneEvent::Response {
        from: Contact::new(responder_id(), addr(2)),
        id: 2,
        response: Response::Pong,
        // The Python side predates roles.
        role: None,
    };
    assert_eq!(events, vec![pong]);

    // A third request, answered by the Python `data` that carries `observed`: one vote, then
    // the answer.
    let to = Peer {
        id: Some(responder_id()),
        addr: addr(2),
    };
    let ping = Request::Ping;
    a.send(
        T0,
        Transmit {
            id: 3,
            to,
            request: ping,
        },
    );
    drain(&mut a);
    a.handle_datagram(T0, addr(2), &bytes(DATA_R_OBSERVED));
    let (_, events) = drain(&mut a);
    let by = Contact::new(responder_id(), addr(2));
    let observed = "198.51.100.7:7400"
        .parse()
        .unwrap_or_else(|_| unreachable!());
    let pong = PlaneEvent::Response {
        from: by,
        id: 3,
        response: Response::Pong,
        // The Python side predates roles.
        role: None,
    };
    assert_eq!(events, vec![PlaneEvent::Observed { by, observed }, pong]);
}

/// Moves the session `a` opened to the vectors' `sid_i` and ephemeral secret, as if its
/// `Random` had drawn them, with the Python `initial` as the one it sends again.
fn use_the_vectors_session(a: &mut Plane<Real>) {
    let sid = a.by_addr.get(&addr(2)).copied().unwrap_or_default();
    let Some(mut session) = a.sessions.remove(&sid) else {
        panic!("no session opened");
    };
    let State::Initiating(opening) = &mut session.state else {
        panic!("the session is not opening");
    };
    opening.secret = EPH_I_SECRET;
    opening.ephemeral = Real::ephemeral_public(&EPH_I_SECRET);
    opening.initial = python_initial();
    a.sessions.insert(SID_I, session);
    a.by_addr.insert(addr(2), SID_I);
    for pending in a.pending.values_mut() {
        pending.session = Some(SID_I);
    }
}

/// A plane on "cairn" refuses an `initial` of another network with the vectors' `refuse`,
/// and answers a `data` of a session it does not hold with the vectors' `unknown`.
#[test]
fn a_plane_sends_the_vectors_refuse_and_unknown() {
    let mut b = plane(responder(), NETWORK, 2);
    let mut initial = the_initial();
    initial.network = b"other".to_vec();
    b.handle_datagram(T0, addr(1), &initial.encode());
    let (datagrams, _) = drain(&mut b);
    assert_eq!(datagrams, vec![(addr(1), bytes(REFUSE_VECTOR))]);

    b.handle_datagram(T0, addr(1), &bytes(DATA_I));
    let (datagrams, _) = drain(&mut b);
    assert_eq!(datagrams, vec![(addr(1), bytes(UNKNOWN_VECTOR))]);
}
