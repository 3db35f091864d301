//! The stages of a query: the iterative, concurrent Kademlia lookup ([`Lookup`], see
//! `docs/design.md`, "Lookups") and a fixed set of peers asked once each ([`FixedPeers`]).
//!
//! Both have one interface. The caller asks `next` whom to query, sends the request, and
//! reports the outcome with `on_success` (or, for an answer that carried what the lookup is
//! for, `on_found`), `on_failure`, `on_slow` or `on_timeout`. A stage never sends,
//! sleeps or reads a clock: request deadlines live with the caller (the node's table of
//! requests in flight), which calls `on_timeout` when one passes.
//!
//! Rules of the lookup:
//! - at most `alpha` requests are in flight on each path, always to the closest candidates
//!   not yet asked (among candidates equally far in bits, the caller may rank by expected
//!   round trip);
//! - a path that stalls (`alpha` answers in a row on it named nobody closer than the closest
//!   candidate it knew; `on_found` counts as progress) asks every candidate left among its k
//!   closest at once, up to k in flight, as the Kademlia paper's final round and libp2p's
//!   stalled iterator do; an answer that names somebody closer brings it back to `alpha`;
//! - a request that timed out counts as failed and frees its slot, but a late answer is still
//!   used (the node reports a lookup request as timed out once it runs past its contact's
//!   round-trip timeout, [`crate::rtt`], well before the request itself expires); a lookup
//!   that waits for its slow requests ([`Lookup::wait_for_slow_requests`], a get's) still
//!   frees their slots, but does not end before they answer or reach their deadline;
//! - the lookup is finished when the k closest candidates that have not failed have all
//!   answered, or when nobody is left to ask and nothing is in flight.
//!
//! What the lookup is *for* (finding nodes, values, or places to store) is the caller's
//! business; this type only finds the closest nodes that answer.

mod fixed;

pub use fixed::FixedPeers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::id::{Distance, Id, NodeId};
use crate::message::{Contact, Peer};

/// The knobs of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupParams {
    /// How many closest nodes are sought (k).
    pub k: usize,
    /// How many requests may be in flight on each path (alpha); up to k on a path that has
    /// stalled.
    pub alpha: usize,
    /// How many disjoint paths the lookup follows (1: plain Kademlia). With more, as in
    /// S/Kademlia, every candidate belongs to the one path that learned of it first, each
    /// path asks only its own, and the lookup ends when every path has converged: a path
    /// that an adversary leads astray cannot take the others with it.
    pub paths: usize,
}

/// Where a stage stands with one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotContacted,
    Waiting,
    /// Past its round-trip timeout: its slot is freed and it counts as failed, but a late
    /// answer is still taken, and a lookup that waits for slow requests waits for it.
    Slow,
    /// Past its request timeout: counts as failed, but a late answer is still taken.
    Unresponsive,
    Succeeded,
    Failed,
}

impl State {
    /// Not asked yet, awaited, or answered: a node the lookup does not count as failed.
    fn may_answer(self) -> bool {
        matches!(
            self,
            State::NotContacted | State::Waiting | State::Succeeded
        )
    }

    /// Moves an outstanding request (waiting or timed out) to `outcome`. Returns whether one
    /// was outstanding, and whether it still held a slot.
    fn settle(&mut self, outcome: State) -> Option<bool> {
        let held_slot = match *self {
            State::Waiting => true,
            State::Slow | State::Unresponsive => false,
            _ => return None,
        };
        *self = outcome;
        Some(held_slot)
    }
}

/// A node on the shortlist. Its id is not stored: it is the target XOR the map's key (the
/// distance), which keeps the shortlist of a lookup in flight half as large.
#[derive(Clone, Debug)]
struct Candidate {
    addr: SocketAddr,
    state: State,
    /// The path this candidate belongs to.
    path: usize,
    /// Round trips from the lookup's start to reach this candidate: 1 for the starting set.
    hop: u32,
}

/// One path's requests in flight, and how many answers in a row named nobody closer than
/// the closest candidate the path knew.
#[derive(Clone, Copy, Debug, Default)]
struct PathState {
    in_flight: usize,
    no_progress: usize,
}

/// What the caller should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send a request to this peer, then call `next` again.
    Send(Peer),
    /// Nothing to send until an answer, a failure or a deadline.
    Wait,
    /// The lookup is over.
    Finished,
}

