//! The QUIC endpoint's view of the node's UDP sockets (`docs/design.md`, "Byte streams"): it
//! shares them with the datagram plane rather than binding its own, so that a hole punched for
//! the plane, or a circuit a point relays, carries QUIC too.
//!
//! A QUIC packet is a datagram whose first byte has bit `0x40` set (QUIC's fixed bit, which
//! this endpoint never greases); no cairn datagram kind has it. The readers hand such a packet
//! here through a bounded queue (dropped when full, as a kernel buffer would); what the
//! endpoint sends goes out on the node's socket of the destination's family, or, to a circuit
//! address, to the driver, which wraps it for the relay.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;

use crate::driver::inbox::ToDriver;
use crate::udp::Sockets;

/// An address as the endpoint sees it: always IPv6, an IPv4 one mapped (`::ffff:a.b.c.d`),
/// so that one endpoint reaches both families, and circuit addresses (IPv6) from a node
/// that listens on IPv4.
pub(super) fn to_quinn(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    }
}

/// An address as the node's sockets see it: an IPv4-mapped one as IPv4.
pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether a datagram is a QUIC packet (its first byte has the fixed bit).
pub(crate) fn is_quic(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0x40 != 0)
}

/// The node's sockets as the QUIC endpoint sees them.
pub(super) struct Shared {
    /// Not kept open by the endpoint: they close when the node stops.
    pub(super) udp: std::sync::Weak<Sockets>,
    pub(super) to_driver: mpsc::Sender<Box<ToDriver>>,
    pub(super) packets: Mutex<mpsc::Receiver<(SocketAddr, Vec<u8>)>>,
    pub(super) local: SocketAddr,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicSocket")
            .field("local", &self.local)
            .finish()
    }
}

impl AsyncUdpSocket for Shared {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let to = canonical(transmit.destination);
        if crate::driver::circuit_of(to).is_some() {
            // The driver knows the circuit's relay. A full queue drops the packet, which QUIC's
            // loss recovery covers.
            let bytes = transmit.contents.to_vec();
            let _ = self
                .to_driver
                .try_send(Box::new(ToDriver::StreamOut { to, bytes }));
        } else {
            if let Some(udp) = self.udp.upgrade() {
                udp.send(to, transmit.contents);
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Ok(mut packets) = self.packets.lock() else {
            return Poll::Ready(Err(io::Error::other("the packet queue is poisoned")));
        };
        let mut filled = 0;
        while filled < bufs.len().min(meta.len()) {
            match packets.poll_recv(cx) {
                Poll::Ready(Some((from, bytes))) => {
                    let len = bytes.len().min(bufs[filled].len());
                    bufs[filled][..len].copy_from_slice(&bytes[..len]);
                    meta[filled] = RecvMeta {
                        addr: to_quinn(from),
                        len,
                        stride: len,
                        ..RecvMeta::default()
                    };
                    filled += 1;
                }
                // The node stopped (it closes the endpoint too): nothing more comes.
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if filled == 0 {
            Poll::Pending
        } else {
            Poll::Ready(Ok(filled))
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(to_quinn(self.local))
    }

    fn may_fragment(&self) -> bool {
        // Packets stay within 1,200 bytes (path MTU discovery is off): whether the system
        // fragments does not matter.
        true
    }
}

/// Sending never waits: a datagram the socket has no room for is dropped.
#[derive(Debug)]
struct Writable;

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
