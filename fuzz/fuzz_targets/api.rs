//! The HTTP API's request parsing (`cairn_node::api`): paths, query strings and bodies, sent
//! to the real router of a running node (alone, on loopback, items in memory) with tower's
//! `oneshot`, as hyper would hand them over.
//!
//! The input is `METHOD-BYTE`, then the request target (path and query) up to the first
//! `\n`, then the body. Targets that are not a URI at all are hyper's to refuse and never
//! reach the router.
//!
//! Holds: no panic; no 5xx (the node runs and has room); every 4xx or other error carries the
//! API's error body, `{"error": {"code": STATUS, "message": "..."}}`, with its own status.
#![no_main]

use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use cairn_core::StoreLimits;
use cairn_node::{Config, Dht};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// The runtime, the node and its router, for the life of the process.
static NODE: LazyLock<(tokio::runtime::Runtime, Dht, Router)> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut config = Config::default()
        .listen("127.0.0.1:0".parse().expect("an address"))
        .datagrams(false);
    // Small, so that a long run reaches the store's limits and memory stays flat.
    config.limits = StoreLimits {
        max_items: 2_000,
        max_bytes: 8 << 20,
        ..StoreLimits::default()
    };
    let dht = runtime
        .block_on(cairn_node::start(config))
        .expect("the node starts");
    let router = cairn_node::api::router(dht.clone());
    (runtime, dht, router)
});

const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "BREW",
];

fuzz_target!(|data: &[u8]| {
    let [method, rest @ ..] = data else {
        return;
    };
    let (target, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let method = Method::from_bytes(METHODS[usize::from(*method) % METHODS.len()].as_bytes())
        .expect("a method");
    let Ok(request) = Request::builder()
        .method(method.clone())
        .uri(target)
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let (runtime, _dht, router) = &*NODE;
    runtime.block_on(async {
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "{method} {} answered {status}",
            String::from_utf8_lossy(target)
        );
        // A HEAD answer has no body, by HTTP's rules.
        if status.is_success() || method == Method::HEAD {
            return;
        }
        let json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("an error body is whole")
            .to_bytes();
        assert!(
            json,
            "{status} without a JSON body: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(
            body["error"]["code"].as_u64(),
            Some(u64::from(status.as_u16())),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    });
});
