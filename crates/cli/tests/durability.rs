//! Durability of the built binary: SIGKILL at random moments loses no acknowledged put,
//! SIGINT and SIGTERM stop cleanly, a restarted node keeps its id and rejoins on its own, and
//! a full node refuses with 429 but keeps serving.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_node::client::{ApiClient, ClientError};
use common::{free_addr, spawn_node, temp_dir, wait_for_peers};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

struct Node {
    child: Child,
    api: SocketAddr,
    listen: SocketAddr,
}

impl Node {
    fn start(dir: &Path, listen: SocketAddr, api: SocketAddr, extra: &[&str]) -> Self {
        // The nodes of these tests share one host, where none can show another that it is
        // reachable: servers, as in `cairn testnet`.
        let extra = [&["--mode", "server"], extra].concat();
        let child = spawn_node(dir, listen, api, &extra);
        let node = Node { child, api, listen };
        node.wait_ready();
        node
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        let client = ApiClient::new(self.api);
        let rt = runtime();
        while rt.block_on(client.status()).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&mut self, signal: &str) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts the node acknowledged: the key and the value put.
type Acked = Vec<(String, Vec<u8>)>;

/// A small deterministic generator for the kill timings (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_put() {
    let seed = 2026;
    println!("seed {seed}");
    let mut rng = Lcg(seed);
    let dir = temp_dir("crash");
    let (listen, api) = (free_addr(), free_addr());
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let mut total_attempts = 0usize;
    for cycle in 0..20 {
        let mut node = Node::start(&dir, listen, api, &[]);
        let rt = runtime();
        let client = ApiClient::new(api);
        // Everything acknowledged so far is there and intact.
        let checked = acked.lock().expect("lock").clone();
        for (key, value) in &checked {
            let fetched = rt
                .block_on(client.get_key(key))
                .unwrap_or_else(|e| panic!("cycle {cycle}: {key} lost: {e}"));
            assert_eq!(
                &fetched.value[..],
                &value[..],
                "cycle {cycle}: {key} changed"
            );
        }
        // A steady stream of puts from 4 writers, until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(0usize));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (stop, acked, attempts) = (stop.clone(), acked.clone(), attempts.clone());
                let client = client.clone();
                rt.spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let value = format!("cycle {cycle} writer {w} put {n}").into_bytes();
                        n += 1;
                        *attempts.lock().expect("lock") += 1;
                        match client.put_immutable(value.clone().into()).await {
                            Ok(published) => {
                                acked.lock().expect("lock").push((published.key, value))
                            }
                            Err(ClientError::Unreachable { .. } | ClientError::Protocol { .. }) => {
                                break;
                            }
                            Err(e) => panic!("unexpected refusal: {e}"),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.next(250)));
        let status = node.signal("-KILL");
        assert!(status.is_some(), "SIGKILL ends the node");
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            let _ = rt.block_on(writer);
        }
        total_attempts += *attempts.lock().expect("lock");
    }
    let node = Node::start(&dir, listen, api, &[]);
    let rt = runtime();
    let client = ApiClient::new(node.api);
    let acked = acked.lock().expect("lock").clone();
    for (key, value) in &acked {
        assert_eq!(
            &rt.block_on(client.get_key(key)).expect("present").value[..],
            &value[..]
        );
    }
    println!(
        "20 SIGKILL cycles: {} puts acknowledged of {total_attempts} attempted, all present",
        acked.len()
    );
    assert!(acked.len() >= 20, "the test must actually put things");
}

#[test]
fn sigint_and_sigterm_stop_cleanly_and_a_restart_keeps_id_and_rejoins() {
    let (dir_a, dir_b) = (temp_dir("graceful-a"), temp_dir("graceful-b"));
    let mut a = Node::start(&dir_a, free_addr(), free_addr(), &[]);
    let seed = a.listen.to_string();
    let (listen_b, api_b) = (free_addr(), free_addr());
    let mut b = Node::start(&dir_b, listen_b, api_b, &["--bootstrap", &seed]);
    let rt = runtime();
    let client_b = ApiClient::new(api_b);
    wait_for_peers(&rt, api_b, 1);
    let id_before = rt.block_on(client_b.status()).expect("status").node_id;
    let put = rt
        .block_on(client_b.put("kept", "across restarts".into(), None))
        .expect("put");

    let status = b.signal("-INT").expect("SIGINT stops the node");
    assert!(status.success(), "exit status {status}");
    assert!(
        dir_b.join(cairn_node::snapshot::SNAPSHOT_FILE).exists(),
        "routing table saved"
    );

    // Restart without --bootstrap: same id, the item is there, and it rejoins from its snapshot.
    let b = Node::start(&dir_b, listen_b, api_b, &[]);
    let after = rt.block_on(client_b.status()).expect("status");
    assert_eq!(after.node_id, id_before);
    let got = rt.block_on(client_b.get_key(&put.key)).expect("kept");
    assert_eq!(&got.value[..], b"across restarts");
    // B rejoins from its snapshot alone.
    wait_for_peers(&rt, a.api, 1);
    wait_for_peers(&rt, api_b, 1);
    drop(b);

    let _ = std::fs::remove_file(dir_a.join(cairn_node::snapshot::SNAPSHOT_FILE));
    let status = a.signal("-TERM").expect("SIGTERM stops the node");
    assert!(status.success(), "exit status {status}");
    assert!(
        dir_a.join(cairn_node::snapshot::SNAPSHOT_FILE).exists(),
        "routing table saved at SIGTERM too"
    );
}

#[test]
fn a_full_node_refuses_with_429_and_keeps_serving() {
    let dir = temp_dir("full");
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("cairn.toml");
    std::fs::write(&config, "max_items = 3\n").expect("config written");
    let node = Node::start(
        &dir,
        free_addr(),
        free_addr(),
        &["--config", config.to_str().expect("utf-8")],
    );
    let rt = runtime();
    let client = ApiClient::new(node.api);
    let mut keys = Vec::new();
    for i in 0..3 {
        keys.push(
            rt.block_on(client.put_immutable(format!("item {i}").into()))
                .expect("fits")
                .key,
        );
    }
    match rt.block_on(client.put_immutable("one too many".into())) {
        Err(ClientError::Api { status, .. }) => assert_eq!(status.as_u16(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    for (i, key) in keys.iter().enumerate() {
        let fetched = rt.block_on(client.get_key(key)).expect("still served");
        assert_eq!(&fetched.value[..], format!("item {i}").as_bytes());
    }
}
