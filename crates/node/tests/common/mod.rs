//! A client of the wire protocol written from `docs/protocol.md` alone: frames and MessagePack
//! are built by hand here (not with cairn's codec), so the tests that use it check the contract
//! itself. Shared by the wire tests, with the waits they share: for a condition
//! ([`wait_for`]) and for things to stop moving ([`until_still`]), each with a bound.

#![allow(dead_code)]

pub mod plane;

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use cairn_core::{Role, Transcript};
use cairn_node::{Config, Dht};
use ed25519_dalek::{Signer, SigningKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A MessagePack value, as much of it as the protocol uses.
pub enum V<'a> {
    Str(&'a str),
    Bin(&'a [u8]),
    Uint(u64),
    Map(Vec<(&'a str, V<'a>)>),
}

pub fn pack(value: &V, out: &mut Vec<u8>) {
    match value {
        V::Str(s) => {
            assert!(s.len() < 256);
            if s.len() < 32 {
                out.push(0xa0 | s.len() as u8);
            } else {
                out.extend([0xd9, s.len() as u8]);
            }
            out.extend_from_slice(s.as_bytes());
        }
        V::Bin(b) => {
            if b.len() < 256 {
                out.extend([0xc4, b.len() as u8]);
            } else {
                out.push(0xc6);
                out.extend((b.len() as u32).to_be_bytes());
            }
            out.extend_from_slice(b);
        }
        V::Uint(n) if *n < 128 => out.push(*n as u8),
        V::Uint(n) => {
            out.push(0xcf);
            out.extend(n.to_be_bytes());
        }
        V::Map(pairs) => {
            out.push(0x80 | pairs.len() as u8);
            for (k, v) in pairs {
                pack(&V::Str(k), out);
                pack(v, out);
            }
        }
    }
}

pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

pub fn msg(pairs: Vec<(&str, V)>) -> Vec<u8> {
    let mut out = Vec::new();
    pack(&V::Map(pairs), &mut out);
    frame(&out)
}

/// Reads one netstring payload; `None` when the connection closed.
pub async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    read_frame_from(stream).await
}

/// Reads one netstring payload from any reader; `None` when it closed.
pub async fn read_frame_from<R: AsyncReadExt + Unpin>(stream: &mut R) -> Option<Vec<u8>> {
    let mut len = 0usize;
    loop {
        let byte = tokio::time::timeout(Duration::from_secs(5), stream.read_u8())
            .await
            .ok()?
            .ok()?;
        match byte {
            b'0'..=b'9' => len = len * 10 + usize::from(byte - b'0'),
            b':' => break,
            _ => panic!("bad frame header byte {byte}"),
        }
    }
    let mut payload = vec![0; len + 1];
    stream.read_exact(&mut payload).await.ok()?;
    assert_eq!(payload.pop(), Some(b','));
    Some(payload)
}

/// Reads one message from the read half of a split stream.
pub async fn read_message_from(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
) -> Option<cairn_core::Message> {
    let payload = read_frame_from(stream).await?;
    Some(cairn_core::wire::decode(&payload).expect("the node sends valid messages"))
}

pub async fn read_message(stream: &mut TcpStream) -> Option<cairn_core::Message> {
    let payload = read_frame(stream).await?;
    Some(cairn_core::wire::decode(&payload).expect("the node sends valid messages"))
}

/// The node closed the connection (EOF, or reset).
pub async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// How long a test waits for a condition before it fails: far beyond what a condition takes
/// on a loaded machine, so that only a hang reaches it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often [`wait_for`] looks again: the node offers no event for its counters and
/// tables, so a wait on them looks at them.
const LOOK_AGAIN: Duration = Duration::from_millis(10);

/// How long a value must stay the same for [`until_still`] to call it still. Stillness is the
/// one condition that can only be seen over time; this is far beyond the node's reaction to a
/// byte that can move (microseconds), so a scheduler's pause on a loaded machine is not
/// mistaken for it.
pub const QUIET: Duration = Duration::from_secs(1);

/// Looks at `sample` until `done` holds for what it gives, and returns that; fails the test,
/// naming `what` and the last value seen, if it does not within [`PATIENCE`].
pub async fn wait_for<S, Fut>(
    what: &str,
    mut sample: impl FnMut() -> Fut,
    done: impl Fn(&S) -> bool,
) -> S
where
    S: Debug,
    Fut: Future<Output = S>,
{
    let mut last = None;
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            let value = sample().await;
            if done(&value) {
                return value;
            }
            last = Some(value);
            tokio::time::sleep(LOOK_AGAIN).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what}: not within {PATIENCE:?}; last seen {last:?}"))
}

