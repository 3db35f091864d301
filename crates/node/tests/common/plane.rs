//! A peer that is a datagram plane of its own over a real socket, for the tests that play a
//! node by hand (reachability, rendezvous): it asks what a test tells it to.

use std::net::SocketAddr;
use std::time::Duration;

use cairn_core::datagram::{MAX_DATAGRAM, Plane, PlaneConfig, PlaneEvent, Real};
use cairn_core::{Mode, NetworkName, Peer, Request, Response, Time};
use ed25519_dalek::SigningKey;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::PATIENCE;

/// A moment far from zero, so that the plane's times never underflow.
pub const EPOCH_MS: u64 = 1_000_000;

/// A peer that is a datagram plane of its own over a real socket: it asks what a test tells
/// it to, and says it is a server (`announce`) unless told otherwise.
pub struct Peer2 {
    pub plane: Plane<Real>,
    pub socket: UdpSocket,
    start: Instant,
    /// Answers that came, by request id.
    pub answers: Vec<(u64, Response)>,
    /// `probe` datagrams that came (the plane reports only those from addresses it never
    /// sent to), and their source.
    pub probes: Vec<(SocketAddr, [u8; 16])>,
}

impl Peer2 {
    pub async fn bind(ip: &str, seed: u8, announce: bool) -> Peer2 {
        let socket = UdpSocket::bind(format!("{ip}:0")).await.expect("binds");
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut config = PlaneConfig::new(NetworkName::default());
        if !announce {
            config.announce = false;
            config.role = Mode::Client;
        }
        let plane = Plane::new(
            Real::new(key),
            config,
            [seed; 32],
            Time::from_millis(EPOCH_MS),
        );
        Peer2 {
            plane,
            socket,
            start: Instant::now(),
            answers: Vec::new(),
            probes: Vec::new(),
        }
    }

    pub fn now(&self) -> Time {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).expect("a test's age");
        Time::from_millis(EPOCH_MS + elapsed)
    }

    /// Sends what the plane has, takes its reports, then receives one datagram or lets the
    /// plane's time pass.
    pub async fn step(&mut self) {
        while let Some((addr, bytes)) = self.plane.poll_datagram() {
            self.socket.send_to(&bytes, addr).await.expect("sends");
        }
        let mut reported = false;
        while let Some(event) = self.plane.poll_event() {
            reported = true;
            match event {
                PlaneEvent::Response { id, response, .. } => self.answers.push((id, response)),
                PlaneEvent::Failed { id, .. } => panic!("request {id} failed"),
                PlaneEvent::Probe { from, nonce, .. } => self.probes.push((from, nonce)),
                _ => {}
            }
        }
        if reported {
            // The caller may be done: it looks before this waits on anything.
            return;
        }
        let mut buf = vec![0; MAX_DATAGRAM + 1];
        let timer = self
            .plane
            .poll_timeout()
            .map(|t| self.start + Duration::from_millis(t.as_millis().saturating_sub(EPOCH_MS)));
        let wake = timer.unwrap_or_else(|| Instant::now() + Duration::from_millis(50));
        tokio::select! {
            received = self.socket.recv_from(&mut buf) => {
                if let Ok((len, from)) = received {
                    let now = self.now();
                    self.plane.handle_datagram(now, from, &buf[..len]);
                }
            }
            () = tokio::time::sleep_until(wake) => {
                let now = self.now();
                self.plane.handle_timeout(now);
            }
        }
    }

    /// Sends `request` and moves datagrams until its answer.
    pub async fn request(&mut self, to: Peer, id: u64, request: Request) -> Response {
        let now = self.now();
        self.plane
            .send(now, cairn_core::Transmit { id, to, request });
        let answered = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(at) = self.answers.iter().position(|(a, _)| *a == id) {
                    return self.answers.remove(at).1;
                }
                self.step().await;
            }
        })
        .await;
        answered.unwrap_or_else(|_| panic!("request {id}: no answer within {PATIENCE:?}"))
    }

    /// Moves datagrams until a `probe` has come, and returns the first.
    pub async fn probe(&mut self) -> (SocketAddr, [u8; 16]) {
        let came = tokio::time::timeout(PATIENCE, async {
            while self.probes.is_empty() {
                self.step().await;
            }
            self.probes[0]
        })
        .await;
        came.unwrap_or_else(|_| panic!("no probe within {PATIENCE:?}"))
    }
}
