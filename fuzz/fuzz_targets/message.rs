//! The payload decoder (`wire::decode`) on arbitrary bytes.
//!
//! Holds: no panic; a decoded message encodes and decodes back to itself, and its encoding is
//! a fixed point; a refusal carries 400, or 403 for a signature that does not verify, and its
//! `error` reply encodes, decodes back, and echoes the id it names.
#![no_main]

use cairn_core::{ErrorCode, Message, Response, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match wire::decode(data) {
        Ok(message) => {
            let encoded = wire::encode(&message).expect("a decoded message encodes");
            let again = wire::decode(&encoded).expect("an encoded message decodes");
            assert_eq!(again, message, "decode(encode(m)) != m");
            let twice = wire::encode(&again).expect("encodes");
            assert_eq!(twice, encoded, "encoding is not a fixed point");
        }
        Err(e) => {
            assert!(
                e.code == ErrorCode::BAD_REQUEST || e.code == ErrorCode::BAD_SIGNATURE,
                "refused with {:?}: {}",
                e.code,
                e.reason
            );
            let reply = e.reply();
            let encoded = wire::encode(&reply).expect("an error reply encodes");
            let decoded = wire::decode(&encoded).expect("an error reply decodes");
            assert_eq!(decoded, reply, "the error reply does not round-trip");
            let Message::Response {
                id,
                response: Response::Error(error),
            } = decoded
            else {
                panic!("the reply is not an error: {decoded:?}");
            };
            assert_eq!(id, e.id.unwrap_or(0));
            assert_eq!(error.code, e.code);
        }
    }
});
