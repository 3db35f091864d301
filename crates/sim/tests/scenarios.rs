//! The scenarios over time at small scale: churn for an hour, a partition and its heal, and
//! plots of their reports. Each prints its seed and report; the same seed gives the same
//! figures.

use std::time::Duration;

use cairn_sim::churn::{self, Churn, ChurnReport};
use cairn_sim::partition::{self, Partition};
use cairn_sim::plot;
use cairn_sim::scenario::Scenario;

fn base(nodes: usize, items: usize, seed: u64) -> Scenario {
    println!("seed {seed}");
    Scenario {
        nodes,
        items,
        seed,
        ..Scenario::default()
    }
}

/// An hour of churn in 200 nodes with sessions of 20 minutes at the median: about one node
/// in two leaves within the hour.
fn churn(seed: u64) -> ChurnReport {
    let churn = Churn {
        base: base(200, 20, seed),
        duration: Duration::from_secs(3_600),
        median_session: Duration::from_secs(1_200),
        gets_per_minute: 10,
        ..Churn::default()
    };
    let report = churn::run(&churn);
    print!("{report}");
    report
}

#[test]
fn gets_succeed_through_an_hour_of_churn_and_the_same_seed_replays_it() {
    let report = churn(3);
    assert_eq!(report.windows.len(), 6);
    assert!(report.left >= 60, "a good part of the network left");
    assert_eq!(report.left, report.joined, "each leaver is replaced");
    assert_eq!(report.failed_joins, 0);
    for window in &report.windows {
        assert!(window.left > 0, "churn in every window");
        assert!(window.gets.attempted + window.abandoned >= 100);
    }
    assert_eq!(
        report.gets.succeeded, report.gets.attempted,
        "every get that ran to its end found its item"
    );
    assert!(report.messages > 0 && report.connections > 0);
    let mut again = churn(3);
    again.wall = report.wall;
    assert_eq!(again, report);
}

#[test]
fn after_a_partition_heals_every_item_is_found_from_both_sides_at_its_newest_version() {
    let partition = Partition {
        base: base(200, 20, 5),
        cut: Duration::from_secs(600),
        settle: Duration::from_secs(3_700),
    };
    let report = partition::run(&partition);
    print!("{report}");
    assert_eq!(report.sides, [100, 100]);
    for side in 0..2 {
        // Each side goes on alone: it puts and finds its own items.
        assert_eq!(report.puts_during[side].succeeded, 20);
        assert_eq!(report.during[side].succeeded, report.during[side].attempted);
        // Old items, updated items and both sides' new ones: 80 in all.
        assert_eq!(report.settled[side].attempted, 80);
        assert_eq!(
            report.settled[side].succeeded, 80,
            "side {side} finds everything, newest versions"
        );
        assert_eq!(report.settled_stale[side], 0);
    }
}

#[test]
fn reports_plot_to_svg_and_a_wrong_report_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("cairn-sim-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let kill = cairn_sim::scenario::run(&base(100, 10, 1));
    let kill_json = dir.join("n100.json");
    std::fs::write(&kill_json, serde_json::to_string(&kill).expect("json")).expect("write");
    let churn_json = dir.join("churn.json");
    let churned = churn::run(&Churn {
        base: base(100, 5, 1),
        duration: Duration::from_secs(1_200),
        gets_per_minute: 2,
        ..Churn::default()
    });
    std::fs::write(&churn_json, serde_json::to_string(&churned).expect("json")).expect("write");

    for (kind, input) in [
        ("cdf", &kill_json),
        ("hops", &kill_json),
        ("churn", &churn_json),
    ] {
        let out = dir.join(format!("{kind}.svg"));
        plot::draw(kind, &out, std::slice::from_ref(input)).expect("plots");
        let svg = std::fs::read_to_string(&out).expect("written");
        assert!(svg.starts_with("<svg"), "{kind} is an SVG");
        assert!(svg.contains("<polyline"), "{kind} has lines");
    }
    let cdf = std::fs::read_to_string(dir.join("cdf.svg")).expect("written");
    assert!(cdf.contains("n100, after the kill"), "series are labelled");

    let wrong =
        plot::draw("cdf", &dir.join("x.svg"), &[churn_json]).expect_err("not a kill report");
    assert!(
        wrong.contains("after_kill") || wrong.contains("get_latencies_ms"),
        "{wrong}"
    );
    let missing = plot::draw("cdf", &dir.join("x.svg"), &[dir.join("nothing.json")])
        .expect_err("no such file");
    assert!(missing.contains("cannot read"), "{missing}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_binary_refuses_bad_options_with_a_one_line_reason() {
    let sim = env!("CARGO_BIN_EXE_cairn-sim");
    for (args, says) in [
        (&["churn", "--hours", "0"][..], "--hours"),
        (&["partition", "--minutes", "0"][..], "--minutes"),
        (&["partition", "--nodes", "1"][..], "--nodes"),
        (&["kill", "--kill", "2"][..], "--kill"),
        (&["--nodes", "0"][..], "--nodes"),
    ] {
        let out = std::process::Command::new(sim)
            .args(args)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("cairn-sim: ") && err.contains(says),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_goal_is_never_met_by_a_run_that_measured_nothing() {
    // One node has nobody to get from but its own items' publisher: no get runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-sim"))
        .args(["churn", "--nodes", "1", "--items", "1", "--hours", "0.1"])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("NOT met") && text.contains("0 gets in all"),
        "{text}"
    );
}
