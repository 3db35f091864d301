//! Netstring framing (`docs/protocol.md`, "Framing") as a pure incremental decoder: bytes in, frames out.
//!
//! A frame is `<len>:<payload>,` with `len` in ASCII decimal, no leading zeros, no sign and no
//! spaces. The decoder never buffers or allocates beyond what has arrived, and refuses a length
//! above `max_frame` as soon as its digits show it, before any payload is read. Any error is
//! final: the caller closes the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why a byte stream is not a valid sequence of netstrings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A length starts with `0` and has more digits.
    #[error("netstring length has a leading zero")]
    LeadingZero,
    /// The length has no digits before `:`.
    #[error("netstring length is empty")]
    EmptyLength,
    /// A byte in the length is neither a digit nor `:`.
    #[error("netstring length has the non-digit byte {0:#04x}")]
    NotDigit(u8),
    /// The length is above the limit.
    #[error("netstring length is above the {max}-byte limit")]
    TooLong {
        /// The limit in force.
        max: usize,
    },
    /// The byte after the payload is not `,`.
    #[error("netstring payload is followed by {0:#04x}, not ','")]
    MissingComma(u8),
}

/// Decodes netstrings from a growing buffer.
#[derive(Debug, Clone)]
pub struct NetstringDecoder {
    max_frame: usize,
}

/// Where the header of the frame at the front of a buffer stands.
enum Header {
    /// The length `len` is complete and its `:` is at index `colon`.
    Complete { len: usize, colon: usize },
    /// More bytes are needed to finish the length.
    Incomplete,
}

impl NetstringDecoder {
    /// A decoder refusing payloads longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        NetstringDecoder { max_frame }
    }

    /// The largest payload accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes one complete frame's payload off the front of `src`, if one has fully arrived.
    ///
    /// `Ok(None)` means more bytes are needed; `src` is left as it was. An error means the
    /// stream is not valid and must be abandoned.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let (len, colon) = match self.header(src)? {
            Header::Complete { len, colon } => (len, colon),
            Header::Incomplete => return Ok(None),
        };
        let end = colon + 1 + len;
        if src.len() <= end {
            return Ok(None);
        }
        if src[end] != b',' {
            return Err(FrameError::MissingComma(src[end]));
        }
        src.advance(colon + 1);
        let payload = src.split_to(len).freeze();
        src.advance(1);
        Ok(Some(payload))
    }

    fn header(&self, src: &[u8]) -> Result<Header, FrameError> {
        let mut len: usize = 0;
        for (i, &byte) in src.iter().enumerate() {
            match byte {
                b':' if i == 0 => return Err(FrameError::EmptyLength),
                b':' => return Ok(Header::Complete { len, colon: i }),
                b'0'..=b'9' => {
                    if i == 1 && src[0] == b'0' {
                        return Err(FrameError::LeadingZero);
                    }
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(byte - b'0')))
                        .filter(|l| *l <= self.max_frame)
                        .ok_or(FrameError::TooLong {
                            max: self.max_frame,
                        })?;
                }
                other => return Err(FrameError::NotDigit(other)),
            }
        }
        Ok(Header::Incomplete)
    }
}

/// Appends `payload` to `dst` as one netstring.
pub fn encode(payload: &[u8], dst: &mut BytesMut) {
    let header = payload.len().to_string();
    dst.reserve(header.len() + payload.len() + 2);
    dst.put_slice(header.as_bytes());
    dst.put_u8(b':');
    dst.put_slice(payload);
    dst.put_u8(b',');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(input: &[u8], max: usize) -> (Vec<Bytes>, Result<(), FrameError>, usize) {
        let mut decoder = NetstringDecoder::new(max);
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return (frames, Ok(()), buf.len()),
                Err(e) => return (frames, Err(e), buf.len()),
            }
        }
    }

    #[test]
    fn empty_frame() {
        let (frames, result, left) = decode_all(b"0:,", 100);
        assert_eq!(frames, vec![Bytes::new()]);
        assert_eq!((result, left), (Ok(()), 0));
    }

    #[test]
    fn the_rules() {
        assert_eq!(decode_all(b"01:a,", 100).1, Err(FrameError::LeadingZero));
        assert_eq!(decode_all(b":,", 100).1, Err(FrameError::EmptyLength));
        assert_eq!(decode_all(b"a:,", 100).1, Err(FrameError::NotDigit(b'a')));
        assert_eq!(decode_all(b"-1:a,", 100).1, Err(FrameError::NotDigit(b'-')));
        assert_eq!(decode_all(b" 1:a,", 100).1, Err(FrameError::NotDigit(b' ')));
        // "3:ab," is a short payload: the comma is read as payload and the frame is incomplete.
        assert_eq!(decode_all(b"3:ab,", 100), (vec![], Ok(()), 5));
        assert_eq!(decode_all(b"3:abc", 100), (vec![], Ok(()), 5));
        assert_eq!(
            decode_all(b"3:abc;", 100).1,
            Err(FrameError::MissingComma(b';'))
        );
        let (frames, result, _) = decode_all(b"3:abc,junk", 100);
        assert_eq!(frames, vec![Bytes::from_static(b"abc")]);
        assert_eq!(result, Err(FrameError::NotDigit(b'j')));
    }

    #[test]
    fn too_long_is_refused_from_the_digits_alone() {
        // No colon and no payload have arrived: the digits are enough.
        assert_eq!(
            decode_all(b"101", 100).1,
            Err(FrameError::TooLong { max: 100 })
        );
        assert_eq!(decode_all(b"100", 100).1, Ok(()));
        assert_eq!(
            decode_all(b"1048577", 1_048_576).1,
            Err(FrameError::TooLong { max: 1_048_576 })
        );
        assert_eq!(
            decode_all(b"99999999999999999999999999", usize::MAX).1,
            Err(FrameError::TooLong { max: usize::MAX })
        );
    }

    #[test]
    fn frames_split_at_every_byte() {
        let mut wire = BytesMut::new();
        for payload in [&b""[..], b"hello", b"a,b:c", &[0u8; 300]] {
            encode(payload, &mut wire);
        }
        let wire = wire.freeze();
        let mut decoder = NetstringDecoder::new(1000);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire.iter() {
            buf.put_u8(*byte);
            while let Some(frame) = decoder.decode(&mut buf).expect("valid stream") {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 4);
        assert_eq!(&frames[2][..], b"a,b:c");
        assert!(buf.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..64)) {
            let (frames, _, left) = decode_all(&input, 32);
            prop_assert!(frames.iter().all(|f| f.len() <= 32));
            prop_assert!(left <= input.len());
        }

        #[test]
        fn encode_then_decode(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8)) {
            let mut wire = BytesMut::new();
            for p in &payloads {
                encode(p, &mut wire);
            }
            let (frames, result, left) = decode_all(&wire, 40);
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(left, 0);
            prop_assert_eq!(frames.iter().map(|f| f.to_vec()).collect::<Vec<_>>(), payloads);
        }
    }
}