/// Waits until `sample` gives the same value twice [`QUIET`] apart, and returns it; fails the
/// test, naming `what` and its last move, if it still moves after `within`.
pub async fn until_still<S, Fut>(what: &str, within: Duration, mut sample: impl FnMut() -> Fut) -> S
where
    S: Debug + PartialEq,
    Fut: Future<Output = S>,
{
    let mut moves = None;
    let waited = tokio::time::timeout(within, async {
        let mut before = sample().await;
        loop {
            tokio::time::sleep(QUIET).await;
            let now = sample().await;
            if now == before {
                return now;
            }
            moves = Some(format!("{before:?} -> {now:?}"));
            before = now;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what}: still moving after {within:?}; last {moves:?}"))
}

pub struct Client {
    pub stream: TcpStream,
    pub key: SigningKey,
    pub transcript_bytes: Option<Vec<u8>>,
    /// The port announced in `hello`: 0 (accepts no connections, never enters a table).
    pub port: u16,
}

/// A node started with `config` on `ip`, any free port. Every test node shares 127.0.0.0/8,
/// whose /24s the routing table's subnet limits would count as few subnets: the limits are
/// lifted, so that a node missing from a table is missing for its role, not for its subnet.
pub async fn start_on(config: Config, ip: &str) -> (Dht, std::net::SocketAddr) {
    let mut config = config.listen(format!("{ip}:0").parse().expect("an address"));
    config.protocol.diversity = cairn_core::Diversity {
        per_bucket: 20,
        per_table: 1_000,
    };
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    (dht, addr)
}

pub async fn node() -> (Dht, std::net::SocketAddr) {
    let config = Config::default().listen("127.0.0.1:0".parse().expect("valid"));
    let dht = cairn_node::start(config).await.expect("starts");
    let addr = dht.status().await.expect("running").listen;
    (dht, addr)
}

/// A node on a free loopback port with a durable store in a fresh temporary directory named
/// after `name` (the caller removes it).
pub async fn durable_node(name: &str) -> (Dht, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("cairn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config::default()
        .listen("127.0.0.1:0".parse().expect("valid"))
        .data_dir(dir.clone());
    (cairn_node::start(config).await.expect("starts"), dir)
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connects");
        Client {
            stream,
            key: SigningKey::from_bytes(&[42; 32]),
            transcript_bytes: None,
            port: 0,
        }
    }

    /// Connects from the loopback address `source` (say 127.0.0.2: "another host").
    pub async fn connect_from(source: &str, addr: std::net::SocketAddr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        let source: std::net::SocketAddr = format!("{source}:0").parse().expect("address");
        socket.bind(source).expect("binds the source address");
        let stream = socket.connect(addr).await.expect("connects");
        Client {
            stream,
            key: SigningKey::from_bytes(&[42; 32]),
            transcript_bytes: None,
            port: 0,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    pub fn hello(&self, network: &str, version: u64) -> Vec<u8> {
        let public_key = self.key.verifying_key().to_bytes();
        msg(vec![
            ("type", V::Str("hello")),
            ("version", V::Uint(version)),
            ("network", V::Str(network)),
            ("public_key", V::Bin(&public_key)),
            ("nonce", V::Bin(&[7; 32])),
            ("port", V::Uint(u64::from(self.port))),
        ])
    }

    /// Sends hello and checks the welcome's signature (`docs/protocol.md`, "Handshake").
    pub async fn hello_welcome(&mut self) {
        let hello = self.hello("cairn", 1);
        self.send(&hello).await;
        let Some(cairn_core::Message::Welcome(w)) = read_message(&mut self.stream).await else {
            panic!("expected welcome")
        };
        let t = Transcript {
            network: "cairn",
            dialer_key: self.key.verifying_key().to_bytes(),
            dialer_nonce: [7; 32],
            listener_key: w.public_key,
            listener_nonce: w.nonce,
        };
        assert!(
            t.verify(Role::Listener, &w.signature),
            "welcome signature verifies"
        );
        // Build the dialer's signed bytes by hand, as another implementation would.
        let mut signed = b"Dcairn-handshake-v1\x05cairn".to_vec();
        signed.extend(self.key.verifying_key().to_bytes());
        signed.extend([7; 32]);
        signed.extend(w.public_key);
        signed.extend(w.nonce);
        self.transcript_bytes = Some(signed);
    }

    pub async fn auth(&mut self) {
        let signed = self.transcript_bytes.clone().expect("hello first");
        let signature = self.key.sign(&signed).to_bytes();
        self.send(&msg(vec![
            ("type", V::Str("auth")),
            ("signature", V::Bin(&signature)),
        ]))
        .await;
    }

    pub async fn handshake(&mut self) {
        self.hello_welcome().await;
        self.auth().await;
    }

    pub async fn ping(&mut self, id: u64) -> Option<cairn_core::Message> {
        self.send(&msg(vec![("type", V::Str("ping")), ("id", V::Uint(id))]))
            .await;
        read_message(&mut self.stream).await
    }
}

pub fn pong(id: u64) -> Option<cairn_core::Message> {
    Some(cairn_core::Message::Response {
        id,
        response: cairn_core::Response::Pong,
    })
}

pub fn error_code(message: Option<cairn_core::Message>) -> (u64, u16) {
    match message {
        Some(cairn_core::Message::Response {
            id,
            response: cairn_core::Response::Error(e),
        }) => (id, e.code.0),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A `store` request for an immutable item holding `value`.
pub fn store_message(id: u64, value: &[u8]) -> Vec<u8> {
    let item = V::Map(vec![
        ("kind", V::Str("immutable")),
        ("value", V::Bin(value)),
    ]);
    msg(vec![
        ("type", V::Str("store")),
        ("id", V::Uint(id)),
        ("item", item),
    ])
}

/// The samples of a `/metrics` answer in Prometheus's text format.
pub fn samples(text: &str) -> Vec<prometheus_parse::Sample> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines)
        .expect("Prometheus text")
        .samples
}

/// The value of the sample `name` whose labels include `labels`, summed over the samples that
/// match (0 if there is none); a histogram counts its observations.
pub fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

/// Serves `dht`'s HTTP API on a free loopback port: the server's task (it stops when the
/// runtime ends) and a client of it.
pub async fn serve_api(dht: &Dht) -> (tokio::task::JoinHandle<()>, cairn_node::client::ApiClient) {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("addr");
    let server = cairn_node::api::serve(dht.clone(), addr)
        .await
        .expect("serves");
    (server, cairn_node::client::ApiClient::new(addr))
}
