//! The routing table: 512 k-buckets of verified contacts (`docs/design.md`, "Routing table").
//!
//! Implementation notes:
//! - Buckets are kept sparsely (a map from bucket index to bucket): a node among N
//!   nodes fills about log2(N) of the 512, and a dense array would cost every node several
//!   kilobytes for nothing.
//! - Within a bucket, contacts are ordered least recently seen first. A contact that is seen
//!   again moves to the back. This is the order Kademlia uses to prefer long-lived contacts.
//! - The table never does I/O: when a full bucket needs its least recently seen contact
//!   pinged, [`RoutingTable::seen`] says so in its [`Insertion`] and the caller sends the ping,
//!   reporting the answer with `seen` or the silence with [`RoutingTable::failed`].
//! - Only verified contacts enter: callers pass contacts whose identity a handshake proved.
//! - Diversity: one subnet (an IPv4 /24, an IPv6 /48) holds at most
//!   [`Diversity::per_bucket`] places in a bucket and [`Diversity::per_table`] in the whole
//!   table, replacement caches included. Identities are free to make, addresses are not: this
//!   keeps one host or one subnet from filling a node's view of the network (the limits of
//!   geth's discovery table and go-libp2p-kad-dht's diversity filter). Counting scans the
//!   table, but only when a contact new to its bucket arrives.
//! - A contact evicted with no replacement to take its place goes dormant (at most
//!   [`MAX_DORMANT`]): lookups never ask it, but each refresh round pings it, for
//!   `DORMANT_ROUNDS` rounds, and an answer puts it back. Without this, a partition that lasts
//!   a few request timeouts left each side with no contact on the other after it healed, and
//!   nothing brought them together again (found by the swarm test, seed 147).

use std::collections::{BTreeMap, VecDeque};

use crate::id::{Distance, Id, NodeId};
use crate::message::Contact;
use crate::subnet::Prefix;
use crate::time::Time;

/// A contact in a bucket, with what the table knows of its liveness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Who and where.
    pub contact: Contact,
    /// When it was last seen to answer or to send a verified request.
    pub last_seen: Time,
    /// Requests it failed in a row since it was last seen.
    pub failures: u32,
}

#[derive(Clone, Debug, Default)]
struct KBucket {
    /// At most k, least recently seen first.
    entries: Vec<Entry>,
    /// At most k newcomers waiting for a place, newest last.
    replacements: Vec<Entry>,
    /// The contact pinged to decide whether a newcomer may replace it.
    pinging: Option<NodeId>,
    /// When a lookup last went into this bucket's range (for refresh).
    last_lookup: Option<Time>,
}

/// What [`RoutingTable::seen`] did.
#[must_use = "a full bucket asks for its least recently seen contact to be pinged"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Insertion {
    /// The contact is new and took a free place.
    Added,
    /// The contact was already there; it is now the most recently seen.
    Updated,
    /// The bucket is full; the contact waits in the replacement cache. If `ping` is set, the
    /// caller must ping that contact and report the outcome.
    Pending {
        /// The least recently seen contact, to be pinged.
        ping: Option<Contact>,
    },
    /// The contact is this node itself, which is never stored.
    OwnId,
    /// The contact's subnet already holds as many places as [`Diversity`] allows.
    Crowded,
}

/// How many places one subnet (an IPv4 /24, an IPv6 /48) may hold in a routing table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Diversity {
    /// In one bucket (entries and replacements). Default 2.
    pub per_bucket: usize,
    /// In the whole table. Default 10.
    pub per_table: usize,
}

impl Default for Diversity {
    fn default() -> Self {
        Diversity {
            per_bucket: 2,
            per_table: 10,
        }
    }
}

/// What [`RoutingTable::failed`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The contact was not in the table.
    Unknown,
    /// The failure was counted; the contact stays.
    Counted,
    /// The contact was removed, and the newest replacement (if any) took its place.
    Evicted {
        /// The contact that took the place.
        replaced_by: Option<Contact>,
    },
}

/// The most contacts kept dormant: evicted with nothing to take their place, and pinged again
/// at each refresh round so that a partition's two sides find each other once it heals.
pub const MAX_DORMANT: usize = 64;

