//! What a malicious simulated node answers instead of following the protocol.
//!
//! The adversaries collude: each knows all the others. Asked for nodes or for a value, one
//! answers with the k malicious nodes closest to the target, so that a lookup which trusts it
//! walks only among adversaries (an eclipse attempt); asked for a value it holds from before it
//! turned, it serves that copy, which is stale once the item is updated. Asked to store, it
//! acknowledges and keeps nothing, so a put counts replicas that do not exist; asked to listen,
//! it accepts and never notifies. It answers
//! pings, so honest nodes keep it in their tables.

use cairn_core::wire::MAX_NODES;
use cairn_core::{Contact, Item, Request, Response};

/// The answer of an adversary, knowing every adversary in `adversaries` and holding `held`
/// (its copy of the key asked for, from before it turned), to `request`.
pub(crate) fn answer(adversaries: &[Contact], held: Option<Item>, request: &Request) -> Response {
    let target = match request {
        Request::Ping => return Response::Pong,
        Request::Store { .. } => return Response::Stored,
        // It takes subscriptions and never notifies.
        Request::Listen { .. } => return Response::Listening { ttl: 600 },
        Request::Unlisten { .. } => return Response::Unlistened,
        // It says it sent the probe, and sends nothing.
        Request::Reach { .. } | Request::Probe { .. } => return Response::Probed,
        // It says it registered, introduced or punched, and does nothing.
        Request::Register => return Response::Registered { ttl: 60 },
        Request::Meet { .. } => return Response::Met,
        Request::Relay { .. } => return Response::Relaying { circuit: 1 },
        Request::Introduce { .. } => {
            let addr = adversaries
                .first()
                .map_or(([0, 0, 0, 0], 0).into(), |c| c.addr);
            return Response::Introduced { addr };
        }
        Request::FindNode { target } => *target,
        Request::FindValue { key } => match held {
            Some(stale) => return Response::value(stale),
            None => *key,
        },
    };
    let mut closest = adversaries.to_vec();
    closest.sort_by_key(|c| c.id.distance(&target));
    closest.truncate(MAX_NODES);
    Response::Nodes(closest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Id;

    #[test]
    fn adversaries_hand_out_each_other_closest_first_and_never_a_value() {
        let contacts: Vec<Contact> = (0..30u8)
            .map(|n| Contact::new(Id::hash(&[n]), "[fd00::1]:7400".parse().expect("valid")))
            .collect();
        let key = Id::hash(b"key");
        let Response::Nodes(nodes) = answer(&contacts, None, &Request::FindValue { key }) else {
            panic!("an adversary holding no copy returns nodes")
        };
        assert_eq!(nodes.len(), MAX_NODES);
        assert!(
            nodes
                .windows(2)
                .all(|w| w[0].id.distance(&key) <= w[1].id.distance(&key))
        );
        assert!(nodes.iter().all(|n| contacts.contains(n)));
        let item = cairn_core::ImmutableItem::new(bytes::Bytes::from_static(b"v")).into();
        assert_eq!(
            answer(&contacts, None, &Request::Store { item }),
            Response::Stored
        );
        // A copy it held from before it turned is served, stale or not.
        let stale: Item = cairn_core::ImmutableItem::new(bytes::Bytes::from_static(b"old")).into();
        let asked = Request::FindValue { key: *stale.key() };
        assert_eq!(
            answer(&contacts, Some(stale.clone()), &asked),
            Response::value(stale)
        );
    }
}
