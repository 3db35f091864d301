//! Unit and property tests of the k-buckets.

use std::collections::HashSet;

use super::*;
use proptest::prelude::*;

const OWN: Id = Id::from_bytes([0; 64]);

/// An id in bucket `bucket` of [`OWN`], told apart by `n`.
fn id_in(bucket: usize, n: u16) -> Id {
    let mut bytes = [0u8; 64];
    bytes[63 - bucket / 8] |= 1 << (bucket % 8);
    // Low bytes vary; they never reach the bucket's own bit for the buckets used here.
    bytes[62..]
        .iter_mut()
        .zip(n.to_be_bytes())
        .for_each(|(b, n)| *b |= n);
    Id::from_bytes(bytes)
}

/// A contact whose address is its own network (an IPv6 /48 taken from its id), so that only
/// the diversity tests meet the diversity limits.
fn contact(id: Id) -> Contact {
    let hash = Id::hash(id.as_bytes());
    let b = hash.as_bytes();
    let network = [
        0xfd00,
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    ];
    let ip = std::net::Ipv6Addr::new(network[0], network[1], network[2], 0, 0, 0, 0, 1);
    Contact::new(id, std::net::SocketAddr::new(ip.into(), 1))
}

fn t(ms: u64) -> Time {
    Time::from_millis(ms)
}

#[test]
fn own_id_is_never_stored() {
    let mut table = RoutingTable::new(OWN, 2, 3);
    assert_eq!(table.seen(contact(OWN), t(0)), Insertion::OwnId);
    assert!(table.is_empty());
}

#[test]
fn full_bucket_pings_the_oldest_and_keeps_it_if_it_answers() {
    let mut table = RoutingTable::new(OWN, 2, 3);
    let (a, b, c) = (id_in(500, 1), id_in(500, 2), id_in(500, 3));
    assert_eq!(table.seen(contact(a), t(1)), Insertion::Added);
    assert_eq!(table.seen(contact(b), t(2)), Insertion::Added);
    assert_eq!(
        table.seen(contact(c), t(3)),
        Insertion::Pending {
            ping: Some(contact(a))
        }
    );
    // A second newcomer while the ping is out does not start another.
    assert_eq!(
        table.seen(contact(id_in(500, 4)), t(4)),
        Insertion::Pending { ping: None }
    );
    // `a` answers: it stays, and is now the most recently seen.
    assert_eq!(table.seen(contact(a), t(5)), Insertion::Updated);
    let order: Vec<_> = table.bucket(500).iter().map(|e| e.contact.id).collect();
    assert_eq!(order, vec![b, a]);
}

#[test]
fn full_bucket_evicts_a_silent_oldest_for_the_newest_replacement() {
    let mut table = RoutingTable::new(OWN, 2, 3);
    let (a, b, c, d) = (id_in(500, 1), id_in(500, 2), id_in(500, 3), id_in(500, 4));
    let _ = table.seen(contact(a), t(1));
    let _ = table.seen(contact(b), t(2));
    let _ = table.seen(contact(c), t(3));
    let _ = table.seen(contact(d), t(4));
    assert_eq!(
        table.failed(&a),
        Failure::Evicted {
            replaced_by: Some(contact(d))
        }
    );
    assert!(table.entry(&a).is_none());
    assert!(table.entry(&d).is_some());
}

#[test]
fn max_failures_in_a_row_remove_a_contact() {
    let mut table = RoutingTable::new(OWN, 2, 3);
    let a = id_in(400, 1);
    let _ = table.seen(contact(a), t(1));
    assert_eq!(table.failed(&a), Failure::Counted);
    assert_eq!(table.failed(&a), Failure::Counted);
    let _ = table.seen(contact(a), t(2));
    assert_eq!(
        table.entry(&a).map(|e| e.failures),
        Some(0),
        "an answer resets the count"
    );
    assert_eq!(table.failed(&a), Failure::Counted);
    assert_eq!(table.failed(&a), Failure::Counted);
    assert_eq!(table.failed(&a), Failure::Evicted { replaced_by: None });
    assert!(table.is_empty());
    assert_eq!(table.failed(&a), Failure::Unknown);
}

