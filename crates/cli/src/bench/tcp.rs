//! `cairn bench` over TCP: each client is a blocking connection past the handshake
//! ([`Peer`]), sending a batch of `--in-flight` requests and reading their answers. The
//! `handshake` workload opens connections one after another, each proven by a `ping`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_node::cairn_core::{Message, Request, Response};

use super::{Tally, Workload, answer};
use crate::peer::Peer;

/// Connections with full handshakes opened one after another for `seconds`; a handshake's
/// latency is from connecting to the answer of the `ping` sent after it.
pub(super) fn handshakes(target: SocketAddr, seconds: Duration) -> anyhow::Result<Tally> {
    let started = Instant::now();
    let mut tally = Tally::default();
    while started.elapsed() < seconds {
        let opened = Instant::now();
        // A ping proves the handshake completed before the connection closes.
        let mut peer = Peer::connect(target, None, 100).context("a handshake failed")?;
        peer.send(&Message::Request {
            id: 1,
            request: Request::Ping,
        })?;
        peer.receive()?;
        tally.answered(opened);
    }
    Ok(tally)
}

/// Client `c` of a workload: batches of `in_flight` requests on one connection for
/// `seconds`.
pub(super) fn client(
    target: SocketAddr,
    c: usize,
    in_flight: usize,
    seconds: Duration,
    name: &str,
    workload: &Workload,
) -> anyhow::Result<Tally> {
    let mut peer = Peer::connect(target, None, c as u8)?;
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < seconds {
        let sent = Instant::now();
        for _ in 0..in_flight {
            n += 1;
            let request = workload(c, n);
            peer.send(&Message::Request { id: n, request })?;
        }
        for _ in 0..in_flight {
            match answer(peer.receive()?) {
                Some(Response::Error(e)) => {
                    bail!("{name}: the node answered {} {}", e.code, e.message)
                }
                Some(_) => tally.answered(sent),
                None => bail!("{name}: the node sent something not an answer"),
            }
        }
    }
    Ok(tally)
}
