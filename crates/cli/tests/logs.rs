//! `RUST_LOG=cairn::lookup=debug` shows each lookup of a running node from start to end, in
//! one span that names the query, the operation and the key, and ends with its hops and
//! outcome.

mod common;

use std::process::Command;

use common::{CAIRN, free_addr, temp_dir};

#[test]
fn a_lookup_is_logged_from_start_to_end_in_its_span() {
    let (listen, api) = (free_addr(), free_addr());
    let dir = temp_dir("logs");
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let log = dir.join("stderr.log");
    let stderr = std::fs::File::create(&log).expect("a log file");
    let mut node = common::spawn_node_logging(
        &dir.join("data"),
        listen,
        api,
        &[],
        "cairn::lookup=debug",
        stderr.into(),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    common::wait_for_api(&rt, api);
    let put = Command::new(CAIRN)
        .args(["put", "logged", "value", "--api", &api.to_string()])
        .output()
        .expect("cairn put runs");
    assert!(put.status.success());
    let _ = node.kill();
    let _ = node.wait();

    let text = std::fs::read_to_string(&log).expect("the log");
    let started = text
        .lines()
        .find(|l| {
            l.contains("lookup{") && l.contains("operation=\"put\"") && l.ends_with("started")
        })
        .unwrap_or_else(|| panic!("no start of the put's lookup in:\n{text}"));
    let span =
        &started[started.find("lookup{").expect("a span")..started.find('}').expect("its end")];
    assert!(span.contains("query=") && span.contains("key=\""), "{span}");
    let finished = text
        .lines()
        .find(|l| l.contains(span) && l.contains("finished"))
        .unwrap_or_else(|| panic!("no end of {span} in:\n{text}"));
    assert!(
        finished.contains("hops=") && finished.contains("outcome=\"ok\""),
        "{finished}"
    );
    assert!(
        finished.contains("requests=") && finished.contains("ms="),
        "{finished}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
