//! Writes the seed corpora, `fuzz/corpus/TARGET/`: the test vectors of `docs/protocol.md`
//! section 10 and `docs/vectors/datagram.md`, one message of every kind as the crate encodes
//! it, and a few valid files and requests. Run from anywhere:
//! `cargo +nightly run --manifest-path fuzz/Cargo.toml --bin make-corpus`.
//! It replaces the files it writes and leaves others alone.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use cairn_core::datagram::layouts::{refuse, unknown};
use cairn_core::wire::{self, Body};
use cairn_core::{ErrorCode, Message, NodeId, Summary, netstring};
use cairn_fuzz::op::Op;

struct Corpus {
    root: PathBuf,
}

impl Corpus {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory");
        std::fs::write(dir.join(name), bytes).expect("a seed");
    }
}

/// The backticked hex strings of section 10 that are MessagePack maps (payloads).
fn protocol_payloads(docs: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(docs.join("protocol.md")).expect("docs/protocol.md");
    let section = text.split("## 10. Test vectors").nth(1).unwrap_or_default();
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.len() > 2 && s.starts_with('8'))
        .filter_map(cairn_core::from_hex)
        .collect()
}

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let docs = fuzz.join("../docs");
    let corpus = Corpus {
        root: fuzz.join("corpus"),
    };

    // Payloads: the documented ones, then one of every kind.
    let mut payloads: Vec<(String, Vec<u8>)> = protocol_payloads(&docs)
        .into_iter()
        .enumerate()
        .map(|(i, p)| (format!("protocol-md-{i}"), p))
        .collect();
    for (i, message) in cairn_fuzz::messages().iter().enumerate() {
        let name = match message {
            Message::Request { request, .. } => request.name().to_owned(),
            other => format!("{other:?}")
                .split(['(', ' '])
                .next()
                .unwrap_or("m")
                .to_lowercase(),
        };
        payloads.push((
            format!("{i:02}-{name}"),
            wire::encode(message).expect("encodes"),
        ));
    }
    for (name, payload) in &payloads {
        corpus.put("message", name, payload);
        corpus.put("datagram", name, payload);
        let mut framed = BytesMut::from(&[64u8, 3][..]);
        netstring::encode(payload, &mut framed);
        netstring::encode(b"", &mut framed);
        corpus.put("netstring", name, &framed);
    }
    corpus.put(
        "netstring",
        "ping-framed",
        b"\xff\x0515:\x82\xa4type\xa4ping\xa2id\x01,",
    );
    corpus.put("netstring", "leading-zero", b"\x10\x0001:a,");

    // Items as the store keeps them, and the documented store payloads' items.
    for (i, item) in cairn_fuzz::items().iter().enumerate() {
        let kind = item.kind().as_str();
        corpus.put(
            "item",
            &format!("{i}-{kind}"),
            &wire::encode_item(item).expect("encodes"),
        );
        let _ = Summary::of(item);
    }

    // Handshake: hello then welcome, hello then auth, separated by ff 00.
    let messages = cairn_fuzz::messages();
    let encoded: Vec<Vec<u8>> = messages[..3]
        .iter()
        .map(|m| wire::encode(m).expect("encodes"))
        .collect();
    corpus.put("handshake", "welcome", &encoded[1]);
    corpus.put(
        "handshake",
        "hello-auth",
        &[&encoded[0][..], &[0xff, 0], &encoded[2]].concat(),
    );
    corpus.put(
        "handshake",
        "welcome-auth",
        &[&encoded[1][..], &[0xff, 0], &encoded[2]].concat(),
    );

    // Datagrams: the vectors of docs/vectors/datagram.md, and the plane's other layouts.
    let rows = std::fs::read_to_string(docs.join("vectors/datagram.md")).expect("datagram.md");
    let mut datagrams = Vec::new();
    for (i, (name, bytes)) in cairn_fuzz::hex_rows(&rows).into_iter().enumerate() {
        let short: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        corpus.put("datagram", &format!("vector-{i:02}-{short}"), &bytes);
        let is_datagram = matches!(bytes.first(), Some(1..=5))
            && !name.contains("signed message")
            && !name.starts_with("body");
        if is_datagram {
            datagrams.push(bytes);
        }
    }
    corpus.put("datagram", "unknown", &unknown(0x1112131415161718));
    corpus.put(
        "datagram",
        "refuse",
        &refuse(7, ErrorCode::MISMATCH, "other network"),
    );
    let part = Body::NodesPart {
        id: 3,
        part: 1,
        parts: 2,
        nodes: vec![cairn_core::Contact::new(
            NodeId::hash(b"n"),
            ([10, 0, 0, 1], 7400).into(),
        )],
    };
    corpus.put(
        "datagram",
        "body-nodes-part",
        &wire::encode_body(&part).expect("encodes"),
    );
    corpus.put(
        "datagram",
        "body-held",
        &wire::encode_body(&Body::Held { id: 9 }).expect("ok"),
    );

    // The plane: conversations, and the vectors injected.
    let ops = |ops: &[Op]| ops.iter().flat_map(Op::encode).collect::<Vec<u8>>();
    let exchange = [
        Op::ASend(1),
        Op::DeliverToB(0),
        Op::AnswerB(false),
        Op::DeliverToA(0),
        Op::DeliverToA(0),
        Op::DeliverToA(0),
        Op::DeliverToB(0),
        Op::ASend(3),
        Op::DeliverToB(0),
        Op::AnswerB(false),
        Op::DeliverToA(0),
    ];
    corpus.put("plane", "a-asks-b", &ops(&exchange));
    corpus.put(
        "plane",
        "b-asks-a",
        &ops(&[
            Op::BSend(1),
            Op::DeliverToA(0),
            Op::AnswerA,
            Op::DeliverToB(0),
            Op::DeliverToA(0),
        ]),
    );
    corpus.put(
        "plane",
        "lossy",
        &ops(&[
            Op::ASend(0),
            Op::DeliverToB(1),
            Op::Tick(500),
            Op::DeliverToB(2),
            Op::AnswerB(true),
            Op::DeliverToA(2),
            Op::Replay(0),
            Op::Mutate {
                index: 0,
                at: 40,
                xor: 1,
            },
            Op::ASend(2),
            Op::ASend(0x12),
            Op::Tick(3000),
        ]),
    );
    for (i, datagram) in datagrams.iter().enumerate() {
        let inject = Op::Inject {
            from: 1,
            bytes: datagram.clone(),
        };
        corpus.put(
            "plane",
            &format!("inject-vector-{i}"),
            &ops(&[Op::ASend(1), inject]),
        );
    }

    // The API: method byte (0 GET, 1 PUT, 2 POST, 3 DELETE), the target, `\n`, the body.
    let key = NodeId::hash(b"world").to_hex();
    let public_key = cairn_core::to_hex(&cairn_fuzz::vector_key().verifying_key().to_bytes());
    let requests: &[(&str, u8, String, &[u8])] = &[
        ("status", 0, "/v1/status".into(), b""),
        ("peers", 0, "/v1/peers".into(), b""),
        ("put", 1, "/v1/items/greeting?ttl=60".into(), b"hello"),
        ("put-ttl-0", 1, "/v1/items/greeting?ttl=0".into(), b"x"),
        ("put-bad-query", 1, "/v1/items/a?ttl=-1&ttl=x".into(), b"x"),
        ("put-escaped", 1, "/v1/items/%F0%9F%8C%8D%20x".into(), b"x"),
        ("delete", 3, "/v1/items/greeting".into(), b""),
        ("blob", 2, "/v1/blobs".into(), b"world"),
        ("get-blob", 0, format!("/v1/blobs/{key}"), b""),
        ("get-key", 0, format!("/v1/keys/{key}"), b""),
        (
            "get-item",
            0,
            format!("/v1/items/{public_key}/greeting"),
            b"",
        ),
        ("watch-key", 0, format!("/v1/watch/{key}"), b""),
        (
            "watch-item",
            0,
            format!("/v1/watch/{public_key}/greeting"),
            b"",
        ),
        ("ring", 0, "/v1/ring".into(), b""),
        ("items", 0, "/v1/items?limit=10".into(), b""),
        ("metrics", 0, "/metrics".into(), b""),
        ("empty-name", 1, "/v1/items/".into(), b""),
        ("bad-key", 0, "/v1/keys/zz".into(), b""),
        ("wrong-method", 2, "/v1/status".into(), b""),
    ];
    for (name, method, target, body) in requests {
        let mut bytes = vec![*method];
        bytes.extend_from_slice(target.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        corpus.put("api", name, &bytes);
    }

    // Config files: the template of the defaults, and a few small ones.
    let template = cairn_node::config::template(&cairn_node::Config::default());
    corpus.put("config", "template", template.as_bytes());
    corpus.put(
        "config",
        "small",
        b"listen = \"127.0.0.1:7400\"\nk = 20\nrequest_timeout_secs = 2\nmin_slot_timeout_secs = 0.1\nnodes = 3\n",
    );
    corpus.put(
        "config",
        "bad",
        b"k = 0\nalpha = -1\nunknown = true\nlisten_ttl_secs = 1e9\n",
    );

    // Snapshots: what `save` writes, and lines to skip.
    let contacts = [
        format!("{} 127.0.0.1:7400", NodeId::hash(b"a")),
        format!("{} [::1]:7401", NodeId::hash(b"b")),
        "garbage".to_owned(),
        format!("{} 1.2.3.4", NodeId::hash(b"c")),
    ];
    corpus.put("snapshot", "saved", contacts[..2].join("\n").as_bytes());
    corpus.put("snapshot", "mixed", contacts.join("\n").as_bytes());
}
