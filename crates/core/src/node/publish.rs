//! Publishing under this node's own key: the rules that choose a signed item's `seq` and
//! expiry, so that every driver (the tokio node, the simulator) publishes the same way.
//!
//! `seq` is the current Unix time in milliseconds, or one more than the `seq` of the copy held
//! if that is larger: a publisher's updates always win, even when its clock steps back or it
//! publishes twice within a millisecond.
//!
//! [`super::Node::publish`] and [`super::Node::delete`] follow these rules.

use std::time::Duration;

use crate::time::Time;

/// The `seq` a new version gets at `now`, given the `seq` of the copy held, if any.
pub fn next_seq(now: Time, held: Option<u64>) -> u64 {
    held.map_or(now.as_millis(), |seq| {
        now.as_millis().max(seq.saturating_add(1))
    })
}

/// The `expires` field (Unix seconds, 0 for never) of an item published at `now` to live `ttl`.
/// A ttl so short that it rounds to the epoch still expires (1, not 0).
pub fn expiry(now: Time, ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| (now + ttl).as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Time = Time::from_millis(1_800_000_000_123);

    #[test]
    fn seq_is_the_time_in_milliseconds_or_one_more_than_held() {
        assert_eq!(next_seq(NOW, None), 1_800_000_000_123);
        assert_eq!(next_seq(NOW, Some(5)), 1_800_000_000_123, "an old copy");
        assert_eq!(
            next_seq(NOW, Some(1_800_000_000_123)),
            1_800_000_000_124,
            "published twice in one millisecond"
        );
        assert_eq!(
            next_seq(NOW, Some(1_900_000_000_000)),
            1_900_000_000_001,
            "the clock stepped back"
        );
        assert_eq!(next_seq(NOW, Some(u64::MAX)), u64::MAX, "saturates");
    }

    #[test]
    fn expiry_is_now_plus_ttl_in_seconds_and_zero_without_one() {
        assert_eq!(expiry(NOW, None), 0);
        assert_eq!(expiry(NOW, Some(Duration::from_secs(60))), 1_800_000_060);
        assert_eq!(
            expiry(Time::from_millis(0), Some(Duration::ZERO)),
            1,
            "never 0, which would mean never"
        );
    }
}
