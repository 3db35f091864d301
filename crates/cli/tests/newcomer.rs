//! What a newcomer trips on, through the built binary: a forgotten VALUE, an empty name, a
//! ttl out of range, host names for --listen and --api, and what each exit code means
//! (0 done, 1 the command failed, 2 the command line is wrong).

mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{CAIRN, free_addr, temp_dir};

/// A `cairn node`, killed when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cairn(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(CAIRN)
        .args(args)
        .env_remove("CAIRN_API_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("written");
    drop(input);
    child.wait_with_output().expect("cairn ends")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A node started with host names for --listen and --api, and its API as `localhost:PORT`.
fn node_by_name(name: &str) -> (Node, String) {
    let api = format!("localhost:{}", free_addr().port());
    let listen = format!("localhost:{}", free_addr().port());
    let dir = temp_dir(name);
    let node = Node(
        Command::new(CAIRN)
            .args(["node", "--listen", &listen, "--api", &api])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cairn node starts"),
    );
    let started = Instant::now();
    while !cairn(&["status", "--api", &api], b"").status.success() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node at {api} never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (node, api)
}

#[test]
fn host_names_empty_values_and_names_and_ttl_limits() {
    let (_node, api) = node_by_name("newcomer");
    let put = |args: &[&str], stdin: &[u8]| {
        let mut all = vec!["put"];
        all.extend(args);
        all.extend(["--api", &api]);
        cairn(&all, stdin)
    };

    // A forgotten VALUE with nothing on stdin publishes nothing, and says what to do.
    let out = put(&["greeting"], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("--empty"), "{}", stderr(&out));
    let out = put(&["greeting", ""], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Asked for: --empty, or `-` said explicitly.
    assert!(put(&["greeting", "--empty"], b"").status.success());
    assert!(put(&["greeting", "-"], b"").status.success());
    // A value on stdin without VALUE still works.
    let out = put(&["greeting"], b"from stdin");
    assert!(out.status.success(), "{out:?}");
    let address = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let get = cairn(&["get", &address, "--api", &api], b"");
    assert_eq!(get.stdout, b"from stdin");

    // An empty name is a bad request, not "no such endpoint".
    let out = put(&["", "v"], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("name is empty"), "{}", stderr(&out));
    let public_key = address.split('/').next().expect("PUBLIC_KEY/NAME");
    let out = cairn(&["get", &format!("{public_key}/"), "--api", &api], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("name is empty"), "{}", stderr(&out));

    // A ttl past ten years, or negative, is a ttl error on the command line (exit 2).
    for ttl in ["99999999999d", "3651d", "-5"] {
        let out = put(&["greeting", "v", "--ttl", ttl], b"");
        assert_eq!(out.status.code(), Some(2), "{ttl}: {out:?}");
        assert!(stderr(&out).contains("--ttl"), "{ttl}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("unexpected argument"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        put(&["greeting", "v", "--ttl", "3650d"], b"")
            .status
            .success()
    );
}

#[test]
fn exit_codes_tell_a_wrong_command_line_from_a_failed_command() {
    // 2: the command line is wrong (clap's message with the usage).
    let out = cairn(&["put", "--no-such-flag"], b"");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // 1: the command failed (one line, `cairn: ...`).
    let nobody = free_addr().to_string();
    let out = cairn(&["status", "--api", &nobody], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("cairn: "), "{}", stderr(&out));
    // 0: done.
    assert_eq!(cairn(&["--version"], b"").status.code(), Some(0));
}
