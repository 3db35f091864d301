//! `cairn bench` over datagrams: each client is a [`Plane`] of its own on a blocking UDP
//! socket, as a node's peer is, so the figures include the sealing, the sessions and the
//! retransmission timers a real peer pays for.
//!
//! A client thread binds its own loopback address when the node is on loopback (127.0.0.2
//! and up), so that each is a host of its own to the node, and never announces it: the node
//! answers it and keeps it out of its routing table. The warm workloads open one session
//! before the clock starts and keep `--in-flight` requests outstanding in it, batch after
//! batch as the TCP clients do. The `handshake` workload opens a new session for every
//! request: a fresh plane (a fresh ephemeral key and session id) whose `initial` carries a
//! `ping` and whose answer comes in the node's `accept`, `--in-flight` of them at once per
//! client, so it measures what a first exchange costs both sides.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_node::cairn_core::datagram::{MAX_DATAGRAM, Plane, PlaneConfig, PlaneEvent, Real};
use cairn_node::cairn_core::{
    ErrorReply, NetworkName, NodeId, Peer, Request, Response, Time, Transmit,
};
use ed25519_dalek::SigningKey;

use super::{Tally, Workload};

/// The node the clients measure: its address (UDP and TCP share it) and its id, which a
/// datagram client must know (the plane sends a request to an unknown id over TCP).
#[derive(Clone, Copy, Debug)]
pub(super) struct Node {
    pub(super) addr: SocketAddr,
    pub(super) id: NodeId,
}

/// What became of one request.
enum Outcome {
    Answered,
    /// Answered with an error.
    Refused(ErrorReply),
    /// No answer after every try, or handed back for TCP: either way not answered here.
    Lost,
}

/// How long a client waits for a datagram before it looks at its planes' timers: set once,
/// rather than before every receive, since the plane's timeouts are 100 ms or more.
const TICK: Duration = Duration::from_millis(5);

/// A client's socket and the clock its planes read.
struct Socket {
    udp: UdpSocket,
    start: Instant,
    buf: Vec<u8>,
}

