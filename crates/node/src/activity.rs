//! The node's work as it happens: lookups starting, hopping from node to node and ending,
//! for the dashboard to draw (`GET /v1/events`, Server-Sent Events).
//!
//! The driver publishes [`Activity`] on a `Hub`: a broadcast channel of
//! [`ACTIVITY_QUEUE`] events (a reader that falls further behind misses the oldest and is
//! told how many), and the last [`RECENT_OPERATIONS`] finished user operations, which a new
//! reader gets first. Nothing is built while nobody listens, beyond those few. A reader holds
//! an [`ActivityFeed`] ([`crate::Dht::activity`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Events a reader may fall behind by before it misses some.
pub const ACTIVITY_QUEUE: usize = 4_096;

/// Finished user operations kept for readers that arrive later.
pub const RECENT_OPERATIONS: usize = 32;

/// One step of a node's work. Ids and keys are hex; `node` is the node doing the work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Activity {
    /// A command started looking up `target`.
    Lookup {
        /// The node running it.
        node: String,
        /// The command's number on that node.
        query: u64,
        /// `get`, `put`, `find_node`, `bootstrap`, `watch`, `replicate` or `refresh`.
        operation: String,
        /// The id or key sought.
        target: String,
    },
    /// A command asked `to`, having heard of it from `from` (the running node itself when
    /// `None`: a contact from its own table).
    Hop {
        /// The node running the command.
        node: String,
        /// The command's number.
        query: u64,
        /// Who told of `to`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The node asked.
        to: String,
        /// Round trips from the command's start: 1 for the first nodes asked.
        hop: u32,
    },
    /// A node a command asked answered (`ok`) or failed to.
    Reply {
        /// The node running the command.
        node: String,
        /// The command's number.
        query: u64,
        /// The node that answered or failed.
        from: String,
        /// Whether it answered.
        ok: bool,
    },
    /// A command ended.
    Done {
        /// The node that ran it.
        node: String,
        /// The command's number.
        query: u64,
        /// What it was.
        operation: String,
        /// The id or key it sought.
        target: String,
        /// `ok`, `not_found` or `failed`.
        outcome: String,
        /// Round trips on the longest chain that led to the result.
        hops: u32,
        /// Requests it sent.
        requests: u32,
        /// Its duration in milliseconds.
        ms: f64,
        /// Unix milliseconds when it ended.
        at: u64,
    },
}

impl Activity {
    /// Whether this is the end of an operation a user asked for (not housekeeping's).
    pub fn is_user_operation(&self) -> bool {
        matches!(self, Activity::Done { operation, .. }
            if matches!(operation.as_str(), "get" | "put" | "delete" | "find_node" | "bootstrap"))
    }
}

/// Where a node's activity goes.
#[derive(Debug)]
pub(crate) struct Hub {
    /// Made when the first reader subscribes: its buffer is a few hundred KiB, which the
    /// thousands of nodes of a test network nobody watches should not pay for.
    sender: OnceLock<broadcast::Sender<Arc<Activity>>>,
    recent: Mutex<VecDeque<Arc<Activity>>>,
}

impl Hub {
    pub(crate) fn new() -> Self {
        Hub {
            sender: OnceLock::new(),
            recent: Mutex::default(),
        }
    }

    /// Whether anyone reads the live events (if not, only finished operations are kept).
    pub(crate) fn is_watched(&self) -> bool {
        self.sender.get().is_some_and(|s| s.receiver_count() > 0)
    }

    pub(crate) fn publish(&self, activity: Activity) {
        let activity = Arc::new(activity);
        if activity.is_user_operation() {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if recent.len() >= RECENT_OPERATIONS {
                recent.pop_front();
            }
            recent.push_back(activity.clone());
        }
        if let Some(sender) = self.sender.get() {
            // Nobody listening is no error.
            let _ = sender.send(activity);
        }
    }

    /// The recent finished operations, oldest first, and the live events from now on.
    pub(crate) fn subscribe(&self) -> ActivityFeed {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = self
            .sender
            .get_or_init(|| broadcast::channel(ACTIVITY_QUEUE).0);
        ActivityFeed {
            recent: recent.iter().cloned().collect(),
            live: sender.subscribe(),
        }
    }
}

/// A reader of one node's activity ([`crate::Dht::activity`]): the finished user operations
/// of just before it subscribed ([`ActivityFeed::recent`]), then every event from then on
/// ([`ActivityFeed::recv`]). Dropping it unsubscribes.
#[derive(Debug)]
pub struct ActivityFeed {
    recent: Vec<Arc<Activity>>,
    live: broadcast::Receiver<Arc<Activity>>,
}

/// Why [`ActivityFeed::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActivityError {
    /// The reader fell more than [`ACTIVITY_QUEUE`] events behind and missed the oldest;
    /// the next `recv` returns the oldest event still queued.
    #[error("missed {missed} events")]
    Lagged {
        /// How many events it missed.
        missed: u64,
    },
    /// The node has stopped and every handle on it is gone: no event will come.
    #[error("the node has stopped")]
    Stopped,
}

impl ActivityFeed {
    /// The last [`RECENT_OPERATIONS`] (at most) finished user operations before subscribing,
    /// oldest first. [`ActivityFeed::recv`] does not repeat them.
    pub fn recent(&self) -> &[Arc<Activity>] {
        &self.recent
    }

    /// The next live event.
    pub async fn recv(&mut self) -> Result<Arc<Activity>, ActivityError> {
        self.live.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(missed) => ActivityError::Lagged { missed },
            broadcast::error::RecvError::Closed => ActivityError::Stopped,
        })
    }
}
