//! One session: the keys two nodes agreed on in their first exchange, the packet numbers each
//! side has used and seen, and what the responder may still send to an address that has not
//! proven itself.

use std::collections::VecDeque;
use std::net::SocketAddr;

use sha2::{Digest, Sha512};

use super::packet::SESSION_TAG;
use crate::id::NodeId;
use crate::time::Time;

/// The two keys of a session: from initiator to responder, and back.
pub(super) fn derive_keys(
    shared: &[u8; 32],
    initiator: (&[u8; 32], &[u8; 32]),
    responder: (&[u8; 32], &[u8; 32]),
) -> ([u8; 32], [u8; 32]) {
    let mut h = Sha512::new();
    h.update(SESSION_TAG);
    h.update(shared);
    h.update(initiator.0);
    h.update(responder.0);
    h.update(initiator.1);
    h.update(responder.1);
    let okm: [u8; 64] = h.finalize().into();
    let mut forward = [0; 32];
    let mut back = [0; 32];
    forward.copy_from_slice(&okm[..32]);
    back.copy_from_slice(&okm[32..]);
    (forward, back)
}

/// Which packet numbers have arrived: the highest, and the 64 below it. Anything older than
/// the window, or seen already, is a replay (or too late to matter) and is refused.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Window {
    highest: Option<u64>,
    /// Bit i set: `highest - i` arrived.
    seen: u64,
}

impl Window {
    /// Whether `pn` may be taken (not seen, not older than the window).
    pub(super) fn fresh(&self, pn: u64) -> bool {
        match self.highest {
            None => true,
            Some(h) if pn > h => true,
            Some(h) => {
                let back = h - pn;
                back < 64 && self.seen & (1 << back) == 0
            }
        }
    }

    /// Records `pn` as arrived (after its tag verified).
    pub(super) fn mark(&mut self, pn: u64) {
        match self.highest {
            None => {
                self.highest = Some(pn);
                self.seen = 1;
            }
            Some(h) if pn > h => {
                let shift = pn - h;
                self.seen = if shift >= 64 { 0 } else { self.seen << shift };
                self.seen |= 1;
                self.highest = Some(pn);
            }
            Some(h) => self.seen |= 1 << (h - pn),
        }
    }
}

/// An answer sent in a session, kept a short while so that a retransmitted request is
/// answered again without being handled twice.
#[derive(Clone, Debug)]
pub(super) struct Sent {
    pub(super) id: u64,
    pub(super) bodies: Vec<Vec<u8>>,
    pub(super) at: Time,
    /// How many times it was sent again: each time the parts go in another order, so that a
    /// link that loses the same position every time still delivers each part.
    pub(super) repeats: usize,
}

/// A session's state.
#[derive(Debug)]
pub(super) enum State {
    /// This node sent an `initial` and waits for the `accept` (boxed: a session spends most
    /// of its life open, and the `initial` kept here is 1,200 bytes).
    Initiating(Box<Initiating>),
    /// Keys agreed: `data` flows both ways.
    Open(Box<Open>),
}

/// A session this node is opening.
#[derive(Debug)]
pub(super) struct Initiating {
    /// The ephemeral secret.
    pub(super) secret: [u8; 32],
    /// Its public key.
    pub(super) ephemeral: [u8; 32],
    /// The `initial`'s bytes, sent again as they are.
    pub(super) initial: Vec<u8>,
    /// The node id the initiator means to reach, if it knows one.
    pub(super) expected: Option<NodeId>,
    /// The request the `initial` carries.
    pub(super) carried: u64,
}

