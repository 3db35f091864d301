//! Who may use a node's HTTP API, through real HTTP to a real `cairn node`: a page that
//! rebinds its name (evil `Host`), a cross-site write (evil `Origin`, a `text/plain` simple
//! request among them), a change without the token to an API bound beyond loopback; and the
//! honest uses beside each refusal: the CLI with its token, a same-origin page's POST, and
//! `/metrics` on `--metrics ADDR` for a Prometheus elsewhere.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{CAIRN, free_addr, spawn_node, temp_dir};

/// A `cairn node`, killed when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One raw HTTP/1.1 request with exactly these headers; the status and the body.
fn request(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let text = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answered");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {answer}"));
    (status, answer)
}

/// Waits (at most 60 s) until `GET /v1/status` answers 200 at `addr`.
fn wait_for(addr: SocketAddr) {
    let started = Instant::now();
    loop {
        if TcpStream::connect(addr).is_ok() {
            let head = format!("GET /v1/status HTTP/1.1\r\nHost: {addr}");
            if request(addr, &head, "").0 == 200 {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the API at {addr} never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cairn(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(CAIRN);
    command.args(args).env_remove("CAIRN_API_TOKEN");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("cairn runs")
}

#[test]
fn a_loopback_api_refuses_rebound_hosts_and_cross_site_writes() {
    let (listen, api, metrics) = (free_addr(), free_addr(), free_addr());
    let dir = temp_dir("access-loopback");
    let _node = Node(spawn_node(
        &dir,
        listen,
        api,
        &["--metrics", &metrics.to_string()],
    ));
    wait_for(api);

    // DNS rebinding: the page's own name in Host, even for a read.
    let (status, body) = request(
        api,
        "GET /v1/status HTTP/1.1\r\nHost: rebind.evil.example",
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("DNS rebinding"), "{body}");
    let head = "PUT /v1/items/x HTTP/1.1\r\nHost: rebind.evil.example:7401\r\nOrigin: https://evil.example";
    assert_eq!(request(api, head, "owned").0, 403);

    // A cross-site write with the right Host, and the "simple" text/plain kind.
    let head = format!("PUT /v1/items/x HTTP/1.1\r\nHost: {api}\r\nOrigin: https://evil.example");
    let (status, body) = request(api, &head, "owned");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("api_allowed_origins"), "{body}");
    let head = format!(
        "POST /v1/blobs HTTP/1.1\r\nHost: localhost:{}\r\nOrigin: http://evil.example\r\nContent-Type: text/plain",
        api.port()
    );
    assert_eq!(request(api, &head, "owned").0, 403);

    // The same page's own POST (the dashboard's), under each loopback name: served.
    for host in [api.to_string(), format!("localhost:{}", api.port())] {
        let head = format!(
            "POST /v1/blobs HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Type: text/plain"
        );
        let (status, body) = request(api, &head, "mine");
        assert_eq!(status, 200, "{host}: {body}");
    }
    // A program's request, with no Origin: served, no token needed on loopback.
    let put = cairn(&["put", "greeting", "hi", "--api", &api.to_string()], &[]);
    assert!(put.status.success(), "{put:?}");

    // /metrics alone on its own address, whatever Host a remote Prometheus sends.
    let (status, body) = request(
        metrics,
        "GET /metrics HTTP/1.1\r\nHost: node7.example:9",
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("cairn_lookups_total"), "{body}");
    let (status, _) = request(
        metrics,
        &format!("GET /v1/status HTTP/1.1\r\nHost: {metrics}"),
        "",
    );
    assert_eq!(status, 404, "the metrics address serves nothing else");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_api_bound_beyond_loopback_takes_changes_with_its_token_only() {
    // Bound to every address (a non-loopback bind), reached through 127.0.0.1.
    let port = TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = temp_dir("access-token");
    let _node = Node(
        Command::new(CAIRN)
            .args(["node", "--listen", &free_addr().to_string()])
            .args(["--api", &format!("0.0.0.0:{port}")])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("cairn node starts"),
    );
    wait_for(api);
    let token = std::fs::read_to_string(dir.join("api.token")).expect("made on first run");
    let token = token.trim();
    assert_eq!(token.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("api.token"))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Without the token, or with a wrong one: 401.
    let head = format!("PUT /v1/items/x HTTP/1.1\r\nHost: {api}");
    let (status, body) = request(api, &head, "v");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("api.token"), "{body}");
    let wrong = format!("{head}\r\nAuthorization: Bearer {}", "0".repeat(64));
    assert_eq!(request(api, &wrong, "v").0, 401);
    let put = cairn(
        &[
            "put",
            "x",
            "v",
            "--api",
            &api.to_string(),
            "--token",
            "nope",
        ],
        &[],
    );
    assert!(!put.status.success());
    assert!(
        String::from_utf8_lossy(&put.stderr).contains("token"),
        "{put:?}"
    );
    // Reads need none; any IP address is a fine Host on an all-addresses bind.
    let head = format!("GET /v1/status HTTP/1.1\r\nHost: 192.0.2.7:{port}");
    assert_eq!(request(api, &head, "").0, 200);

    // With it: by header, and from the CLI by --data-dir, --token and CAIRN_API_TOKEN.
    let right = format!("PUT /v1/items/x HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {token}");
    assert_eq!(request(api, &right, "v").0, 200);
    let api_text = api.to_string();
    let dir_text = dir.to_string_lossy().into_owned();
    for (args, envs) in [
        (vec!["--data-dir", dir_text.as_str()], vec![]),
        (vec!["--token", token], vec![]),
        (vec![], vec![("CAIRN_API_TOKEN", token)]),
    ] {
        let mut all = vec!["put", "greeting", "hello", "--api", api_text.as_str()];
        all.extend(&args);
        let put = cairn(&all, &envs);
        assert!(put.status.success(), "{args:?} {envs:?}: {put:?}");
        let address = String::from_utf8_lossy(&put.stdout).trim().to_owned();
        let get = cairn(&["get", &address, "--api", &api_text], &[]);
        assert_eq!(get.stdout, b"hello", "{get:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_token_file_stops_the_node_and_is_named() {
    // A corrupt token file is never replaced (it may be the one clients hold): the node stops
    // and names it. That an API beyond loopback will not start without any token is the
    // guard's own test (`beyond_loopback_needs_a_token_to_start` in the node's api/access.rs).
    let dir = temp_dir("access-no-token");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("api.token"), "not a token\n").expect("written");
    let out = Command::new(CAIRN)
        .args([
            "node",
            "--listen",
            &free_addr().to_string(),
            "--api",
            "0.0.0.0:0",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .expect("cairn node runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("api.token"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_origin_the_config_allows_may_change_things_with_cors() {
    let (listen, api) = (free_addr(), free_addr());
    let dir = temp_dir("access-origins");
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("cairn.toml");
    std::fs::write(
        &config,
        "api_allowed_origins = [\"https://app.example\"]\napi_allowed_hosts = [\"node.lan\"]\n",
    )
    .expect("written");
    let config = config.to_string_lossy().into_owned();
    let _node = Node(spawn_node(
        &dir.join("data"),
        listen,
        api,
        &["--config", &config],
    ));
    wait_for(api);

    // The browser's preflight, then the write itself: allowed, with the CORS headers.
    let head = format!(
        "OPTIONS /v1/items/x HTTP/1.1\r\nHost: {api}\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: PUT"
    );
    let (status, answer) = request(api, &head, "");
    assert_eq!(status, 204, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("access-control-allow-origin: https://app.example"),
        "{answer}"
    );
    assert!(lower.contains("access-control-allow-methods"), "{answer}");
    let head = format!("PUT /v1/items/x HTTP/1.1\r\nHost: {api}\r\nOrigin: https://app.example");
    let (status, answer) = request(api, &head, "v");
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: https://app.example")
    );
    // Another origin still is not, and gets no CORS header.
    let head = format!("PUT /v1/items/x HTTP/1.1\r\nHost: {api}\r\nOrigin: https://other.example");
    assert_eq!(request(api, &head, "v").0, 403);
    // A host name the config lists (a reverse proxy's) is served...
    let head = format!("GET /v1/status HTTP/1.1\r\nHost: NODE.lan.:{}", api.port());
    assert_eq!(request(api, &head, "").0, 200);
    // ...but a change through it needs the token, though the API is on loopback: the proxy
    // passes on requests from anywhere.
    let head = format!("PUT /v1/items/x HTTP/1.1\r\nHost: node.lan:{}", api.port());
    assert_eq!(request(api, &head, "v").0, 401);
    let token = std::fs::read_to_string(dir.join("data").join("api.token")).expect("a token");
    let head = format!(
        "PUT /v1/items/x HTTP/1.1\r\nHost: node.lan:{}\r\nAuthorization: Bearer {}",
        api.port(),
        token.trim()
    );
    assert_eq!(request(api, &head, "v").0, 200);
    // Addressed to the API itself, a change on loopback needs none.
    let head = format!("PUT /v1/items/y HTTP/1.1\r\nHost: {api}");
    assert_eq!(request(api, &head, "v").0, 200);
    let _ = std::fs::remove_dir_all(&dir);
}
