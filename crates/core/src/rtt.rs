//! Round-trip estimates, per contact and over all of them, as TCP keeps them (RFC 6298): a
//! smoothed round trip `srtt` and its mean deviation `rttvar`, and from them a timeout
//! `srtt + 4 * rttvar`.
//!
//! A node uses the timeout to decide when a request has run well past what its contact
//! usually takes: the request then stops holding one of its lookup's alpha slots, so that a
//! dead or overloaded contact does not stall the lookup for the whole `request_timeout`, while
//! a late answer is still used (`docs/design.md`, "Lookups"). A contact never heard from gets
//! the estimate over all contacts; before any answer at all, the full `request_timeout`.
//!
//! The table is bounded: past [`RttTable::CAPACITY`] contacts, the one heard from least
//! recently (whose last answer is the oldest) is forgotten, so that the contacts a node keeps
//! asking keep their estimates. Recency is counted in samples, not read from a clock, so the
//! choice is deterministic, as the simulator needs.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::id::NodeId;

/// One smoothed estimate, in microseconds (8 bytes, so that a table of thousands stays small;
/// round trips past 71 minutes are taken as 71 minutes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    srtt: u32,
    rttvar: u32,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Estimate {
    /// The estimate after a first sample (RFC 6298, 2.2).
    fn first(sample: Duration) -> Self {
        let sample = micros(sample);
        Estimate {
            srtt: sample,
            rttvar: sample / 2,
        }
    }

    /// Takes a new sample (RFC 6298, 2.3: beta = 1/4, alpha = 1/8).
    fn update(&mut self, sample: Duration) {
        let sample = u64::from(micros(sample));
        let (srtt, rttvar) = (u64::from(self.srtt), u64::from(self.rttvar));
        let deviation = srtt.abs_diff(sample);
        // Weighted means of u32 values fit in u32.
        self.rttvar = u32::try_from((rttvar * 3 + deviation) / 4).unwrap_or(u32::MAX);
        self.srtt = u32::try_from((srtt * 7 + sample) / 8).unwrap_or(u32::MAX);
    }

    /// The smoothed round trip.
    pub fn srtt(&self) -> Duration {
        Duration::from_micros(u64::from(self.srtt))
    }

    /// `srtt + 4 * rttvar`.
    pub fn timeout(&self) -> Duration {
        Duration::from_micros(u64::from(self.srtt) + 4 * u64::from(self.rttvar))
    }
}

/// A contact's place in the table: the first 8 bytes of its id. Ids are hashes, so two
/// contacts of one table share a key with odds of about 2^-40, and then only share an
/// estimate.
fn slot(id: &NodeId) -> u64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_be_bytes(prefix)
}

/// A contact's estimate, and when it was last sampled.
#[derive(Clone, Copy, Debug)]
struct Entry {
    estimate: Estimate,
    /// The table's sample count at this contact's last sample.
    last: u64,
}

/// Estimates per contact, and one over every sample.
#[derive(Clone, Debug, Default)]
pub struct RttTable {
    contacts: BTreeMap<u64, Entry>,
    overall: Option<Estimate>,
    /// Samples taken: the clock that orders contacts by their last answer.
    samples: u64,
}

impl RttTable {
    /// Contacts whose estimates are kept.
    pub const CAPACITY: usize = 4_096;

    /// Records that a request to `id` was answered after `sample`. A contact new to a full
    /// table takes the place of the one heard from least recently.
    pub fn sample(&mut self, id: &NodeId, sample: Duration) {
        self.samples += 1;
        let last = self.samples;
        match self.contacts.get_mut(&slot(id)) {
            Some(entry) => {
                entry.estimate.update(sample);
                entry.last = last;
            }
            None => {
                if self.contacts.len() >= Self::CAPACITY {
                    self.forget_least_recent();
                }
                let estimate = Estimate::first(sample);
                self.contacts.insert(slot(id), Entry { estimate, last });
            }
        }
        match &mut self.overall {
            Some(estimate) => estimate.update(sample),
            None => self.overall = Some(Estimate::first(sample)),
        }
    }

    /// Forgets the contact whose last answer is the oldest. A scan of the table: it runs only
    /// when a new contact answers a full table, and an index ordered by recency would cost
    /// another 16 bytes and more per contact.
    fn forget_least_recent(&mut self) {
        let oldest = self
            .contacts
            .iter()
            .min_by_key(|(_, entry)| entry.last)
            .map(|(slot, _)| *slot);
        if let Some(slot) = oldest {
            self.contacts.remove(&slot);
        }
    }

    /// Whether `id` has an estimate of its own (it answered a request sent once).
    pub fn knows(&self, id: &NodeId) -> bool {
        self.estimate(id).is_some()
    }

