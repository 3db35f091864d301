//! The scheduler: the virtual clock and the queue of what happens next. Actions come out in
//! time order, those due at the same time in the order they were scheduled, so that one seed
//! replays one run event for event.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use cairn_core::Time;

/// The virtual clock and the actions scheduled on it.
pub(crate) struct Scheduler<A> {
    /// When each action is due, with the number it was scheduled under (the tie-break).
    queue: BinaryHeap<Reverse<(Time, u64)>>,
    /// The actions by that number; kept apart so that an action need not be ordered.
    actions: HashMap<u64, A>,
    next: u64,
    now: Time,
}

impl<A> Scheduler<A> {
    /// An empty queue whose clock reads `start`.
    pub(crate) fn new(start: Time) -> Self {
        Scheduler {
            queue: BinaryHeap::new(),
            actions: HashMap::new(),
            next: 0,
            now: start,
        }
    }

    /// The virtual time.
    pub(crate) fn now(&self) -> Time {
        self.now
    }

    /// Schedules `action` at `at` (it runs no earlier than the clock reads when it is taken).
    pub(crate) fn push(&mut self, at: Time, action: A) {
        let key = self.next;
        self.next += 1;
        self.actions.insert(key, action);
        self.queue.push(Reverse((at, key)));
    }

    /// Takes the next action due and moves the clock to it (never back); `None` when nothing
    /// is scheduled.
    pub(crate) fn pop(&mut self) -> Option<A> {
        loop {
            let Reverse((at, key)) = self.queue.pop()?;
            self.now = self.now.max(at);
            if let Some(action) = self.actions.remove(&key) {
                return Some(action);
            }
        }
    }

    /// When the next action is due, if one is scheduled.
    pub(crate) fn next_due(&self) -> Option<Time> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    /// Moves the clock forward to `until` (never back).
    pub(crate) fn advance_to(&mut self, until: Time) {
        self.now = self.now.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_come_out_in_time_order_and_ties_in_scheduling_order() {
        let start = Time::from_secs(10);
        let mut s = Scheduler::new(start);
        s.push(Time::from_secs(12), "late");
        s.push(Time::from_secs(11), "first");
        s.push(Time::from_secs(11), "second");
        // Due in the past: runs now, the clock does not go back.
        s.push(Time::from_secs(1), "overdue");
        assert_eq!(s.next_due(), Some(Time::from_secs(1)));
        assert_eq!(s.pop(), Some("overdue"));
        assert_eq!(s.now(), start);
        assert_eq!(s.pop(), Some("first"));
        assert_eq!(s.pop(), Some("second"));
        assert_eq!(s.now(), Time::from_secs(11));
        assert_eq!(s.pop(), Some("late"));
        assert_eq!(s.pop(), None);
        s.advance_to(Time::from_secs(5));
        assert_eq!(s.now(), Time::from_secs(12));
    }
}
