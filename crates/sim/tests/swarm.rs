//! The swarm test's fixed seeds (`cairn-sim swarm --seed S` replays each), the proof that the
//! checker can fail, and the seeds of what the swarm found (each a regression test).

use cairn_sim::swarm::{self, Build, Invariant, Options, Outcome};

/// Runs `seed` and fails with its report (the seed, the invariant, the replay command) if an
/// invariant broke.
fn holds(seed: u64) -> Outcome {
    let outcome = swarm::run(seed);
    if let Some(failure) = outcome.failure() {
        panic!("{failure}");
    }
    outcome
}

#[test]
fn fixed_seeds_break_no_invariant() {
    for seed in [1, 2, 3] {
        let outcome = holds(seed);
        assert!(outcome.acknowledged > 0, "seed {seed} acknowledged no put");
        assert!(outcome.gets > 0, "seed {seed} ended no get");
    }
}

#[test]
fn a_seed_replays_exactly() {
    let seed = 4;
    let (a, b) = (swarm::run(seed), swarm::run(seed));
    let fingerprint = |o: &Outcome| {
        (
            o.nodes,
            o.operations,
            o.acknowledged,
            o.gets,
            o.faults,
            o.messages,
            o.violation.clone(),
        )
    };
    assert_eq!(fingerprint(&a), fingerprint(&b), "seed {seed}");
    assert!(a.messages > 0);
}

#[test]
fn a_store_that_drops_acknowledged_items_is_caught() {
    let seed = 1;
    let options = Options {
        build: Build::DropsAcknowledged,
        ..Options::default()
    };
    let outcome = swarm::run_with(seed, options);
    let violation = outcome.violation.as_ref();
    assert_eq!(
        violation.map(|v| v.invariant),
        Some(Invariant::AcknowledgedPutVisible),
        "seed {seed}: {violation:?}"
    );
    let failure = outcome.failure().unwrap_or_default();
    assert!(failure.contains("cargo run --release -p cairn-sim -- swarm --seed 1"));
}
