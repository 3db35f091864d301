//! The load generator's ledger: for each name it writes, what a get may find.
//!
//! The rule. Each slot is one signed name of one publisher node. Operations on a slot run one
//! at a time. After an acknowledged put of value V, a get must find V; after an acknowledged
//! delete, it must find the tombstone or nothing. A put or delete that was not acknowledged
//! (it failed, or its worker was killed while it ran) may or may not have landed, so until the
//! next acknowledged one, a get may find what it tried as well as what was acknowledged before.
//! Anything else is a miss: not found, an older version (stale), a deleted item or one never
//! put.

use cairn_node::cairn_core::Key;
use rand::Rng;
use rand::rngs::StdRng;

use crate::member::Fetched;

/// What a get may find in a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    Value(Vec<u8>),
    Deleted,
}

/// How a get's answer compares with the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It found what the ledger allows.
    Good,
    /// It found something else: this says what.
    Miss(String),
    /// The get itself failed (its node stopped, its worker was killed): no evidence either way.
    Failed,
}

struct Slot {
    publisher: usize,
    name: String,
    key: Option<Key>,
    busy: bool,
    accept: Vec<Expect>,
    /// Every value ever put under the name, to tell a stale version from garbage.
    history: Vec<Vec<u8>>,
    acknowledged: bool,
    /// The last acknowledged put's `seq` and replicas, to say what a miss missed.
    last_put: Option<(Option<u64>, usize)>,
}

/// An acknowledged put: its key, `seq` and the replicas that took it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ack {
    pub(super) key: Key,
    pub(super) seq: Option<u64>,
    pub(super) replicas: usize,
}

/// A slot taken by one operation; give it back with [`Ledger::release`] or a `*_done`.
#[derive(Clone, Debug)]
pub(super) struct Claim {
    pub(super) slot: usize,
    pub(super) publisher: usize,
    pub(super) name: String,
    pub(super) key: Option<Key>,
    pub(super) accept: Vec<Expect>,
}

/// The ledger of a soak's writes.
pub(super) struct Ledger {
    slots: Vec<Slot>,
    next_value: u64,
    /// Acknowledged puts and deletes.
    pub(super) acknowledged_puts: u64,
    pub(super) acknowledged_deletes: u64,
}

/// How many random slots an operation looks at for a free one before giving up this time.
const TRIES: usize = 16;

impl Ledger {
    /// `slots` names, spread over `nodes` publishers.
    pub(super) fn new(slots: usize, nodes: usize) -> Ledger {
        let slots = (0..slots.max(1))
            .map(|i| Slot {
                publisher: i % nodes.max(1),
                name: format!("soak-{i}"),
                key: None,
                busy: false,
                accept: Vec::new(),
                history: Vec::new(),
                acknowledged: false,
                last_put: None,
            })
            .collect();
        Ledger {
            slots,
            next_value: 0,
            acknowledged_puts: 0,
            acknowledged_deletes: 0,
        }
    }

    /// Takes a free slot for which `fits` holds.
    pub(super) fn claim(
        &mut self,
        rng: &mut StdRng,
        fits: impl Fn(&Claim) -> bool,
    ) -> Option<Claim> {
        for _ in 0..TRIES {
            let slot = rng.random_range(0..self.slots.len());
            let s = &self.slots[slot];
            if s.busy {
                continue;
            }
            let claim = Claim {
                slot,
                publisher: s.publisher,
                name: s.name.clone(),
                key: s.key,
                accept: s.accept.clone(),
            };
            if fits(&claim) {
                self.slots[slot].busy = true;
                return Some(claim);
            }
        }
        None
    }

    /// A value never put before, for a put to `slot`.
    pub(super) fn new_value(&mut self, slot: usize, rng: &mut StdRng) -> Vec<u8> {
        self.next_value += 1;
        let mut value = format!("soak {slot} v{} ", self.next_value).into_bytes();
        value.extend((0..rng.random_range(8..256)).map(|_| rng.random::<u8>()));
        self.slots[slot].history.push(value.clone());
        value
    }

    /// A put to `slot` of `value` ended: acknowledged, or not.
    pub(super) fn put_done(&mut self, slot: usize, value: Vec<u8>, ack: Option<Ack>) {
        let s = &mut self.slots[slot];
        s.busy = false;
        match ack {
            Some(ack) => {
                s.key = Some(ack.key);
                s.last_put = Some((ack.seq, ack.replicas));
                s.accept = vec![Expect::Value(value)];
                s.acknowledged = true;
                self.acknowledged_puts += 1;
            }
            None => s.accept.push(Expect::Value(value)),
        }
    }

    /// A delete of `slot` ended, acknowledged or not.
    pub(super) fn delete_done(&mut self, slot: usize, acknowledged: bool) {
        let s = &mut self.slots[slot];
        s.busy = false;
        if acknowledged {
            s.accept = vec![Expect::Deleted];
            self.acknowledged_deletes += 1;
        } else {
            s.accept.push(Expect::Deleted);
        }
    }

