//! Reaching a node by its public key (`docs/design.md`, "Rendezvous and punching"), step by
//! step from a [`Dht`]: a lookup of its id finds it if it is a server; otherwise its
//! rendezvous record names the servers it registered with, one of them introduces us (the
//! node punches its NAT open towards us), and a `ping` to the address the introduction gave
//! goes through the hole.

use std::net::SocketAddr;
use std::time::Duration;

use cairn_core::{Contact, Exchanged, Id, NodeId, Peer, Request, Response};
use serde::{Deserialize, Serialize};

use crate::dht::Dht;
use crate::driver::inbox::Command;
use crate::error::{GetError, Stopped};

/// How a node was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// At its address in the routing tables: it is a server.
    Direct,
    /// Through a hole its NAT opened for us, asked by a rendezvous point.
    Punched,
    /// Through a circuit of its rendezvous point, which no punch gets through.
    Relayed,
}

impl Route {
    /// `direct`, `punched` or `relayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Punched => "punched",
            Route::Relayed => "relayed",
        }
    }
}

/// A node answered [`Dht::ping_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinged {
    /// How it was reached.
    pub route: Route,
    /// Where it answered from (for a relayed route, the relay's address).
    pub addr: SocketAddr,
    /// The rendezvous point that introduced us, for a punched route.
    pub via: Option<Contact>,
    /// The `ping`'s round trip (for a punched route, the first datagram may have waited for
    /// the punch: it is the round trip of the exchange, retransmissions included).
    pub round_trip: Duration,
}

/// Why [`Dht::ping_key`] reached nobody.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// That is this node's own key.
    #[error("that is this node's own key")]
    Myself,
    /// The key is not in the routing tables (not a server) and has no rendezvous record.
    #[error(
        "no node with that key was found: it is not a server, and it published no rendezvous \
         record ({0})"
    )]
    NotFound(String),
    /// Every way tried failed; each reason is listed.
    #[error("the node could not be reached: {}", .0.join("; "))]
    Unreachable(Vec<String>),
}

/// [`Pinged`] as `GET /v1/ping/{public_key}` answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PingReport {
    /// `direct`, `punched` or `relayed`.
    pub route: Route,
    /// Where the node answered from.
    pub addr: SocketAddr,
    /// The rendezvous point that introduced or relayed us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<SocketAddr>,
    /// The round trip of the `ping`, in milliseconds.
    pub rtt_ms: f64,
}

impl From<&Pinged> for PingReport {
    fn from(p: &Pinged) -> Self {
        PingReport {
            route: p.route,
            addr: p.addr,
            via: p.via.map(|c| c.addr),
            rtt_ms: p.round_trip.as_secs_f64() * 1_000.0,
        }
    }
}

impl From<Stopped> for PingError {
    fn from(_: Stopped) -> Self {
        PingError::Stopped
    }
}

/// How long a way found to a node behind a NAT is tried first after it was last used: its NAT
/// keeps the hole (or its point the circuit) open while the two talk, and well within a
/// minute after.
const ROUTE_KEPT: Duration = Duration::from_secs(60);
/// Ways remembered, at most (the oldest forgotten past it).
const ROUTES_KEPT: usize = 256;

/// A way found to a node: where to send to it, how, through whom, and when.
#[derive(Clone, Copy, Debug)]
struct Known {
    to: SocketAddr,
    route: Route,
    via: Option<Contact>,
    at: std::time::Instant,
}

/// The ways found lately, by node id: a second ping goes the same way at once, rather than
/// asking the point to introduce it again (which costs the target one of its punches, a few
/// per 10 s).
#[derive(Debug, Default)]
pub(crate) struct Routes(std::sync::Mutex<std::collections::HashMap<NodeId, Known>>);

impl Routes {
    fn recall(&self, id: &NodeId) -> Option<Known> {
        let routes = self.0.lock().ok()?;
        routes
            .get(id)
            .copied()
            .filter(|k| k.at.elapsed() < ROUTE_KEPT)
    }

    fn remember(&self, id: NodeId, known: Known) {
        let Ok(mut routes) = self.0.lock() else {
            return;
        };
        routes.retain(|_, k| k.at.elapsed() < ROUTE_KEPT);
        if routes.len() >= ROUTES_KEPT {
            let oldest = routes.iter().min_by_key(|(_, k)| k.at).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                routes.remove(&oldest);
            }
        }
        routes.insert(id, known);
    }

    fn forget(&self, id: &NodeId) {
        if let Ok(mut routes) = self.0.lock() {
            routes.remove(id);
        }
    }
}

impl Dht {
    /// Reaches the node whose ed25519 public key is `public_key`, wherever it is: directly if
    /// it is a server, else through one of the rendezvous points its record names (punched,
    /// or else relayed by that point), and says how, and the round trip of a `ping`.
    pub async fn ping_key(&self, public_key: &[u8; 32]) -> Result<Pinged, PingError> {
        self.reach(public_key).await.map(|(pinged, _)| pinged)
    }

