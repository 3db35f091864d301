//! How long a `cairn node` takes to stop gracefully on SIGINT and on SIGTERM, after a put: the
//! timing the graceful-stop tests deliberately do not assert.
//!
//! Run: `cargo bench -p cairn --bench stop` (starts the built binary on loopback, five times
//! per signal, and prints every time and the median).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cairn_node::client::ApiClient;
use common::{free_addr, spawn_node, temp_dir, wait_for_api};

/// Starts a node, waits for its API, puts one item, signals it and times the exit.
fn one_stop(signal: &str, rt: &tokio::runtime::Runtime) -> Duration {
    let dir = temp_dir("bench-stop");
    let (listen, api) = (free_addr(), free_addr());
    let mut child = spawn_node(&dir, listen, api, &[]);
    wait_for_api(rt, api);
    let client = ApiClient::new(api);
    rt.block_on(client.put("bench", "value".into(), None))
        .expect("put");
    let stopping = Instant::now();
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("the node exits");
    let took = stopping.elapsed();
    assert!(exit.success(), "exit status {exit}");
    let _ = std::fs::remove_dir_all(&dir);
    took
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("cairn node: time from the signal to exit 0 (one item put first)");
    for signal in ["-INT", "-TERM"] {
        let mut times: Vec<Duration> = (0..5).map(|_| one_stop(signal, &rt)).collect();
        let shown: Vec<String> = times.iter().map(|t| format!("{t:.0?}")).collect();
        times.sort();
        println!(
            "  SIG{}: median {:.0?} ({})",
            &signal[1..],
            times[times.len() / 2],
            shown.join(", ")
        );
    }
}
