//! The driver's side of relaying (`docs/design.md`, "Relaying"): `relayed` datagrams are
//! forwarded for the circuits the node relays, or unwrapped for the circuits it is an end of;
//! an end's datagrams go to the plane as if from a circuit address (`100::/64`, the discard
//! prefix of RFC 6666, which no real peer has) and the plane's datagrams to such an address go
//! out wrapped, to the relay.
//!
//! A peer reached through a circuit is never taken for a contact: its requests are served as
//! a client's, what it says of this node's address is no vote, and it enters no table.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use cairn_core::Store;
use cairn_core::datagram::{parse_relayed, relayed};
use tokio::time::Instant;

use super::Driver;

/// Circuits this node is an end of, at most (the oldest is dropped past it).
const MAX_ENDS: usize = 1_024;
/// Circuits one relay may open to this node, at most: a point (or a spoofer posing as one)
/// cannot fill the rest.
const ENDS_PER_RELAY: usize = 64;

/// The address a circuit's other end is given in the plane.
pub(crate) fn circuit_addr(circuit: u64) -> SocketAddr {
    let c = circuit.to_be_bytes();
    let segments = [
        0x0100,
        0,
        0,
        0,
        u16::from_be_bytes([c[0], c[1]]),
        u16::from_be_bytes([c[2], c[3]]),
        u16::from_be_bytes([c[4], c[5]]),
        u16::from_be_bytes([c[6], c[7]]),
    ];
    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(segments)), 1)
}

/// Whether `ip` is a circuit address's (in `100::/64`).
pub(crate) fn circuit_ip(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[..4] == [0x0100, 0, 0, 0])
}

/// The circuit of a circuit address, if `addr` is one.
pub(crate) fn circuit_of(addr: SocketAddr) -> Option<u64> {
    let IpAddr::V6(ip) = addr.ip() else {
        return None;
    };
    if !circuit_ip(addr.ip()) {
        return None;
    }
    let s = ip.segments();
    let mut c = [0; 8];
    for (i, segment) in s[4..].iter().enumerate() {
        c[2 * i..2 * i + 2].copy_from_slice(&segment.to_be_bytes());
    }
    Some(u64::from_be_bytes(c))
}

impl<S: Store> Driver<S> {
    /// A `relayed` datagram arrived from `from`.
    pub(super) fn on_relayed(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Some((circuit, inner)) = parse_relayed(bytes) else {
            self.shared.metrics.datagram_refused("malformed");
            return;
        };
        let now = self.clock.now();
        let mine = self.ends.get(&circuit).is_some_and(|(via, _)| *via == from);
        if mine || self.node.is_point_at(from) {
            // For this node, an end: from the relay of a circuit it asked, or from one of its
            // points (which chose the id). Only what sessions and streams are made of goes
            // through: a probe or a punch through a circuit would prove nothing.
            let quic = crate::stream::is_quic(inner);
            if !quic && !matches!(inner.first(), Some(1..=5)) {
                self.shared.metrics.datagram_refused("malformed");
                return;
            }
            // An `initial` costs a signature check and a key agreement, and a QUIC packet of
            // a new circuit may start a handshake: the relay's host pays for it as for one
            // of its own.
            let starts = inner.first() == Some(&cairn_core::datagram::INITIAL) || (quic && !mine);
            if starts && !self.shared.handshake_limit.allow(from.ip()) {
                self.shared.metrics.datagram_refused("handshake_rate");
                return;
            }
            if !mine && self.ends.values().filter(|(via, _)| *via == from).count() >= ENDS_PER_RELAY
            {
                self.shared.metrics.datagram_refused("handshake_rate");
                return;
            }
            self.keep_end(circuit, from);
            if quic {
                let bytes = inner.to_vec();
                self.shared.streams.deliver(circuit_addr(circuit), bytes);
            } else if let Some(plane) = &mut self.plane {
                plane.handle_datagram(now, circuit_addr(circuit), inner);
            }
            return;
        }
        if let Some((to, on)) = self.node.handle_relayed(now, from, circuit, inner.len()) {
            if let Some(udp) = &self.shared.udp {
                udp.send(to, &relayed(on, inner));
            }
        }
    }

    /// Sends one of the plane's datagrams: wrapped to the relay if `to` is a circuit address
    /// (dropped if the circuit is unknown or gone), else as it is.
    pub(super) fn send_datagram(&self, to: SocketAddr, bytes: &[u8]) {
        let Some(udp) = &self.shared.udp else {
            return;
        };
        match circuit_of(to) {
            Some(circuit) => {
                if let Some((via, _)) = self.ends.get(&circuit) {
                    udp.send(*via, &relayed(circuit, bytes));
                }
            }
            None => {
                udp.send(to, bytes);
            }
        }
    }

    /// This node is an end of `circuit`, whose relay is at `via`: the circuit address its
    /// other end has in the plane.
    pub(super) fn open_end(&mut self, circuit: u64, via: SocketAddr) -> SocketAddr {
        self.keep_end(circuit, via);
        circuit_addr(circuit)
    }

    fn keep_end(&mut self, circuit: u64, via: SocketAddr) {
        let now = Instant::now();
        if self.ends.len() >= MAX_ENDS && !self.ends.contains_key(&circuit) {
            let oldest = self
                .ends
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(c, _)| *c);
            if let Some(oldest) = oldest {
                self.ends.remove(&oldest);
            }
        }
        self.ends.insert(circuit, (via, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_circuit_address_names_its_circuit_and_no_real_address_is_one() {
        for circuit in [1, 0x0102_0304_0506_0708, u64::MAX] {
            assert_eq!(circuit_of(circuit_addr(circuit)), Some(circuit));
        }
        for real in ["127.0.0.1:7400", "[2001:db8::1]:7400", "[::1]:7400"] {
            assert_eq!(circuit_of(real.parse().expect("an address")), None);
        }
    }
}