/// Refresh rounds a dormant contact is pinged, unanswered, before it is forgotten.
const DORMANT_ROUNDS: u32 = 6;

/// The k-buckets of one node. Outside the core it is read through
/// [`Node::routing_table`](crate::Node::routing_table); only the node changes it.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    own_id: NodeId,
    k: usize,
    max_failures: u32,
    diversity: Diversity,
    buckets: BTreeMap<usize, KBucket>,
    /// Contacts evicted with no replacement, newest last, with the refresh rounds they have
    /// left (at most [`MAX_DORMANT`]). Not asked by lookups; only pinged, so that a contact
    /// that was cut off rather than dead comes back ([`RoutingTable::dormant_round`]).
    dormant: VecDeque<(Contact, u32)>,
}

impl RoutingTable {
    /// An empty table for the node `own_id`, with buckets of `k` contacts, removing a contact
    /// after `max_failures` failed requests in a row.
    pub(crate) fn new(own_id: NodeId, k: usize, max_failures: u32) -> Self {
        RoutingTable {
            own_id,
            k: k.max(1),
            max_failures: max_failures.max(1),
            diversity: Diversity::default(),
            buckets: BTreeMap::new(),
            dormant: VecDeque::new(),
        }
    }

    /// The same table with other diversity limits.
    pub(crate) fn with_diversity(self, diversity: Diversity) -> Self {
        RoutingTable { diversity, ..self }
    }

    /// Whether `contact`, new to bucket `index`, would put its subnet over a limit.
    fn crowded(&self, index: usize, contact: &Contact) -> bool {
        let subnet = Prefix::subnet(contact.addr.ip());
        let same = |e: &&Entry| {
            e.contact.id != contact.id && Prefix::subnet(e.contact.addr.ip()) == subnet
        };
        let places = |b: &KBucket| b.entries.iter().chain(&b.replacements).filter(same).count();
        let in_bucket = self.buckets.get(&index).map_or(0, places);
        in_bucket >= self.diversity.per_bucket
            || self.buckets.values().map(places).sum::<usize>() >= self.diversity.per_table
    }

    /// The id of the node this table belongs to.
    pub fn own_id(&self) -> &NodeId {
        &self.own_id
    }

    /// The bucket size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The number of contacts in all buckets (replacements not counted).
    pub fn len(&self) -> usize {
        self.buckets.values().map(|b| b.entries.len()).sum()
    }

    /// Whether the table holds no contact.
    pub fn is_empty(&self) -> bool {
        self.buckets.values().all(|b| b.entries.is_empty())
    }