    /// The `seq` of the last acknowledged put to `slot`, if it said one.
    pub(super) fn acknowledged_seq(&self, slot: usize) -> Option<u64> {
        self.slots[slot].last_put.and_then(|(seq, _)| seq)
    }

    /// Gives `slot` back unchanged.
    pub(super) fn release(&mut self, slot: usize) {
        self.slots[slot].busy = false;
    }

    /// Every slot with an acknowledged write, to check at the end; claimed, so that nothing
    /// changes them meanwhile.
    pub(super) fn claim_all_acknowledged(&mut self) -> Vec<Claim> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.acknowledged && s.key.is_some() && !s.busy)
            .map(|(slot, s)| {
                s.busy = true;
                Claim {
                    slot,
                    publisher: s.publisher,
                    name: s.name.clone(),
                    key: s.key,
                    accept: s.accept.clone(),
                }
            })
            .collect()
    }

    /// How `found` compares with what `slot` allows.
    pub(super) fn judge(&self, slot: usize, accept: &[Expect], found: &Fetched) -> Verdict {
        let history = &self.slots[slot].history;
        let put = match self.slots[slot].last_put {
            Some((Some(seq), replicas)) => format!("seq {seq}, {replicas} replicas"),
            Some((None, replicas)) => format!("{replicas} replicas"),
            None => "none acknowledged".into(),
        };
        let deleted_ok = accept.contains(&Expect::Deleted);
        match found {
            Fetched::Failed(_) => Verdict::Failed,
            Fetched::Value(v) if accept.contains(&Expect::Value(v.clone())) => Verdict::Good,
            Fetched::Value(v) if history.contains(v) => {
                Verdict::Miss(format!("an older version (stale) (last put: {put})"))
            }
            Fetched::Value(_) => Verdict::Miss("a value never put".into()),
            Fetched::NotFound | Fetched::Deleted(_) if deleted_ok => Verdict::Good,
            Fetched::NotFound => Verdict::Miss(format!("not found (last put: {put})")),
            Fetched::Deleted(seq) => Verdict::Miss(format!(
                "deleted (tombstone seq {seq}), though a put was acknowledged after (last put: {put})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn an_acknowledged_put_must_be_found_and_an_unacknowledged_one_may_be() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut ledger = Ledger::new(1, 1);
        let key = Key::from_slice(&[7; 64]).expect("a key");
        let ack = |key| Ack {
            key,
            seq: Some(1),
            replicas: 20,
        };
        let first = ledger.new_value(0, &mut rng);
        ledger.put_done(0, first.clone(), Some(ack(key)));
        let accept = ledger.claim(&mut rng, |_| true).expect("free").accept;
        let v = |b: &Vec<u8>| Fetched::Value(b.clone());
        assert_eq!(ledger.judge(0, &accept, &v(&first)), Verdict::Good);
        assert!(matches!(
            ledger.judge(0, &accept, &Fetched::NotFound),
            Verdict::Miss(_)
        ));
        assert!(matches!(
            ledger.judge(0, &accept, &Fetched::Deleted(1)),
            Verdict::Miss(_)
        ));
        assert_eq!(
            ledger.judge(0, &accept, &Fetched::Failed("x".into())),
            Verdict::Failed
        );
        // An unacknowledged newer put: either version is fine until the next acknowledgement.
        let second = ledger.new_value(0, &mut rng);
        ledger.put_done(0, second.clone(), None);
        let accept = ledger.claim(&mut rng, |_| true).expect("free").accept;
        assert_eq!(ledger.judge(0, &accept, &v(&first)), Verdict::Good);
        assert_eq!(ledger.judge(0, &accept, &v(&second)), Verdict::Good);
        // Once a third is acknowledged, the first two are stale.
        let third = ledger.new_value(0, &mut rng);
        ledger.put_done(0, third, Some(ack(key)));
        let accept = ledger.claim(&mut rng, |_| true).expect("free").accept;
        assert!(
            matches!(ledger.judge(0, &accept, &v(&first)), Verdict::Miss(m) if m.contains("stale"))
        );
        // An acknowledged delete: the tombstone or nothing, never a value.
        ledger.delete_done(0, true);
        let accept = ledger.claim(&mut rng, |_| true).expect("free").accept;
        assert_eq!(ledger.judge(0, &accept, &Fetched::NotFound), Verdict::Good);
        assert_eq!(
            ledger.judge(0, &accept, &Fetched::Deleted(1)),
            Verdict::Good
        );
        assert!(matches!(
            ledger.judge(0, &accept, &v(&second)),
            Verdict::Miss(_)
        ));
    }

    #[test]
    fn a_busy_slot_is_not_claimed_twice() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut ledger = Ledger::new(1, 1);
        assert!(ledger.claim(&mut rng, |_| true).is_some());
        assert!(ledger.claim(&mut rng, |_| true).is_none());
        ledger.release(0);
        assert!(ledger.claim(&mut rng, |_| true).is_some());
    }
}
