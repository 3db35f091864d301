//! The requests this node sent: their ids, why each went out, when each stops holding a
//! lookup slot and when it times out, and the queue the driver drains with `poll_transmit`.
//!
//! The round-trip estimates live here too: every answer samples them, and a lookup request's
//! slot deadline is its contact's round-trip timeout. Which part a request serves
//! ([`Purpose`]) is the node's business; this table only keeps the deadlines and hands back
//! what ended.

use std::collections::BTreeMap;
use std::time::Duration;

use super::event::{QueryId, WatchId};
use super::outbox::Outbox;
use super::trace::{RequestOutcome, Trace, Traces};
use crate::config::Config;
use crate::id::{Key, NodeId};
use crate::message::{Peer, Request};
use crate::rtt::RttTable;
use crate::time::Time;

/// A request the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The request's id; the answer or failure is reported with it.
    pub id: u64,
    /// The recipient.
    pub to: Peer,
    /// What to send.
    pub request: Request,
}

/// Why a request is outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Part of a command.
    Query(QueryId),
    /// A liveness check of a full bucket's least recently seen contact.
    Liveness,
    /// A write-back or replication store nobody waits for.
    Unattended,
    /// A watch's `listen`.
    Listen(WatchId),
    /// Fetching the copy that made a peer refuse this node's `store` as stale.
    Repair,
    /// One of this node's reachability asks (`reach`).
    Reach,
    /// A `probe` relayed for a peer's `reach`.
    Probe,
    /// One of this node's `register`s with a rendezvous point.
    Register,
    /// A `meet` relayed for a peer's `introduce`.
    Meet,
    /// A single request whose answer the driver takes ([`super::Node::exchange`]).
    Exchange,
}

impl Purpose {
    /// Whether a request of this purpose failing says its peer may be gone. A `reach` is
    /// answered only once a third node answered its server: its silence may be that node's.
    pub(super) fn shows_liveness(self) -> bool {
        self != Purpose::Reach
    }
}

/// A request awaiting its answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) to: Peer,
    pub(super) purpose: Purpose,
    pub(super) sent: Time,
    /// When a lookup's request stops holding its slot: the contact's round-trip timeout.
    slot_deadline: Time,
    deadline: Time,
    /// Past its slot deadline: its slot is freed, its answer still awaited.
    slow: bool,
    /// The key of the item a `store` carries, or that a repair fetches.
    pub(super) key: Option<Key>,
    /// The request's `type` ([`Request::name`]), for its trace.
    request: &'static str,
    /// Timed out already: counted as a failure, but a late answer is still taken.
    pub(super) timed_out: bool,
}

impl Pending {
    /// The next time this request needs attention, if any.
    fn next_deadline(&self) -> Option<Time> {
        match (self.timed_out, self.slow) {
            (true, _) => None,
            (false, true) => Some(self.deadline),
            (false, false) => Some(self.slot_deadline.min(self.deadline)),
        }
    }

    /// Traces this request ending with `outcome`, and its command's view of it.
    pub(super) fn trace(
        &self,
        traces: &mut Traces,
        outcome: RequestOutcome,
        round_trip: Option<Duration>,
    ) {
        traces.push(|| Trace::RequestEnded {
            request: self.request,
            outcome,
            round_trip,
        });
        if let Purpose::Query(query) = self.purpose {
            traces.push(|| Trace::Replied {
                query,
                from: self.to.id,
                ok: outcome == RequestOutcome::Answered,
            });
        }
    }
}

/// Every request sent and not yet settled, and those waiting to be sent.
pub(super) struct Requests {
    next: u64,
    /// Boxed: a map node holds 11 values inline, and a pending request is a few hundred bytes.
    pending: BTreeMap<u64, Box<Pending>>,
    transmits: Outbox<Transmit>,
    /// Requests past their deadline: the driver may stop trying to deliver them.
    cancelled: Outbox<u64>,
    /// Round-trip estimates of the contacts this node has asked.
    rtt: RttTable,
    request_timeout: Duration,
    min_slot_timeout: Duration,
    /// Requests handed to the driver since start.
    sent: u64,
}

impl Requests {
    /// No request yet; timeouts from `config`.
    pub(super) fn new(config: &Config) -> Self {
        Requests {
            next: 1,
            pending: BTreeMap::new(),
            transmits: Outbox::default(),
            cancelled: Outbox::default(),
            rtt: RttTable::default(),
            request_timeout: config.request_timeout,
            min_slot_timeout: config.min_slot_timeout,
            sent: 0,
        }
    }

