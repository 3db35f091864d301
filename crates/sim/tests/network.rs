//! The main integration test: a seeded 1,000-node network in the simulator.

use cairn_sim::scenario::{self, Report, Scenario};

fn run(seed: u64) -> Report {
    let scenario = Scenario {
        nodes: 1_000,
        items: 100,
        seed,
        ..Scenario::default()
    };
    println!("seed {seed}");
    let report = scenario::run(&scenario);
    print!("{report}");
    report
}

#[test]
fn a_thousand_nodes_find_every_item_and_survive_losing_30_percent() {
    let seed = 7;
    let first = run(seed);
    assert_eq!(first.network.failed_joins, 0);
    assert_eq!(
        first.network.gets.attempted, 200,
        "100 signed and 100 immutable items"
    );
    assert_eq!(
        first.network.gets.succeeded, 200,
        "every get succeeds with all nodes alive"
    );
    assert_eq!(first.killed, 300);
    assert!(
        first.after_kill.success_percent >= 99.9,
        "after the kill only {:.2}% of gets succeeded",
        first.after_kill.success_percent
    );

    // The same seed replays the same run: every figure but the wall time is equal.
    let second = run(seed);
    assert_eq!(
        Report {
            wall: first.wall,
            ..second
        },
        first
    );
}

#[test]
fn different_seeds_give_different_runs() {
    let small = |seed| {
        let scenario = Scenario {
            nodes: 100,
            items: 10,
            seed,
            ..Scenario::default()
        };
        scenario::run(&scenario)
    };
    let (a, b) = (small(1), small(2));
    assert_eq!(a.network.gets.succeeded, 20);
    assert_ne!(Report { wall: a.wall, ..b }, a, "the seed reaches the run");
}

#[test]
fn disjoint_paths_find_every_item_past_colluding_adversaries() {
    let run = |paths| {
        let scenario = Scenario {
            nodes: 300,
            items: 20,
            seed: 5,
            malicious_fraction: 0.2,
            kill_fraction: 0.0,
            config: cairn_core::Config {
                disjoint_paths: std::num::NonZeroUsize::new(paths).expect("non-zero"),
                ..cairn_core::Config::default()
            },
            ..Scenario::default()
        };
        println!("seed 5, {paths} path(s)");
        let report = scenario::run(&scenario);
        print!("{report}");
        report
    };
    let disjoint = run(4);
    assert_eq!(disjoint.malicious, 60);
    assert_eq!(
        disjoint.network.gets.succeeded, disjoint.network.gets.attempted,
        "four disjoint paths find every item"
    );
}