/// One iterative lookup of the nodes closest to a target.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: Id,
    params: LookupParams,
    candidates: BTreeMap<Distance, Candidate>,
    in_flight: usize,
    /// Each path's requests in flight and progress.
    path_state: Vec<PathState>,
    requests: u32,
    finished: bool,
    /// Does not end while a request among the k closest is slow
    /// ([`Lookup::wait_for_slow_requests`]).
    waits_for_slow: bool,
    /// Who told of each candidate, once [`Lookup::record_referrers`] asked for it: what a
    /// dashboard draws a hop from. Boxed and off by default, so that the lookups of a
    /// simulated network of 100,000 nodes do not pay for it.
    // One word while off, where an unboxed map would take three.
    #[allow(clippy::box_collection)]
    referrers: Option<Box<BTreeMap<Distance, NodeId>>>,
}

impl Lookup {
    /// A lookup of `target` starting from `seeds` (normally the k closest known contacts).
    pub fn new(target: Id, params: LookupParams, seeds: impl IntoIterator<Item = Contact>) -> Self {
        let paths = params.paths.max(1);
        let mut lookup = Lookup {
            target,
            params: LookupParams {
                k: params.k.max(1),
                alpha: params.alpha.max(1),
                paths,
            },
            candidates: BTreeMap::new(),
            in_flight: 0,
            path_state: vec![PathState::default(); paths],
            requests: 0,
            finished: false,
            waits_for_slow: false,
            referrers: None,
        };
        let mut seeds: Vec<Contact> = seeds.into_iter().collect();
        seeds.sort_by_key(|c| c.id.distance(&target));
        for (i, contact) in seeds.into_iter().enumerate() {
            lookup.add(contact, 1, i % paths);
        }
        lookup
    }

    /// The id being looked up.
    pub fn target(&self) -> &Id {
        &self.target
    }

    /// Requests in flight (not timed out).
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Requests sent so far.
    #[cfg(test)]
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Whether the lookup has finished.
    #[cfg(test)]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The hop count of a candidate: 1 for a starting contact, one more than the candidate
    /// that told of it otherwise.
    pub fn hop(&self, peer: &NodeId) -> Option<u32> {
        self.candidates
            .get(&peer.distance(&self.target))
            .map(|c| c.hop)
    }

    /// The path a candidate belongs to.
    pub fn path(&self, peer: &NodeId) -> Option<usize> {
        self.candidates
            .get(&peer.distance(&self.target))
            .map(|c| c.path)
    }

    /// Records from now on which answering node told of each candidate ([`Lookup::referrer`]).
    pub fn record_referrers(&mut self) {
        self.referrers.get_or_insert_with(Box::default);
    }

    /// The node whose answer told of `peer`, if referrers are recorded and `peer` was not in
    /// the starting set.
    pub fn referrer(&self, peer: &NodeId) -> Option<NodeId> {
        let referrers = self.referrers.as_ref()?;
        referrers.get(&peer.distance(&self.target)).copied()
    }

    /// How many disjoint paths the lookup follows.
    pub fn paths(&self) -> usize {
        self.params.paths
    }

    /// Whether `path` has stalled: its last `alpha` answers named nobody closer than the
    /// closest candidate it knew.
    fn stalled(&self, path: usize) -> bool {
        self.path_state[path].no_progress >= self.params.alpha
    }

    /// Requests `path` may have in flight: alpha, or k once it has stalled.
    fn capacity(&self, path: usize) -> usize {
        if self.stalled(path) {
            self.params.k.max(self.params.alpha)
        } else {
            self.params.alpha
        }
    }

    /// The distance of `path`'s closest candidate, whatever its state.
    fn closest_on(&self, path: usize) -> Option<Distance> {
        self.candidates
            .iter()
            .find(|(_, c)| c.path == path)
            .map(|(distance, _)| *distance)
    }

    /// Adds `contact` unless it is a candidate already; returns whether it was new.
    fn add(&mut self, contact: Contact, hop: u32, path: usize) -> bool {
        let std::collections::btree_map::Entry::Vacant(entry) =
            self.candidates.entry(contact.id.distance(&self.target))
        else {
            return false;
        };
        entry.insert(Candidate {
            addr: contact.addr,
            state: State::NotContacted,
            path,
            hop,
        });
        true
    }

    /// Whom to query next, closest first.
    // Not an iterator: `Wait` is no end. The name follows the lookup literature.
    #[allow(clippy::should_implement_trait)]
    #[cfg(test)]
    pub fn next(&mut self) -> Next {
        self.next_by(|_| Duration::ZERO)
    }

