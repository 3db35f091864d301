//! Why a test network did not start: a node of it, a worker process, or the dashboard's
//! server. Each says what failed in the words `cairn testnet` prints.

use std::net::SocketAddr;

/// Why a test network (or one worker's share of it) did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestnetError {
    /// A node of this process did not start.
    #[error(transparent)]
    Start(#[from] cairn_node::StartError),
    /// A worker process did not start its nodes: it could not be run, exited first, or said
    /// something unexpected. The text names the worker (`worker 1: ...`).
    #[error("test network: {0}")]
    Worker(String),
    /// The plan spreads the nodes over processes but names no program to run as a worker.
    #[error("test network: spreading nodes over processes needs a worker command")]
    NoWorkerCommand,
    /// The dashboard was asked for while the nodes are spread over processes; it reads every
    /// node, so they must all run in this one.
    #[error("test network: the dashboard shows a network run in one process; do not spread it")]
    DashboardSpread,
    /// The dashboard's address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Dashboard {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}