    /// [`Dht::ping_key`], and the address to send to the node at: its own, the punched
    /// one, or a circuit address.
    pub(crate) async fn reach(
        &self,
        public_key: &[u8; 32],
    ) -> Result<(Pinged, SocketAddr), PingError> {
        let id: NodeId = Id::hash(public_key);
        if id == self.status().await?.node_id {
            return Err(PingError::Myself);
        }
        if let Some(known) = self.routes.recall(&id) {
            if let Ok(answer) = self.ping_at(known.to, id).await? {
                self.routes
                    .remember(id, self::known(known.to, known.route, known.via));
                return Ok((pinged(known.route, &answer, known.via), known.to));
            }
            self.routes.forget(&id);
        }
        let mut reasons = Vec::new();
        let closest = self.find_node(id).await.map_err(|_| PingError::Stopped)?;
        if let Some(contact) = closest.iter().find(|c| c.id == id) {
            match self.ping_at(contact.addr, id).await? {
                Ok(answer) => return Ok((pinged(Route::Direct, &answer, None), contact.addr)),
                Err(why) => reasons.push(format!("at {}: {why}", contact.addr)),
            }
        }
        let points = match self
            .get_signed(public_key, cairn_core::RENDEZVOUS_RECORD)
            .await
        {
            Ok(found) if found.item.is_tombstone() => {
                return Err(PingError::NotFound("its record was deleted".into()));
            }
            Ok(found) => match cairn_core::wire::decode_rendezvous_record(found.item.value()) {
                Ok(points) => points,
                Err(e) => {
                    let reason = format!("its record is malformed: {e}");
                    return Err(PingError::NotFound(reason));
                }
            },
            Err(GetError::Stopped) => return Err(PingError::Stopped),
            Err(e) if reasons.is_empty() => return Err(PingError::NotFound(e.to_string())),
            Err(e) => {
                reasons.push(format!("no rendezvous record: {e}"));
                return Err(PingError::Unreachable(reasons));
            }
        };
        for point in points {
            let introduce = Request::Introduce { target: id };
            let addr = match self.exchange(point.addr, point.id, introduce).await? {
                Some(Exchanged {
                    response: Response::Introduced { addr },
                    ..
                }) => addr,
                other => {
                    reasons.push(format!("rendezvous {}: {}", point.addr, failed(other)));
                    continue;
                }
            };
            match self.ping_at(addr, id).await? {
                Ok(answer) => {
                    self.routes
                        .remember(id, known(addr, Route::Punched, Some(point)));
                    return Ok((pinged(Route::Punched, &answer, Some(point)), addr));
                }
                Err(why) => reasons.push(format!("introduced by {} at {addr}: {why}", point.addr)),
            }
            // No punch got through (a NAT that maps each destination to a new port): through
            // the point.
            let relay = Request::Relay { target: id };
            let circuit = match self.exchange(point.addr, point.id, relay).await? {
                Some(Exchanged {
                    response: Response::Relaying { circuit },
                    ..
                }) => circuit,
                other => {
                    reasons.push(format!("relay {}: {}", point.addr, failed(other)));
                    continue;
                }
            };
            let via = point.addr;
            let end = self
                .call(|reply| Command::OpenCircuit {
                    circuit,
                    via,
                    reply,
                })
                .await?;
            match self.ping_at(end, id).await? {
                Ok(answer) => {
                    self.routes
                        .remember(id, known(end, Route::Relayed, Some(point)));
                    return Ok((pinged(Route::Relayed, &answer, Some(point)), end));
                }
                Err(why) => reasons.push(format!("relayed by {}: {why}", point.addr)),
            }
        }
        if reasons.is_empty() {
            reasons.push("its record names no rendezvous point".into());
        }
        Err(PingError::Unreachable(reasons))
    }

    /// Pings the node `id` at `addr`: its answer, or why there was none.
    async fn ping_at(
        &self,
        addr: SocketAddr,
        id: NodeId,
    ) -> Result<Result<Exchanged, String>, Stopped> {
        Ok(match self.exchange(addr, id, Request::Ping).await? {
            Some(answer) if answer.response == Response::Pong => Ok(answer),
            other => Err(failed(other)),
        })
    }

    /// Sends `request` to the node `id` at `addr`, and waits for its answer.
    async fn exchange(
        &self,
        addr: SocketAddr,
        id: NodeId,
        request: Request,
    ) -> Result<Option<Exchanged>, Stopped> {
        let to = Peer { id: Some(id), addr };
        self.call(|reply| Command::Exchange { to, request, reply })
            .await
    }
}

fn known(to: SocketAddr, route: Route, via: Option<Contact>) -> Known {
    Known {
        to,
        route,
        via,
        at: std::time::Instant::now(),
    }
}

/// What a ping that was answered says. A relayed node answered from its circuit address,
/// which is this node's own: the relay's is the one to show.
fn pinged(route: Route, answer: &Exchanged, via: Option<Contact>) -> Pinged {
    let addr = match (route, via) {
        (Route::Relayed, Some(via)) => via.addr,
        _ => answer.from.addr,
    };
    Pinged {
        route,
        addr,
        via,
        round_trip: answer.round_trip,
    }
}

/// What an exchange that did not get the answer hoped for got instead.
fn failed(answer: Option<Exchanged>) -> String {
    match answer {
        None => "no answer".into(),
        Some(Exchanged {
            response: Response::Error(e),
            ..
        }) => format!("error {}: {}", e.code, e.message),
        Some(other) => format!("unexpected answer {:?}", other.response),
    }
}
