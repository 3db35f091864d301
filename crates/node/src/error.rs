//! The errors of the [`crate::Dht`] handle: one enum per operation, each `#[non_exhaustive]`
//! and each converting into the umbrella [`Error`], and the one place where the core's
//! outcomes of a command become them.
//!
//! One failure has one name wherever it surfaces: a node that has stopped answers every call
//! with [`Stopped`] (or its operation's `Stopped` variant), and a failed commit is
//! [`PutError::NotDurable`] whether the store reported it while the put's lookup ran or after.
//! Callers never match the core's own outcome enums.

use cairn_core::{CommitId, Item, ItemError, Key, QueryId, QueryStats, StoreError};
use std::net::SocketAddr;

use crate::outcome::Found;
use crate::store::CommitError;

/// The node has stopped: what every [`crate::Dht`] call answers once it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has stopped")]
pub struct Stopped;

/// A command finished with the completion event of another kind of command. This is a bug
/// in cairn; the caller is told rather than left to believe the node stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "internal error: command {query} ended with a {event} event, not a {expected} one \
     (a bug in cairn; please report it)"
)]
pub struct MismatchedEvent {
    /// The command's number.
    pub query: u64,
    /// The kind of command that was waited for (`put`, `get`, `find_node`, `bootstrap`).
    pub expected: &'static str,
    /// The kind of completion event that arrived.
    pub event: &'static str,
}

/// Why a put ([`crate::Dht::put_signed`], [`crate::Dht::put_item`], ...) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// The item itself is invalid (say, a name of more than 255 bytes).
    #[error("invalid item: {0}")]
    Invalid(#[from] ItemError),
    /// The value is above the protocol's `max_value_size`.
    #[error("value of {size} bytes is above the {max}-byte limit")]
    TooLarge {
        /// The value's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// This node's store refused the item (stale, conflicting or over a limit), so it was
    /// not published; [`StoreError::code`] says which kind of refusal.
    #[error("not stored locally: {0}")]
    Refused(StoreError),
    /// The local store failed to commit the item, so the put is not acknowledged and this
    /// node does not hold it.
    #[error("the item could not be stored durably: {0}")]
    NotDurable(CommitError),
    /// No other node stored the item (`asked`: the nodes it was sent to; 0 when the lookup
    /// reached none): the put is not acknowledged, though this node keeps its copy. A node
    /// alone by design (no contact, no bootstrap address) puts with no peer and succeeds.
    #[error(
        "no other node stored the item ({asked} asked); only this node holds it: try again \
         once the node reaches its peers"
    )]
    NoPeer {
        /// The nodes the item was sent to.
        asked: usize,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// A bug in cairn (see [`MismatchedEvent`]).
    #[error(transparent)]
    Internal(MismatchedEvent),
}

/// Why a get ([`crate::Dht::get`], [`crate::Dht::get_signed`]) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// No node reached holds a valid copy.
    #[error("not found: no node holds a valid copy of {key} ({asked} nodes answered)")]
    NotFound {
        /// The key sought.
        key: Key,
        /// How many nodes answered the lookup.
        asked: usize,
    },
    /// The newest copy found is a tombstone: its publisher deleted the item.
    #[error("deleted: the item under {key} was deleted by its publisher (seq {seq})")]
    Deleted {
        /// The key sought.
        key: Key,
        /// The tombstone's `seq`.
        seq: u64,
    },
    /// No copy was found, but replicas that hold the item (this node's store, or peers that
    /// answered 503) cannot read it now: the item is not known to be absent. Try again later.
    #[error(
        "unavailable: {replicas} replica(s) hold {key} but their storage cannot read it now \
         (a full or failed disk); try again later"
    )]
    Unavailable {
        /// The key sought.
        key: Key,
        /// How many replicas holding it could not read it.
        replicas: usize,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// A bug in cairn (see [`MismatchedEvent`]).
    #[error(transparent)]
    Internal(MismatchedEvent),
}

