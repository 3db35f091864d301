//! What a node learns about its own reachability behind NATs (`docs/design.md`, "Observed
//! address"). Each concern is a part of its own; the node routes its inputs to them.
//!
//! - `observed`: the node's address as its peers see it, by vote;
//! - `reach`: whether the node can be reached, by probes from nodes it never contacted;
//! - `probe`: the other side of those checks: relaying them, and sending probes, in bounds;
//! - `rendezvous`: reaching a node behind a NAT by its key: its rendezvous points, and the
//!   registrations a server holds for such nodes.

mod observed;
mod probe;
mod reach;
mod relay;
mod rendezvous;
mod window;

pub use observed::{Family, Mapping, ObservedChange, ObservedReport, Seen};
pub use probe::{ProbeReport, ProbeSend};
pub use reach::{ReachReport, Reachability};
pub use relay::{CIRCUIT_BYTES, CIRCUIT_LIFE, RelayReport};
pub use rendezvous::{RECORD_NAME, RECORD_TTL, RendezvousReport};

pub(super) use observed::Observed;
pub(super) use probe::{Probes, unsent};
pub(super) use reach::{ASKS, Reach};
pub(super) use relay::Relays;
pub(super) use rendezvous::{Introduce, Points, Registry};
