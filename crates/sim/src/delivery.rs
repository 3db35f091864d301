//! What the network does to a message besides delaying and losing it: duplication,
//! reordering and delay spikes ([`NetworkFaults`]), for the swarm test's adversarial runs.
//!
//! Charged as the real transport would see them. A datagram may arrive twice, out of order
//! with the others on its path, or after a spike of delay; a message over TCP arrives once
//! and in order (the kernel hides duplicates and reordering), so only spikes reach it. With
//! every probability zero (the default) nothing here draws from the RNG, so runs without
//! faults replay exactly as before.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

/// Faults on the network's delivery, each with its probability per message (0 to 1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkFaults {
    /// A datagram is delivered twice (the copy after its own delay).
    pub duplicate: f64,
    /// A datagram ignores the order of its path and may overtake the ones sent before it.
    pub reorder: f64,
    /// A message is held up by a spike of delay, up to `spike_delay` more.
    pub spike: f64,
    /// The most a spike adds.
    pub spike_delay: Duration,
}

impl NetworkFaults {
    /// Whether any fault is on.
    fn any(&self) -> bool {
        self.duplicate > 0.0 || self.reorder > 0.0 || self.spike > 0.0
    }

    /// A datagram's delay after a possible spike, and whether it keeps its path's order.
    pub(crate) fn disturb(&self, delay: Duration, rng: &mut StdRng) -> (Duration, bool) {
        if !self.any() {
            return (delay, true);
        }
        let delay = self.spiked(delay, rng);
        let in_order = !(self.reorder > 0.0 && rng.random_bool(self.reorder.clamp(0.0, 1.0)));
        (delay, in_order)
    }

    /// `delay`, plus a spike with probability `spike`.
    pub(crate) fn spiked(&self, delay: Duration, rng: &mut StdRng) -> Duration {
        if self.spike > 0.0 && rng.random_bool(self.spike.clamp(0.0, 1.0)) {
            let most = u64::try_from(self.spike_delay.as_millis()).unwrap_or(u64::MAX);
            delay + Duration::from_millis(rng.random_range(0..=most))
        } else {
            delay
        }
    }

    /// The delay of a second copy of a datagram sent with `delay`, if it is duplicated.
    pub(crate) fn duplicate(&self, delay: Duration, rng: &mut StdRng) -> Option<Duration> {
        if self.duplicate > 0.0 && rng.random_bool(self.duplicate.clamp(0.0, 1.0)) {
            Some(delay + Duration::from_millis(rng.random_range(0..=50)))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn no_fault_draws_nothing_and_changes_nothing() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut twin = StdRng::seed_from_u64(7);
        let none = NetworkFaults::default();
        let delay = Duration::from_millis(40);
        assert_eq!(none.disturb(delay, &mut rng), (delay, true));
        assert_eq!(none.duplicate(delay, &mut rng), None);
        assert_eq!(rng.random::<u64>(), twin.random::<u64>());
    }

    #[test]
    fn certain_faults_always_strike() {
        let mut rng = StdRng::seed_from_u64(7);
        let all = NetworkFaults {
            duplicate: 1.0,
            reorder: 1.0,
            spike: 1.0,
            spike_delay: Duration::from_secs(1),
        };
        let delay = Duration::from_millis(40);
        let (spiked, in_order) = all.disturb(delay, &mut rng);
        assert!(!in_order);
        assert!(spiked >= delay && spiked <= delay + Duration::from_secs(1));
        assert!(all.duplicate(delay, &mut rng).is_some_and(|d| d >= delay));
    }
}