/// Why a delete ([`crate::Dht::delete`]) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DeleteError {
    /// Neither this node nor the network holds an item of that name published by this node.
    #[error("nothing to delete: no item named {name:?} published by this node was found")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The item is deleted already.
    #[error("the item named {name:?} is deleted already (seq {seq})")]
    AlreadyDeleted {
        /// The name.
        name: String,
        /// The tombstone's `seq`.
        seq: u64,
    },
    /// The item's newest `seq` is not known: replicas hold it but cannot read it now (see
    /// [`GetError::Unavailable`]), so no tombstone that surely beats it can be signed.
    #[error(
        "cannot delete {name:?} now: replicas hold it but their storage cannot read it; \
         try again later"
    )]
    Unavailable {
        /// The name.
        name: String,
    },
    /// Publishing the tombstone failed (never with [`PutError::Stopped`]: a stopped node is
    /// [`DeleteError::Stopped`]).
    #[error(transparent)]
    Put(PutError),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// Why joining ([`crate::Dht::bootstrap`]) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// No bootstrap address gave a contact, and no contact is known.
    #[error(
        "cannot join through {tried} bootstrap address(es), and no other node is known{}",
        seed_failures(failures)
    )]
    NoContact {
        /// How many addresses were tried.
        tried: usize,
        /// Each address tried, and why it gave no contact.
        failures: Vec<(SocketAddr, SeedFailure)>,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// A bug in cairn (see [`MismatchedEvent`]).
    #[error(transparent)]
    Internal(MismatchedEvent),
}

/// Why one bootstrap address gave no contact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeedFailure {
    /// Nothing listens there: the connection was refused.
    #[error("refused the connection (is a node running there?)")]
    Refused,
    /// No answer in time: the connection or the handshake timed out.
    #[error("timed out")]
    TimedOut,
    /// A cairn node answered, but it runs another network or protocol version (426).
    #[error("is on another network or version: {0}")]
    WrongNetwork(String),
    /// Something answered that does not speak cairn's protocol.
    #[error("is not a cairn node ({0})")]
    NotCairn(String),
    /// Any other failure: the connection's error.
    #[error("{0}")]
    Other(String),
}

/// `; tried ADDR (WHY), ...` for an error message, or nothing.
fn seed_failures(failures: &[(SocketAddr, SeedFailure)]) -> String {
    let each: Vec<String> = failures
        .iter()
        .map(|(addr, why)| format!("{addr} {why}"))
        .collect();
    if each.is_empty() {
        String::new()
    } else {
        format!(": {}", each.join("; "))
    }
}

/// Why a [`crate::Dht::find_node`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FindNodeError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// A bug in cairn (see [`MismatchedEvent`]).
    #[error(transparent)]
    Internal(MismatchedEvent),
}

/// Why a [`crate::Dht::watch`] could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// Any error of a [`crate::Dht`] call, for code that makes several kinds of call and wants
/// one error type. A stopped node is [`Error::Stopped`] whichever call noticed it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A put failed.
    #[error(transparent)]
    Put(PutError),
    /// A get failed.
    #[error(transparent)]
    Get(GetError),
    /// A delete failed.
    #[error(transparent)]
    Delete(DeleteError),
    /// Joining failed.
    #[error(transparent)]
    Bootstrap(BootstrapError),
    /// A bug in cairn (see [`MismatchedEvent`]).
    #[error(transparent)]
    Internal(MismatchedEvent),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

macro_rules! from_stopped {
    ($($error:ident),*) => {$(
        impl From<Stopped> for $error {
            fn from(_: Stopped) -> Self {
                $error::Stopped
            }
        }
    )*};
}

from_stopped!(
    PutError,
    GetError,
    DeleteError,
    BootstrapError,
    FindNodeError,
    WatchError,
    Error
);

impl From<PutError> for DeleteError {
    fn from(error: PutError) -> Self {
        match error {
            PutError::Stopped => DeleteError::Stopped,
            error => DeleteError::Put(error),
        }
    }
}

impl From<PutError> for Error {
    fn from(error: PutError) -> Self {
        match error {
            PutError::Stopped => Error::Stopped,
            PutError::Internal(bug) => Error::Internal(bug),
            error => Error::Put(error),
        }
    }
}