#[test]
fn a_contact_evicted_with_no_replacement_is_pinged_for_a_while_and_comes_back_if_it_answers() {
    let mut table = RoutingTable::new(OWN, 2, 1);
    let (a, b) = (id_in(400, 1), id_in(300, 1));
    let _ = table.seen(contact(a), t(1));
    let _ = table.seen(contact(b), t(1));
    assert_eq!(table.failed(&a), Failure::Evicted { replaced_by: None });
    assert_eq!(table.failed(&b), Failure::Evicted { replaced_by: None });
    assert_eq!(table.dormant(), 2);
    assert!(
        table.closest(&a, 2).iter().all(|c| c.id != a),
        "lookups never ask it"
    );
    assert_eq!(table.dormant_round().len(), 2);
    // `a` answers its ping: back in its bucket, no longer dormant.
    assert_eq!(table.seen(contact(a), t(2)), Insertion::Added);
    assert_eq!(table.dormant(), 1);
    // `b` never answers: forgotten after its rounds.
    let rounds: usize = (0..10).map(|_| table.dormant_round().len()).sum();
    assert_eq!(rounds, DORMANT_ROUNDS as usize - 1);
    assert_eq!(table.dormant(), 0);
}

#[test]
fn dormant_contacts_are_bounded() {
    let mut table = RoutingTable::new(OWN, 1, 1);
    for n in 0..(MAX_DORMANT as u16 + 10) {
        let id = id_in(400, n);
        let _ = table.seen(contact(id), t(1));
        let _ = table.failed(&id);
    }
    assert_eq!(table.dormant(), MAX_DORMANT);
}