    /// Queues `request` to `to` and returns its id, unique for the node's lifetime.
    pub(super) fn send(&mut self, now: Time, to: Peer, request: Request, purpose: Purpose) -> u64 {
        let id = self.next;
        self.next += 1;
        // An exchange (a driver reaching a peer step by step, as through a punched hole) waits
        // past the last retransmission of an `initial` (2.8 s after the first with no
        // round-trip estimate): it may be the one the hole lets in.
        let deadline = match purpose {
            Purpose::Exchange => now + self.request_timeout * 3,
            _ => now + self.request_timeout,
        };
        let slot_deadline = match purpose {
            Purpose::Query(_) => {
                let timeout =
                    self.rtt
                        .timeout(to.id.as_ref(), self.min_slot_timeout, self.request_timeout);
                now + timeout
            }
            Purpose::Liveness
            | Purpose::Unattended
            | Purpose::Listen(_)
            | Purpose::Repair
            | Purpose::Reach
            | Purpose::Probe
            | Purpose::Register
            | Purpose::Meet
            | Purpose::Exchange => deadline,
        };
        let key = match &request {
            Request::Store { item } => Some(*item.key()),
            Request::FindValue { key } if purpose == Purpose::Repair => Some(*key),
            _ => None,
        };
        let pending = Pending {
            to,
            purpose,
            sent: now,
            slot_deadline,
            deadline,
            slow: false,
            timed_out: false,
            key,
            request: request.name(),
        };
        self.pending.insert(id, Box::new(pending));
        self.transmits.push(Transmit { id, to, request });
        self.sent += 1;
        id
    }

    /// Removes request `id`, answered or failed.
    pub(super) fn take(&mut self, id: u64) -> Option<Pending> {
        self.pending.remove(&id).map(|p| *p)
    }

    /// `from` answered after `round_trip`.
    pub(super) fn sample(&mut self, from: &NodeId, round_trip: Duration) {
        self.rtt.sample(from, round_trip);
    }

    /// The round-trip estimates.
    pub(super) fn rtt(&self) -> &RttTable {
        &self.rtt
    }

    /// The next request to send.
    pub(super) fn pop_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop()
    }

    /// Requests awaiting an answer.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Requests handed to the driver since start.
    pub(super) fn sent(&self) -> u64 {
        self.sent
    }

    /// The earliest slot deadline or timeout of a request still waited on.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.pending
            .values()
            .filter_map(|p| p.next_deadline())
            .min()
    }

    /// Marks the requests whose slot deadline passed at `now` as slow and returns them, in
    /// id order.
    pub(super) fn mark_slow(&mut self, now: Time) -> Vec<Pending> {
        self.pending
            .values_mut()
            .filter(|p| !p.timed_out && !p.slow && p.slot_deadline <= now)
            .map(|p| {
                p.slow = true;
                **p
            })
            .collect()
    }

    /// Marks the requests whose deadline passed at `now` as timed out and returns them, in id
    /// order, and queues them for the driver to stop sending. A query's request stays known,
    /// so that a late answer is still used; the others are forgotten.
    pub(super) fn time_out(&mut self, now: Time) -> Vec<(u64, Pending)> {
        let overdue: Vec<(u64, Pending)> = self
            .pending
            .iter_mut()
            .filter(|(_, p)| !p.timed_out && p.deadline <= now)
            .map(|(id, p)| {
                p.timed_out = true;
                (*id, **p)
            })
            .collect();
        for (id, pending) in &overdue {
            if !matches!(pending.purpose, Purpose::Query(_)) {
                self.pending.remove(id);
            }
            self.cancelled.push(*id);
        }
        overdue
    }

    /// The next request past its deadline, for the driver to stop sending.
    pub(super) fn pop_cancelled(&mut self) -> Option<u64> {
        self.cancelled.pop()
    }

    /// Detaches a finished command's requests from it, so late answers only refresh the
    /// table. Requests still unanswered stay known until their deadline, with nobody waiting on
    /// them: a silent contact is still counted as failed, and a late answer still shows it
    /// alive. (A lookup may end while a slow request is out: see `Pending::slot_deadline`.)
    pub(super) fn forget(&mut self, query: QueryId) {
        self.pending.retain(|_, p| {
            if p.purpose != Purpose::Query(query) {
                return true;
            }
            p.purpose = Purpose::Unattended;
            p.slow = true;
            !p.timed_out
        });
    }
}