    /// Every contact, bucket by bucket, least recently seen first within a bucket.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.values().flat_map(|b| b.entries.iter())
    }

    /// The entry for `id`, if it is in a bucket.
    pub fn entry(&self, id: &NodeId) -> Option<&Entry> {
        let bucket = self.buckets.get(&self.bucket_of(id)?)?;
        bucket.entries.iter().find(|e| e.contact.id == *id)
    }

    /// Indices of the buckets that hold at least one contact.
    pub fn bucket_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.buckets
            .iter()
            .filter(|(_, b)| !b.entries.is_empty())
            .map(|(i, _)| *i)
    }

    /// The contacts of bucket `index`, least recently seen first.
    pub fn bucket(&self, index: usize) -> &[Entry] {
        self.buckets.get(&index).map_or(&[], |b| &b.entries)
    }

    /// Which bucket `id` belongs in, or `None` for the own id.
    pub fn bucket_of(&self, id: &Id) -> Option<usize> {
        self.own_id.distance(id).bucket_index()
    }

    /// The `n` known contacts closest to `target`, closest first.
    pub fn closest(&self, target: &Id, n: usize) -> Vec<Contact> {
        let mut all: Vec<(Distance, Contact)> = self
            .entries()
            .map(|e| (e.contact.id.distance(target), e.contact))
            .collect();
        if all.len() > n {
            all.select_nth_unstable_by(n, |a, b| a.0.cmp(&b.0));
            all.truncate(n);
        }
        all.sort_unstable_by_key(|(d, _)| *d);
        all.into_iter().map(|(_, c)| c).collect()
    }

    /// How many nodes the network has, estimated from the contacts closest to the own id.
    ///
    /// In a network of `N` uniformly random ids, the `i`-th closest to any point lies about
    /// `i / N` of the keyspace away. The estimate fits that line to the (up to k) closest
    /// contacts' distances by least squares: `N = sum(i^2) / sum(i * d_i)`, with `d_i` the
    /// distance as a fraction of the keyspace (its top 64 bits). A node's own neighbourhood
    /// is the part of the table its lookups keep fullest (every join and refresh looks itself
    /// up), so no other buckets are needed. The same own-neighbourhood density idea underlies
    /// the estimates of mainline DHT clients and OpenDHT. 0 with no contact; the node itself is
    /// counted.
    pub fn network_size(&self) -> u64 {
        let closest = self.closest(&self.own_id, self.k);
        let (mut sum_ii, mut sum_id) = (0.0f64, 0.0f64);
        for (i, contact) in closest.iter().enumerate() {
            let distance = self.own_id.distance(&contact.id);
            let mut top = [0u8; 8];
            top.copy_from_slice(&distance.as_bytes()[..8]);
            let fraction = (u64::from_be_bytes(top) as f64 + 1.0) / 18_446_744_073_709_551_616.0;
            let rank = (i + 1) as f64;
            sum_ii += rank * rank;
            sum_id += rank * fraction;
        }
        if closest.is_empty() || sum_id <= 0.0 {
            return 0;
        }
        // The fit counts the others; the node itself is one more.
        (sum_ii / sum_id).round() as u64 + 1
    }

    /// Records that `contact` answered a request or sent a verified one.
    pub(crate) fn seen(&mut self, contact: Contact, now: Time) -> Insertion {
        let Some(index) = self.bucket_of(&contact.id) else {
            return Insertion::OwnId;
        };
        self.dormant.retain(|(c, _)| c.id != contact.id);
        let known = self
            .buckets
            .get(&index)
            .is_some_and(|b| b.entries.iter().any(|e| e.contact.id == contact.id));
        if !known && self.crowded(index, &contact) {
            return Insertion::Crowded;
        }
        let k = self.k;
        let bucket = self.buckets.entry(index).or_insert_with(|| KBucket {
            last_lookup: Some(now),
            ..KBucket::default()
        });
        let fresh = Entry {
            contact,
            last_seen: now,
            failures: 0,
        };
        if let Some(at) = bucket
            .entries
            .iter()
            .position(|e| e.contact.id == contact.id)
        {
            bucket.entries.remove(at);
            bucket.entries.push(fresh);
            if bucket.pinging == Some(contact.id) {
                bucket.pinging = None;
            }
            return Insertion::Updated;
        }
        bucket.replacements.retain(|e| e.contact.id != contact.id);
        if bucket.entries.len() < k {
            push_exact(&mut bucket.entries, fresh);
            return Insertion::Added;
        }
        push_exact(&mut bucket.replacements, fresh);
        if bucket.replacements.len() > k {
            bucket.replacements.remove(0);
        }
        if bucket.pinging.is_some() {
            return Insertion::Pending { ping: None };
        }
        let oldest = bucket.entries[0].contact;
        bucket.pinging = Some(oldest.id);
        Insertion::Pending { ping: Some(oldest) }
    }

    /// Puts back a contact verified in an earlier run, if its bucket has room; never starts a
    /// liveness check. Returns whether it was added.
    pub(crate) fn restore(&mut self, contact: Contact, now: Time) -> bool {
        let Some(index) = self.bucket_of(&contact.id) else {
            return false;
        };
        let has_room = self.bucket(index).len() < self.k;
        let known = self.entry(&contact.id).is_some();
        has_room && !known && self.seen(contact, now) == Insertion::Added
    }

    /// Records that `id` failed a request. The contact pinged for a full bucket is evicted at
    /// its first failure; any other after `max_failures` in a row.
    pub(crate) fn failed(&mut self, id: &NodeId) -> Failure {
        let Some(index) = self.bucket_of(id) else {
            return Failure::Unknown;
        };
        let max_failures = self.max_failures;
        let Some(bucket) = self.buckets.get_mut(&index) else {
            return Failure::Unknown;
        };
        let Some(at) = bucket.entries.iter().position(|e| e.contact.id == *id) else {
            bucket.replacements.retain(|e| e.contact.id != *id);
            return Failure::Unknown;
        };
        bucket.entries[at].failures += 1;
        let was_pinged = bucket.pinging == Some(*id);
        if !was_pinged && bucket.entries[at].failures < max_failures {
            return Failure::Counted;
        }
        let evicted = bucket.entries.remove(at).contact;
        if was_pinged {
            bucket.pinging = None;
        }
        let replaced_by = bucket.replacements.pop().map(|entry| {
            let contact = entry.contact;
            bucket.entries.push(entry);
            contact
        });
        if bucket.entries.is_empty() && bucket.replacements.is_empty() {
            self.buckets.remove(&index);
        }
        if replaced_by.is_none() {
            // Nothing took its place: it may be cut off rather than dead (a partition evicts
            // every contact across it, on both sides), so it is pinged again for a while.
            if self.dormant.len() == MAX_DORMANT {
                self.dormant.pop_front();
            }
            self.dormant.push_back((evicted, DORMANT_ROUNDS));
        }
        Failure::Evicted { replaced_by }
    }

    /// Removes `id` from its bucket, its replacement cache and the dormant list at once (a
    /// node that said it is a client must not be asked as a server). A replacement takes an
    /// emptied place, as after a failure. What happened, as [`RoutingTable::failed`] says it.
    pub(crate) fn remove(&mut self, id: &NodeId) -> Failure {
        self.dormant.retain(|(c, _)| c.id != *id);
        let Some(index) = self.bucket_of(id) else {
            return Failure::Unknown;
        };
        let Some(bucket) = self.buckets.get_mut(&index) else {
            return Failure::Unknown;
        };
        bucket.replacements.retain(|e| e.contact.id != *id);
        let Some(at) = bucket.entries.iter().position(|e| e.contact.id == *id) else {
            return Failure::Unknown;
        };
        bucket.entries.remove(at);
        if bucket.pinging == Some(*id) {
            bucket.pinging = None;
        }
        let replaced_by = bucket.replacements.pop().map(|entry| {
            let contact = entry.contact;
            bucket.entries.push(entry);
            contact
        });
        if bucket.entries.is_empty() && bucket.replacements.is_empty() {
            self.buckets.remove(&index);
        }
        Failure::Evicted { replaced_by }
    }

    /// The dormant contacts to ping in this refresh round; each is forgotten once it has been
    /// pinged [`DORMANT_ROUNDS`] times without answering (an answer puts it back in its
    /// bucket through [`RoutingTable::seen`]).
    pub(crate) fn dormant_round(&mut self) -> Vec<Contact> {
        let due = self.dormant.iter().map(|(c, _)| *c).collect();
        for (_, rounds) in &mut self.dormant {
            *rounds -= 1;
        }
        self.dormant.retain(|(_, rounds)| *rounds > 0);
        due
    }

    /// How many contacts are dormant (at most [`MAX_DORMANT`]).
    pub fn dormant(&self) -> usize {
        self.dormant.len()
    }

    /// Records that a lookup for `target` ran, so its bucket does not need a refresh.
    pub(crate) fn touch(&mut self, target: &Id, now: Time) {
        if let Some(index) = self.bucket_of(target) {
            if let Some(bucket) = self.buckets.get_mut(&index) {
                bucket.last_lookup = Some(now);
            }
        }
    }

    /// Indices of non-empty buckets that saw no lookup since `since`.
    pub fn stale_buckets(&self, since: Time) -> Vec<usize> {
        self.buckets
            .iter()
            .filter(|(_, b)| !b.entries.is_empty() && b.last_lookup.is_none_or(|t| t < since))
            .map(|(i, _)| *i)
            .collect()
    }
}

/// Pushes without the doubling growth of `Vec::push`: a table holds hundreds of small
/// buckets, and spare capacity in each would cost more than the contacts themselves.
fn push_exact(entries: &mut Vec<Entry>, entry: Entry) {
    entries.reserve_exact(1);
    entries.push(entry);
}

#[cfg(test)]
mod tests;
