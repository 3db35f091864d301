//! A queue of outputs waiting for the driver's `poll_*` calls.
//!
//! Its one point: a drained queue gives its buffer back. Thousands of idle nodes in one
//! process (the simulator's) should not each keep the capacity of their busiest moment.

use std::collections::VecDeque;

/// Outputs in the order they were made.
#[derive(Debug)]
pub(super) struct Outbox<T> {
    queue: VecDeque<T>,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Outbox {
            queue: VecDeque::new(),
        }
    }
}

impl<T> Outbox<T> {
    /// Queues `item` behind the others.
    pub(super) fn push(&mut self, item: T) {
        self.queue.push_back(item);
    }

    /// The oldest output; once none is left, the buffer is freed.
    pub(super) fn pop(&mut self) -> Option<T> {
        let next = self.queue.pop_front();
        if next.is_none() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
        next
    }
}

impl<T> Extend<T> for Outbox<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        self.queue.extend(items);
    }
}