    /// Whom to query next, as [`Lookup::next`] but choosing among equals by `round_trip`: of
    /// the candidates not yet asked that are as far from the target as the closest of them
    /// (in the same bucket of the target's, that is with as many leading bits in common), the
    /// one with the shortest expected round trip is asked first (the closest among ties). A
    /// lookup gains about one bit of distance per hop whichever of them it asks, so the order
    /// among them is free; it asks them all before any farther candidate either way.
    pub fn next_by(&mut self, round_trip: impl Fn(&NodeId) -> Duration) -> Next {
        if self.finished {
            return Next::Finished;
        }
        // Walk each path's shortlist closest first, over its k closest candidates not known to
        // fail; ask the first not yet asked (or its fastest equal) while the path has a slot.
        let mut all_answered = true;
        let target = self.target;
        for path in 0..self.params.paths {
            let mut considered = 0;
            // A request past its round-trip timeout still out: its answer may yet come.
            let mut slow = false;
            let mut chosen: Option<(Distance, Duration)> = None;
            for (distance, candidate) in self.candidates.iter() {
                if candidate.path != path {
                    continue;
                }
                if let Some((first, best)) = chosen {
                    // Past the closest candidate not yet asked: look for a faster equal.
                    if distance.bucket_index() != first.bucket_index() {
                        break;
                    }
                    if matches!(
                        candidate.state,
                        State::Failed | State::Slow | State::Unresponsive
                    ) {
                        continue;
                    }
                    if candidate.state == State::NotContacted {
                        let rtt = round_trip(&target.at_distance(distance));
                        if rtt < best {
                            chosen = Some((*distance, rtt));
                        }
                    }
                } else {
                    match candidate.state {
                        State::Failed | State::Unresponsive => continue,
                        State::Slow => {
                            slow = true;
                            continue;
                        }
                        State::Succeeded => {}
                        State::Waiting => all_answered = false,
                        State::NotContacted
                            if self.path_state[path].in_flight < self.capacity(path) =>
                        {
                            let rtt = round_trip(&target.at_distance(distance));
                            chosen = Some((*distance, rtt));
                        }
                        State::NotContacted => {
                            all_answered = false;
                            break;
                        }
                    }
                }
                considered += 1;
                if considered == self.params.k {
                    break;
                }
            }
            if slow && self.waits_for_slow {
                // A slow request among the k closest may yet bring what the lookup is for:
                // a lookup that waits for them does not end before they answer or fail.
                all_answered = false;
            }
            if let Some((distance, _)) = chosen {
                let Some(candidate) = self.candidates.get_mut(&distance) else {
                    continue;
                };
                candidate.state = State::Waiting;
                self.in_flight += 1;
                self.path_state[path].in_flight += 1;
                self.requests += 1;
                let contact = Contact::new(target.at_distance(&distance), candidate.addr);
                return Next::Send(contact.into());
            }
        }
        // No candidate among any path's k closest is left to ask (or the shortlists ran out);
        // if none of them is still awaited either, every path has converged.
        if all_answered {
            self.finished = true;
            return Next::Finished;
        }
        Next::Wait
    }

    /// Records an answer from `peer` with the contacts it knows closest to the target. Returns
    /// false if `peer` was never asked by this lookup (the answer is then ignored).
    pub fn on_success(&mut self, peer: &NodeId, closer: impl IntoIterator<Item = Contact>) -> bool {
        let Some((hop, path)) = self.settle(peer, State::Succeeded) else {
            return false;
        };
        if !self.finished {
            let closest = self.closest_on(path);
            let mut progress = false;
            for contact in closer {
                if self.add(contact, hop + 1, path) {
                    let distance = contact.id.distance(&self.target);
                    progress |= closest.is_none_or(|closest| distance < closest);
                    if let Some(referrers) = &mut self.referrers {
                        referrers.insert(distance, *peer);
                    }
                }
            }
            let state = &mut self.path_state[path];
            state.no_progress = if progress { 0 } else { state.no_progress + 1 };
        }
        true
    }

    /// Records an answer from `peer` that carried what the lookup is for (a get's copy): it
    /// names no nodes, but counts as progress, so that a lookup receiving what it looks for
    /// does not widen to k. Returns false if `peer` was never asked.
    pub fn on_found(&mut self, peer: &NodeId) -> bool {
        let Some((_, path)) = self.settle(peer, State::Succeeded) else {
            return false;
        };
        self.path_state[path].no_progress = 0;
        true
    }

