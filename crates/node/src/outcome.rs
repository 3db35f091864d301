//! What the [`crate::Dht`] handle's calls return: receipts, found items, the node's status and
//! peers (their errors are in [`crate::error`]).

use std::net::SocketAddr;

use cairn_core::{Item, Key, NodeId, QueryStats};
use serde::{Deserialize, Serialize};

/// What a successful put did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PutReceipt {
    /// The item's key.
    #[serde(serialize_with = "hex_id::serialize")]
    pub key: Key,
    /// The `seq` a signed item was published with.
    pub seq: Option<u64>,
    /// Unix seconds of expiry, 0 for never.
    pub expires: u64,
    /// Nodes that acknowledged a copy, this one included.
    pub replicas: usize,
    /// What the put cost.
    #[serde(skip)]
    pub stats: QueryStats,
}

/// An item found by a get, and what finding it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Found {
    /// The verified item (the highest `seq` seen, for a signed one).
    pub item: Item,
    /// Requests, hops and time.
    pub stats: QueryStats,
}

/// A node's state, as `GET /v1/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Status {
    /// The node's id (hex in JSON).
    #[serde(with = "hex_id")]
    pub node_id: NodeId,
    /// The node's ed25519 public key (hex in JSON).
    #[serde(with = "hex_public_key")]
    pub public_key: [u8; 32],
    /// Network name.
    pub network: String,
    /// The address peers connect to.
    pub listen: SocketAddr,
    /// Every address peers may connect to (`listen` first; more with dual stack).
    #[serde(default)]
    pub listen_addrs: Vec<SocketAddr>,
    /// Contacts in the routing table.
    pub peers: usize,
    /// How many nodes the network has, estimated from the routing table (see
    /// `cairn_core::RoutingTable::network_size`); 0 while no contact is known.
    pub network_size: u64,
    /// Items in the store.
    pub items: usize,
    /// Seconds since start.
    pub uptime_s: u64,
    /// cairn's version.
    pub version: String,
    /// Commands (lookups) ended since start, whatever their operation and outcome: the sum
    /// of `cairn_lookups_total`.
    pub lookups: u64,
    /// Requests sent to peers.
    pub requests_sent: u64,
    /// Requests from peers answered.
    pub requests_handled: u64,
    /// Requests to peers that failed or timed out.
    pub requests_failed: u64,
    /// Times a verified contact was kept out of the routing table because its network (IPv4
    /// /24, IPv6 /48) held its share of places (each sighting counts: its `auth`, its
    /// requests, its answers).
    pub contacts_crowded_out: u64,
    /// Outgoing connections opened.
    pub connections_opened: u64,
    /// Incoming connections accepted.
    pub connections_accepted: u64,
    /// Connections not opened, or accepted and closed at once, because the process's
    /// connection budget was spent.
    pub connection_budget_exhausted: u64,
    /// Outgoing connections that could not be made (connect or handshake failed).
    pub dial_failures: u64,
    /// Incoming connections closed at once because `max_inbound` busy connections were served.
    pub connections_refused: u64,
    /// Frames from peers that were not valid messages (each answered with an error 400).
    pub invalid_messages: u64,
    /// Incoming connections closed at once because their host held `max_inbound_per_host`.
    pub connections_refused_per_host: u64,
    /// Incoming connections closed to make room for a newcomer (unauthenticated or idle).
    pub connections_evicted: u64,
    /// Incoming connections closed because the handshake was not done in `handshake_timeout`.
    pub handshake_timeouts: u64,
    /// Requests answered 429 because their host passed `request_rate`.
    pub requests_rate_limited: u64,
    /// Stores answered 429 because their host passed `store_rate`.
    pub stores_rate_limited: u64,
    /// Stores answered 429 because their network (IPv4 /24, IPv6 /48) held its share.
    pub stores_over_share: u64,
    /// `listen` subscriptions peers hold at this node.
    pub subscriptions: usize,
    /// Keys this node watches.
    pub watches: usize,
    /// The datagram plane: traffic, sessions and what it refused (all zero when datagrams
    /// are off).
    #[serde(default)]
    pub datagrams: DatagramStatus,
    /// The durable store's storage: `ok`, `full`, `failed` or `recovering`, the last error
    /// and since when, errors by kind and reopens (always `ok` without a data directory).
    #[serde(default)]
    pub storage: crate::store::StorageStatus,
    /// What the node knows of how peers reach it, per address family (the address they see,
    /// from the `observed` key of datagram answers; `docs/design.md`, "Observed address").
    #[serde(default)]
    pub reachability: Reachability,
    /// `server` or `client` (`docs/design.md`, "Client mode").
    #[serde(default = "server")]
    pub mode: String,
}

