//! Answering requests, and the checks every stored item passes, wherever it came from.

use super::{Node, PutError};
use crate::id::NodeId;
use crate::item::Item;
use crate::message::{ErrorCode, ErrorReply, Request, Response};
use crate::store::Store;
use crate::time::Time;

impl<S: Store> Node<S> {
    /// The answer to one request from the node `requester`.
    pub(super) fn serve(&mut self, now: Time, requester: &NodeId, request: Request) -> Response {
        let k = self.config.k.get();
        match request {
            Request::Ping => Response::Pong,
            Request::FindNode { target } => {
                Response::Nodes(self.closest_except(&target, requester, k))
            }
            Request::FindValue { key } => match self.store.get(&key, now) {
                Some(item) => Response::Value(item),
                None => Response::Nodes(self.closest_except(&key, requester, k)),
            },
            Request::Store { item } => match self.store_checked(now, item.clone()) {
                Ok(()) => {
                    self.housekeeping.received(*item.key(), now);
                    Response::Stored
                }
                Err(PutError::TooLarge { size, max }) => Response::Error(ErrorReply::new(
                    ErrorCode::TOO_LARGE,
                    format!("value of {size} bytes is above the {max}-byte limit"),
                )),
                Err(PutError::Local(e)) => {
                    Response::Error(ErrorReply::new(e.code(), e.to_string()))
                }
            },
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

    /// Stores an item in this node's store after the size check.
    pub(super) fn store_checked(&mut self, now: Time, item: Item) -> Result<(), PutError> {
        let (size, max) = (item.value().len(), self.config.max_value_size);
        if size > max {
            return Err(PutError::TooLarge { size, max });
        }
        self.store.put(item, now)?;
        Ok(())
    }
}
