//! Per-host rate limits: a token bucket per host (an IPv4 address, an IPv6 /64) for requests
//! of every kind, and a stricter one for `store`. A request over its host's rate is answered
//! `error` 429 by the connection itself; it never reaches the driver.
//!
//! Defaults, and why:
//! - 1,024 requests/s per host, bursts of 2,048: OpenDHT's per-IP default. An honest node asks
//!   one peer a few requests per lookup, so even a node running hundreds of lookups a second
//!   through one peer stays under it, while one host cannot take a node's whole CPU.
//! - 64 stores/s per host, bursts of 256: a store costs a signature check, memory and a disk
//!   write. Replication sends each item to 20 nodes once an hour, so a node holding the
//!   default maximum of 100,000 items sends each peer well under one store a second on
//!   average; bursts cover a put of many items at once.
//!
//! The table holds one bucket per host seen recently; when it reaches `MAX_HOSTS` it drops the
//! hosts whose buckets have refilled (they are idle), so its memory stays bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use cairn_core::Prefix;
use tokio::time::Instant;

/// Hosts tracked at most; past it, idle ones are forgotten.
const MAX_HOSTS: usize = 65_536;

/// A rate: `per_second` on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The most tokens held.
    pub burst: f64,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate {
        per_second: f64::INFINITY,
        burst: f64::INFINITY,
    };
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refills for the time since it was last used, then takes a token if there is one.
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate.per_second >= rate.burst
    }
}

/// Token buckets for one kind of request, by host.
pub(crate) struct Limiter {
    rate: Rate,
    hosts: Mutex<HashMap<Prefix, Bucket>>,
}

impl Limiter {
    pub(crate) fn new(rate: Rate) -> Self {
        Limiter {
            rate,
            hosts: Mutex::default(),
        }
    }

    /// Whether `ip`'s host may make one more request now (and counts it if so).
    pub(crate) fn allow(&self, ip: IpAddr) -> bool {
        if self.rate.per_second.is_infinite() {
            return true;
        }
        let now = Instant::now();
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if hosts.len() >= MAX_HOSTS {
            let rate = self.rate;
            hosts.retain(|_, bucket| !bucket.is_full(rate, now));
        }
        let burst = self.rate.burst;
        hosts
            .entry(Prefix::host(ip))
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            })
            .take(self.rate, now)
    }
}

/// Parses a rate from a config file: requests per second, with bursts of twice that unless
/// given.
pub(crate) fn rate(per_second: f64, burst: Option<f64>) -> Option<Rate> {
    (per_second > 0.0 && burst.is_none_or(|b| b >= 1.0)).then(|| Rate {
        per_second,
        burst: burst.unwrap_or(per_second * 2.0).max(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_gets_its_burst_then_its_rate_and_others_are_untouched() {
        let limiter = Limiter::new(Rate {
            per_second: 1.0,
            burst: 3.0,
        });
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!((0..3).all(|_| limiter.allow(a)), "the burst");
        assert!(!limiter.allow(a), "then refused");
        assert!(limiter.allow(b), "another host has its own bucket");
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        let same_64: IpAddr = "2001:db8::2".parse().expect("ip");
        assert!((0..3).all(|_| limiter.allow(v6)));
        assert!(!limiter.allow(same_64), "one /64 is one host");
        assert!(Limiter::new(Rate::UNLIMITED).allow(a));
        assert_eq!(rate(0.0, None), None);
        assert_eq!(
            rate(10.0, None),
            Some(Rate {
                per_second: 10.0,
                burst: 20.0
            })
        );
    }
}
