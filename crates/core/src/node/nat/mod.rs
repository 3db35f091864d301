//! What a node learns about its own reachability behind NATs (`docs/design.md`, "Observed
//! address"). Each concern is a part of its own; the node routes its inputs to them.
//!
//! - `observed`: the node's address as its peers see it, by vote.

mod observed;

pub use observed::{Family, Mapping, ObservedChange, ObservedReport, Seen};

pub(super) use observed::Observed;