    /// The estimate for `id`, if it has answered before.
    #[cfg(test)]
    pub fn of(&self, id: &NodeId) -> Option<&Estimate> {
        self.estimate(id)
    }

    fn estimate(&self, id: &NodeId) -> Option<&Estimate> {
        self.contacts.get(&slot(id)).map(|entry| &entry.estimate)
    }

    /// How long a request to `id` (or to a peer of unknown id) may run before it counts as
    /// slow: its contact's timeout, else the one over all contacts, else `max`; never below
    /// `min` nor above `max`.
    pub fn timeout(&self, id: Option<&NodeId>, min: Duration, max: Duration) -> Duration {
        id.and_then(|id| self.estimate(id))
            .or(self.overall.as_ref())
            .map_or(max, Estimate::timeout)
            .clamp(min, max.max(min))
    }

    /// The round trip expected of `id`: its smoothed estimate, else the one over all contacts
    /// (zero before any answer), so that contacts known to be fast rank before unknown ones
    /// and unknown ones before contacts known to be slow.
    pub fn expected(&self, id: &NodeId) -> Duration {
        self.estimate(id)
            .or(self.overall.as_ref())
            .map_or(Duration::ZERO, Estimate::srtt)
    }

    /// Contacts with an estimate (at most [`RttTable::CAPACITY`]).
    pub fn len(&self) -> usize {
        self.contacts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    const MIN: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    fn id(n: u64) -> NodeId {
        Id::hash(&n.to_be_bytes())
    }

    #[test]
    fn a_steady_contact_converges_on_its_round_trip() {
        let mut table = RttTable::default();
        for _ in 0..50 {
            table.sample(&id(1), Duration::from_millis(100));
        }
        let estimate = table.of(&id(1)).expect("sampled");
        assert_eq!(estimate.srtt(), Duration::from_millis(100));
        // The deviation decays towards 0: the timeout approaches the round trip itself.
        let timeout = table.timeout(Some(&id(1)), MIN, MAX);
        assert!(timeout < Duration::from_millis(110), "{timeout:?}");
        assert!(timeout >= Duration::from_millis(100), "{timeout:?}");
    }

    #[test]
    fn the_first_sample_gives_three_round_trips_as_rfc_6298_does() {
        let mut table = RttTable::default();
        table.sample(&id(1), Duration::from_millis(100));
        assert_eq!(
            table.timeout(Some(&id(1)), MIN, MAX),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn a_jittery_contact_gets_more_room_than_a_steady_one() {
        let mut table = RttTable::default();
        for i in 0..40 {
            table.sample(&id(1), Duration::from_millis(100));
            let jitter = if i % 2 == 0 { 20 } else { 180 };
            table.sample(&id(2), Duration::from_millis(jitter));
        }
        assert!(table.timeout(Some(&id(2)), MIN, MAX) > table.timeout(Some(&id(1)), MIN, MAX));
    }

    #[test]
    fn an_unknown_contact_gets_the_overall_estimate_and_nothing_known_gets_the_maximum() {
        let mut table = RttTable::default();
        assert_eq!(table.timeout(Some(&id(9)), MIN, MAX), MAX);
        assert_eq!(table.timeout(None, MIN, MAX), MAX);
        table.sample(&id(1), Duration::from_millis(100));
        assert_eq!(
            table.timeout(Some(&id(9)), MIN, MAX),
            Duration::from_millis(300)
        );
        assert_eq!(table.timeout(None, MIN, MAX), Duration::from_millis(300));
    }

    #[test]
    fn timeouts_stay_within_their_bounds() {
        let mut table = RttTable::default();
        table.sample(&id(1), Duration::from_millis(1));
        table.sample(&id(2), Duration::from_secs(30));
        assert_eq!(table.timeout(Some(&id(1)), MIN, MAX), MIN);
        assert_eq!(table.timeout(Some(&id(2)), MIN, MAX), MAX);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut table = RttTable::default();
        for n in 0..(RttTable::CAPACITY as u64 + 100) {
            table.sample(&id(n), Duration::from_millis(10));
        }
        assert_eq!(table.len(), RttTable::CAPACITY);
    }

    #[test]
    fn a_full_table_forgets_the_contact_heard_from_least_recently() {
        let mut table = RttTable::default();
        let full = RttTable::CAPACITY as u64;
        for n in 0..full {
            table.sample(&id(n), Duration::from_millis(10));
        }
        // Contact 0 answers again: contact 1 is now the least recent, whatever its id.
        table.sample(&id(0), Duration::from_millis(10));
        table.sample(&id(full), Duration::from_millis(10));
        assert!(table.of(&id(0)).is_some(), "heard from recently");
        assert!(table.of(&id(1)).is_none(), "heard from least recently");
        assert!(table.of(&id(full)).is_some(), "the newcomer");
        assert_eq!(table.len(), RttTable::CAPACITY);
    }
}
