//! The cairn protocol with no I/O.
#![deny(missing_docs)]

pub mod handshake;
pub mod id;
pub mod item;
pub mod message;
pub mod netstring;
pub mod time;
pub mod wire;

pub use id::{Distance, Id, Key, NodeId};
pub use item::{ImmutableItem, Item, SignedItem};
pub use message::{Contact, ErrorCode, Message, Request, Response};
pub use time::Time;
