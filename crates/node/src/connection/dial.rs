//! Dialing: opening a connection to a peer, from the address the node announces, and the
//! dialer's side of the handshake (`hello` with the queued requests right behind it, then
//! `welcome` checked, then `auth`, as the core's [`Dialing`] rules).
//!
//! [`dial`] is the whole life of one outgoing connection as the pool sees it: it waits for a
//! permit of the connection budget, connects, hands the connection to [`carry`] and, however
//! it ends, tells the driver it closed (with what a bootstrap should know of a failed dial) and
//! fails every request still in flight on it.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;
use cairn_core::netstring;
use cairn_core::wire;
use cairn_core::{Contact, Dialing, Greeting, HandshakeError, Message, Mode, NodeId};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::carry::{DialedSubscriptions, carry};
use super::frame::{FrameReader, encode, write_message};
use super::{ConnError, nonce};
use crate::driver::inbox::{Outgoing, ToDriver};
use crate::shared::Shared;

/// Opens a connection to `addr` and carries `requests` over it until the pool drops its
/// sender and nothing is in flight, or the connection fails.
pub(crate) async fn dial(
    addr: SocketAddr,
    expected: Option<NodeId>,
    conn: u64,
    mut requests: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let mut in_flight = HashSet::new();
    let mut subscriptions = DialedSubscriptions::default();
    let permit = match &shared.connection_budget {
        None => None,
        Some(budget) => match timeout(
            shared.config.protocol.request_timeout,
            budget.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                shared.metrics.budget_exhausted.inc();
                tracing::warn!(%addr, "connection budget exhausted: request fails instead of opening a connection");
                None
            }
        },
    };
    let budget_ok = permit.is_some() || shared.connection_budget.is_none();
    let mut failure = None;
    if budget_ok {
        match Box::pin(connect(
            addr,
            expected,
            &mut requests,
            &mut in_flight,
            &mut subscriptions,
            &shared,
        ))
        .await
        {
            Ok((reader, write, peer)) => {
                shared.metrics.connections_opened.inc();
                let carried = carry(
                    reader,
                    write,
                    peer,
                    &mut requests,
                    &mut in_flight,
                    &mut subscriptions,
                    &shared,
                )
                .await;
                if let Err(e) = carried {
                    tracing::debug!(%addr, "outbound connection closed: {e}");
                }
                // The subscriptions it carried are lost with it: the node hears of them as
                // failed `listen` requests.
                in_flight.extend(subscriptions.into_live());
            }
            Err(e) => {
                shared.metrics.dial_failures.inc();
                tracing::debug!(%addr, "cannot connect: {e}");
                failure = Some(e.seed_failure());
            }
        }
    }
    drop(permit);
    requests.close();
    while let Ok((id, _)) = requests.try_recv() {
        in_flight.insert(id);
    }
    let closed = ToDriver::Closed {
        addr,
        conn,
        failure,
    };
    let _ = shared.tell(closed).await;
    if !in_flight.is_empty() {
        let ids = in_flight.into_iter().collect();
        let _ = shared.tell(ToDriver::Failed { ids }).await;
    }
}

/// Opens a TCP connection to `addr`. A node that listens on a specific address dials from it
/// too (from the one of its listen addresses of the same family, when both are loopback or
/// both not), so that its peers see it at the host it announces: on a host with several
/// addresses, and in a test network of many loopback addresses, its connections then count
/// against its own address, not another's. A dual-stack node dials IPv6 peers from its IPv6
/// address, so that they store it under that address.
async fn open(addr: SocketAddr, listening: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let same_kind = |listen: &IpAddr| {
        listen.is_loopback() == addr.ip().is_loopback() && listen.is_ipv4() == addr.ip().is_ipv4()
    };
    let Some(listen) = listening
        .iter()
        .map(SocketAddr::ip)
        .find(|ip| same_kind(ip) && !ip.is_unspecified())
    else {
        return TcpStream::connect(addr).await;
    };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(listen, 0))?;
    socket.connect(addr).await
}

/// Connects and runs the dialer's side of the handshake.
///
/// The requests already queued go out right behind `hello`, before `welcome` has come back
/// (pipelining): a request to a new contact costs one round trip after the TCP handshake, not
/// two. If the welcome then fails (426, a bad signature, another node than expected), the
/// connection ends before any answer is read, and those requests fail.
async fn connect(
    addr: SocketAddr,
    expected: Option<NodeId>,
    requests: &mut mpsc::Receiver<Outgoing>,
    in_flight: &mut HashSet<u64>,
    subscriptions: &mut DialedSubscriptions,
    shared: &Shared,
) -> Result<(FrameReader, OwnedWriteHalf, Contact), ConnError> {
    let stream = timeout(
        shared.config.protocol.request_timeout,
        open(addr, &shared.listening),
    )
    .await
    .map_err(|_| ConnError::Timeout)??;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, shared.config.max_frame);
    let suite = shared.identity.suite();
    let greeting = Greeting {
        network: shared.config.network.clone(),
        // A client accepts no requests: it announces no port.
        port: match shared.mode.get() {
            Mode::Server => shared.listen_port,
            Mode::Client => 0,
        },
        datagrams: shared.udp.is_some(),
    };
    let mut handshake = Dialing::new(&suite, greeting, nonce(), addr, expected);
    let mut burst = BytesMut::new();
    while let Some(message) = handshake.poll_message() {
        netstring::encode(&encode(&message, shared)?, &mut burst);
    }
    while let Ok((id, request)) = requests.try_recv() {
        // A `listen` sent here is a subscription like one sent later: its `notify` frames are
        // taken once it is answered.
        subscriptions.sent(id, &request);
        let message = Message::Request {
            id,
            request: *request,
        };
        netstring::encode(&encode(&message, shared)?, &mut burst);
        in_flight.insert(id);
    }
    write.write_all(&burst).await?;
    let frame = timeout(shared.config.read_timeout, reader.next(shared))
        .await
        .map_err(|_| ConnError::Timeout)??;
    // A frame that is not a message is no `welcome` either.
    let answer = wire::decode(&frame).map_err(|_| HandshakeError::NotWelcome)?;
    let dialed = handshake.handle_message(&suite, answer)?;
    while let Some(message) = handshake.poll_message() {
        write_message(&mut write, &message, shared).await?;
    }
    if shared.udp.is_some() && !dialed.datagrams {
        // A version-1 listener: datagrams to it would go unanswered.
        let _ = shared.tell(ToDriver::TcpOnly { addr }).await;
    }
    Ok((reader, write, Contact::new(dialed.id, addr)))
}
