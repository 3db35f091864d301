//! Unit tests of the swarm's durable store and fault plan.

use std::time::Duration;

use bytes::Bytes;
use cairn_core::{CommitOutcome, Item, Origin, SignedItem, Store, StoreLimits, Time};
use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::faults::{Fault, Plan};
use super::store::SwarmStore;
use crate::Durable;

const NOW: Time = Time::from_secs(1_800_000_000);

fn version(seq: u64) -> Item {
    let signer = SigningKey::from_bytes(&[7; 32]);
    SignedItem::sign(&signer, "x", Bytes::from_static(b"v"), seq, 0)
        .map(Item::from)
        .unwrap_or_else(|e| panic!("signing a valid item: {e}"))
}

fn seq_held(store: &SwarmStore, item: &Item) -> Option<u64> {
    store
        .get(item.key(), NOW)
        .ok()
        .flatten()
        .and_then(|i| i.seq())
}

#[test]
fn a_crash_keeps_what_was_committed_and_loses_the_rest() {
    let mut store = SwarmStore::new(StoreLimits::default());
    let first = store.put(version(1), NOW, Origin::Unknown);
    let commit = first.ok().and_then(|w| w.commit);
    assert!(commit.is_some(), "a write waits for its commit");
    assert_eq!(store.pending_commits().len(), 1);
    if let Some(commit) = commit {
        store.committed(commit, CommitOutcome::Durable);
    }
    let second = store.put(version(2), NOW, Origin::Unknown);
    assert!(second.is_ok_and(|w| w.commit.is_some()));
    assert_eq!(
        seq_held(&store, &version(2)),
        Some(2),
        "served before it is durable"
    );
    let restarted = store.recovered();
    assert_eq!(
        seq_held(&restarted, &version(1)),
        Some(1),
        "only the durable copy"
    );
    assert!(restarted.pending_commits().is_empty());
    assert_eq!(restarted.witness().seq.get(version(1).key()), Some(&1));
}

#[test]
fn a_failed_commit_undoes_every_write_not_yet_durable() {
    let mut store = SwarmStore::new(StoreLimits::default());
    let first = store.put(version(1), NOW, Origin::Unknown);
    let second = store.put(version(3), NOW, Origin::Unknown);
    let (Some(a), Some(_)) = (
        first.ok().and_then(|w| w.commit),
        second.ok().and_then(|w| w.commit),
    ) else {
        panic!("both writes wait for a commit");
    };
    store.committed(a, CommitOutcome::Failed);
    assert_eq!(seq_held(&store, &version(1)), None);
    assert!(store.pending_commits().is_empty());
    assert!(store.witness().seq.is_empty(), "nothing was made durable");
}

#[test]
fn the_broken_store_forgets_what_it_made_durable_but_its_witness_does_not() {
    let mut store = SwarmStore::drops_acknowledged(StoreLimits::default());
    let commit = store
        .put(version(1), NOW, Origin::Unknown)
        .ok()
        .and_then(|w| w.commit);
    if let Some(commit) = commit {
        store.committed(commit, CommitOutcome::Durable);
    }
    assert_eq!(seq_held(&store, &version(1)), None);
    assert_eq!(store.witness().seq.get(version(1).key()), Some(&1));
}

#[test]
fn a_plan_is_its_seed_and_heals_every_partition_it_starts() {
    let length = Duration::from_secs(3 * 3_600);
    let calm = Duration::from_secs(600);
    let draw = |seed| Plan::draw(&mut StdRng::seed_from_u64(seed), 20, length, calm, calm);
    for seed in 0..50 {
        let (a, b) = (draw(seed), draw(seed));
        assert_eq!(a.timeline, b.timeline, "seed {seed}");
        let cuts = a
            .timeline
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Partition(_)));
        let heals = a.timeline.iter().filter(|(_, f)| *f == Fault::Heal);
        assert_eq!(cuts.count(), heals.count(), "seed {seed}");
        assert!(
            a.timeline.windows(2).all(|w| w[0].0 <= w[1].0),
            "seed {seed}"
        );
    }
}