/// An open session.
#[derive(Debug)]
pub(super) struct Open {
    /// The session id the peer receives under: what this node's `data` carries.
    pub(super) peer_sid: u64,
    pub(super) send_key: [u8; 32],
    pub(super) recv_key: [u8; 32],
    /// The next packet number to send.
    pub(super) next_pn: u64,
    pub(super) window: Window,
    /// What a responder keeps until the initiator's address is proven (by its first `data`:
    /// it read the `accept` there); `None` once it is, and always for the initiator, whose
    /// `accept` proved the responder's address (it answered a fresh key sent there). Boxed:
    /// most sessions are proven within a round trip.
    pub(super) unproven: Option<Box<Unproven>>,
    /// The peer's ephemeral key from its `initial` (responder only): how a repeated `initial`
    /// is recognised.
    pub(super) initial_key: Option<[u8; 32]>,
    /// Requests received and not yet answered, and whether each one's answer is kept (a
    /// `store`'s).
    pub(super) serving: Vec<(u64, bool)>,
    /// Answers sent lately.
    pub(super) answers: VecDeque<Sent>,
}

/// A responder's session before the initiator's address is proven.
#[derive(Debug)]
pub(super) struct Unproven {
    /// Bytes received from the address and sent to it: at most three times the first may be
    /// sent.
    pub(super) received: usize,
    pub(super) sent: usize,
    /// The request the `accept` answers, until the answer is given.
    pub(super) accept_for: Option<u64>,
    /// That `accept`'s header, until it is sent.
    pub(super) header: Vec<u8>,
    /// The `accept` sent, to send again when the `initial` comes again.
    pub(super) accept: Option<Vec<u8>>,
    /// The `initial`'s signature, checked when the address is proven.
    pub(super) check: Check,
}

/// A signature to check later: by `public_key`, over `message`.
#[derive(Debug)]
pub(super) struct Check {
    pub(super) public_key: [u8; 32],
    pub(super) message: Vec<u8>,
    pub(super) signature: [u8; 64],
}

/// Answers kept per session for retransmitted requests.
pub(super) const ANSWERS_KEPT: usize = 8;

/// One session with one peer at one address.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) addr: SocketAddr,
    /// The peer's id, once its signature verified.
    pub(super) peer: Option<NodeId>,
    /// The peer takes requests at `addr` and may enter routing tables.
    pub(super) announce: bool,
    /// The peer said `client` in this session: a later `server` is a mode change (auto
    /// mode), and it takes requests at `addr` from then on.
    pub(super) said_client: bool,
    pub(super) state: State,
    /// When a datagram of this session last arrived or left.
    pub(super) last: Time,
    /// When a datagram of this session last arrived (its start, for one this node opens).
    pub(super) heard: Time,
}

impl Session {
    /// The open session's state, if it is open.
    pub(super) fn open(&mut self) -> Option<&mut Open> {
        match &mut self.state {
            State::Open(open) => Some(open),
            State::Initiating(_) => None,
        }
    }

    /// Whether this session is open.
    pub(super) fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }
}

impl Open {
    /// Whether the peer's address is proven.
    pub(super) fn proven(&self) -> bool {
        self.unproven.is_none()
    }

    /// Whether `len` more bytes may go to the peer: always once its address is proven, else
    /// while the total stays within three times what it sent (RFC 9000, section 8).
    pub(super) fn may_send(&self, len: usize) -> bool {
        self.unproven
            .as_ref()
            .is_none_or(|u| u.sent + len <= 3 * u.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_refuses_repeats_and_the_too_old() {
        let mut w = Window::default();
        assert!(w.fresh(5));
        w.mark(5);
        assert!(!w.fresh(5));
        assert!(w.fresh(4));
        w.mark(4);
        assert!(!w.fresh(4));
        w.mark(100);
        assert!(!w.fresh(100));
        assert!(w.fresh(99));
        assert!(w.fresh(37));
        assert!(!w.fresh(36), "64 below the highest is out of the window");
        assert!(!w.fresh(5));
        w.mark(99);
        assert!(!w.fresh(99));
        w.mark(300);
        assert!(w.fresh(299) && !w.fresh(300) && !w.fresh(99));
    }
}