#[test]
fn closest_is_sorted_and_bounded() {
    let mut table = RoutingTable::new(OWN, 20, 3);
    for bucket in [300, 400, 500, 511] {
        for n in 0..5 {
            let _ = table.seen(contact(id_in(bucket, n)), t(1));
        }
    }
    let target = id_in(400, 3);
    let closest = table.closest(&target, 7);
    assert_eq!(closest.len(), 7);
    assert_eq!(closest[0].id, target);
    assert!(
        closest
            .windows(2)
            .all(|w| w[0].id.distance(&target) < w[1].id.distance(&target))
    );
    let all: Vec<_> = table
        .entries()
        .map(|e| e.contact.id.distance(&target))
        .collect();
    let worst = closest[6].id.distance(&target);
    assert_eq!(
        all.iter().filter(|d| **d <= worst).count(),
        7,
        "no closer contact left out"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Seen(usize, u16),
    Failed(usize, u16),
}

fn op() -> impl Strategy<Value = Op> {
    // Few buckets and few ids per bucket, so that buckets fill and evictions happen.
    let bucket = prop::sample::select(vec![0usize, 1, 9, 200, 511]);
    prop_oneof![
        3 => (bucket.clone(), 0u16..8).prop_map(|(b, n)| Op::Seen(b, n)),
        1 => (bucket, 0u16..8).prop_map(|(b, n)| Op::Failed(b, n)),
    ]
}

fn id_of(bucket: usize, n: u16) -> Id {
    // Buckets 0 and 1 hold one and two ids only; fold `n` into what fits.
    match bucket {
        0 => id_in(0, 0),
        1 => id_in(1, n % 2),
        _ => id_in(bucket, n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn invariants_hold(ops in prop::collection::vec(op(), 0..200), k in 1usize..5) {
        let mut table = RoutingTable::new(OWN, k, 2);
        // Contacts that answered and have not failed since: none may be evicted for a newcomer.
        let mut answered: HashSet<Id> = HashSet::new();
        for (step, op) in ops.into_iter().enumerate() {
            let now = t(step as u64);
            match op {
                Op::Seen(b, n) => {
                    let id = id_of(b, n);
                    match table.seen(contact(id), now) {
                        Insertion::Added | Insertion::Updated => { answered.insert(id); }
                        Insertion::Pending { .. } | Insertion::OwnId | Insertion::Crowded => {}
                    }
                }
                Op::Failed(b, n) => {
                    let id = id_of(b, n);
                    answered.remove(&id);
                    if let Failure::Evicted { replaced_by: Some(c) } = table.failed(&id) {
                        answered.insert(c.id);
                    }
                }
            }
            let mut ids = HashSet::new();
            for index in table.bucket_indices().collect::<Vec<_>>() {
                let bucket = table.bucket(index);
                prop_assert!(bucket.len() <= k, "bucket {} over k", index);
                for entry in bucket {
                    prop_assert!(ids.insert(entry.contact.id), "duplicate id");
                    prop_assert_eq!(table.bucket_of(&entry.contact.id), Some(index));
                }
            }
            prop_assert!(!ids.contains(&OWN));
            for id in &answered {
                prop_assert!(ids.contains(id), "a contact that answered was evicted");
            }
        }
    }
}

#[test]
fn restored_contacts_fill_free_places_only_and_start_no_ping() {
    let mut table = RoutingTable::new(OWN, 2, 3);
    let (a, b, c) = (id_in(500, 1), id_in(500, 2), id_in(500, 3));
    assert!(table.restore(contact(a), t(1)));
    assert!(!table.restore(contact(a), t(1)), "already there");
    assert!(table.restore(contact(b), t(1)));
    assert!(!table.restore(contact(c), t(1)), "the bucket is full");
    assert!(!table.restore(contact(OWN), t(1)));
    // No liveness check was started: the next newcomer still triggers one.
    assert_eq!(
        table.seen(contact(c), t(2)),
        Insertion::Pending {
            ping: Some(contact(a))
        }
    );
}

#[test]
fn one_subnet_holds_at_most_its_share_of_a_bucket_and_of_the_table() {
    let mut table = RoutingTable::new(OWN, 20, 3);
    let from = |id: Id, ip: &str| Contact::new(id, format!("{ip}:7400").parse().expect("valid"));
    // Bucket 511: ids differing from OWN (all zeros) in the top bit.
    let in_511 = |n: u8| {
        let mut bytes = [0u8; 64];
        bytes[0] = 0x80;
        bytes[63] = n;
        Id::from_bytes(bytes)
    };
    let now = t(0);
    assert_eq!(
        table.seen(from(in_511(1), "192.0.2.1"), now),
        Insertion::Added
    );
    assert_eq!(
        table.seen(from(in_511(2), "192.0.2.2"), now),
        Insertion::Added
    );
    assert_eq!(
        table.seen(from(in_511(3), "192.0.2.3"), now),
        Insertion::Crowded,
        "a third from one /24 in one bucket"
    );
    assert_eq!(
        table.seen(from(in_511(3), "198.51.100.3"), now),
        Insertion::Added
    );
    // A known contact seen again is never crowded out.
    assert_eq!(
        table.seen(from(in_511(1), "192.0.2.1"), now),
        Insertion::Updated
    );
    // Across buckets, one /24 holds at most 10 places.
    let mut added = 2;
    for index in 0..100u16 {
        let mut bytes = [0u8; 64];
        let bucket = 500 - usize::from(index % 11);
        bytes[63 - bucket / 8] = 1 << (bucket % 8);
        bytes[62] = index as u8;
        bytes[63] = 0xaa;
        if table.seen(from(Id::from_bytes(bytes), "192.0.2.200"), now) == Insertion::Added {
            added += 1;
        }
    }
    assert_eq!(added, 10, "the whole table");
}

#[test]
fn network_size_is_estimated_from_the_closest_contacts() {
    let own = Id::hash(b"me");
    let empty = RoutingTable::new(own, 20, 3);
    assert_eq!(empty.network_size(), 0);
    for n in [100u32, 1_000, 10_000] {
        let mut table = RoutingTable::new(own, 20, 3);
        for i in 0..n {
            let id = Id::hash(&i.to_be_bytes());
            let _ = table.seen(contact(id), t(0));
        }
        let estimate = table.network_size() as f64;
        let actual = f64::from(n + 1);
        assert!(
            estimate > actual / 2.0 && estimate < actual * 2.0,
            "{n} others: estimated {estimate}"
        );
    }
}
