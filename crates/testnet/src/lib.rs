//! cairn-testnet: a test network of real nodes, each on a loopback address of its own
//! (127.a.b.1), and the workload `cairn testnet` runs on it. Test tooling, kept out of the
//! node library: it starts processes, reads `/proc`, and has errors of its own
//! ([`TestnetError`]); the `cairn` binary and the node's many-node tests use it.
//!
//! Every node is a full node: its own listener, driver and connections over loopback TCP. A
//! connection between two nodes of one process costs two file descriptors, so the nodes of one
//! process share one connection budget sized from the process's open-file limit, and each node
//! has a pool of at most its share; the report says how often a node had to do without a
//! connection because the budget was spent.
//!
//! One process holds about a hundred nodes with pools a put can reuse. A larger network is
//! spread over several processes ([`spread`]): node `i` of `P` processes runs in process
//! `i % P`, this one being process 0 and the others worker processes that this one starts and
//! drives over their standard input and output. The workload and the report are the same either way.

#![deny(missing_docs)]

mod durable;
mod error;
mod local;
mod member;
mod network;
mod serve;
mod show;
pub mod soak;
pub mod spread;
mod workload;

use std::net::SocketAddr;

use cairn_report::Report;
use serde::Serialize;

pub use error::TestnetError;
pub use local::{Testnet, loopback_host, open_file_limit, resident_bytes};
pub use network::Network;
pub use serve::serve_worker;
pub use spread::WorkerCommand;
pub use workload::run;

/// Reports progress of the stages of a run (the CLI draws progress bars with it).
pub trait Progress: Send + Sync {
    /// A stage with `total` steps begins.
    fn stage(&self, name: &str, total: u64);
    /// One step of the current stage is done.
    fn step(&self);
    /// The current stage is over.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _: &str, _: u64) {}
    fn step(&self) {}
    fn finish(&self) {}
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Nodes to start.
    pub nodes: usize,
    /// Items to put (alternately signed and immutable) and then get.
    pub items: usize,
    /// Seed of the random choices (which nodes put and get, the values).
    pub seed: u64,
    /// Joins, puts or gets running at once.
    pub concurrency: usize,
    /// Processes to spread the nodes over; `None` picks [`spread::processes_for`].
    pub processes: Option<usize>,
    /// How to start a worker process; needed only when the nodes are spread over more than
    /// one process.
    pub worker: Option<WorkerCommand>,
    /// Where to serve the dashboard of the whole network (node 0's API), from the moment the
    /// nodes start; needs every node in this process.
    pub serve: Option<SocketAddr>,
    /// Whether the nodes speak datagrams (protocol version 2); `false` makes a network of
    /// version-1 nodes, TCP only.
    pub datagrams: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            nodes: 100,
            items: 100,
            seed: 1,
            concurrency: 32,
            processes: Some(1),
            worker: None,
            serve: None,
            datagrams: true,
        }
    }
}

/// What a run measured: the report every cairn experiment shares ([`Report`]), and what only a
/// real network has.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TestnetReport {
    /// The figures the simulator reports too.
    #[serde(flatten)]
    pub report: Report,
    /// Processes the nodes ran in (this one included).
    pub processes: usize,
    /// Joins, puts or gets that were in flight at once.
    pub concurrency: usize,
    /// Puts completed per second of the put stage (successful or not).
    pub puts_per_s: f64,
    /// Gets completed per second of the get stage.
    pub gets_per_s: f64,
    /// Requests sent between nodes during the puts and gets (liveness pings and housekeeping
    /// included).
    pub messages: u64,
    /// Resident memory of all the processes before any node started, in bytes.
    pub rss_before_bytes: u64,
    /// Resident memory of all the processes after the run, in bytes.
    pub rss_after_bytes: u64,
    /// The connection budgets of all the processes, added up (connection ends open at once:
    /// a connection between two nodes of one process has two).
    pub connection_budget: usize,
    /// Connections not opened or not accepted because the budget was spent (their requests
    /// failed).
    pub budget_exhausted: u64,
    /// Connections that could not be opened at all (refused, or out of file descriptors).
    pub dial_failures: u64,
    /// Connection ends open when the report was made.
    pub connections_open: usize,
    /// Connections opened (TCP and cairn handshake) per put, over all nodes.
    pub connections_per_put: f64,
    /// Connections opened per get.
    pub connections_per_get: f64,
    /// Wall time of the whole run, in seconds.
    pub wall_s: f64,
}
