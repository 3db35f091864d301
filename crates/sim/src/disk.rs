//! Durable stores in the simulation: when a node's store finishes its pending commits (after a
//! disk's latency, all at once, as the real store's group commit does), how they end (a disk
//! can be made to fail them on demand), and the answers that wait on them: a `stored`, a put's
//! completion, a `notify`, each released once its copy is durable (or answered with an error,
//! or dropped, if the commit failed), as the real driver does.
//!
//! A node can also crash: its process dies with whatever its store had not committed, and a
//! restart reads back only what is durable ([`Durable::recovered`]) and the routing table it
//! had saved. [`MemoryStore`] has no commits: everything it accepts is durable at once, and
//! nothing here draws from the RNG for it, so runs with it replay as before.

use std::collections::HashMap;
use std::time::Duration;

use cairn_core::datagram::Reply;
use cairn_core::{
    CommitId, CommitOutcome, Contact, ErrorCode, ErrorReply, Event, Item, MemoryStore, Node,
    PutFailure, Response, Store,
};
use rand::Rng;

use crate::{Action, Delivery, Sim, Ticket};

/// A store whose writes become durable by commits the simulator ends.
pub trait Durable: Store + Sized {
    /// The commits accepted and not yet reported, oldest first.
    fn pending_commits(&self) -> Vec<CommitId>;

    /// A store holding only what this one made durable, as a restarted process reads it back.
    fn recovered(&self) -> Self;
}

impl Durable for MemoryStore {
    fn pending_commits(&self) -> Vec<CommitId> {
        Vec::new()
    }

    fn recovered(&self) -> Self {
        self.clone()
    }
}

/// The longest a commit takes (an fsync); each group commit takes 1 ms to this.
const COMMIT_LATENCY_MS: u64 = 8;

/// What waits on a commit.
pub(crate) enum Held {
    /// The answer `stored` to request `id` of node `to`, over TCP.
    Stored { to: usize, id: u64 },
    /// The answer `stored` to a request over datagrams.
    Datagram { reply: Reply },
    /// The completion of a put.
    Put { ticket: Ticket, event: Event },
    /// A `notify` of `item` for the `listen` request `id` of node `to`.
    Notify { to: usize, id: u64, item: Item },
}

/// One node's disk: what waits on its commits.
#[derive(Default)]
pub(crate) struct Disk {
    held: HashMap<CommitId, Vec<Held>>,
    /// Whether a flush is scheduled.
    flushing: bool,
    /// Counts the node's stops, so that a flush scheduled in an earlier life does nothing.
    life: u64,
    /// Commits fail while this is set.
    failing: bool,
    /// The routing table as of the crash, read back on restart.
    saved: Vec<Contact>,
}

impl Disk {
    /// Holds `held` until `commit` ends.
    pub(crate) fn hold(&mut self, commit: CommitId, held: Held) {
        self.held.entry(commit).or_default().push(held);
    }

    /// The node stopped: what waited goes nowhere, and a flush already scheduled is void.
    pub(crate) fn stop(&mut self) {
        self.held.clear();
        self.flushing = false;
        self.life += 1;
    }
}

impl<S: Durable> Sim<S> {
    /// Makes node `index`'s disk fail every commit (`true`) or none (`false`) from now on.
    pub fn set_disk_failing(&mut self, index: usize, failing: bool) {
        self.nodes[index].disk.failing = failing;
    }

    /// Whether node `index`'s disk fails its commits.
    pub fn disk_failing(&self, index: usize) -> bool {
        self.nodes[index].disk.failing
    }

    /// Crashes node `index`: its host is gone at once, with everything its store had not
    /// committed and every answer waiting on a commit. Its queries end with no outcome and
    /// its watches with no more reports. [`Sim::restart`] brings it back.
    pub fn crash(&mut self, index: usize) {
        let saved = self.nodes[index]
            .node
            .routing_table()
            .entries()
            .map(|e| e.contact)
            .collect();
        self.kill(index);
        let sim_node = &mut self.nodes[index];
        sim_node.disk.saved = saved;
        let (id, config) = (sim_node.contact.id, sim_node.node.config().clone());
        let store = sim_node.node.store().recovered();
        sim_node.node = Node::new(id, config, store);
        sim_node.timer = None;
        self.tickets.retain(|(node, _), _| *node != index);
        self.watched.retain(|(node, _), _| *node != index);
    }