impl Socket {
    /// Binds client `c`'s address for talking to `node`.
    fn bind(node: SocketAddr, c: usize) -> io::Result<Self> {
        let ip = match node.ip() {
            // 127.0.0.2 to 127.0.0.251: every Linux host answers all of 127/8.
            IpAddr::V4(ip) if ip.is_loopback() => {
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (c % 250) as u8))
            }
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let udp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        udp.set_read_timeout(Some(TICK))?;
        Ok(Socket {
            udp,
            start: Instant::now(),
            buf: vec![0; MAX_DATAGRAM + 1],
        })
    }

    /// The planes' time: only its differences matter to them.
    fn now(&self) -> Time {
        Time::from_millis(0) + self.start.elapsed()
    }

    /// Sends what `plane` has to send.
    fn flush(&self, plane: &mut Plane<Real>) {
        while let Some((to, bytes)) = plane.poll_datagram() {
            // A datagram the kernel would not take is a loss, which the plane's
            // retransmission covers, as on a network.
            let _ = self.udp.send_to(&bytes, to);
        }
    }

    /// The next datagram, if one comes within [`TICK`].
    fn receive(&mut self) -> io::Result<Option<(SocketAddr, &[u8])>> {
        match self.udp.recv_from(&mut self.buf) {
            Ok((len, from)) => Ok(Some((from, &self.buf[..len]))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A plane that takes no requests, under `key`, with a session id and ephemeral keys of its
/// own.
fn plane(key: &SigningKey, now: Time) -> Plane<Real> {
    let mut config = PlaneConfig::new(NetworkName::default());
    config.announce = false;
    config.role = cairn_node::cairn_core::Mode::Client;
    Plane::new(Real::new(key.clone()), config, rand::random(), now)
}

fn transmit(node: Node, id: u64, request: Request) -> Transmit {
    let to = Peer {
        id: Some(node.id),
        addr: node.addr,
    };
    Transmit { id, to, request }
}

/// What `plane` reports, as outcomes of this client's requests.
fn outcomes(plane: &mut Plane<Real>) -> Vec<Outcome> {
    let mut out = Vec::new();
    while let Some(event) = plane.poll_event() {
        match event {
            PlaneEvent::Response { response, .. } => out.push(match response {
                Response::Error(e) => Outcome::Refused(e),
                _ => Outcome::Answered,
            }),
            PlaneEvent::Failed { .. } | PlaneEvent::Fallback(_) => out.push(Outcome::Lost),
            // A client announces no address: no peer asks it anything, nor enters a table.
            PlaneEvent::Request { .. } | PlaneEvent::Verified(_) => {}
            // The bench measures answers; where the node saw it come from does not matter.
            PlaneEvent::Observed { .. } => {}
            // A bench client checks no reachability, and no peer asks it to relay a check.
            PlaneEvent::Reach { .. } | PlaneEvent::Probe { .. } => {}
            // Nor registers anyone, nor introduces.
            PlaneEvent::Rendezvous { .. } => {}
        }
    }
    out
}

/// A client in one warm session.
struct Warm {
    socket: Socket,
    plane: Plane<Real>,
    node: Node,
}

impl Warm {
    /// Opens client `c`'s session with a `ping`, so that the measured requests find it open
    /// (and the client's address proven, for stores), as a TCP client connects first.
    fn open(node: Node, c: usize) -> anyhow::Result<Self> {
        let socket = Socket::bind(node.addr, c).context("binding a UDP socket")?;
        let key = SigningKey::from_bytes(&[(c % 256) as u8; 32]);
        let plane = plane(&key, socket.now());
        let mut warm = Warm {
            socket,
            plane,
            node,
        };
        warm.send(0, Request::Ping);
        let mut answered = false;
        warm.settle(1, |outcome| answered = !matches!(outcome, Outcome::Lost))?;
        if !answered {
            bail!(
                "{} answers no datagrams (a node of protocol version 1, or datagrams off?)",
                node.addr
            );
        }
        Ok(warm)
    }

    fn send(&mut self, id: u64, request: Request) {
        let now = self.socket.now();
        self.plane.send(now, transmit(self.node, id, request));
    }

    /// Carries datagrams until `left` requests have an outcome, handing each to `on`. It ends:
    /// the plane gives every request up after its last try.
    fn settle(&mut self, mut left: usize, mut on: impl FnMut(Outcome)) -> io::Result<()> {
        while left > 0 {
            self.socket.flush(&mut self.plane);
            let now = self.socket.now();
            if let Some((from, bytes)) = self.socket.receive()? {
                self.plane.handle_datagram(now, from, bytes);
            }
            self.plane.handle_timeout(self.socket.now());
            for outcome in outcomes(&mut self.plane) {
                left -= 1;
                on(outcome);
            }
        }
        self.socket.flush(&mut self.plane);
        Ok(())
    }
}

/// Client `c` of a warm workload: batches of `in_flight` requests for `seconds`.
pub(super) fn warm_client(
    node: Node,
    c: usize,
    in_flight: usize,
    seconds: Duration,
    name: &str,
    workload: &Workload,
) -> anyhow::Result<Tally> {
    let mut warm = Warm::open(node, c)?;
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < seconds {
        let sent = Instant::now();
        for _ in 0..in_flight {
            n += 1;
            warm.send(n, workload(c, n));
        }
        let mut refused = None;
        warm.settle(in_flight, |outcome| match outcome {
            Outcome::Refused(e) => refused = Some(e),
            Outcome::Answered => tally.answered(sent),
            Outcome::Lost => tally.lost += 1,
        })?;
        if let Some(e) = refused {
            bail!(
                "{name} over datagrams: the node answered {} {}",
                e.code,
                e.message
            );
        }
    }
    tally.resent = warm.plane.stats().retransmits;
    Ok(tally)
}

/// Client `c` of the handshake workload: `in_flight` first exchanges at a time for
/// `seconds`, each in a session of its own.
///
/// The planes share the client's socket; a datagram is offered to each until one takes it
/// (a plane drops an `accept` for a session it did not open after one lookup).
pub(super) fn handshake_client(
    node: Node,
    c: usize,
    in_flight: usize,
    seconds: Duration,
) -> anyhow::Result<Tally> {
    let mut socket = Socket::bind(node.addr, c).context("binding a UDP socket")?;
    let key = SigningKey::from_bytes(&[(c % 256) as u8; 32]);
    let mut tally = Tally::default();
    let started = Instant::now();
    let open = |socket: &Socket| {
        let mut fresh = plane(&key, socket.now());
        fresh.send(socket.now(), transmit(node, 1, Request::Ping));
        socket.flush(&mut fresh);
        (fresh, Instant::now())
    };
    let mut slots: Vec<Option<(Plane<Real>, Instant)>> =
        (0..in_flight).map(|_| Some(open(&socket))).collect();
    while slots.iter().any(Option::is_some) {
        let now = socket.now();
        if let Some((from, bytes)) = socket.receive()? {
            // Every plane in a slot waits on its one request: the one that took the
            // datagram has none left. A datagram none takes (a repeated `accept`) is dropped.
            let _taken = slots.iter_mut().flatten().any(|(plane, _)| {
                plane.handle_datagram(now, from, bytes);
                plane.pending() == 0
            });
        }
        let now = socket.now();
        for slot in &mut slots {
            let Some((plane, opened)) = slot else {
                continue;
            };
            plane.handle_timeout(now);
            socket.flush(plane);
            let done = outcomes(plane);
            if done.is_empty() {
                continue;
            }
            for outcome in done {
                match outcome {
                    // A refusal (with `--target`, a node's limit) ends a first exchange too.
                    Outcome::Answered | Outcome::Refused(_) => tally.answered(*opened),
                    Outcome::Lost => tally.lost += 1,
                }
            }
            tally.resent += plane.stats().retransmits;
            *slot = (started.elapsed() < seconds).then(|| open(&socket));
        }
    }
    Ok(tally)
}
