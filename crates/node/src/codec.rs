//! Netstring frames for tokio: the core's pure decoder behind tokio-util's codec traits.
//!
//! Frames stay bytes here; turning a payload into a [`cairn_core::Message`] (and verifying its
//! items) happens in the connection task, off the driver's event loop.

use bytes::{Bytes, BytesMut};
use cairn_core::netstring::{self, FrameError, NetstringDecoder};
use tokio_util::codec::{Decoder, Encoder};

/// Encodes and decodes netstring frames of at most `max_frame` bytes.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    decoder: NetstringDecoder,
}

impl FrameCodec {
    /// A codec refusing frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameCodec {
            decoder: NetstringDecoder::new(max_frame),
        }
    }
}

/// A framing error or an I/O error on the socket.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer broke the framing rules; the connection must close.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        netstring::encode(payload, dst);
        Ok(())
    }
}
