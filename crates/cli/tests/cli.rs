//! The built `cairn` binary, as a user runs it: three nodes on 127.0.0.1 joined with
//! `--bootstrap`, a `cairn put` on one and a `cairn get` on another, and the error messages.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{CAIRN, free_addr, spawn_node, temp_dir};

/// A `cairn node` process, stopped (SIGTERM) when dropped.
struct NodeProcess {
    child: Child,
    api: SocketAddr,
    listen: SocketAddr,
}

impl NodeProcess {
    fn start(name: &str, bootstrap: Option<SocketAddr>) -> Self {
        let (listen, api) = (free_addr(), free_addr());
        let seed = bootstrap.map(|s| s.to_string());
        // Every node of these tests is on one host, where none can show another that it is
        // reachable (a probe must come from another IP than the server asked): they run as
        // servers, as `cairn testnet`'s nodes do.
        let mut extra: Vec<&str> = vec!["--mode", "server"];
        if let Some(seed) = &seed {
            extra.extend(["--bootstrap", seed.as_str()]);
        }
        let child = spawn_node(&temp_dir(name), listen, api, &extra);
        let node = NodeProcess { child, api, listen };
        node.wait_until(|status| status.contains("node_id"));
        node
    }

    fn cairn(&self, args: &[&str]) -> Output {
        Command::new(CAIRN)
            .args(args)
            .args(["--api", &self.api.to_string()])
            .output()
            .expect("cairn runs")
    }