    /// Restarts node `index` after [`Sim::crash`]: from what its store made durable and the
    /// routing table it saved, rejoining through those contacts and the seeds of its last
    /// bootstrap.
    pub fn restart(&mut self, index: usize) {
        let now = self.node_now(index);
        let sim_node = &mut self.nodes[index];
        sim_node.alive = true;
        sim_node.host_up = true;
        sim_node.timer = None;
        let saved = std::mem::take(&mut sim_node.disk.saved);
        sim_node.node.restore_contacts(now, saved);
        let seeds = sim_node.seeds.clone();
        sim_node.node.bootstrap(now, &seeds);
        self.drain(index);
    }

    /// Schedules a group commit of node `index`'s pending writes, unless one is scheduled.
    pub(crate) fn schedule_flush(&mut self, index: usize) {
        let sim_node = &self.nodes[index];
        if sim_node.disk.flushing
            || !sim_node.alive
            || sim_node.node.store().pending_commits().is_empty()
        {
            return;
        }
        let latency = Duration::from_millis(self.rng.random_range(1..=COMMIT_LATENCY_MS));
        let life = self.nodes[index].disk.life;
        self.nodes[index].disk.flushing = true;
        let at = self.now() + latency;
        self.push(at, Action::Flush { node: index, life });
    }

    /// Node `index`'s group commit ends: each pending commit is durable, or each fails if its
    /// disk is failing; what waited on them goes out.
    pub(crate) fn flush(&mut self, index: usize, life: u64) {
        let sim_node = &mut self.nodes[index];
        if sim_node.disk.life != life || !sim_node.alive {
            return;
        }
        sim_node.disk.flushing = false;
        let outcome = if sim_node.disk.failing {
            CommitOutcome::Failed
        } else {
            CommitOutcome::Durable
        };
        for commit in sim_node.node.store().pending_commits() {
            self.nodes[index].node.handle_commit(commit, outcome);
            self.release(index, commit, outcome);
        }
        self.drain(index);
    }

    /// Sends what waited on node `index`'s `commit`, now that it ended with `outcome`.
    fn release(&mut self, index: usize, commit: CommitId, outcome: CommitOutcome) {
        let durable = outcome == CommitOutcome::Durable;
        let held = self.nodes[index].disk.held.remove(&commit);
        for held in held.unwrap_or_default() {
            let answer = if durable {
                Response::Stored
            } else {
                let message = "the store failed to commit; nothing was stored";
                Response::Error(ErrorReply::new(ErrorCode::INTERNAL, message))
            };
            match held {
                Held::Stored { to, id } => self.send(index, to, id, Delivery::Response(answer)),
                Held::Datagram { reply } => {
                    let now = self.node_now(index);
                    self.plane(index).answer(now, reply, answer);
                }
                Held::Put { ticket, event } => {
                    let event = if durable {
                        event
                    } else {
                        not_durable(event, commit)
                    };
                    self.finish(ticket, event);
                }
                Held::Notify { to, id, item } if durable => {
                    self.send(index, to, id, Delivery::Notify(item));
                }
                Held::Notify { .. } => {}
            }
        }
    }
}

/// A put's completion whose local commit failed: not acknowledged, as the driver reports it.
fn not_durable(event: Event, failed: CommitId) -> Event {
    match event {
        Event::PutDone {
            query,
            key,
            seq,
            expires,
            stats,
            ..
        } => Event::PutDone {
            query,
            key,
            seq,
            expires,
            result: Err(PutFailure::NotDurable(failed)),
            commit: None,
            stats,
        },
        other => other,
    }
}
