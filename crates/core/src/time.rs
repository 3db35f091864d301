//! Time as the core sees it: a number handed in by the caller, never read from a clock.
//!
//! [`Time`] is milliseconds since the Unix epoch. One scale serves both timers (request
//! deadlines) and item expiry (which is in Unix seconds on the wire). A driver passes the wall
//! clock; the simulator passes its virtual clock.

use std::ops::{Add, Sub};
use std::time::Duration;

/// An instant: milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The instant this many milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Time(millis)
    }

    /// The instant this many seconds after the Unix epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Time(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        let millis = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(millis))
    }
}

impl std::ops::AddAssign<Duration> for Time {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, rhs: Duration) -> Time {
        let millis = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Time(self.0.saturating_sub(millis))
    }
}
