//! Relaying between a node and a client it cannot punch through to (`docs/design.md`,
//! "Relaying"): the rendezvous point's side. A circuit joins two ends, each a source address
//! and a circuit id (one per direction); a `relayed` datagram from one end, on its id, goes
//! on to the other end, on the other id, unchanged. What travels inside is the two ends'
//! own sealed session: the relay sees sizes and times, not contents.
//!
//! Implementation notes, the bounds in one place:
//! - a circuit carries at most [`CIRCUIT_BYTES`] (both ways together) and lives at most
//!   [`CIRCUIT_LIFE`]; past either it is closed and what comes on it is dropped, counted;
//! - at most [`MAX_CIRCUITS`] at once, [`CIRCUITS_PER_TARGET`] to one registered node,
//!   [`CIRCUITS_PER_ASKER`] held by one asking host;
//! - a datagram is taken only from the end's own address, and goes out exactly as large as
//!   it came (no amplification).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest, Sha512};

use crate::id::NodeId;
use crate::message::{ErrorCode, ErrorReply};
use crate::time::Time;

/// Bytes a circuit carries, both ways together, at most: libp2p's circuit relay v2 default,
/// enough for a handshake and a few exchanges, too little to be anyone's free transit.
pub const CIRCUIT_BYTES: u64 = 128 * 1024;
/// How long a circuit lives, at most (libp2p's default too).
pub const CIRCUIT_LIFE: Duration = Duration::from_secs(120);
/// Circuits a server relays at once, at most.
pub const MAX_CIRCUITS: usize = 64;
/// Circuits to one registered node at once, at most.
pub const CIRCUITS_PER_TARGET: usize = 4;
/// Circuits one asking host (an IPv4 address, an IPv6 /64) holds at once, at most: one host
/// cannot take a point's circuits, nor a target's, for itself.
pub const CIRCUITS_PER_ASKER: usize = 2;

/// One end of a circuit, as the relay knows it.
#[derive(Clone, Copy, Debug)]
struct End {
    /// Where this end sends from, and where what is for it goes.
    addr: SocketAddr,
    /// The id the other end's datagrams carry when they reach this end.
    id: u64,
}

#[derive(Clone, Copy, Debug)]
struct Circuit {
    /// The end that asked (`relay`).
    asker: End,
    /// The registered node.
    target: End,
    target_node: NodeId,
    opened: Time,
    bytes: u64,
}

/// Counters of the relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Circuits open now.
    pub circuits: usize,
    /// Circuits opened since the start.
    pub opened: u64,
    /// Bytes relayed since the start.
    pub bytes: u64,
    /// `relay` requests refused and datagrams dropped (no such circuit, not from its end,
    /// over its bytes or its time).
    pub refused: u64,
}

/// The circuits a server relays.
#[derive(Debug, Default)]
pub(in crate::node) struct Relays {
    /// Circuits by the id their asker's datagrams carry.
    by_asker: HashMap<u64, Circuit>,
    /// The asker's id of a circuit, by the id its target's datagrams carry.
    by_target: HashMap<u64, u64>,
    counter: u64,
    report: RelayReport,
}

impl Relays {
    /// Opens a circuit between `asker` (the source of its session) and `target`, registered
    /// at `target_addr`: the id the asker's datagrams must carry.
    pub(in crate::node) fn open(
        &mut self,
        now: Time,
        own: &NodeId,
        asker: SocketAddr,
        target: NodeId,
        target_addr: SocketAddr,
    ) -> Result<u64, ErrorReply> {
        self.expire(now);
        let to_target = self
            .by_asker
            .values()
            .filter(|c| c.target_node == target)
            .count();
        let host = crate::subnet::Prefix::host(asker.ip());
        let held = self
            .by_asker
            .values()
            .filter(|c| crate::subnet::Prefix::host(c.asker.addr.ip()) == host)
            .count();
        if self.by_asker.len() >= MAX_CIRCUITS
            || to_target >= CIRCUITS_PER_TARGET
            || held >= CIRCUITS_PER_ASKER
        {
            self.report.refused += 1;
            let refusal = ErrorReply::new(ErrorCode::OVER_LIMIT, "too many circuits here");
            return Err(refusal);
        }
        let asker_id = self.fresh_id(now, own);
        let target_id = self.fresh_id(now, own);
        self.by_asker.insert(
            asker_id,
            Circuit {
                asker: End {
                    addr: asker,
                    id: asker_id,
                },
                target: End {
                    addr: target_addr,
                    id: target_id,
                },
                target_node: target,
                opened: now,
                bytes: 0,
            },
        );
        self.by_target.insert(target_id, asker_id);
        self.report.opened += 1;
        Ok(asker_id)
    }

    /// A `relayed` datagram of `len` bytes came from `from` on circuit id `id`: where it goes
    /// on, and on which id; `None` to drop it (counted).
    pub(in crate::node) fn forward(
        &mut self,
        now: Time,
        from: SocketAddr,
        id: u64,
        len: usize,
    ) -> Option<(SocketAddr, u64)> {
        self.expire(now);
        let (key, from_asker) = match self.by_target.get(&id) {
            Some(asker_id) => (*asker_id, false),
            None => (id, true),
        };
        let Some(circuit) = self.by_asker.get_mut(&key) else {
            self.report.refused += 1;
            return None;
        };
        let (this, other) = if from_asker {
            (circuit.asker, circuit.target)
        } else {
            (circuit.target, circuit.asker)
        };
        if this.addr != from {
            self.report.refused += 1;
            return None;
        }
        let bytes = circuit.bytes.saturating_add(len as u64);
        if bytes > CIRCUIT_BYTES {
            // Spent: closed, so that what comes on it later is dropped as unknown.
            self.close(key);
            self.report.refused += 1;
            return None;
        }
        circuit.bytes = bytes;
        self.report.bytes = self.report.bytes.saturating_add(len as u64);
        Some((other.addr, other.id))
    }

