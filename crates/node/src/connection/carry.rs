//! Carrying: a dialed connection at work once the handshake is done. Requests from the pool
//! go out, answers and `notify` frames go up to the driver, and the connection stays open while
//! anything is in flight or subscribed.
//!
//! [`DialedSubscriptions`] tracks the `listen` subscriptions the connection carries: only
//! `notify` frames for a live one reach the driver, and while any is live the connection may
//! stay silent up to the subscriptions' ttl.

use std::collections::{HashMap, HashSet};

use cairn_core::wire;
use cairn_core::{Contact, Key, Message, Request, Response};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::frame::{FrameReader, quiet_limit, write_message};
use super::{ConnError, kind};
use crate::driver::inbox::{Outgoing, ToDriver};
use crate::shared::Shared;

/// The subscriptions a dialed connection carries: the `listen` requests answered
/// `listening`, one per key (a renewal replaces the one before), and those still in flight.
#[derive(Default)]
pub(super) struct DialedSubscriptions {
    /// The subscriptions answered `listening`, by the id of the `listen` that opened them.
    live: HashMap<u64, Key>,
    /// The `listen` requests sent and not yet answered.
    asked: HashMap<u64, Key>,
}

impl DialedSubscriptions {
    pub(super) fn sent(&mut self, id: u64, request: &Request) {
        match request {
            Request::Listen { key, .. } => {
                self.asked.insert(id, *key);
            }
            Request::Unlisten { listen } => {
                self.live.remove(listen);
            }
            _ => {}
        }
    }

    fn answered(&mut self, id: u64, response: &Response) {
        if let Some(key) = self.asked.remove(&id) {
            if matches!(response, Response::Listening { .. }) {
                self.live.retain(|_, k| *k != key);
                self.live.insert(id, key);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The ids of the `listen` requests whose subscriptions are live: when the connection ends
    /// they end with it.
    pub(super) fn into_live(self) -> impl Iterator<Item = u64> {
        self.live.into_keys()
    }
}

/// Sends requests and hands responses (and `notify` frames) up until the pool lets go and
/// nothing is in flight or subscribed.
pub(super) async fn carry(
    mut reader: FrameReader,
    mut write: OwnedWriteHalf,
    peer: Contact,
    requests: &mut mpsc::Receiver<Outgoing>,
    in_flight: &mut HashSet<u64>,
    subscriptions: &mut DialedSubscriptions,
    shared: &Shared,
) -> Result<(), ConnError> {
    let mut released = false;
    let Some(mut shutdown) = shared.shutdown_signal() else {
        return Ok(());
    };
    loop {
        // Silence is expected while a subscription waits for news.
        reader.set_quiet((!subscriptions.is_empty()).then(|| quiet_limit(shared)));
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            next = requests.recv(), if !released => match next {
                Some((id, request)) => {
                    in_flight.insert(id);
                    subscriptions.sent(id, &request);
                    write_message(&mut write, &Message::Request { id, request: *request }, shared).await?;
                }
                None if in_flight.is_empty() && subscriptions.is_empty() => return Ok(()),
                None => released = true,
            },
            frame = reader.next(shared) => {
                let (id, response, role) = match wire::decode_with(&frame?) {
                    Ok((Message::Response { id, response }, envelope)) => (id, response, envelope.role),
                    Ok((Message::Notify { id, item }, _)) => {
                        if subscriptions.live.contains_key(&id) {
                            let up = ToDriver::Notify { from: peer, id, item: Box::new(item) };
                            let _ = shared.tell(up).await;
                        }
                        continue;
                    }
                    Ok((other, _)) => return Err(ConnError::NotAResponse(kind(&other))),
                    // An answer that fails to decode (say, a forged item) fails its request.
                    Err(e) => match e.id {
                        Some(id) if in_flight.remove(&id) => {
                            let _ = shared.tell(ToDriver::Failed { ids: vec![id] }).await;
                            continue;
                        }
                        _ => return Err(ConnError::BadResponse(e)),
                    },
                };
                if in_flight.remove(&id) {
                    subscriptions.answered(id, &response);
                    let up = ToDriver::Response { from: peer, id, response: Box::new(response), role };
                    let _ = shared.tell(up).await;
                }
                if released && in_flight.is_empty() && subscriptions.is_empty() {
                    return Ok(());
                }
            }
        }
    }
}
