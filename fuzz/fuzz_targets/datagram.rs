//! The datagram layouts (`cairn_core::datagram`'s kinds), datagram bodies
//! (`wire::decode_body`) and rendezvous records on arbitrary bytes.
//!
//! Holds: no panic; every layout that parses rebuilds to the bytes it was parsed from (the
//! kind and version bytes aside, which the plane checks before parsing), and parses back to
//! the same fields; an `initial` parses only at exactly 1,200 bytes, with a network of 1 to 64
//! bytes; a body that decodes encodes and decodes back to itself, and a refused one is 400.
#![no_main]

use cairn_core::datagram::layouts::{
    Accept, Initial, data_header, parse_data, parse_refuse, parse_unknown, refuse, unknown,
};
use cairn_core::datagram::{
    ACCEPT_HEADER, DATA_HEADER, MAX_DATAGRAM, MAX_RELAYED, parse_relayed, relayed,
};
use cairn_core::wire::{self, Body, MAX_PARTS};
use cairn_core::{ErrorCode, MAX_NETWORK_LEN};
use libfuzzer_sys::fuzz_target;

fn initial(data: &[u8]) {
    let Some(initial) = Initial::parse(data) else {
        return;
    };
    assert_eq!(data.len(), MAX_DATAGRAM);
    assert!((1..=MAX_NETWORK_LEN).contains(&initial.network.len()));
    let encoded = initial.encode();
    assert_eq!(encoded.len(), MAX_DATAGRAM);
    let used = initial.signed_part().len() + 64;
    assert_eq!(
        encoded[2..used],
        data[2..used],
        "initial rebuilt differently"
    );
    assert_eq!(Initial::parse(&encoded), Some(initial));
}

fn accept(data: &[u8]) {
    let Some((accept, header, sealed)) = Accept::parse(data) else {
        return;
    };
    assert_eq!(header.len(), ACCEPT_HEADER);
    assert_eq!([header, sealed].concat(), data);
    let rebuilt = accept.header();
    assert_eq!(
        rebuilt[2..],
        header[2..],
        "accept header rebuilt differently"
    );
    let mut again = rebuilt.clone();
    again.extend_from_slice(sealed);
    assert_eq!(Accept::parse(&again).map(|(a, _, _)| a), Some(accept));
}

fn data_layout(data: &[u8]) {
    let Some((sid, pn, header, sealed)) = parse_data(data) else {
        return;
    };
    assert!(data.len() <= MAX_DATAGRAM);
    assert_eq!(header.len(), DATA_HEADER);
    assert_eq!(data_header(sid, pn)[1..], header[1..]);
    assert_eq!([header, sealed].concat(), data);
}

fn unknown_layout(data: &[u8]) {
    if let Some(sid) = parse_unknown(data) {
        assert_eq!(unknown(sid)[1..], data[1..]);
    }
}

fn refuse_layout(data: &[u8]) {
    let Some((sid, code, message)) = parse_refuse(data) else {
        return;
    };
    // The message was read lossily and may have grown past 255 bytes: `refuse` cuts it at a
    // character boundary.
    let mut end = message.len().min(255);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let rebuilt = refuse(sid, code, &message);
    assert_eq!(
        parse_refuse(&rebuilt),
        Some((sid, code, message[..end].to_owned()))
    );
}

fn relayed_layout(data: &[u8]) {
    let Some((circuit, inner)) = parse_relayed(data) else {
        return;
    };
    assert!(data.len() <= MAX_RELAYED && !inner.is_empty() && inner.len() <= MAX_DATAGRAM);
    assert_eq!(relayed(circuit, inner), data);
}

/// A rendezvous record is a signed item's value: anyone's bytes, read by whoever pings its
/// key.
fn record(data: &[u8]) {
    if let Ok(points) = wire::decode_rendezvous_record(data) {
        assert!(points.len() <= wire::MAX_RECORD_POINTS);
        let encoded = wire::encode_rendezvous_record(&points).expect("points encode");
        assert_eq!(wire::decode_rendezvous_record(&encoded), Ok(points));
    }
}

fn body(data: &[u8]) {
    match wire::decode_body(data) {
        Ok(body) => {
            if let Body::NodesPart {
                part, parts, nodes, ..
            } = &body
            {
                assert!((2..=MAX_PARTS).contains(parts) && part < parts);
                assert!(nodes.len() <= wire::MAX_NODES);
            }
            let encoded = wire::encode_body(&body).expect("a decoded body encodes");
            assert_eq!(wire::decode_body(&encoded).as_ref(), Ok(&body));
        }
        Err(e) => assert!(
            e.code == ErrorCode::BAD_REQUEST || e.code == ErrorCode::BAD_SIGNATURE,
            "refused with {:?}",
            e.code
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    initial(data);
    accept(data);
    data_layout(data);
    unknown_layout(data);
    refuse_layout(data);
    relayed_layout(data);
    record(data);
    body(data);
    // The padding of an `initial` is the one place a body sits at an offset: decode the body
    // an `initial` carries as the plane would.
    if let Some(initial) = Initial::parse(data) {
        body(&initial.body);
    }
});