fn server() -> String {
    cairn_core::Mode::Server.as_str().to_owned()
}

/// What the node knows of how peers reach it: whether they can (its checks,
/// `docs/design.md`, "Reachability"), and the address they see, per address family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reachability {
    /// `public`, `private` or `unknown`, as the last checks decided.
    #[serde(default = "unknown")]
    pub status: String,
    /// When the last check ended, Unix seconds; absent before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<u64>,
    /// Checks ended.
    #[serde(default)]
    pub checks: u64,
    /// This node's probes.
    #[serde(default)]
    pub probes: ProbeCounts,
    /// What this node did for its peers' checks.
    #[serde(default)]
    pub served: ServedCounts,
    /// Rendezvous, both sides (`docs/design.md`, "Rendezvous and punching").
    #[serde(default)]
    pub rendezvous: RendezvousCounts,
    /// The mode in force: `server` or `client`.
    #[serde(default = "server")]
    pub mode: String,
    /// The mode chosen: `auto`, `server` or `client`.
    #[serde(default = "server")]
    pub setting: String,
    /// Over IPv4.
    #[serde(default)]
    pub ipv4: FamilyReachability,
    /// Over IPv6.
    #[serde(default)]
    pub ipv6: FamilyReachability,
}

fn unknown() -> String {
    cairn_core::Reachability::Unknown.as_str().to_owned()
}

/// This node's probes, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProbeCounts {
    /// `reach` requests sent.
    pub asked: u64,
    /// Probes the servers asked said went out.
    pub sent: u64,
    /// Probes that arrived and counted.
    pub received: u64,
    /// `reach` requests refused or unanswered.
    pub failed: u64,
    /// Probes that arrived and did not count: an unknown or late nonce, from the server
    /// asked, or from an address this node had sent to.
    pub ignored: u64,
}

/// What the node did for its peers' checks, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServedCounts {
    /// `reach` requests relayed to a third node.
    pub relayed: u64,
    /// `reach` requests refused: no third node, too many at once.
    pub relays_refused: u64,
    /// Probe datagrams sent for servers.
    pub sent: u64,
    /// `probe` requests refused: over a limit (429) or not from a server (403).
    pub refused: u64,
    /// Probes accepted that could not be sent (no socket of the target's family, or the
    /// send failed): answered 503, never confirmed.
    #[serde(default)]
    pub unsent: u64,
}

/// Rendezvous, both sides, since the node started (`points` and `registered`: now).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RendezvousCounts {
    /// Rendezvous points this node is registered with now (a client behind a NAT).
    pub points: usize,
    /// Nodes registered here now (a server).
    pub registered: usize,
    /// `introduce` requests relayed to a registered node.
    pub introduced: u64,
    /// `register` and `introduce` requests refused.
    pub refused: u64,
    /// Punches sent, asked by this node's points.
    pub punches_sent: u64,
    /// Punches received (they only open their sender's NAT).
    pub punches_received: u64,
    /// `meet` requests refused: not from a point of this node, or over a bound.
    pub meets_refused: u64,
    /// Circuits this node relays now (a server).
    #[serde(default)]
    pub circuits: usize,
    /// Circuits opened since the start.
    #[serde(default)]
    pub circuits_opened: u64,
    /// Bytes relayed since the start.
    #[serde(default)]
    pub relayed_bytes: u64,
    /// `relay` requests refused, and `relayed` datagrams dropped (no such circuit, not from
    /// its end, over its bytes or its time).
    #[serde(default)]
    pub relay_refused: u64,
}

