//! Answering requests, and the checks every stored item passes, wherever it came from.

use super::{Answer, Node, PutError, Requester};
use crate::id::NodeId;
use crate::item::{Item, Resolution};
use crate::message::{ErrorCode, ErrorReply, Request, Response};
use crate::store::{CommitId, Origin, Store, StoreError};
use crate::subnet::Prefix;
use crate::time::Time;

impl<S: Store> Node<S> {
    /// The answer to one request from the node `requester`.
    pub(super) fn serve(
        &mut self,
        now: Time,
        from: &Requester,
        id: u64,
        request: Request,
    ) -> Answer {
        let requester = &from.id;
        let k = self.config.k.get();
        let response = match request {
            Request::Ping => Response::Pong,
            Request::FindNode { target } => {
                Response::Nodes(self.closest_except(&target, requester, k))
            }
            Request::FindValue { key } => match self.store.get(&key, now) {
                Ok(Some(item)) => Response::Value(item),
                Ok(None) => Response::Nodes(self.closest_except(&key, requester, k)),
                // Held but unreadable: "not found" would send the asker on to nodes that may
                // not hold it; an error tells it this node failed.
                Err(e) => Response::Error(ErrorReply::new(e.code(), "the store cannot read it")),
            },
            Request::Store { item } => {
                let key = *item.key();
                let origin = Origin::Network(Prefix::network(from.source));
                match self.store_checked(now, item, origin) {
                    Ok(commit) => {
                        self.housekeeping.received(key, now);
                        return Answer {
                            response: Response::Stored,
                            commit,
                        };
                    }
                    Err(e) => {
                        if let PutError::Local(StoreError::NetworkFull { .. }) = e {
                            self.stats.stores_over_share += 1;
                        }
                        e.reply()
                    }
                }
            }
            Request::Listen { key, seq } => self.listen(now, from, id, key, seq),
            Request::Unlisten { listen } => self.unlisten(from, listen),
        };
        Answer {
            response,
            commit: None,
        }
    }

    /// The k closest contacts to `target`, never including the requester.
    fn closest_except(
        &self,
        target: &NodeId,
        requester: &NodeId,
        k: usize,
    ) -> Vec<crate::message::Contact> {
        let mut closest = self.table.closest(target, k + 1);
        closest.retain(|c| c.id != *requester);
        closest.truncate(k);
        closest
    }

    /// Stores an item in this node's store after the size check. Returns the commit that
    /// makes it durable, if it is not durable yet.
    pub(super) fn store_checked(
        &mut self,
        now: Time,
        item: Item,
        origin: Origin,
    ) -> Result<Option<CommitId>, PutError> {
        let (size, max) = (item.value().len(), self.config.max_value_size);
        if size > max {
            return Err(PutError::TooLarge { size, max });
        }
        // Only a key someone listens to (a peer, or this node's own watch) needs the copy kept.
        let watched = self.has_subscribers(item.key()) || self.watch_count() > 0;
        let copy = watched.then(|| item.clone());
        let written = self.store.put(item, now, origin)?;
        if let Some(item) = copy.filter(|_| written.resolution != Resolution::Unchanged) {
            self.notify_subscribers(now, &item, written.commit);
            self.watch_local(&item);
        }
        Ok(written.commit)
    }
}

impl PutError {
    /// The `error` response a peer's `store` gets for this refusal.
    fn reply(&self) -> Response {
        let (code, message) = match self {
            PutError::TooLarge { .. } => (ErrorCode::TOO_LARGE, self.to_string()),
            PutError::NotDurable => (ErrorCode::INTERNAL, self.to_string()),
            PutError::Local(e) => (e.code(), e.to_string()),
        };
        Response::Error(ErrorReply::new(code, message))
    }
}
