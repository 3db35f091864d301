//! `cairn testnet` spread over worker processes, as a user runs it.

use std::process::Command;

/// The binary under test.
const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

#[test]
fn a_network_spread_over_three_processes_finds_every_item() {
    let output = Command::new(CAIRN)
        .args([
            "testnet",
            "--nodes",
            "60",
            "--processes",
            "3",
            "--items",
            "20",
            "--concurrency",
            "8",
            "--json",
        ])
        .output()
        .expect("cairn runs");
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the report is JSON");
    assert_eq!(report["processes"], 3);
    assert_eq!(report["nodes"], 60);
    assert_eq!(report["failed_joins"], 0);
    assert_eq!(report["puts"]["succeeded"], 20);
    assert_eq!(report["gets"]["attempted"], 20);
    assert_eq!(report["gets"]["succeeded"], 20, "{report}");
    // Every process's nodes are counted: three budgets, and the requests of all of them.
    assert!(report["connection_budget"].as_u64().unwrap_or(0) >= 3 * 16);
    assert!(report["messages"].as_u64().unwrap_or(0) > 0);
    // Throughput is measured over each stage.
    assert!(
        report["puts_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    assert!(
        report["gets_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
}

#[test]
fn a_worker_is_not_for_use_by_hand_and_a_bad_process_count_is_one_line() {
    let help = Command::new(CAIRN).arg("--help").output().expect("runs");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("testnet-worker"));

    let zero = Command::new(CAIRN)
        .args(["testnet", "--processes", "0"])
        .output()
        .expect("runs");
    assert!(!zero.status.success());
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert!(
        stderr.contains("--processes must be at least 1"),
        "{stderr}"
    );

    // The dashboard shows a network run in one process: asking for more is refused up front.
    let spread = Command::new(CAIRN)
        .args(["testnet", "--serve", "--processes", "2"])
        .output()
        .expect("runs");
    assert!(!spread.status.success());
    let stderr = String::from_utf8_lossy(&spread.stderr);
    assert!(
        stderr.contains("--serve runs every node in this process"),
        "{stderr}"
    );
}