/// One address family's part of [`Reachability`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FamilyReachability {
    /// The address peers see this node at (`ip:port`; `ip:*` behind a NAT that maps each
    /// peer to another port), once enough of them agree; absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// How the node's NAT, if any, maps it, as the votes show: `independent`, `dependent`
    /// or `unknown`.
    pub mapping: String,
    /// Votes held now (at most 16; each expires after 10 minutes).
    pub votes: usize,
    /// Times the address seen changed, its first becoming known included.
    pub changes: u64,
}

impl Default for FamilyReachability {
    fn default() -> Self {
        FamilyReachability {
            observed: None,
            mapping: cairn_core::Mapping::Unknown.as_str().to_owned(),
            votes: 0,
            changes: 0,
        }
    }
}

impl From<cairn_core::ObservedReport> for FamilyReachability {
    fn from(report: cairn_core::ObservedReport) -> Self {
        FamilyReachability {
            observed: report.seen.map(|seen| seen.to_string()),
            mapping: report.mapping.as_str().to_owned(),
            votes: report.votes,
            changes: report.changes,
        }
    }
}

/// The datagram plane's counters, as `GET /v1/status` shows them (`docs/protocol.md`
/// section 11; each refusal's reason is in `SECURITY.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DatagramStatus {
    /// Whether the node speaks datagrams.
    pub enabled: bool,
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Sessions held now.
    pub sessions: u64,
    /// Sessions this node opened, and peers opened with it.
    pub sessions_initiated: u64,
    /// Sessions peers opened with this node.
    pub sessions_accepted: u64,
    /// Requests sent again after their retransmission timeout.
    pub retransmits: u64,
    /// Requests repeated by a peer and answered from the answers kept (not handled again).
    pub duplicates: u64,
    /// Requests sent over TCP instead (a stream needed, too large, a peer without datagrams).
    pub fallbacks: u64,
    /// Sessions dropped because a request on them ran out of tries with nothing heard back
    /// (the next request opens a new one).
    #[serde(default)]
    pub silent_sessions: u64,
    /// Requests the node stopped waiting for (their deadline passed) while they were still
    /// being tried: sent no more, and never sent over TCP instead.
    #[serde(default)]
    pub cancelled: u64,
    /// Refused: larger than 1,200 bytes.
    pub too_large: u64,
    /// Refused: an `initial` from a host past `handshake_rate`.
    pub handshake_rate: u64,
    /// Refused: not a valid datagram, an `initial` not padded, a body that is not a message.
    pub malformed: u64,
    /// Refused: an `initial` or `accept` whose signature does not verify.
    pub bad_signature: u64,
    /// Refused: a `data` whose tag does not verify.
    pub bad_tag: u64,
    /// Refused: a `data` replayed (its packet number seen, or too old).
    pub replayed: u64,
    /// Refused: for a session this node does not hold, or from another address than the
    /// session's.
    pub stray: u64,
    /// Not sent: it would have taken more than three times what an unproven address sent.
    pub amplification_limit: u64,
    /// `store`s refused because they came before the sender's address was proven.
    pub unproven_stores: u64,
}

/// A routing-table contact, as `GET /v1/peers` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeerInfo {
    /// Its id (hex in JSON).
    #[serde(with = "hex_id")]
    pub node_id: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Seconds since it last answered or sent a verified request.
    pub last_seen_s: u64,
    /// Failed requests in a row.
    pub failures: u32,
}

/// An id as the hex string every text interface shows.
mod hex_id {
    use cairn_core::Id;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(id: &Id, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Id::from_hex(&text).map_err(D::Error::custom)
    }
}

/// An ed25519 public key as hex.
mod hex_public_key {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&cairn_core::to_hex(key))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        cairn_core::from_hex(&text)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| D::Error::custom("expected a public key of 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_in_json_both_ways() {
        let peer = PeerInfo {
            node_id: NodeId::hash(b"a node"),
            addr: "127.0.0.1:7400".parse().expect("valid"),
            last_seen_s: 3,
            failures: 0,
        };
        let json = serde_json::to_string(&peer).expect("serializes");
        let expected = format!(
            "{{\"node_id\":\"{}\",\"addr\":\"127.0.0.1:7400\",\"last_seen_s\":3,\"failures\":0}}",
            peer.node_id.to_hex()
        );
        assert_eq!(json, expected);
        let back: PeerInfo = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, peer);
    }
}
