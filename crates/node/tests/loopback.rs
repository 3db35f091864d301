//! Real nodes over TCP on 127.0.0.1.

use std::time::Duration;

use cairn_node::{Config, Dht};
use common::wait_for;

mod common;

fn loopback() -> Config {
    Config::default().listen("127.0.0.1:0".parse().expect("valid"))
}

async fn listen_addr(dht: &Dht) -> std::net::SocketAddr {
    dht.status().await.expect("running").listen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_put_and_get() {
    let a = cairn_node::start(loopback()).await.expect("a starts");
    let b = cairn_node::start(loopback()).await.expect("b starts");
    let joined = b
        .bootstrap(vec![listen_addr(&a).await])
        .await
        .expect("b joins");
    assert_eq!(joined, 1);
    // The seed takes the joiner into its table once it has verified the joiner's `auth`,
    // which may come after the joiner's bootstrap ended: wait for it, else the seed's put
    // is a lone node's, stored on itself alone (1 replica).
    wait_for(
        "the seed knows the joiner",
        || async { a.status().await.expect("running").peers },
        |peers| *peers == 1,
    )
    .await;
    let receipt = a
        .put_signed("hello", "world".into(), Some(Duration::from_secs(60)))
        .await
        .expect("put");
    assert_eq!(receipt.replicas, 2);
    let found = b.get(receipt.key).await.expect("found");
    assert_eq!(found.item.value().as_ref(), b"world");
    let blob = b.put_immutable("blob".into()).await.expect("put blob");
    assert_eq!(
        a.get(blob.key)
            .await
            .expect("found blob")
            .item
            .value()
            .as_ref(),
        b"blob"
    );
    assert_eq!(a.status().await.expect("running").peers, 1);
    a.shutdown().await;
    b.shutdown().await;
    assert!(a.status().await.is_err(), "a stopped");
}

/// Fifty nodes on loopback addresses, joined, and the seeded RNG that joined them.
async fn fifty_joined(seed: u64) -> (cairn_testnet::Testnet, rand::rngs::StdRng) {
    use cairn_testnet::{Silent, Testnet};
    use rand::SeedableRng;

    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let net = Testnet::start(50).await.expect("nodes start");
    assert_eq!(
        net.join(&mut rng, 8, &Silent).await,
        0,
        "every join succeeds"
    );
    (net, rng)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_find_a_hundred_items_and_the_latest_update() {
    use rand::Rng;

    let (net, mut rng) = fifty_joined(50).await;

    // 100 items, half signed, half immutable, each put from a random node.
    let mut items = Vec::new();
    for i in 0..100 {
        let from = rng.random_range(0..50);
        let value = bytes::Bytes::from(format!("value {i}"));
        let receipt = if i % 2 == 0 {
            net.nodes[from]
                .put_signed(&format!("item-{i}"), value.clone(), None)
                .await
        } else {
            net.nodes[from].put_immutable(value.clone()).await
        };
        let receipt = receipt.expect("put succeeds");
        assert!(
            receipt.replicas >= 20,
            "item {i} reached only {} nodes",
            receipt.replicas
        );
        items.push((receipt.key, value, from));
    }
    // Each is found from a different node.
    for (key, value, from) in &items {
        let at = (from + 1 + rng.random_range(0..49)) % 50;
        let found = net.nodes[at].get(*key).await.expect("found");
        assert_eq!(found.item.value(), value);
    }

    // An update (higher seq) of a signed item is what a later get from another node returns.
    let (key, _, from) = items[0].clone();
    let update = net.nodes[from]
        .put_signed("item-0", "updated".into(), None)
        .await
        .expect("update");
    assert_eq!(update.key, key);
    let other = (from + 25) % 50;
    let found = net.nodes[other].get(key).await.expect("found");
    assert_eq!(found.item.value().as_ref(), b"updated");
    assert_eq!(found.item.seq(), update.seq);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_publishes_fetches_and_explains_errors() {
    use cairn_node::client::{ApiClient, ClientError};

    let dht = cairn_node::start(loopback()).await.expect("starts");
    let api_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("addr");
    let _server = cairn_node::api::serve(dht.clone(), api_addr)
        .await
        .expect("serves");
    let client = ApiClient::new(api_addr);

    let published = client
        .put("a name/with spaces", "v1".into(), Some(60))
        .await
        .expect("put");
    let public_key = published
        .public_key
        .clone()
        .expect("signed items name their publisher");
    assert_eq!(published.name.as_deref(), Some("a name/with spaces"));
    assert!(published.expires.is_some_and(|e| e > 0));
    let fetched = client
        .get_signed(&public_key, "a name/with spaces")
        .await
        .expect("found");
    assert_eq!(&fetched.value[..], b"v1");
    assert_eq!(fetched.seq, published.seq);
    assert_eq!(fetched.key.as_deref(), Some(published.key.as_str()));

    // Publishing the name again gives a higher seq, and that is what is served.
    let again = client
        .put("a name/with spaces", "v2".into(), None)
        .await
        .expect("put");
    assert!(again.seq > published.seq);
    assert_eq!(
        &client.get_key(&again.key).await.expect("found").value[..],
        b"v2"
    );

    let blob = client.put_immutable("blob".into()).await.expect("blob");
    assert_eq!((blob.public_key, blob.seq), (None, None));
    assert_eq!(
        &client.get_key(&blob.key).await.expect("found").value[..],
        b"blob"
    );

    let status = |e: ClientError| match e {
        ClientError::Api { status, .. } => status.as_u16(),
        other => panic!("expected an API error, got {other}"),
    };
    assert_eq!(
        status(client.get_key(&"00".repeat(64)).await.expect_err("missing")),
        404
    );
    assert_eq!(
        status(client.get_key("xyz").await.expect_err("bad key")),
        400
    );
    assert_eq!(
        status(
            client
                .get_signed("abcd", "n")
                .await
                .expect_err("bad public key")
        ),
        400
    );
    let too_long = "n".repeat(256);
    assert_eq!(
        status(
            client
                .put(&too_long, "v".into(), None)
                .await
                .expect_err("long name")
        ),
        400
    );
    let too_big = bytes::Bytes::from(vec![0u8; 65_537]);
    assert_eq!(
        status(client.put_immutable(too_big).await.expect_err("too big")),
        413
    );

    // Requests axum itself turns away get the same JSON error body as every other error.
    for (request, code) in [
        ("PUT /v1/items/x?ttl=-1", 400),
        ("PUT /v1/items/x?ttl=soon", 400),
        ("GET /v1/items/00/%ff%fe", 400),
        ("GET /v1/keys/%ff", 400),
        ("GET /v1/nothing", 404),
        ("DELETE /v1/status", 405),
    ] {
        let (got, body) = raw_request(api_addr, request).await;
        assert_eq!(got, code, "{request}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{request}: body {body:?} is not JSON: {e}"));
        assert_eq!(json["error"]["code"], code, "{request}: {body}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{request}: {body}"
        );
    }
    dht.shutdown().await;
}

/// Sends `request` (method and target) with a one-byte body over plain HTTP/1.1 and returns
/// the status and the body.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let text = format!(
        "{request} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv"
    );
    stream.write_all(text.as_bytes()).await.expect("sends");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("reads");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_puts_and_a_delete_from_another_node_and_outlives_its_listeners() {
    let (net, _) = fifty_joined(51).await;
    let mut ids = Vec::new();
    for dht in &net.nodes {
        let status = dht.status().await.expect("running");
        ids.push(status.node_id);
    }
    let publisher = 1;
    let public_key = net.nodes[publisher]
        .status()
        .await
        .expect("running")
        .public_key;
    // A name whose closest nodes are neither the publisher nor the watcher, so that both
    // outlive the nodes the watch listens at.
    let watcher = 2;
    let (name, closest) = (0..)
        .map(|n| {
            let name = format!("news-{n}");
            let key = cairn_core::signed_key(&public_key, &name);
            let mut order: Vec<usize> = (0..ids.len()).collect();
            order.sort_by_key(|i| ids[*i].distance(&key));
            (name, order)
        })
        .find(|(_, order)| !order[..5].contains(&publisher) && !order[..5].contains(&watcher))
        .expect("some name");
    let key = cairn_core::signed_key(&public_key, &name);
    let mut watch = net.nodes[watcher].watch(key).await.expect("running");
    let next = async |watch: &mut cairn_node::Watch| {
        tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .expect("an update within 20 s")
            .expect("the watch runs")
    };
    for value in ["one", "two", "three"] {
        net.nodes[publisher]
            .put_signed(&name, value.into(), None)
            .await
            .expect("put");
        assert_eq!(next(&mut watch).await.value().as_ref(), value.as_bytes());
    }
    net.nodes[publisher]
        .delete(&name, None)
        .await
        .expect("deleted");
    assert!(next(&mut watch).await.is_tombstone(), "the delete is seen");

    // The three nodes closest to the key, where the watch listens, stop.
    for i in &closest[..3] {
        net.nodes[*i].shutdown().await;
    }
    net.nodes[publisher]
        .put_signed(&name, "four".into(), None)
        .await
        .expect("put after the listeners stopped");
    let update = next(&mut watch).await;
    assert_eq!(update.value().as_ref(), b"four", "the watch moved on");
    let status = net.nodes[watcher].status().await.expect("running");
    assert_eq!(status.watches, 1);
    drop(watch);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_only_node_and_a_dual_stack_node_interoperate() {
    let dual = cairn_node::start(loopback().also_listen(vec!["[::1]:0".parse().expect("valid")]))
        .await
        .expect("the dual-stack node starts");
    let addrs = dual.status().await.expect("running").listen_addrs;
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6());
    assert_eq!(
        addrs[0].port(),
        addrs[1].port(),
        "one port, announced in hello"
    );

    let v6 = cairn_node::start(Config::default().listen("[::1]:0".parse().expect("valid")))
        .await
        .expect("the IPv6-only node starts");
    let v4 = cairn_node::start(loopback())
        .await
        .expect("the IPv4 node starts");
    assert_eq!(
        v6.bootstrap(vec![addrs[1]]).await.expect("joins over IPv6"),
        1
    );
    assert!(v4.bootstrap(vec![addrs[0]]).await.expect("joins over IPv4") >= 1);

    // Each is stored under the address family it came over.
    let v6_addr = listen_addr(&v6).await;
    let v4_addr = listen_addr(&v4).await;
    let seen: Vec<std::net::SocketAddr> = dual
        .peers()
        .await
        .expect("running")
        .into_iter()
        .map(|p| p.addr)
        .collect();
    assert!(seen.contains(&v6_addr), "{seen:?} lacks {v6_addr}");
    assert!(seen.contains(&v4_addr), "{seen:?} lacks {v4_addr}");
    let from_v6: Vec<std::net::SocketAddr> = v6
        .peers()
        .await
        .expect("running")
        .into_iter()
        .map(|p| p.addr)
        .collect();
    assert!(
        from_v6.contains(&addrs[1]),
        "the IPv6 node knows the dual one by IPv6: {from_v6:?}"
    );

    let receipt = v6
        .put_signed("six", "over ipv6".into(), None)
        .await
        .expect("put");
    assert_eq!(
        dual.get(receipt.key)
            .await
            .expect("found")
            .item
            .value()
            .as_ref(),
        b"over ipv6"
    );
    let receipt = dual
        .put_signed("dual", "both".into(), None)
        .await
        .expect("put");
    assert_eq!(
        v6.get(receipt.key)
            .await
            .expect("found")
            .item
            .value()
            .as_ref(),
        b"both"
    );
    for node in [&dual, &v6, &v4] {
        node.shutdown().await;
    }
}
