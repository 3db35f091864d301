//! `cairn connect` and `cairn listen` through the built binary: two nodes on loopback, bytes
//! piped through standard input and output both ways. `tests/nat.rs` does the same through
//! real NATs, punched and relayed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// Kills the nodes when the test ends, however it ends.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn public_key(api: SocketAddr) -> String {
    let id = Command::new(CAIRN)
        .args(["id", "--api", &api.to_string()])
        .output()
        .expect("cairn id runs");
    let text = String::from_utf8_lossy(&id.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("public_key "))
        .unwrap_or_else(|| panic!("no public key in {text:?}"))
        .trim()
        .to_owned()
}

/// `cairn ARGS --api API` with `input` as its standard input, `output` its standard output.
fn cairn(
    args: &[&str],
    api: SocketAddr,
    input: &std::path::Path,
    output: &std::path::Path,
) -> Command {
    let mut command = Command::new(CAIRN);
    command
        .args(args)
        .args(["--api", &api.to_string()])
        .stdin(std::fs::File::open(input).expect("opens the input"))
        .stdout(std::fs::File::create(output).expect("creates the output"))
        .stderr(Stdio::piped());
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Sends a WebSocket upgrade of `path` to the API at `api` with `origin`: the status line.
fn upgrade_from(api: SocketAddr, path: &str, origin: &str) -> String {
    let mut socket = TcpStream::connect(api).expect("connects");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("sets a timeout");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: {origin}\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).expect("sends");
    let mut answer = [0u8; 512];
    let n = socket.read(&mut answer).expect("reads");
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn connect_and_listen_pipe_bytes_both_ways_between_two_nodes_by_key() {
    let dir = temp_dir("streams");
    let (a_listen, a_api, b_listen, b_api) = (free_addr(), free_addr(), free_addr(), free_addr());
    let a = spawn_node(&dir.join("a"), a_listen, a_api, &["--mode", "server"]);
    let b_bootstrap = a_listen.to_string();
    let b = spawn_node(
        &dir.join("b"),
        b_listen,
        b_api,
        &["--mode", "server", "--bootstrap", &b_bootstrap],
    );
    let _nodes = Nodes(vec![a, b]);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    // A finds B by its key in A's routing table, so both must have met first.
    wait_for_peers(&rt, a_api, 1);
    wait_for_peers(&rt, b_api, 1);
    let b_key = public_key(b_api);

    // Nothing listens on B: refused, exit 1, said so.
    let (sent, got) = (dir.join("sent"), dir.join("got"));
    std::fs::write(&sent, b"nobody reads this").expect("writes");
    let refused = cairn(&["connect", &b_key], a_api, &sent, &got)
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("refused"), "{}", stderr(&refused));

    // A web page cannot open a stream through the API (browsers send their Origin); the
    // CLI, which sends none, can.
    let foreign = upgrade_from(
        a_api,
        &format!("/v1/connect/{b_key}"),
        "http://evil.example",
    );
    assert!(foreign.contains(" 403 "), "{foreign}");

    // B listens; A connects and sends 4 MiB while B sends back 100 KiB.
    let to_b: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let to_a: Vec<u8> = (0..100u32 << 10).map(|i| (i % 251) as u8).collect();
    std::fs::write(&sent, &to_b).expect("writes");
    let (reply, b_got) = (dir.join("reply"), dir.join("b_got"));
    std::fs::write(&reply, &to_a).expect("writes");
    let listening = cairn(&["listen"], b_api, &reply, &b_got)
        .spawn()
        .expect("cairn listen starts");
    // The listener is in place once B takes streams: until then A is refused.
    let started = std::time::Instant::now();
    let connected = loop {
        let out = cairn(&["connect", &b_key], a_api, &sent, &got)
            .output()
            .expect("runs");
        if out.status.success() || !stderr(&out).contains("refused") {
            break out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "B never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let listened = listening.wait_with_output().expect("cairn listen ends");
    assert!(
        connected.status.success(),
        "connect: {}",
        stderr(&connected)
    );
    assert!(listened.status.success(), "listen: {}", stderr(&listened));
    assert!(
        stderr(&connected).contains("(direct)"),
        "{}",
        stderr(&connected)
    );
    assert!(
        stderr(&listened).contains("stream from "),
        "{}",
        stderr(&listened)
    );
    assert!(
        std::fs::read(&b_got).expect("reads") == to_b,
        "B got A's bytes"
    );
    assert!(
        std::fs::read(&got).expect("reads") == to_a,
        "A got B's bytes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
