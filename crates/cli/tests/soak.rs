//! `cairn testnet --soak`: a short soak with workers killed and nodes stopped loses no
//! acknowledged write, and its final check does catch a loss when one is made on purpose.

use std::process::Command;
use std::time::Duration;

use cairn_testnet::WorkerCommand;
use cairn_testnet::soak::{SoakPlan, soak};

/// The binary under test.
const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

#[test]
fn a_short_soak_with_kills_and_stops_loses_nothing() {
    let output = Command::new(CAIRN)
        .args([
            "testnet",
            "--soak",
            "8s",
            "--nodes",
            "20",
            "--processes",
            "2",
        ])
        .args(["--items", "30", "--concurrency", "8", "--chaos-every", "1s"])
        .args([
            "--downtime",
            "1s",
            "--report-every",
            "4s",
            "--settle",
            "2s",
            "--json",
        ])
        .output()
        .expect("cairn runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The report (stdout) names what was lost, if anything was.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stderr: {stderr}\nreport: {stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the report is JSON");
    assert_eq!(report["nodes"], 20);
    assert_eq!(report["processes"], 2);
    assert_eq!(report["lost"], serde_json::json!([]), "{report}");
    let total = &report["total"];
    // Chaos kills a worker and stops a node in turn (the load runs until each has happened),
    // and brings each back before the check.
    assert!(total["kills"].as_u64().unwrap_or(0) >= 1, "{total}");
    assert_eq!(total["restarts"], total["kills"], "{total}");
    assert!(total["stops"].as_u64().unwrap_or(0) >= 1, "{total}");
    assert_eq!(total["starts"], total["stops"], "{total}");
    assert!(
        report["acknowledged_puts"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(report["swept"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(
        total["get"]["attempted"].as_u64().unwrap_or(0) > 0,
        "{total}"
    );
    // Every failed get attempt is counted under one reason.
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("a count: {total}"));
    let failures = &total["get_failures"];
    assert_eq!(
        count(&failures["wrong_copy"]) + count(&failures["not_found"]) + count(&failures["errors"]),
        count(&total["get"]["attempted"]) - count(&total["get"]["succeeded"]),
        "{total}"
    );
    // A line per interval, on stderr with --json.
    assert!(stderr.contains("minute   1:"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_check_catches_nodes_restarted_on_wiped_directories() {
    let plan = SoakPlan {
        nodes: 8,
        processes: Some(2),
        slots: 16,
        seed: 5,
        concurrency: 4,
        duration: Duration::from_secs(3),
        interval: Duration::from_secs(3),
        // No chaos during the load: the loss is the wipe's alone.
        chaos_every: Duration::from_secs(3_600),
        downtime: Duration::from_secs(1),
        watch_for: Duration::from_millis(200),
        settle: Duration::from_secs(1),
        data: None,
        worker: WorkerCommand {
            program: CAIRN.into(),
            args: vec!["testnet-worker".into()],
        },
        datagrams: true,
        wipe_before_sweep: true,
    };
    let report = soak(&plan, &mut |_| {}).await.expect("the soak runs");
    assert!(report.acknowledged_puts > 0, "{report:?}");
    assert!(!report.lost.is_empty(), "the wipe lost nothing? {report:?}");
    for lost in &report.lost {
        assert_eq!(lost.key.len(), 128, "{lost:?}");
        assert!(lost.found.starts_with("not found"), "{lost:?}");
    }
}
