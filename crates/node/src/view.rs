//! What the dashboard draws: the items a node holds ([`HeldItem`], `GET /v1/items`) and the
//! ring ([`Ring`], `GET /v1/ring`): the nodes known, placed by id, and the items, placed by
//! key, either as one node sees them or, for a test network, all of its nodes at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use cairn_core::Listed;
use serde::{Deserialize, Serialize};

/// The most items a ring or a page of `GET /v1/items` lists.
pub const MAX_LISTED: usize = 2_000;

/// One item held, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldItem {
    /// Hex key.
    pub key: String,
    /// `signed`, `immutable` or `tombstone`.
    pub kind: String,
    /// Its `seq` (signed items and tombstones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Unix seconds of expiry, 0 for never.
    pub expires: u64,
    /// Bytes it takes in the store, as counted against `max_store_bytes` (its value, name
    /// and signature).
    pub size: usize,
    /// Whether this node published it.
    pub own: bool,
}

impl From<Listed> for HeldItem {
    fn from(l: Listed) -> Self {
        HeldItem {
            key: l.key.to_hex(),
            kind: l.kind.as_str().to_owned(),
            seq: l.seq,
            expires: l.expires,
            size: l.size,
            own: l.own,
        }
    }
}

/// A node on the ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingNode {
    /// Hex node id: its place on the ring.
    pub id: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bucket of the viewing node's table it sits in (0: the closest ids; absent for the
    /// viewing node itself and in a whole network's ring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<usize>,
    /// Items it holds (known for the viewing node and for every node of a whole network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<usize>,
}

/// An item on the ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingItem {
    /// Hex key: its place on the ring.
    pub key: String,
    /// `signed`, `immutable` or `tombstone`.
    pub kind: String,
    /// Nodes of the ring that hold it.
    pub holders: usize,
}

/// The ring as one node sees it, or as a whole test network is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    /// The viewing node's id (absent for a whole network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<String>,
    /// Every node: the viewing node first, then its contacts; or every node of the network.
    pub nodes: Vec<RingNode>,
    /// The items held (at most [`MAX_LISTED`] per node), by key.
    pub items: Vec<RingItem>,
    /// Whether some node held more items than listed.
    pub truncated: bool,
}

impl Ring {
    /// The ring of a whole network, from each node's own ring: every node, with the items
    /// any of them holds and how many hold each.
    pub fn of_network(rings: impl IntoIterator<Item = Ring>) -> Ring {
        let mut whole = Ring::default();
        let mut items: BTreeMap<String, RingItem> = BTreeMap::new();
        for ring in rings {
            whole.truncated |= ring.truncated;
            // A node's own ring lists itself first.
            whole.nodes.extend(ring.nodes.into_iter().next());
            for item in ring.items {
                items
                    .entry(item.key.clone())
                    .and_modify(|held| held.holders += 1)
                    .or_insert(item);
            }
        }
        whole.items = items.into_values().collect();
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: &str, keys: &[&str]) -> Ring {
        let node = |id: &str, bucket| RingNode {
            id: id.into(),
            addr: "127.0.0.1:1".parse().expect("valid"),
            bucket,
            items: Some(keys.len()),
        };
        Ring {
            center: Some(id.into()),
            // Its own place first, then a contact, which a whole network's ring leaves out.
            nodes: vec![node(id, None), node("ff", Some(511))],
            items: keys
                .iter()
                .map(|k| RingItem {
                    key: (*k).into(),
                    kind: "signed".into(),
                    holders: 1,
                })
                .collect(),
            truncated: false,
        }
    }

    #[test]
    fn a_network_ring_has_every_node_once_and_counts_each_items_holders() {
        let whole = Ring::of_network([ring("a1", &["k1", "k2"]), ring("b2", &["k2"])]);
        assert_eq!(whole.center, None);
        let ids: Vec<&str> = whole.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a1", "b2"]);
        let holders: Vec<(&str, usize)> = whole
            .items
            .iter()
            .map(|i| (i.key.as_str(), i.holders))
            .collect();
        assert_eq!(holders, [("k1", 1), ("k2", 2)]);
        assert!(!whole.truncated);
    }
}