    /// Polls `cairn status` until `ready` holds, for at most 20 s.
    fn wait_until(&self, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let out = self.cairn(&["status"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && ready(&text) {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node not ready: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "node did not stop within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peers(status: &str) -> usize {
    status
        .lines()
        .find_map(|l| l.strip_prefix("peers"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn three_nodes_put_on_one_get_on_another() {
    let first = NodeProcess::start("a", None);
    let second = NodeProcess::start("b", Some(first.listen));
    let mut third = NodeProcess::start("c", Some(first.listen));
    third.wait_until(|s| peers(s) >= 1);
    first.wait_until(|s| peers(s) >= 2);

    let put = first.cairn(&["put", "greeting", "hello from the first node"]);
    assert!(
        put.status.success(),
        "put failed: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let address = String::from_utf8_lossy(&put.stdout).trim().to_owned();
    assert!(
        address.contains('/'),
        "put prints PUBLIC_KEY/NAME, got {address:?}"
    );

    let got = third.cairn(&["get", &address]);
    assert!(
        got.status.success(),
        "get failed: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(got.stdout, b"hello from the first node");

    // An immutable item from stdin, fetched by key on another node.
    let mut put = Command::new(CAIRN)
        .args(["put", "--immutable", "-", "--api", &second.api.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("runs");
    std::io::Write::write_all(&mut put.stdin.take().expect("stdin"), b"\x00binary\xff")
        .expect("writes");
    let out = put.wait_with_output().expect("finishes");
    assert!(out.status.success());
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(key.len(), 128);
    assert_eq!(first.cairn(&["get", &key]).stdout, b"\x00binary\xff");

    assert!(
        third.terminate().success(),
        "SIGTERM stops the node cleanly"
    );
}

#[test]
fn errors_are_one_clear_line_and_a_nonzero_exit() {
    let node = NodeProcess::start("errors", None);
    let missing = "00".repeat(64);
    let out = node.cairn(&["get", &missing]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let bad = node.cairn(&["get", "nothex"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad key"));

    let nobody = free_addr().to_string();
    let out = Command::new(CAIRN)
        .args(["status", "--api", &nobody])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach") && stderr.contains(&nobody),
        "{stderr}"
    );

    // Binding the listen address of a running node fails and names it.
    let taken = node.listen.to_string();
    let out = Command::new(CAIRN)
        .args([
            "node",
            "--listen",
            &taken,
            "--api",
            &free_addr().to_string(),
        ])
        .arg("--data-dir")
        .arg(temp_dir("taken"))
        .env("RUST_LOG", "error")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {taken}")),
        "{stderr}"
    );
}

#[test]
fn bench_measures_every_kind_of_request_and_says_what_it_needs() {
    let out = Command::new(CAIRN)
        .args([
            "bench",
            "--seconds",
            "0.2",
            "--items",
            "10",
            "--connections",
            "2",
        ])
        .output()
        .expect("cairn bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("handshakes/s"), "{stdout}");
    for kind in [
        "ping",
        "find_node",
        "find_value hit",
        "find_value miss",
        "store immutable",
        "store signed",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} line in {stdout}"));
        assert!(line.contains("/s") && line.contains("p99"), "{line}");
    }
    let bad = Command::new(CAIRN)
        .args(["bench", "--connections", "0"])
        .output()
        .expect("cairn bench runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be above 0"));

    // --only runs one workload, for profiling it.
    let only = Command::new(CAIRN)
        .args([
            "bench",
            "--seconds",
            "0.2",
            "--items",
            "10",
            "--only",
            "find_value_miss",
        ])
        .output()
        .expect("cairn bench runs");
    let stdout = String::from_utf8_lossy(&only.stdout);
    assert!(only.status.success(), "{stdout}");
    assert!(stdout.contains("find_value miss"), "{stdout}");
    for other in [
        "handshakes/s",
        "ping",
        "find_node",
        "find_value hit",
        "store",
    ] {
        assert!(!stdout.contains(other), "{other} ran too: {stdout}");
    }
    let unknown = Command::new(CAIRN)
        .args(["bench", "--only", "find_everything"])
        .output()
        .expect("cairn bench runs");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("is not one of handshake, ping"));
}

#[test]
fn bench_measures_over_datagrams_beside_tcp() {
    let run = |transport: &str, only: &str| {
        let out = Command::new(CAIRN)
            .args(["bench", "--seconds", "0.2", "--items", "10"])
            .args(["--transport", transport, "--only", only])
            .output()
            .expect("cairn bench runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // The row of `workload` over `transport`, and how many requests it says were answered.
    let answered = |stdout: &str, workload: &str, transport: &str| -> u64 {
        let line = stdout
            .lines()
            .find(|l| {
                let mut words = l.split_whitespace();
                l.trim_start().starts_with(workload)
                    && words.nth(workload.split(' ').count()) == Some(transport)
            })
            .unwrap_or_else(|| panic!("no {workload} {transport} row in {stdout}"));
        assert!(line.contains("/s") && line.contains("p99"), "{line}");
        let count = line.split('(').nth(1).and_then(|r| r.split(' ').next());
        count
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no count in {line}"))
    };

    let datagrams = run("datagrams", "ping");
    assert!(answered(&datagrams, "ping", "datagrams") > 0, "{datagrams}");
    assert!(!datagrams.contains(" tcp "), "{datagrams}");

    // A first exchange each time, and stores, which need the client's address proven.
    let handshakes = run("datagrams", "handshake");
    assert!(
        answered(&handshakes, "handshake", "datagrams") > 0,
        "{handshakes}"
    );
    assert!(handshakes.contains("handshakes/s"), "{handshakes}");
    let stores = run("datagrams", "store_signed");
    assert!(
        answered(&stores, "store signed", "datagrams") > 0,
        "{stores}"
    );

    // Both by default, in one table.
    let both = Command::new(CAIRN)
        .args([
            "bench",
            "--seconds",
            "0.2",
            "--items",
            "10",
            "--only",
            "find_value_hit",
        ])
        .output()
        .expect("cairn bench runs");
    let both = String::from_utf8_lossy(&both.stdout);
    assert!(answered(&both, "find_value hit", "tcp") > 0, "{both}");
    assert!(answered(&both, "find_value hit", "datagrams") > 0, "{both}");

    let unknown = Command::new(CAIRN)
        .args(["bench", "--transport", "pigeons"])
        .output()
        .expect("cairn bench runs");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("datagrams"));
}

#[test]
fn delete_get_and_watch_as_a_user_does() {
    use std::io::BufRead;

    let first = NodeProcess::start("del-a", None);
    let second = NodeProcess::start("del-b", Some(first.listen));
    first.wait_until(|s| peers(s) >= 1);
    let put = first.cairn(&["put", "greeting", "one"]);
    assert!(put.status.success());
    let address = String::from_utf8_lossy(&put.stdout).trim().to_owned();

    // `cairn watch` on the other node prints each version as it arrives.
    let mut watch = Command::new(CAIRN)
        .args(["watch", &address, "--api", &second.api.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch runs");
    let (lines, printed) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let next = || {
        printed
            .recv_timeout(Duration::from_secs(20))
            .expect("watch printed a line within 20 s")
    };
    assert_eq!(next(), "one", "the newest version first");

    let deleted = first.cairn(&["delete", "greeting"]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&deleted.stdout).trim(), address);
    assert!(next().starts_with("(deleted, seq "));

    let got = second.cairn(&["get", &address]);
    assert_eq!(got.status.code(), Some(1));
    assert!(got.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(stderr.contains("deleted"), "{stderr}");

    let again = first.cairn(&["delete", "greeting"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("deleted already"));
    let never = first.cairn(&["delete", "never-published"]);
    assert!(!never.status.success());
    assert!(String::from_utf8_lossy(&never.stderr).contains("nothing to delete"));
    let bad = second.cairn(&["watch", "not-a-key"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad key"));

    // A later put brings the name back, and the watch sees it.
    assert!(first.cairn(&["put", "greeting", "two"]).status.success());
    assert_eq!(next(), "two");
    assert_eq!(second.cairn(&["get", &address]).stdout, b"two");
    let _ = watch.kill();
    let _ = watch.wait();
}
