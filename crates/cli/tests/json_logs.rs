//! `cairn node --log-format json` writes one JSON object a line for a log system, each with
//! its level, target and fields, and every line from the node's start on names the node.

mod common;

use std::process::Command;

use common::{CAIRN, free_addr, temp_dir};

#[test]
fn json_log_lines_parse_and_name_the_node_once_it_runs() {
    let (listen, api) = (free_addr(), free_addr());
    let dir = temp_dir("json-logs");
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let log = dir.join("stderr.log");
    let stderr = std::fs::File::create(&log).expect("a log file");
    let mut node = common::spawn_node_logging(
        &dir.join("data"),
        listen,
        api,
        &["--log-format", "json"],
        "info",
        stderr.into(),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    common::wait_for_api(&rt, api);
    let id = Command::new(CAIRN)
        .args(["id", "--api", &api.to_string()])
        .output()
        .expect("cairn id runs");
    let id = String::from_utf8_lossy(&id.stdout).to_string();
    let node_id = id
        .lines()
        .find_map(|line| line.strip_prefix("node_id"))
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_else(|| panic!("no node_id in {id:?}"));
    // SIGTERM, as a service manager stops it, so it logs its stop.
    let stopped = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    assert!(node.wait().expect("the node exits").success());

    let text = std::fs::read_to_string(&log).expect("the log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for line in &lines {
        assert!(line["level"].is_string(), "{line}");
        assert!(line["target"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let running = lines
        .iter()
        .position(|line| line["fields"]["message"] == "node running")
        .unwrap_or_else(|| panic!("no \"node running\" in:\n{text}"));
    let after = &lines[running..];
    assert!(after.len() >= 3, "running, stopping, stopped:\n{text}");
    for line in after {
        assert_eq!(line["node_id"], node_id.as_str(), "{line}");
    }
    assert!(
        after
            .iter()
            .any(|line| line["fields"]["message"] == "node stopped"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
