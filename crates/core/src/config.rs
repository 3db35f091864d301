//! The protocol's knobs, with the defaults of `docs/design.md`.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::routing::Diversity;

/// Protocol parameters of one node. Every field's default is the one in `docs/design.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bucket size, nodes returned by `find_node`, and replicas per item. Default 20.
    pub k: NonZeroUsize,
    /// Requests in flight per lookup path. Default 3.
    pub alpha: NonZeroUsize,
    /// Disjoint paths per lookup (S/Kademlia); 1 is plain Kademlia. Default 1.
    pub disjoint_paths: NonZeroUsize,
    /// Valid copies a `get` of a signed key waits for before it stops early. Default 3.
    pub get_quorum: NonZeroUsize,
    /// How long a request may go unanswered before it counts as failed. Default 2 s.
    pub request_timeout: Duration,
    /// How long a lookup may run in all. Default 30 s.
    pub lookup_timeout: Duration,
    /// A lookup's request that has run past its contact's round-trip timeout
    /// (`srtt + 4 * rttvar`, as RFC 6298 computes it) stops holding one of the lookup's alpha
    /// slots, while its answer is still awaited until `request_timeout`; never sooner than this.
    /// Default 100 ms.
    pub min_slot_timeout: Duration,
    /// The largest item value accepted, in bytes. Default 65,536.
    pub max_value_size: usize,
    /// Failed requests in a row after which a contact is removed. Default 3.
    pub max_failures: u32,
    /// How often a node republishes the items it published itself. Default 1 h.
    pub republish_interval: Duration,
    /// How often a node stores each item it holds at the current k closest nodes. Default 1 h.
    pub replicate_interval: Duration,
    /// How often buckets are checked for staleness. Default 10 min.
    pub refresh_interval: Duration,
    /// A bucket that saw no lookup for this long is refreshed. Default 1 h.
    pub bucket_idle: Duration,
    /// How often expired items are removed. Default 1 min.
    pub expire_interval: Duration,
    /// Housekeeping lookups (republish, replicate, refresh) running at once. Default 8.
    pub max_housekeeping: NonZeroUsize,
    /// How many routing-table places one network (IPv4 /24, IPv6 /48) may hold: 2 per bucket
    /// and 10 in all by default.
    pub diversity: Diversity,
    /// Live `listen` subscriptions this node keeps for its peers, all connections together;
    /// more are answered 429. Default 10,000. (One connection may hold at most 64.)
    pub max_subscriptions: usize,
    /// How long a subscription lasts unless renewed: the `ttl` of `listening` answers. At most
    /// 600 s, the protocol's limit. Default 600 s.
    pub listen_ttl: Duration,
    /// At how many of the nodes closest to a key a watch subscribes. Default 3.
    pub watch_width: NonZeroUsize,
    /// How often a watch looks its key up again, to move to closer nodes and renew its
    /// subscriptions (sooner when a `ttl` asks for it, or when a subscription is lost).
    /// Default 5 min.
    pub watch_refresh: Duration,
    /// The IPv4 prefix length that makes one voter's subnet when the node counts votes on its
    /// address as peers see it (one vote per subnet; IPv6 uses /48). Default 24; a test
    /// network whose nodes share one /24 sets 32.
    pub nat_subnet_prefix_v4: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: NonZeroUsize::new(20).unwrap_or(NonZeroUsize::MIN),
            alpha: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            disjoint_paths: NonZeroUsize::MIN,
            get_quorum: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            request_timeout: Duration::from_secs(2),
            lookup_timeout: Duration::from_secs(30),
            min_slot_timeout: Duration::from_millis(100),
            max_value_size: 65_536,
            max_failures: 3,
            republish_interval: Duration::from_secs(3_600),
            replicate_interval: Duration::from_secs(3_600),
            refresh_interval: Duration::from_secs(600),
            bucket_idle: Duration::from_secs(3_600),
            expire_interval: Duration::from_secs(60),
            max_housekeeping: NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN),
            diversity: Diversity::default(),
            max_subscriptions: 10_000,
            listen_ttl: Duration::from_secs(600),
            watch_width: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            watch_refresh: Duration::from_secs(300),
            nat_subnet_prefix_v4: 24,
        }
    }
}
