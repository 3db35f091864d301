//! The store contract as the node sees it: a read that fails is an error, not "not found".

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::config::Config;
use crate::id::NodeId;
use crate::item::ImmutableItem;
use crate::message::{Request, Response};
use crate::node::{Node, Requester};

const NOW: Time = Time::from_secs(1_800_000_000);

/// A memory store whose disk, so to speak, has failed: it keeps its bookkeeping but cannot
/// read a value back.
struct Unreadable(MemoryStore);

impl Store for Unreadable {
    fn get(&self, key: &Key, now: Time) -> Result<Option<Item>, ReadError> {
        match self.0.get(key, now)? {
            Some(_) => Err(ReadError::Storage {
                key: *key,
                source: Arc::new(std::io::Error::other("the disk is gone")),
            }),
            None => Ok(None),
        }
    }
    fn put(&mut self, item: Item, now: Time, origin: Origin) -> Result<Written, StoreError> {
        self.0.put(item, now, origin)
    }
    fn committed(&mut self, commit: CommitId, outcome: CommitOutcome) {
        self.0.committed(commit, outcome);
    }
    fn expire(&mut self, now: Time) -> usize {
        self.0.expire(now)
    }
    fn holdings(&self) -> &dyn Holdings {
        self.0.holdings()
    }
}

#[test]
fn a_find_value_the_store_cannot_read_is_answered_503_not_nodes() {
    let item: Item = ImmutableItem::new(Bytes::from_static(b"held")).into();
    let mut store = MemoryStore::default();
    assert!(store.put(item.clone(), NOW, Origin::Own).is_ok());
    let mut node = Node::new(
        NodeId::hash(b"server"),
        Config::default(),
        Unreadable(store),
    );
    let from = Requester {
        id: NodeId::hash(b"asker"),
        addr: None,
        verified: false,
        source: std::net::IpAddr::from([127, 0, 0, 1]),
        connection: 0,
    };
    let ask = |node: &mut Node<Unreadable>, key: Key| {
        node.handle_request(NOW, from, 1, Request::FindValue { key })
            .response
    };
    match ask(&mut node, *item.key()) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::UNAVAILABLE),
        other => panic!("expected an error 503, got {other:?}"),
    }
    let missing = *ImmutableItem::new(Bytes::from_static(b"not held")).key();
    assert!(matches!(ask(&mut node, missing), Response::Nodes(_)));
}

#[test]
fn a_get_of_an_item_held_but_unreadable_is_unavailable_not_not_found() {
    let item: Item = ImmutableItem::new(Bytes::from_static(b"held")).into();
    let mut store = MemoryStore::default();
    assert!(store.put(item.clone(), NOW, Origin::Own).is_ok());
    let mut node = Node::new(NodeId::hash(b"alone"), Config::default(), Unreadable(store));
    let key = *item.key();
    let result = get_done(&mut node, key);
    assert_eq!(
        result,
        Some(Err(crate::GetFailure::Unavailable { key, replicas: 1 }))
    );
    // A key not held is still not found.
    let missing = *ImmutableItem::new(Bytes::from_static(b"not held")).key();
    let missing_result = get_done(&mut node, missing);
    assert!(
        matches!(
            missing_result,
            Some(Err(crate::GetFailure::NotFound { .. }))
        ),
        "{missing_result:?}"
    );
}

/// Starts a get of `key` at `node` and returns how it ended, if it ended at once.
fn get_done<S: Store>(
    node: &mut Node<S>,
    key: crate::id::Key,
) -> Option<Result<Item, crate::GetFailure>> {
    let query = node.get(NOW, key);
    let mut result = None;
    while let Some(event) = node.poll_event() {
        if let crate::Event::GetDone {
            query: q,
            result: r,
            ..
        } = event
            && q == query
        {
            result = Some(r);
        }
    }
    result
}
