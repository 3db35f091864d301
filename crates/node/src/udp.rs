//! The node's UDP sockets: one on each address it listens on with TCP, same port. They only
//! move bytes: a reader task per socket hands each datagram to the driver, whose
//! [`Plane`](cairn_core::datagram::Plane) does everything else; the driver sends what the plane
//! hands back through [`Sockets::send`].
//!
//! Before anything costs a public-key operation, the reader drops an `initial` from a host past
//! its handshake rate (`handshake_rate`), counted in `cairn_datagrams_refused_total{reason=
//! "handshake_rate"}`. Datagrams larger than the protocol's 1,200 bytes are dropped unread.

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_core::datagram::{INITIAL, MAX_DATAGRAM, MAX_RELAYED, RELAYED};
use tokio::net::UdpSocket;

use crate::driver::inbox::ToDriver;
use crate::shared::Shared;

/// The sockets, one per listen address.
pub(crate) struct Sockets {
    sockets: Vec<Arc<UdpSocket>>,
}

impl Sockets {
    /// Binds UDP on each of `addrs` (the TCP listeners' addresses, ports resolved).
    pub(crate) async fn bind(
        addrs: &[SocketAddr],
    ) -> Result<Sockets, (SocketAddr, std::io::Error)> {
        let mut sockets = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let socket = bind(addr).map_err(|e| (addr, e))?;
            sockets.push(Arc::new(socket));
        }
        Ok(Sockets { sockets })
    }

    /// Starts one reader task per socket; each ends when the node shuts down.
    pub(crate) fn spawn_readers(&self, shared: &Arc<Shared>) {
        for socket in &self.sockets {
            tokio::spawn(read_loop(socket.clone(), shared.clone()));
        }
    }

    /// The first socket's address (the `listen` address's).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.sockets.first().and_then(|s| s.local_addr().ok())
    }

    /// Sends `bytes` to `to` from the socket of `to`'s address family (the first one if none
    /// matches). A full socket buffer drops the datagram: the plane's retransmission covers
    /// it, as it covers a loss on the way.
    pub(crate) fn send(&self, to: SocketAddr, bytes: &[u8]) -> bool {
        let socket = self
            .sockets
            .iter()
            .find(|s| s.local_addr().is_ok_and(|a| a.is_ipv4() == to.is_ipv4()))
            .or_else(|| self.sockets.first());
        socket.is_some_and(|s| s.try_send_to(bytes, to).is_ok())
    }

    /// Sends a `probe` (`bytes`) to `to` from a socket of its own, on the IP of the node's
    /// socket of `to`'s family and a port the system picks, closed at once: the target never
    /// sent anything to that port, so no NAT lets the probe in as an answer
    /// (`docs/design.md`, "Reachability"). Whether it went out.
    pub(crate) fn send_probe(&self, to: SocketAddr, bytes: &[u8]) -> bool {
        let ip = self
            .sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .find(|a| a.is_ipv4() == to.is_ipv4())
            .map(|a| a.ip());
        let Some(ip) = ip else {
            return false;
        };
        std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
            .and_then(|socket| socket.send_to(bytes, to))
            .is_ok()
    }
}

/// The receive buffer asked for: room for about 800 full datagrams, so that a burst of
/// `initial`s (a put meets twenty new contacts at once; a node answers many) is not dropped by
/// the kernel while the driver is busy. Linux caps it at `net.core.rmem_max`.
const RECEIVE_BUFFER: usize = 1 << 20;

/// A non-blocking UDP socket bound to `addr`, with a larger receive buffer (and, for an IPv6
/// address, the system's default dual-stack setting, as the TCP listener beside it has).
fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer only means more loss under bursts, which the plane's
    // retransmission covers.
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

async fn read_loop(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let Some(mut shutdown) = shared.shutdown_signal() else {
        return;
    };
    // One byte more than a datagram may hold (a `relayed` one carries a whole datagram and
    // its own header), to see one that is too large.
    let mut buf = vec![0u8; MAX_RELAYED + 1];
    loop {
        let (len, from) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                // An ICMP error for an earlier send (port unreachable) surfaces here on some
                // systems; it says nothing about the next datagram.
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let most = if buf.first() == Some(&RELAYED) {
            MAX_RELAYED
        } else {
            MAX_DATAGRAM
        };
        if len > most {
            shared.metrics.datagram_refused("too_large");
            continue;
        }
        let bytes = &buf[..len];
        if crate::stream::is_quic(bytes) {
            shared.streams.deliver(from, bytes.to_vec());
            continue;
        }
        if bytes.first() == Some(&INITIAL) && !shared.handshake_limit.allow(from.ip()) {
            shared.metrics.datagram_refused("handshake_rate");
            continue;
        }
        let message = ToDriver::Datagram {
            from,
            bytes: bytes.to_vec(),
        };
        if shared.tell(message).await.is_err() {
            return;
        }
    }
}
