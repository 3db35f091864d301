//! Recent events per host in a sliding window, with a bound on the hosts remembered: the
//! shape of every per-host rate bound of the NAT parts (probes to a target and for a server,
//! introductions per asker, punches per target). A host is an IPv4 address or an IPv6 /64
//! ([`Prefix::host`]): one IPv6 host owns a /64.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::subnet::Prefix;
use crate::time::Time;

/// The times of recent events per host, within `WINDOW_SECS` seconds, for at most
/// `MAX_HOSTS` hosts at once.
#[derive(Debug, Default)]
pub(super) struct HostWindows<const WINDOW_SECS: u64, const MAX_HOSTS: usize> {
    times: HashMap<Prefix, VecDeque<Time>>,
}

impl<const WINDOW_SECS: u64, const MAX_HOSTS: usize> HostWindows<WINDOW_SECS, MAX_HOSTS> {
    /// Drops the times past the window, and the hosts left with none.
    pub(super) fn forget_old(&mut self, now: Time) {
        let window = Duration::from_secs(WINDOW_SECS);
        self.times.retain(|_, times| {
            while times.front().is_some_and(|t| now.since(*t) >= window) {
                times.pop_front();
            }
            !times.is_empty()
        });
    }

    /// Whether one more event for `host` would pass `limit`, or, for a host not remembered,
    /// pass the hosts remembered (then it is refused until some leave).
    pub(super) fn full(&self, host: Prefix, limit: usize) -> bool {
        match self.times.get(&host) {
            Some(times) => times.len() >= limit,
            None => self.times.len() >= MAX_HOSTS,
        }
    }

    /// Counts one event for `host` at `now`.
    pub(super) fn count(&mut self, host: Prefix, now: Time) {
        self.times.entry(host).or_default().push_back(now);
    }

    /// Forgets what is old, then counts one event for `host` at `now` unless that would pass
    /// `limit` or the hosts remembered: whether it was counted.
    pub(super) fn take(&mut self, now: Time, host: Prefix, limit: usize) -> bool {
        self.forget_old(now);
        if self.full(host, limit) {
            return false;
        }
        self.count(host, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Prefix {
        Prefix::host(text.parse().expect("an address"))
    }

    #[test]
    fn a_host_gets_its_limit_per_window_and_hosts_past_the_bound_wait() {
        let mut windows = HostWindows::<10, 2>::default();
        let t0 = Time::from_secs(100);
        assert!(windows.take(t0, host("192.0.2.1"), 2));
        assert!(windows.take(t0, host("192.0.2.1"), 2));
        assert!(!windows.take(t0, host("192.0.2.1"), 2), "past its limit");
        assert!(windows.take(t0, host("2001:db8::1"), 2));
        assert!(
            windows.take(t0, host("2001:db8::2"), 2),
            "the same /64, its second"
        );
        assert!(
            !windows.take(t0, host("2001:db8::3"), 2),
            "the same /64, past its limit"
        );
        assert!(
            !windows.take(t0, host("192.0.2.3"), 2),
            "past the hosts remembered"
        );
        let later = t0 + Duration::from_secs(10);
        assert!(
            windows.take(later, host("192.0.2.3"), 2),
            "the window passed"
        );
        assert!(windows.take(later, host("192.0.2.1"), 2));
    }
}
