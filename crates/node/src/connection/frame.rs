//! Framing: netstring frames off a socket's read half, messages onto its write half.
//!
//! [`FrameReader`] holds no buffer between frames and bounds every wait: `idle_timeout` (or a
//! longer quiet limit while subscriptions are carried) between frames, `read_timeout` within
//! one. Writes to a dialer are bounded by `read_timeout` too ([`write_within`]), so a peer that
//! stops reading cannot hold its connection.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_core::Message;
use cairn_core::netstring::{self, NetstringDecoder};
use cairn_core::wire;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout, timeout_at};

use super::ConnError;
use crate::shared::Shared;

/// How much the reader asks the socket for at a time.
const READ_CHUNK: usize = 2 * 1024;

/// Reads netstring frames, closing on idle or mid-frame stalls.
pub(super) struct FrameReader {
    half: OwnedReadHalf,
    buf: BytesMut,
    decoder: NetstringDecoder,
    last_read: Instant,
    /// Set while the connection carries a `listen` subscription: silence is then expected for
    /// up to the subscription's ttl, and the idle limit is this instead of `idle_timeout`.
    quiet: Option<Duration>,
}

impl FrameReader {
    pub(super) fn new(half: OwnedReadHalf, max_frame: usize) -> Self {
        FrameReader {
            half,
            buf: BytesMut::new(),
            decoder: NetstringDecoder::new(max_frame),
            last_read: Instant::now(),
            quiet: None,
        }
    }

    /// Sets how long silence between frames may last: `Some` while the connection carries a
    /// subscription, `None` for the usual `idle_timeout`.
    pub(super) fn set_quiet(&mut self, quiet: Option<Duration>) {
        self.quiet = quiet;
    }

    /// The next frame among the bytes that have already arrived (buffered, or readable without
    /// waiting), if there is a whole one.
    pub(super) fn arrived(&mut self) -> Result<Option<Bytes>, ConnError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            match self.half.try_read_buf(&mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(_) => self.last_read = Instant::now(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next frame. Waits at most `idle` after the last byte when no frame is under way,
    /// and `stall` when one is (cancel-safe: a partial frame stays buffered).
    pub(super) async fn next(&mut self, shared: &Shared) -> Result<Bytes, ConnError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(frame);
            }
            let limit = if self.buf.is_empty() {
                // Between frames the connection holds no buffer at all: wait for readiness
                // first and allocate only for bytes that are there.
                self.buf = BytesMut::new();
                self.quiet.unwrap_or(shared.config.idle_timeout)
            } else {
                shared.config.read_timeout
            };
            timeout_at(self.last_read + limit, self.half.readable())
                .await
                .map_err(|_| ConnError::Timeout)??;
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            match self.half.try_read_buf(&mut self.buf) {
                Ok(0) => return Err(ConnError::Eof),
                Ok(_) => self.last_read = Instant::now(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// One message's payload as this node sends it: with its `role` after the message's keys.
pub(super) fn encode(message: &Message, shared: &Shared) -> Result<Vec<u8>, wire::EncodeError> {
    wire::encode_with(message, &wire::Envelope::role(shared.mode.get()))
}

/// Writes one message as one netstring frame, saying this node's `role`.
pub(super) async fn write_message(
    half: &mut OwnedWriteHalf,
    message: &Message,
    shared: &Shared,
) -> Result<(), ConnError> {
    let mut frame = BytesMut::new();
    netstring::encode(&encode(message, shared)?, &mut frame);
    half.write_all(&frame).await?;
    Ok(())
}

/// Writes a message to a dialer, which must take it within `read_timeout`: a peer that stops
/// reading its answers would otherwise hold its connection (and its slot) for ever.
pub(super) async fn write_within(
    half: &mut OwnedWriteHalf,
    message: &Message,
    shared: &Shared,
) -> Result<(), ConnError> {
    timeout(
        shared.config.read_timeout,
        write_message(half, message, shared),
    )
    .await
    .map_err(|_| ConnError::Timeout)?
}

/// How long a connection carrying subscriptions may stay silent: until they all ran out
/// (`listen_ttl`), plus the usual idle time.
pub(super) fn quiet_limit(shared: &Shared) -> Duration {
    shared.config.protocol.listen_ttl + shared.config.idle_timeout
}
