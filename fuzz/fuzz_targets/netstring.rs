//! The netstring decoder on arbitrary bytes, fed whole and in fuzzer-chosen pieces.
//!
//! Holds: no panic; no frame above `max_frame`; the frames re-encoded are exactly the bytes
//! consumed (decode-encode round trip); feeding the same bytes in pieces gives the same frames
//! and the same verdict; nothing is consumed on `Ok(None)`.
#![no_main]

use bytes::{Bytes, BytesMut};
use cairn_core::netstring::{self, FrameError, NetstringDecoder};
use libfuzzer_sys::fuzz_target;

/// Decodes `pieces` one after the other: frames, the verdict, and the bytes left over.
fn decode(pieces: &[&[u8]], max: usize) -> (Vec<Bytes>, Option<FrameError>, usize) {
    let mut decoder = NetstringDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max, "frame of {} above {max}", frame.len());
                    frames.push(frame);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(e) => return (frames, Some(e), buf.len()),
            }
        }
    }
    (frames, None, buf.len())
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limit (small, so that TooLong is reachable) and the second
    // where to cut the rest in two.
    let [max, cut, rest @ ..] = data else {
        return;
    };
    let max = usize::from(*max) * 4;
    let (frames, error, left) = decode(&[rest], max);
    let consumed = rest.len() - left;
    let mut again = BytesMut::new();
    for frame in &frames {
        netstring::encode(frame, &mut again);
    }
    assert_eq!(
        &again[..],
        &rest[..consumed],
        "re-encoded frames differ from the input"
    );
    if error.is_none() {
        // Whatever is left is an incomplete frame: a valid prefix, so it is never the whole
        // of a frame.
        assert!(left <= rest.len());
    }
    let at = usize::from(*cut).min(rest.len());
    let (head, tail) = rest.split_at(at);
    let pieces = decode(&[head, tail], max);
    assert_eq!(pieces.0, frames, "frames differ when fed in pieces");
    assert_eq!(pieces.1, error, "verdict differs when fed in pieces");
});
