//! Helpers shared by the tests that run the built `cairn` binary.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("has an address")
}

/// An empty directory of this test process's own under the system temp directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Starts `cairn node` on these addresses with this data directory, plus `extra` arguments.
#[allow(dead_code)]
pub fn spawn_node(dir: &Path, listen: SocketAddr, api: SocketAddr, extra: &[&str]) -> Child {
    spawn_node_logging(dir, listen, api, extra, "warn", Stdio::null())
}

/// `cairn node` on `dir`, listening for peers on `listen` and serving its API on `api`, not
/// yet run.
pub fn node_command(dir: &Path, listen: SocketAddr, api: SocketAddr) -> Command {
    let mut command = Command::new(CAIRN);
    command
        .args(["node", "--listen", &listen.to_string()])
        .args(["--api", &api.to_string()])
        .arg("--data-dir")
        .arg(dir);
    command
}

/// `cairn put NAME VALUE` through the API at `api`; returns what it printed (the item's
/// `PUBLIC_KEY/NAME`), failing the test if it failed.
#[allow(dead_code)]
pub fn put(api: &str, name: &str, value: &str) -> String {
    let put = Command::new(CAIRN)
        .args(["put", name, value, "--api", api])
        .output()
        .expect("cairn put runs");
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    String::from_utf8_lossy(&put.stdout).trim().to_owned()
}

/// Starts `cairn node` as [`spawn_node`] does, logging by `rust_log` to `stderr`.
pub fn spawn_node_logging(
    dir: &Path,
    listen: SocketAddr,
    api: SocketAddr,
    extra: &[&str],
    rust_log: &str,
    stderr: Stdio,
) -> Child {
    node_command(dir, listen, api)
        .args(extra)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("cairn node starts")
}

/// Waits (at most 2 minutes) until the API at `api` answers, and returns its status.
#[allow(dead_code)]
pub fn wait_for_api(rt: &tokio::runtime::Runtime, api: SocketAddr) -> cairn_node::Status {
    let client = cairn_node::client::ApiClient::new(api);
    let started = std::time::Instant::now();
    loop {
        if let Ok(status) = rt.block_on(client.status()) {
            return status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the node at {api} never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits (at most 2 minutes) until the node whose API is at `api` has `at_least` contacts in
/// its routing table: a node answers its API before it has joined anyone.
#[allow(dead_code)]
pub fn wait_for_peers(rt: &tokio::runtime::Runtime, api: SocketAddr, at_least: usize) {
    let client = cairn_node::client::ApiClient::new(api);
    let started = std::time::Instant::now();
    while rt.block_on(client.status()).map_or(0, |s| s.peers) < at_least {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the node at {api} never had {at_least} contacts"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
