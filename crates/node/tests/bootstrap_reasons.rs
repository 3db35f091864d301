//! A bootstrap that gets no contact says, for each address tried, why: a node of another
//! network (426), nothing listening, something that is not a cairn node.

use std::net::SocketAddr;

use cairn_node::{BootstrapError, Config, SeedFailure};

fn loopback() -> Config {
    Config::default().listen("127.0.0.1:0".parse().expect("valid"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bootstrap_names_each_address_and_its_reason() {
    let cairn = cairn_node::start(loopback()).await.expect("starts");
    let cairn_addr = cairn.status().await.expect("running").listen;
    // Nothing listens on a port just freed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    // An HTTP server is something, but not a cairn node.
    let http = cairn_node::start(loopback()).await.expect("starts");
    let http_addr: SocketAddr = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        cairn_node::api::serve(http.clone(), port)
            .await
            .expect("serves");
        port
    };

    let mut config = loopback();
    config.network = "other".parse().expect("a network name");
    let other = cairn_node::start(config).await.expect("starts");
    let err = other
        .bootstrap(vec![cairn_addr, closed, http_addr])
        .await
        .expect_err("no node of network other is there");
    let BootstrapError::NoContact { tried, failures } = &err else {
        panic!("{err}");
    };
    assert_eq!(*tried, 3);
    let reason = |addr| failures.iter().find(|(a, _)| *a == addr).map(|(_, r)| r);
    assert!(
        matches!(reason(cairn_addr), Some(SeedFailure::WrongNetwork(_))),
        "{err}"
    );
    assert_eq!(reason(closed), Some(&SeedFailure::Refused), "{err}");
    assert!(
        matches!(reason(http_addr), Some(SeedFailure::NotCairn(_))),
        "{err}"
    );
    let message = err.to_string();
    for addr in [cairn_addr, closed, http_addr] {
        assert!(message.contains(&addr.to_string()), "{message}");
    }
    assert!(message.contains("another network"), "{message}");
    println!("{message}");
    for dht in [other, cairn, http] {
        dht.shutdown().await;
    }
}
