//! The driver's clock: wall-clock milliseconds for the core, advanced monotonically.
//!
//! The core's [`Time`] is Unix milliseconds (item expiry is wall-clock time). Reading the
//! system clock once at start and adding a monotonic elapsed time keeps timers steady when
//! the wall clock jumps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_core::Time;
use tokio::time::Instant;

/// Maps between the core's [`Time`] and tokio's [`Instant`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    start: Instant,
    start_unix_ms: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            start: Instant::now(),
            start_unix_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub(crate) fn now(&self) -> Time {
        Time::from_millis(self.start_unix_ms) + self.start.elapsed()
    }

    /// The tokio instant at which the core's `time` falls.
    pub(crate) fn instant(&self, time: Time) -> Instant {
        self.start + Duration::from_millis(time.as_millis().saturating_sub(self.start_unix_ms))
    }

    /// How long the node has run.
    pub(crate) fn uptime(&self) -> Duration {
        self.start.elapsed()
    }
}
