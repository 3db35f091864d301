//! What a node did, step by step, for whoever watches it: the driver's metrics count these
//! records, its log follows each lookup from start to end, and the dashboard draws lookups
//! hopping across the ring from them.
//!
//! Off by default ([`Node::set_tracing`]): a simulated network of 100,000 nodes has nobody
//! to read them. Once on, every input may leave records; drain them with
//! [`Node::poll_trace`] along with the other outputs. The queue holds at most
//! [`MAX_TRACES`]; past that the oldest are dropped and counted ([`Node::traces_dropped`]).
//!
//! A leaf: the record types and their queue. The parts of the node build the records; this
//! file knows none of them (only the ids and costs of `event.rs`).
//!
//! [`Node::set_tracing`]: super::Node::set_tracing
//! [`Node::poll_trace`]: super::Node::poll_trace
//! [`Node::traces_dropped`]: super::Node::traces_dropped

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

use super::event::{QueryId, QueryStats};
use crate::id::{Id, NodeId};
use crate::message::{ErrorCode, Response};

/// The most records held between two drains.
pub const MAX_TRACES: usize = 16_384;

/// What a command is doing, as logs and metrics name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// A user's `find_node`.
    FindNode,
    /// A user's get.
    Get,
    /// A user's put.
    Put,
    /// A user's delete: the put of a tombstone.
    Delete,
    /// Joining a network.
    Bootstrap,
    /// A round of a watch.
    Watch,
    /// Housekeeping: storing an item (own or held) at the closest nodes again.
    Replicate,
    /// Housekeeping: a lookup refreshing an idle bucket.
    Refresh,
}

impl Operation {
    /// Every operation, for whoever lists them ahead of time (the driver's metrics do).
    pub const ALL: [Operation; 8] = [
        Operation::FindNode,
        Operation::Get,
        Operation::Put,
        Operation::Delete,
        Operation::Bootstrap,
        Operation::Watch,
        Operation::Replicate,
        Operation::Refresh,
    ];

    /// The name in logs, metrics labels and the dashboard's events.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::FindNode => "find_node",
            Operation::Get => "get",
            Operation::Put => "put",
            Operation::Delete => "delete",
            Operation::Bootstrap => "bootstrap",
            Operation::Watch => "watch",
            Operation::Replicate => "replicate",
            Operation::Refresh => "refresh",
        }
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryOutcome {
    /// It did what was asked (a get found a copy, a put was stored here).
    Ok,
    /// A get found no copy.
    NotFound,
    /// A put was refused here, or a bootstrap reached nobody.
    Failed,
}

impl QueryOutcome {
    /// Every outcome.
    pub const ALL: [QueryOutcome; 3] = [
        QueryOutcome::Ok,
        QueryOutcome::NotFound,
        QueryOutcome::Failed,
    ];

    /// The name in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryOutcome::Ok => "ok",
            QueryOutcome::NotFound => "not_found",
            QueryOutcome::Failed => "failed",
        }
    }
}

/// How one request this node sent ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestOutcome {
    /// Answered, not with an error.
    Answered,
    /// Answered with an error of this code.
    Refused(ErrorCode),
    /// The connection failed, or the peer proved to be someone else.
    Failed,
    /// Nobody answered within `request_timeout`.
    TimedOut,
}

impl RequestOutcome {
    /// The name in metrics labels: `ok`, `error_409`, `failed`, `timeout`.
    pub fn label(self) -> Cow<'static, str> {
        match self {
            RequestOutcome::Answered => Cow::Borrowed("ok"),
            RequestOutcome::Refused(code) => error_label(code.0),
            RequestOutcome::Failed => Cow::Borrowed("failed"),
            RequestOutcome::TimedOut => Cow::Borrowed("timeout"),
        }
    }
}