    /// The counters.
    pub(in crate::node) fn report(&self) -> RelayReport {
        RelayReport {
            circuits: self.by_asker.len(),
            ..self.report
        }
    }

    /// Closes the circuits past their life.
    fn expire(&mut self, now: Time) {
        let old: Vec<u64> = self
            .by_asker
            .iter()
            .filter(|(_, c)| now.since(c.opened) >= CIRCUIT_LIFE)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.close(id);
        }
    }

    fn close(&mut self, asker_id: u64) {
        if let Some(circuit) = self.by_asker.remove(&asker_id) {
            self.by_target.remove(&circuit.target.id);
        }
    }

    /// A circuit id no circuit uses: from a hash of this node's id, a counter and the time
    /// (the ids need not be secret: a datagram counts only from its end's address, and what
    /// it carries is sealed between the ends).
    fn fresh_id(&mut self, now: Time, own: &NodeId) -> u64 {
        loop {
            self.counter += 1;
            let hash = Sha512::new()
                .chain_update(b"cairn-circuit")
                .chain_update(own.as_bytes())
                .chain_update(self.counter.to_be_bytes())
                .chain_update(now.as_millis().to_be_bytes())
                .finalize();
            let mut id = [0; 8];
            id.copy_from_slice(&hash[..8]);
            let id = u64::from_be_bytes(id);
            if id != 0 && !self.by_asker.contains_key(&id) && !self.by_target.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    const T0: Time = Time::from_secs(1_000);

    #[test]
    fn a_circuit_carries_between_its_two_ends_only_until_its_bytes_are_spent() {
        let mut relays = Relays::default();
        let own = NodeId::hash(b"relay");
        let (asker, target) = (at("192.0.2.1:5000"), at("203.0.113.7:41000"));
        let id = relays
            .open(T0, &own, asker, NodeId::hash(b"p"), target)
            .expect("opens");
        let (to, target_id) = relays.forward(T0, asker, id, 1_200).expect("forwarded");
        assert_eq!(to, target);
        assert_eq!(
            relays.forward(T0, target, target_id, 600),
            Some((asker, id))
        );
        // From another address, or on an unknown id: dropped.
        assert_eq!(relays.forward(T0, at("192.0.2.99:5000"), id, 100), None);
        assert_eq!(relays.forward(T0, asker, 12_345, 100), None);
        // Spend the rest: the datagram that would go over is dropped and the circuit closed.
        let room = CIRCUIT_BYTES - 1_800;
        assert!(relays.forward(T0, asker, id, room as usize).is_some());
        assert_eq!(relays.forward(T0, asker, id, 1), None);
        assert_eq!(relays.forward(T0, target, target_id, 1), None, "closed");
        assert_eq!(relays.report().bytes, CIRCUIT_BYTES);
        assert_eq!(relays.report().refused, 4);
    }

    #[test]
    fn a_circuit_lives_two_minutes_and_circuits_are_bounded() {
        let mut relays = Relays::default();
        let own = NodeId::hash(b"relay");
        let target = at("203.0.113.7:41000");
        let p = NodeId::hash(b"p");
        let mut ids = Vec::new();
        for n in 0..CIRCUITS_PER_TARGET {
            let asker = at(&format!("192.0.2.{}:5000", n + 1));
            ids.push(relays.open(T0, &own, asker, p, target).expect("opens"));
        }
        let refused = relays.open(T0, &own, at("192.0.2.50:5000"), p, target);
        assert_eq!(
            refused.map_err(|e| e.code.0),
            Err(429),
            "past the target's share"
        );
        let other = relays.open(T0, &own, at("192.0.2.50:5000"), NodeId::hash(b"q"), target);
        assert!(other.is_ok(), "another target is served");
        // One asking host holds at most its share, whatever the targets.
        let greedy = at("192.0.2.60:5000");
        for n in 0..CIRCUITS_PER_ASKER {
            let target = NodeId::hash(&[b'r', n as u8]);
            assert!(
                relays
                    .open(T0, &own, greedy, target, at("203.0.113.8:1"))
                    .is_ok()
            );
        }
        let more = relays.open(T0, &own, greedy, NodeId::hash(b"s"), at("203.0.113.8:1"));
        assert_eq!(
            more.map_err(|e| e.code.0),
            Err(429),
            "past the asker's share"
        );
        let honest = relays.open(T0, &own, at("192.0.2.61:5000"), NodeId::hash(b"s"), target);
        assert!(honest.is_ok(), "another host is served");
        let later = T0 + CIRCUIT_LIFE;
        assert_eq!(
            relays.forward(later, at("192.0.2.1:5000"), ids[0], 10),
            None
        );
        assert_eq!(relays.report().circuits, 0, "all expired");
    }
}
