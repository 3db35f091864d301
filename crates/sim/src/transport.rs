//! The transport model: what a request pays to reach its peer, as the real driver's
//! connections charge it. Each node keeps a [`Pool`] of open connections, bounded and pruned
//! of idle ones as the driver's is; a request to a peer outside it first opens a connection
//! (TCP's handshake, and cairn's unless requests are pipelined behind `hello`). Without a
//! [`Transport`] every request travels as if a connection were already open. With
//! [`Transport::datagrams`], requests go over each node's datagram plane instead
//! (`datagrams.rs`), and only what the plane hands back to TCP pays for connections.

use std::collections::HashMap;
use std::time::Duration;

use cairn_core::datagram::Simulated;
use cairn_core::{Accepting, Contact, Dialing, Greeting, Message, NetworkName, NodeId, Time};

use crate::datagrams::public_key;

/// How requests reach their peer, as the real transport charges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Connections a node keeps open at most (the driver's `max_outbound`); past it, the least
    /// recently used closes.
    pub pool: usize,
    /// A connection unused this long is closed (the driver's `idle_timeout`).
    pub idle: Duration,
    /// Requests go out right after `hello`, without waiting for `welcome`: a new connection
    /// costs one round trip (TCP's handshake) before the request, not two.
    pub pipelining: bool,
    /// How long a lost segment takes to be sent again (TCP's retransmission timeout; Linux's
    /// least is 200 ms). Added to the message's latency, never less than its round trip.
    pub retransmission: Duration,
    /// Requests go over datagrams, through each node's [`cairn_core::datagram::Plane`]: a new
    /// contact costs no connection, a lost datagram is lost (the plane sends the request
    /// again), and only what the plane cannot carry (`listen`, items too large for a
    /// datagram, a peer that never answers datagrams) goes over a connection as above.
    /// Default `false`.
    pub datagrams: bool,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            pool: 256,
            idle: Duration::from_secs(60),
            pipelining: true,
            retransmission: Duration::from_millis(200),
            datagrams: false,
        }
    }
}

impl Transport {
    /// The datagram mode with the default connection pool for what falls back to TCP.
    pub fn datagrams() -> Self {
        Transport {
            datagrams: true,
            ..Transport::default()
        }
    }

    /// How long a new connection takes before its first request can leave, given the round
    /// trip to the peer: TCP's handshake, then (without pipelining) `hello` and `welcome`.
    pub(crate) fn setup(&self, round_trip: Duration) -> Duration {
        if self.pipelining {
            round_trip
        } else {
            round_trip * 2
        }
    }

    /// The extra delay of a lost message: it is sent again after the retransmission timeout,
    /// which is never shorter than the round trip.
    pub(crate) fn resend_after(&self, round_trip: Duration) -> Duration {
        self.retransmission.max(round_trip)
    }
}

/// Runs cairn's handshake on a new connection from `dialer` to `listener`, as the node's
/// connection tasks do: the core's [`Dialing`] and [`Accepting`] with the simulator's
/// signatures, the messages handed across at once (their round trips are what
/// [`Transport::setup`] charges). `expected` is the node the dialer means to reach, if it knows
/// which, by the id the handshake proves (the hash of its public key, as on the datagram
/// plane); `nonce` tells connections apart. Whether the dialer reached that node and the
/// listener verified the dialer.
pub(crate) fn handshake(
    dialer: &Contact,
    listener: &Contact,
    expected: Option<NodeId>,
    (now, nonce): (Time, u64),
) -> bool {
    let suites = (
        Simulated::new(public_key(&dialer.id)),
        Simulated::new(public_key(&listener.id)),
    );
    let greeting = |contact: &Contact| Greeting {
        network: NetworkName::default(),
        port: contact.addr.port(),
        datagrams: false,
    };
    let mut nonces = ([0; 32], [1; 32]);
    nonces.0[..8].copy_from_slice(&nonce.to_be_bytes());
    nonces.1[..8].copy_from_slice(&nonce.to_be_bytes());
    let mut dialing = Dialing::new(
        &suites.0,
        greeting(dialer),
        nonces.0,
        listener.addr,
        expected,
    );
    let mut accepting = Accepting::new(
        (&suites.1, nonces.1),
        greeting(listener),
        (dialer.addr, nonce),
        now,
        Duration::from_secs(5),
    );
    let welcomed = dialing
        .poll_message()
        .is_some_and(|hello| accepting.handle_hello(&suites.1, hello, None).is_ok());
    let dialed = welcomed
        && accepting
            .poll_message()
            .is_some_and(|welcome| dialing.handle_message(&suites.0, welcome).is_ok());
    match dialing.poll_message() {
        Some(Message::Auth(auth)) if dialed => accepting
            .handle_auth::<Simulated>(now, &auth.signature)
            .is_ok(),
        _ => false,
    }
}