/// `error_<code>`, without an allocation for the codes the protocol defines (labels are made
/// for every request, so they should cost nothing).
pub fn error_label(code: u16) -> Cow<'static, str> {
    Cow::Borrowed(match code {
        400 => "error_400",
        403 => "error_403",
        409 => "error_409",
        413 => "error_413",
        426 => "error_426",
        429 => "error_429",
        500 => "error_500",
        other => return Cow::Owned(format!("error_{other}")),
    })
}

/// A housekeeping duty that fell due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Duty {
    /// Expired items dropped.
    Expire,
    /// Own items queued to be stored again.
    Republish,
    /// Held items queued to be stored at the current closest nodes.
    Replicate,
    /// Idle buckets queued to be refreshed.
    Refresh,
}

impl Duty {
    /// Every duty.
    pub const ALL: [Duty; 4] = [
        Duty::Expire,
        Duty::Republish,
        Duty::Replicate,
        Duty::Refresh,
    ];

    /// The name in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Duty::Expire => "expire",
            Duty::Republish => "republish",
            Duty::Replicate => "replicate",
            Duty::Refresh => "refresh",
        }
    }
}

/// One step of the node's work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trace {
    /// A command started.
    QueryStarted {
        /// The query (housekeeping's and watches' included: their ids are never reported
        /// by an event).
        query: QueryId,
        /// What it is.
        operation: Operation,
        /// The id or key it looks up (this node's id for a bootstrap).
        target: Id,
    },
    /// A command asked a peer.
    Asked {
        /// The query.
        query: QueryId,
        /// The peer asked (`None`: a seed known only by its address).
        to: Option<NodeId>,
        /// The node whose answer told of the peer (`None`: it came from this node's own
        /// routing table, or the query is not a lookup).
        via: Option<NodeId>,
        /// Round trips from the query's start to reach the peer: 1 for the first ones.
        hop: u32,
    },
    /// A peer a command asked answered, or failed to.
    Replied {
        /// The query.
        query: QueryId,
        /// The peer.
        from: Option<NodeId>,
        /// Whether it answered (an error answer counts as not).
        ok: bool,
    },
    /// A command ended.
    QueryFinished {
        /// The query.
        query: QueryId,
        /// What it was.
        operation: Operation,
        /// How it ended.
        outcome: QueryOutcome,
        /// What it cost.
        stats: QueryStats,
    },
    /// A request this node sent ended.
    RequestEnded {
        /// Its `type` on the wire ([`crate::Request::name`]).
        request: &'static str,
        /// How.
        outcome: RequestOutcome,
        /// From sending to the answer (answered requests only).
        round_trip: Option<Duration>,
    },
    /// A housekeeping duty ran.
    Housekeeping {
        /// Which.
        duty: Duty,
        /// Items or buckets it queued, or expired items it dropped.
        count: usize,
    },
}

/// The trace queue of a node: off until [`Traces::set_on`], bounded by [`MAX_TRACES`].
#[derive(Debug, Default)]
pub(super) struct Traces {
    on: bool,
    queue: VecDeque<Trace>,
    dropped: u64,
}

impl Traces {
    /// Queues the record `make` builds, if tracing is on.
    pub(super) fn push(&mut self, make: impl FnOnce() -> Trace) {
        if !self.on {
            return;
        }
        if self.queue.len() >= MAX_TRACES {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(make());
    }

    /// Turns recording on or off; off also drops what is queued.
    pub(super) fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.queue = VecDeque::new();
        }
    }

    /// Whether records are being kept.
    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    /// The oldest record. A drained queue gives its buffer back, as the node's other output
    /// queues do.
    pub(super) fn pop(&mut self) -> Option<Trace> {
        let next = self.queue.pop_front();
        if next.is_none() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
        next
    }

    /// Records dropped because nobody drained the queue in time.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// How a request ended, from its answer.
pub(super) fn outcome_of(response: &Response) -> RequestOutcome {
    match response {
        Response::Error(e) => RequestOutcome::Refused(e.code),
        _ => RequestOutcome::Answered,
    }
}
