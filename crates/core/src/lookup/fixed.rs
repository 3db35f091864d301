//! A stage that asks a fixed set of peers once each: a bootstrap's seed addresses, or the
//! nodes a put stores at. It has the interface of [`super::Lookup`], so a command drives
//! either kind of stage the same way; unlike a lookup it learns no new peers from answers.

use super::{Next, State};
use crate::message::Peer;

/// Peers asked once each, at most `parallelism` at a time.
#[derive(Clone, Debug)]
pub struct FixedPeers {
    peers: Vec<(Peer, State)>,
    parallelism: usize,
    in_flight: usize,
    finished: bool,
}

impl FixedPeers {
    /// A stage that asks each of `peers` once (duplicates are asked once), at most
    /// `parallelism` (at least 1) at a time.
    pub fn new(peers: impl IntoIterator<Item = Peer>, parallelism: usize) -> Self {
        let mut unique: Vec<(Peer, State)> = Vec::new();
        for peer in peers {
            if !unique.iter().any(|(p, _)| *p == peer) {
                unique.push((peer, State::NotContacted));
            }
        }
        FixedPeers {
            peers: unique,
            parallelism: parallelism.max(1),
            in_flight: 0,
            finished: false,
        }
    }

    /// Whom to ask next.
    // Not an iterator: `Wait` is no end. The name follows the lookup literature.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next {
        if self.finished {
            return Next::Finished;
        }
        if self.in_flight < self.parallelism {
            if let Some((peer, state)) = self
                .peers
                .iter_mut()
                .find(|(_, s)| *s == State::NotContacted)
            {
                *state = State::Waiting;
                self.in_flight += 1;
                return Next::Send(*peer);
            }
        }
        let waiting = self.peers.iter().any(|(_, s)| *s == State::Waiting);
        let unasked = self.peers.iter().any(|(_, s)| *s == State::NotContacted);
        if waiting || unasked {
            return Next::Wait;
        }
        self.finished = true;
        Next::Finished
    }

    /// Records an answer from `peer`. Returns false if `peer` had nothing outstanding.
    pub fn on_success(&mut self, peer: &Peer) -> bool {
        self.settle(peer, State::Succeeded)
    }

    /// Records that `peer` failed. Returns false if it had nothing outstanding.
    pub fn on_failure(&mut self, peer: &Peer) -> bool {
        self.settle(peer, State::Failed)
    }

    /// Records that `peer`'s request passed its deadline: its slot is freed, and a late
    /// answer still counts. Returns false if it was not waiting.
    pub fn on_timeout(&mut self, peer: &Peer) -> bool {
        match self.peers.iter_mut().find(|(p, _)| p == peer) {
            Some((_, state)) if *state == State::Waiting => {
                *state = State::Unresponsive;
                self.in_flight -= 1;
                true
            }
            _ => false,
        }
    }

    fn settle(&mut self, peer: &Peer, outcome: State) -> bool {
        let Some((_, state)) = self.peers.iter_mut().find(|(p, _)| p == peer) else {
            return false;
        };
        match state.settle(outcome) {
            Some(held_slot) => {
                self.in_flight -= usize::from(held_slot);
                true
            }
            None => false,
        }
    }

    /// Ends the stage now.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Whether the stage has finished.
    #[cfg(test)]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Requests in flight (not timed out).
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// How many peers it asks (or asked), duplicates counted once.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// How many peers answered.
    pub fn succeeded(&self) -> usize {
        self.peers
            .iter()
            .filter(|(_, s)| *s == State::Succeeded)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> Peer {
        Peer {
            id: None,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn asks_each_peer_once_within_the_parallelism() {
        let mut stage = FixedPeers::new([peer(1), peer(2), peer(1), peer(3)], 2);
        assert_eq!(stage.next(), Next::Send(peer(1)));
        assert_eq!(stage.next(), Next::Send(peer(2)));
        assert_eq!(stage.next(), Next::Wait, "two in flight");
        assert!(stage.on_success(&peer(1)));
        assert!(!stage.on_success(&peer(1)), "an answer counts once");
        assert_eq!(stage.next(), Next::Send(peer(3)));
        assert!(stage.on_failure(&peer(3)));
        assert_eq!(stage.next(), Next::Wait, "peer 2 is still awaited");
        assert!(stage.on_timeout(&peer(2)));
        assert_eq!(stage.in_flight(), 0);
        assert_eq!(stage.next(), Next::Finished);
        assert!(stage.on_success(&peer(2)), "a late answer still counts");
        assert_eq!(stage.succeeded(), 2);
    }

    #[test]
    fn an_empty_stage_finishes_at_once() {
        let mut stage = FixedPeers::new([], 3);
        assert_eq!(stage.next(), Next::Finished);
        assert!(stage.is_finished());
    }
}
