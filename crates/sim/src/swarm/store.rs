//! The swarm's durable store: a [`MemoryStore`] that serves what it accepted at once, and a
//! disk (what is durable) that a write reaches only when its commit does, as the real redb
//! store behaves. A crash keeps the disk only ([`Durable::recovered`]); a failed commit undoes
//! every write not yet durable, newest first, so the store serves the disk's state again.
//!
//! It also keeps, for the checker only, the highest `seq` of each key (and of each key's
//! tombstones) it ever made durable: the witness that this node acknowledged that version.
//! The witness survives crashes and the test-only [`SwarmStore::drops_acknowledged`] switch, so
//! a store that loses what it acknowledged is still known to have held it.

use std::collections::{BTreeMap, HashMap};

use cairn_core::{
    CommitId, CommitOutcome, Holdings, Item, Key, MemoryStore, Origin, Prefix, ReadError,
    Resolution, Store, StoreError, StoreLimits, Time, Written,
};

use crate::Durable;

/// What a write replaced, to put back if its commit fails.
#[derive(Clone, Debug)]
struct Undo {
    commit: CommitId,
    key: Key,
    previous: Option<Item>,
    own: bool,
    subnet: Option<Prefix>,
    /// What the write left: the copy and its own mark.
    written: Item,
    own_after: bool,
}

/// The highest versions a store made durable (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Witness {
    /// Per key, the highest `seq` made durable, of any kind.
    pub seq: HashMap<Key, u64>,
    /// Per key, the highest `seq` of a tombstone made durable.
    pub tombstone: HashMap<Key, u64>,
}

/// A store with pending and durable state. See the module doc.
#[derive(Clone, Debug)]
pub struct SwarmStore {
    limits: StoreLimits,
    /// What is served: everything accepted and not undone.
    live: MemoryStore,
    /// What is on disk, with each item's own mark.
    disk: BTreeMap<Key, (Item, bool)>,
    /// The writes not yet durable, oldest first.
    undo: Vec<Undo>,
    next: u64,
    witness: Witness,
    /// Test only: forgets every item once its commit is durable (a broken store).
    drops: bool,
}

impl SwarmStore {
    /// An empty store with `limits`.
    pub fn new(limits: StoreLimits) -> Self {
        SwarmStore {
            limits,
            live: MemoryStore::new(limits),
            disk: BTreeMap::new(),
            undo: Vec::new(),
            next: 1,
            witness: Witness::default(),
            drops: false,
        }
    }

    /// A deliberately broken store, for the test that the checker can fail: it acknowledges
    /// writes as usual, then forgets each item as soon as its commit is durable.
    pub fn drops_acknowledged(limits: StoreLimits) -> Self {
        SwarmStore {
            drops: true,
            ..SwarmStore::new(limits)
        }
    }

    /// The highest versions this store ever made durable.
    pub fn witness(&self) -> &Witness {
        &self.witness
    }

    /// The `seq` of the copy held for `key` (expired or not) and whether it is a tombstone.
    pub fn held_seq(&self, key: &Key) -> Option<(u64, bool)> {
        self.live
            .held(key)
            .map(|item| (item.seq().unwrap_or(0), item.is_tombstone()))
    }

    /// Writes not yet durable.
    pub fn pending(&self) -> usize {
        self.undo.len()
    }

    /// Makes the writes of `commit` durable (the older ones are already).
    fn commit_durable(&mut self, commit: CommitId) {
        let (done, rest): (Vec<Undo>, Vec<Undo>) =
            self.undo.drain(..).partition(|u| u.commit <= commit);
        self.undo = rest;
        for u in done {
            let seq = u.written.seq().unwrap_or(0);
            let best = self.witness.seq.entry(u.key).or_insert(seq);
            *best = (*best).max(seq);
            if u.written.is_tombstone() {
                let best = self.witness.tombstone.entry(u.key).or_insert(seq);
                *best = (*best).max(seq);
            }
            let later = self.undo.iter().any(|p| p.key == u.key);
            if self.drops && !later {
                self.disk.remove(&u.key);
                self.live.revert(u.key, None, false, None);
            } else {
                self.disk.insert(u.key, (u.written, u.own_after));
            }
        }
    }

    /// Undoes `commit` and every write after it, newest first.
    fn commit_failed(&mut self, commit: CommitId) {
        let Some(first) = self.undo.iter().position(|u| u.commit >= commit) else {
            return;
        };
        for u in self.undo.drain(first..).rev() {
            self.live.revert(u.key, u.previous, u.own, u.subnet);
        }
    }
}

impl Store for SwarmStore {
    fn get(&self, key: &Key, now: Time) -> Result<Option<Item>, ReadError> {
        self.live.get(key, now)
    }

    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError> {
        let key = *item.key();
        let previous = self.live.held(&key).cloned();
        let own = self.live.is_own(&key);
        let subnet = self.live.stored_by(&key);
        let written = self.live.put(item.clone(), now, origin)?;
        let own_after = self.live.is_own(&key);
        if written.resolution == Resolution::Unchanged && own_after == own {
            // Nothing changed: durable once the write that stored this copy is.
            let commit = self.undo.iter().rev().find(|u| u.key == key);
            return Ok(Written {
                resolution: written.resolution,
                commit: commit.map(|u| u.commit),
            });
        }
        let commit = CommitId(self.next);
        self.next += 1;
        self.undo.push(Undo {
            commit,
            key,
            previous,
            own,
            subnet,
            written: item,
            own_after,
        });
        Ok(Written {
            resolution: written.resolution,
            commit: Some(commit),
        })
    }

    fn committed(&mut self, commit: CommitId, outcome: CommitOutcome) {
        match outcome {
            CommitOutcome::Durable => self.commit_durable(commit),
            CommitOutcome::Failed => self.commit_failed(commit),
        }
    }

    fn expire(&mut self, now: Time) -> usize {
        self.disk.retain(|_, (item, _)| !item.is_expired(now));
        self.live.expire(now)
    }

    fn holdings(&self) -> &dyn Holdings {
        self.live.holdings()
    }
}

impl Durable for SwarmStore {
    fn pending_commits(&self) -> Vec<CommitId> {
        let mut commits: Vec<CommitId> = self.undo.iter().map(|u| u.commit).collect();
        commits.dedup();
        commits
    }

    fn recovered(&self) -> Self {
        let mut live = MemoryStore::new(self.limits);
        for (item, own) in self.disk.values() {
            live.restore(item.clone(), *own);
        }
        SwarmStore {
            live,
            disk: self.disk.clone(),
            undo: Vec::new(),
            witness: self.witness.clone(),
            ..*self
        }
    }
}
