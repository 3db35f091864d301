//! The cairn protocol with no I/O.
#![deny(missing_docs)]

pub mod config;
pub mod handshake;
pub mod id;
pub mod item;
pub mod lookup;
pub mod message;
pub mod netstring;
pub mod node;
pub mod routing;
pub mod rtt;
pub mod store;
pub mod subnet;
pub mod time;
pub mod wire;

pub use config::Config;
pub use id::{Distance, Id, Key, NodeId};
pub use item::{ImmutableItem, Item, SignedItem, Tombstone};
pub use message::{Contact, ErrorCode, Message, Request, Response};
pub use node::{Event, Node, QueryId};
pub use store::{MemoryStore, Store};
pub use time::Time;