    /// Records that `peer` failed to answer. Returns false if it had nothing outstanding.
    pub fn on_failure(&mut self, peer: &NodeId) -> bool {
        self.settle(peer, State::Failed).is_some()
    }

    /// Records that `peer`'s request passed its deadline: it counts as failed and frees its
    /// slot, but a late answer is still taken. Returns false if it was not waiting.
    pub fn on_timeout(&mut self, peer: &NodeId) -> bool {
        let key = peer.distance(&self.target);
        match self.candidates.get_mut(&key) {
            Some(candidate) if candidate.state == State::Slow => {
                candidate.state = State::Unresponsive;
                false
            }
            Some(candidate) if candidate.state == State::Waiting => {
                candidate.state = State::Unresponsive;
                self.in_flight -= 1;
                self.path_state[candidate.path].in_flight -= 1;
                true
            }
            _ => false,
        }
    }

    /// Records that `peer`'s request passed its round-trip timeout, before its deadline: as
    /// [`Lookup::on_timeout`], except that a lookup that waits for its slow requests
    /// ([`Lookup::wait_for_slow_requests`]) waits for it to answer or reach its deadline.
    /// Returns false if it was not waiting.
    pub fn on_slow(&mut self, peer: &NodeId) -> bool {
        let key = peer.distance(&self.target);
        match self.candidates.get_mut(&key) {
            Some(candidate) if candidate.state == State::Waiting => {
                candidate.state = State::Slow;
                self.in_flight -= 1;
                self.path_state[candidate.path].in_flight -= 1;
                true
            }
            _ => false,
        }
    }

    /// Moves `peer`'s outstanding request (waiting or timed out) to `outcome`, freeing its slot
    /// if it still held one. Returns the peer's hop count and path, or `None` if nothing was
    /// outstanding.
    fn settle(&mut self, peer: &NodeId, outcome: State) -> Option<(u32, usize)> {
        let candidate = self.candidates.get_mut(&peer.distance(&self.target))?;
        if candidate.state.settle(outcome)? {
            self.in_flight -= 1;
            self.path_state[candidate.path].in_flight -= 1;
        }
        Some((candidate.hop, candidate.path))
    }

    /// Makes the lookup wait, before it ends, for the slow requests among its k closest
    /// candidates to answer or reach their deadline: their slots are freed at their
    /// round-trip timeouts all the same, so farther candidates are asked meanwhile. A get
    /// does, so that it neither ends "not found" nor settles on a stale copy while the
    /// answers of the closest nodes, slower than their estimates, are on their way. (A
    /// `find_node` ends at their round-trip timeouts.)
    pub fn wait_for_slow_requests(&mut self) {
        self.waits_for_slow = true;
    }

    /// Ends the lookup now (its deadline passed, or the caller has what it needs).
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Round trips to the farthest-reached of the `n` closest candidates that answered (0 if
    /// none did).
    pub fn hops(&self, n: usize) -> u32 {
        self.candidates
            .values()
            .filter(|c| c.state == State::Succeeded)
            .take(n)
            .map(|c| c.hop)
            .max()
            .unwrap_or(0)
    }

    /// Whether `peer` is among the `n` closest candidates not known to have failed, asked or
    /// not: fewer than `n` of them are closer. A get counts copies toward its quorum, and
    /// writes the winner back, only there: a node farther out that answered early may hold a
    /// copy nobody updates any more.
    pub fn is_among_closest(&self, peer: &NodeId, n: usize) -> bool {
        let distance = peer.distance(&self.target);
        self.candidates
            .range(..distance)
            .filter(|(_, c)| c.state.may_answer())
            .take(n)
            .count()
            < n
    }

    /// The candidates that answered among the `n` closest not known to have failed (asked
    /// or not), closest first.
    pub fn succeeded_among_closest(&self, n: usize) -> Vec<Contact> {
        self.candidates
            .iter()
            .filter(|(_, c)| c.state.may_answer())
            .take(n)
            .filter(|(_, c)| c.state == State::Succeeded)
            .map(|(distance, c)| Contact::new(self.target.at_distance(distance), c.addr))
            .collect()
    }

    /// The `n` closest candidates that answered, closest first.
    pub fn closest_succeeded(&self, n: usize) -> Vec<Contact> {
        self.candidates
            .iter()
            .filter(|(_, c)| c.state == State::Succeeded)
            .take(n)
            .map(|(distance, c)| Contact::new(self.target.at_distance(distance), c.addr))
            .collect()
    }
}

#[cfg(test)]
mod tests;