impl From<GetError> for Error {
    fn from(error: GetError) -> Self {
        match error {
            GetError::Stopped => Error::Stopped,
            GetError::Internal(bug) => Error::Internal(bug),
            error => Error::Get(error),
        }
    }
}

impl From<DeleteError> for Error {
    fn from(error: DeleteError) -> Self {
        match error {
            DeleteError::Stopped => Error::Stopped,
            DeleteError::Put(error) => error.into(),
            error => Error::Delete(error),
        }
    }
}

impl From<BootstrapError> for Error {
    fn from(error: BootstrapError) -> Self {
        match error {
            BootstrapError::Stopped => Error::Stopped,
            BootstrapError::Internal(bug) => Error::Internal(bug),
            error => Error::Bootstrap(error),
        }
    }
}

impl From<FindNodeError> for Error {
    fn from(error: FindNodeError) -> Self {
        match error {
            FindNodeError::Stopped => Error::Stopped,
            FindNodeError::Internal(bug) => Error::Internal(bug),
        }
    }
}

impl From<WatchError> for Error {
    fn from(error: WatchError) -> Self {
        match error {
            WatchError::Stopped => Error::Stopped,
        }
    }
}

// The one place where the core's outcomes of a command become the node's errors.

/// A put the core refused or failed. `failed_commit` tells why a commit failed: the core
/// names a commit that failed while the put's lookup ran, and the driver kept its reason.
pub(crate) fn put_error(
    error: cairn_core::PutFailure,
    failed_commit: impl FnOnce(CommitId) -> Option<CommitError>,
) -> PutError {
    use cairn_core::PutFailure as Core;
    match error {
        Core::Local(refusal) => PutError::Refused(refusal),
        Core::TooLarge { size, max } => PutError::TooLarge { size, max },
        Core::NoPeer { asked } => PutError::NoPeer { asked },
        Core::NotDurable(commit) => PutError::NotDurable(
            failed_commit(commit)
                // The core learns of a failed commit only from the driver, which keeps its
                // reason first; a reason-less failure would be a bug, told as a stopped writer.
                .unwrap_or(CommitError::Stopped),
        ),
    }
}

/// A finished get: the item found, a tombstone (deleted), or nothing.
pub(crate) fn get_outcome(
    key: Key,
    result: Result<Item, cairn_core::GetFailure>,
    stats: QueryStats,
) -> Result<Found, GetError> {
    match result {
        Ok(Item::Tombstone(t)) => Err(GetError::Deleted { key, seq: t.seq() }),
        Ok(item) => Ok(Found { item, stats }),
        Err(cairn_core::GetFailure::NotFound { asked, .. }) => {
            Err(GetError::NotFound { key, asked })
        }
        Err(cairn_core::GetFailure::Unavailable { replicas, .. }) => {
            Err(GetError::Unavailable { key, replicas })
        }
    }
}

/// A finished bootstrap through `seeds`, with the reasons heard for those that failed (a
/// seed without one gave no answer in time).
pub(crate) fn bootstrap_outcome(
    result: Result<usize, cairn_core::BootstrapFailure>,
    seeds: &[SocketAddr],
    mut heard: Vec<(SocketAddr, SeedFailure)>,
) -> Result<usize, BootstrapError> {
    result.map_err(|cairn_core::BootstrapFailure::NoContact| {
        let failures = seeds
            .iter()
            .map(
                |seed| match heard.iter().position(|(addr, _)| addr == seed) {
                    Some(at) => heard.swap_remove(at),
                    None => (*seed, SeedFailure::TimedOut),
                },
            )
            .collect();
        BootstrapError::NoContact {
            tried: seeds.len(),
            failures,
        }
    })
}

/// The mismatch of command `query`, which waited for an `expected` event and got `event`.
pub(crate) fn mismatched(
    query: QueryId,
    expected: &'static str,
    event: &'static str,
) -> MismatchedEvent {
    MismatchedEvent {
        query: query.0,
        expected,
        event,
    }
}
