//! The cairn protocol with no I/O: a Kademlia node as a deterministic state machine.
//!
//! The caller owns the sockets, the clock and the randomness; a [`Node`] takes `now` and the
//! peers' messages as inputs and hands back what to send, what to wait for and what happened.
//! `cairn-node` drives one over TCP on tokio, `cairn-sim` many on a virtual clock.
//!
//! Every item has one path, at the crate root. What the crate offers, by group:
//!
//! - **The state machine**: [`Node`] and its [`Config`], the [`Time`] it is given, the inputs
//!   it takes ([`Requester`], [`Answer`]), the outputs it returns ([`Transmit`], [`Event`],
//!   [`Notification`]) with the ids commands echo ([`QueryId`], [`WatchId`]), and its
//!   [`Stats`].
//! - **How a query ended**: [`PutFailure`], [`GetFailure`], [`BootstrapFailure`] and the
//!   [`QueryStats`] every query reports.
//! - **Traces**: [`Trace`] and its parts, what a node records of its work for observers.
//! - **Identifiers**: [`Id`] (as [`NodeId`] and [`Key`]), the XOR [`Distance`] between them,
//!   and their hex form.
//! - **Items and their rules**: [`Item`] in its three kinds, how a key is derived
//!   ([`signed_key`]) and what is signed ([`signature_preimage`], [`tombstone_preimage`]), how
//!   a publisher picks `seq` and `expires` ([`next_seq`], [`expiry`]), and which copy wins
//!   ([`Resolution`], [`Refusal`], [`Held`], [`Summary`]).
//! - **Messages and the handshake**: [`Message`] with its [`Request`]s and [`Response`]s,
//!   their limits, and the TCP handshake: both sides as state machines ([`Dialing`],
//!   [`Accepting`]) and the signatures they exchange ([`Transcript`], [`Role`]).
//! - **Storage**: the [`Store`] trait, [`MemoryStore`], the [`Ledger`] every store shares,
//!   and the limits, errors and commit outcomes of a write.
//! - **Routing**: the [`RoutingTable`] a node exposes read-only, its [`Diversity`] limits and
//!   the subnet [`Prefix`] they count in.
//!
//! Two modules stay public because they are namespaces of codec functions whose names would
//! mislead at the root (each has an `encode`):
//!
//! - [`wire`]: messages and items to and from MessagePack payloads, the one path from
//!   untrusted bytes to a verified [`Message`] or [`Item`];
//! - [`netstring`]: the framing of payloads on a byte stream;
//! - [`datagram`]: the datagram plane, [`datagram::Plane`], with its settings, events and the
//!   layouts of its five datagrams (whose constants would crowd the root).
#![deny(missing_docs)]

mod config;
pub mod datagram;
mod handshake;
mod id;
mod item;
mod lookup;
mod message;
pub mod netstring;
mod node;
mod routing;
mod rtt;
mod store;
mod subnet;
mod time;
pub mod wire;

// The state machine: its configuration, time, inputs, outputs and counters.
pub use config::Config;
pub use node::{
    Answer, Deferred, Event, ExchangeId, Exchanged, Node, Notification, QueryId, Requester, Stats,
    Transmit, WatchId,
};
pub use time::Time;

// How a query ended.
pub use node::{BootstrapFailure, GetFailure, PutFailure, QueryStats};

// What a node records of its work, for observers.
pub use node::{Duty, Operation, QueryOutcome, RequestOutcome, Trace, error_label};

// Identifiers and the XOR metric.
pub use id::{Distance, ID_LEN, Id, Key, NodeId, ParseIdError, from_hex, to_hex};

// Items, how they are keyed and signed, and which copy wins.
pub use item::{
    Held, ImmutableItem, Item, ItemError, Kind, MAX_NAME_LEN, Refusal, Resolution, SignedHeader,
    SignedItem, Summary, Tombstone, signature_preimage, signed_key, tombstone_preimage,
};
pub use node::{expiry, next_seq};

// Messages between peers, their limits, and the handshake.
pub use handshake::{
    Accepting, Dialed, Dialing, Greeting, HandshakeError, Role, Transcript, Welcomed,
};
pub use message::{
    Auth, Contact, ErrorCode, ErrorReply, Hello, MAX_ERROR_MESSAGE, MAX_LISTEN_TTL,
    MAX_NETWORK_LEN, Message, Mode, NetworkName, NetworkNameError, PROTOCOL_VERSION, Peer,
    REGISTRATION_TTL, Request, Response, Welcome,
};

// Storage.
pub use store::{
    CommitId, CommitOutcome, Holdings, Ledger, Listed, MemoryStore, Origin, ReadError, Store,
    StoreError, StoreLimits, Written,
};

// Behind NATs: the node's address as its peers see it.
/// The bounds of a relayed circuit (`docs/design.md`, "Relaying").
pub use node::{CIRCUIT_BYTES, CIRCUIT_LIFE};
pub use node::{
    Family, Mapping, ObservedChange, ObservedReport, ProbeReport, ProbeSend, ReachReport,
    Reachability, RelayReport, RendezvousReport, Seen,
};
/// The name of the signed item a node behind a NAT lists its rendezvous points under, and how
/// long one lives (`docs/protocol.md`, "Rendezvous and punching").
pub use node::{RECORD_NAME as RENDEZVOUS_RECORD, RECORD_TTL as RENDEZVOUS_RECORD_TTL};

// Routing.
pub use routing::{Diversity, Entry, RoutingTable};
pub use subnet::Prefix;
