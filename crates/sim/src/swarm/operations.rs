//! The operations of a swarm run and what the checker knows of them: which versions of each
//! key were put, which were acknowledged and when, and what gets returned.
//!
//! Items are signed, under a few publishers' keys and names, and never expire (tombstones
//! included), so that nothing leaves a store but by the rules. Every put of a key takes a
//! `seq` above all earlier ones of that key: an update is a newer version, a delete a
//! tombstone newer than every version before it.

use bytes::Bytes;
use cairn_core::{Item, Key, SignedItem, Time, Tombstone, signed_key};
use ed25519_dalek::SigningKey;
use rand::Rng;
use rand::rngs::StdRng;

/// One version of a key that was put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// Its `seq`.
    pub seq: u64,
    /// Whether it is a tombstone.
    pub tombstone: bool,
    /// When its put was acknowledged (stored on at least one node, durably), if it was.
    pub acknowledged: Option<Time>,
}

/// What the checker knows of one key.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Every version put, oldest first.
    pub versions: Vec<Version>,
    /// What gets returned: when each ended, and the `seq` it found.
    pub returned: Vec<(Time, u64)>,
}

impl History {
    /// The newest version acknowledged at or before `at`.
    pub fn newest_acknowledged(&self, at: Time) -> Option<Version> {
        self.versions
            .iter()
            .filter(|v| v.acknowledged.is_some_and(|t| t <= at))
            .max_by_key(|v| v.seq)
            .copied()
    }

    /// The highest `seq` a get returned that ended at or before `at`.
    pub fn returned_by(&self, at: Time) -> Option<u64> {
        self.returned
            .iter()
            .filter(|(t, _)| *t <= at)
            .map(|(_, seq)| *seq)
            .max()
    }
}

/// The keys of a run: publishers, names, and the history of each.
pub struct Keys {
    /// Each key's publisher and name.
    names: Vec<(SigningKey, String)>,
    /// The item keys, in the same order.
    pub keys: Vec<Key>,
    /// The history of each, in the same order.
    pub histories: Vec<History>,
}

impl Keys {
    /// `publishers` publishers with `names` names each.
    pub fn draw(rng: &mut StdRng, publishers: usize, names: usize) -> Keys {
        let mut keys = Keys {
            names: Vec::new(),
            keys: Vec::new(),
            histories: Vec::new(),
        };
        for _ in 0..publishers {
            let mut seed = [0u8; 32];
            rng.fill(&mut seed);
            let signer = SigningKey::from_bytes(&seed);
            for n in 0..names {
                let name = format!("item-{n}");
                let key = signed_key(&signer.verifying_key().to_bytes(), &name);
                keys.keys.push(key);
                keys.names.push((signer.clone(), name));
                keys.histories.push(History::default());
            }
        }
        keys
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// A new version of key `index` (a tombstone if `delete`), with a `seq` above every earlier
    /// one and a value of about `size` bytes; recorded as put, not yet acknowledged. `None` if
    /// it cannot be signed (never, with the names used), and then nothing is recorded.
    pub fn next_version(
        &mut self,
        index: usize,
        delete: bool,
        size: usize,
        gap: u64,
    ) -> Option<Item> {
        let history = &mut self.histories[index];
        let seq = history.versions.last().map_or(1, |v| v.seq + 1 + gap);
        let (signer, name) = &self.names[index];
        let item: Item = if delete {
            Tombstone::sign(signer, name, seq, 0).ok()?.into()
        } else {
            let value = Bytes::from(format!("{name} v{seq} ").repeat(size / 12 + 1));
            SignedItem::sign(signer, name, value, seq, 0).ok()?.into()
        };
        history.versions.push(Version {
            seq,
            tombstone: delete,
            acknowledged: None,
        });
        Some(item)
    }

    /// Records that the put of `seq` of key `index` was acknowledged at `at`.
    pub fn acknowledge(&mut self, index: usize, seq: u64, at: Time) {
        for version in &mut self.histories[index].versions {
            if version.seq == seq && version.acknowledged.is_none() {
                version.acknowledged = Some(at);
            }
        }
    }
}

/// An operation a run issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A new version of a key (its first, or an update).
    Put,
    /// A tombstone.
    Delete,
    /// A get.
    Get,
    /// A watch.
    Watch,
}

impl Operation {
    /// One at random: mostly puts and gets.
    pub fn draw(rng: &mut StdRng) -> Operation {
        match rng.random_range(0..100) {
            0..40 => Operation::Put,
            40..46 => Operation::Delete,
            46..94 => Operation::Get,
            _ => Operation::Watch,
        }
    }
}