/// One node's open connections to its peers (by index), with when each was last used.
#[derive(Debug)]
pub(crate) struct Pool {
    open: HashMap<usize, Time>,
    /// When connections idle past the transport's limit were last closed.
    pruned: Time,
}

impl Pool {
    /// No connection open, as of `now`.
    pub(crate) fn new(now: Time) -> Self {
        Pool {
            open: HashMap::new(),
            pruned: now,
        }
    }

    /// Closes every connection (the node stopped or died).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
    }

    /// Keeps only the connections to the peers `keep` accepts (a partition cuts the others).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        self.open.retain(|to, _| keep(*to));
    }

    /// Closes the connections idle longer than `idle`, once per idle period (as the driver's
    /// idle timers would have), so that the pool holds what a real one would.
    pub(crate) fn prune(&mut self, now: Time, idle: Duration) {
        if now.since(self.pruned) > idle {
            self.open.retain(|_, last| now.since(*last) <= idle);
            if self.open.capacity() > 2 * self.open.len() + 16 {
                self.open.shrink_to_fit();
            }
            self.pruned = now;
        }
    }

    /// Whether a connection to `to` is open and was used within `idle`.
    pub(crate) fn is_open(&self, to: usize, now: Time, idle: Duration) -> bool {
        self.open
            .get(&to)
            .is_some_and(|last| now.since(*last) <= idle)
    }

    /// Marks the connection to `to` used now.
    pub(crate) fn touch(&mut self, to: usize, now: Time) {
        self.open.insert(to, now);
    }

    /// Forgets the connection to `to`.
    pub(crate) fn remove(&mut self, to: usize) {
        self.open.remove(&to);
    }

    /// Opens a connection to `to` now, first closing the least recently used one (the lowest
    /// peer index among equals) if `limit` are open.
    pub(crate) fn open(&mut self, to: usize, now: Time, limit: usize) {
        if self.open.len() >= limit.max(1) {
            let lru = self
                .open
                .iter()
                .min_by_key(|(peer, last)| (**last, **peer))
                .map(|(p, _)| *p);
            if let Some(lru) = lru {
                self.open.remove(&lru);
            }
        }
        self.open.insert(to, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_closes_its_least_recently_used_connection() {
        let t = |s| Time::from_secs(s);
        let mut pool = Pool::new(t(0));
        pool.open(1, t(1), 2);
        pool.open(2, t(2), 2);
        pool.touch(1, t(3));
        pool.open(3, t(4), 2);
        let idle = Duration::from_secs(60);
        assert!(pool.is_open(1, t(4), idle));
        assert!(!pool.is_open(2, t(4), idle), "2 was used least recently");
        assert!(pool.is_open(3, t(4), idle));
        // Past the idle time a connection is closed, and pruning forgets it.
        assert!(!pool.is_open(1, t(64), idle));
        pool.prune(t(64), idle);
        assert!(pool.is_open(3, t(64), idle));
        assert_eq!(pool.open.len(), 1);
    }

    #[test]
    fn a_new_connection_runs_the_handshake_and_reaches_only_the_node_expected() {
        let contact = |n: u8, port| Contact::new(NodeId::hash(&[n]), ([127, 0, 0, 1], port).into());
        let (dialer, listener, other) = (contact(1, 1), contact(2, 2), contact(3, 3));
        let now = Time::from_secs(1);
        let proven = |c: &Contact| Some(crate::datagrams::plane_id(&c.id));
        assert!(handshake(&dialer, &listener, proven(&listener), (now, 1)));
        assert!(
            handshake(&dialer, &listener, None, (now, 2)),
            "a seed: any node"
        );
        assert!(
            !handshake(&dialer, &listener, proven(&other), (now, 3)),
            "another node answers at the address"
        );
    }

    #[test]
    fn pipelining_saves_a_round_trip_of_setup() {
        let rtt = Duration::from_millis(50);
        let t = Transport::default();
        assert_eq!(t.setup(rtt), rtt);
        let slow = Transport {
            pipelining: false,
            ..t
        };
        assert_eq!(slow.setup(rtt), 2 * rtt);
        assert_eq!(t.resend_after(rtt), Duration::from_millis(200));
        assert_eq!(
            t.resend_after(Duration::from_millis(300)),
            Duration::from_millis(300)
        );
    }
}
