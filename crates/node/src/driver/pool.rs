//! The driver's pool of dialed connections: one per peer address, at most `max_outbound`,
//! the least recently used closed to make room.
//!
//! The pool never blocks: a request goes to its connection's queue with `try_send`, and a full
//! queue or a connection that cannot be had makes the request fail at once (the caller tells
//! the node), so a slow peer can never stall the driver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use cairn_core::{NodeId, Peer};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

use super::inbox::Outgoing;
use crate::connection;
use crate::shared::Shared;

/// How many requests may wait in one connection's queue.
const QUEUE: usize = 64;

/// A dialed connection the driver can send requests on.
struct PoolEntry {
    /// Tells this connection's `Closed` report apart from a later one's to the same address.
    conn: u64,
    requests: mpsc::Sender<Outgoing>,
    last_used: Instant,
}

/// Dialed connections by address. Dropping an entry's sender lets its connection close once
/// its requests are answered.
pub(super) struct Pool {
    entries: HashMap<SocketAddr, PoolEntry>,
    next_conn: u64,
    shared: Arc<Shared>,
}

impl Pool {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Pool {
            entries: HashMap::new(),
            next_conn: 0,
            shared,
        }
    }

    /// Connections open or being dialed.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Hands a request to the connection for `to`, dialing one if there is none. Returns
    /// false if it could not be queued: the request has failed.
    pub(super) fn send(&mut self, to: Peer, outgoing: Outgoing) -> bool {
        let mut outgoing = outgoing;
        for _attempt in 0..2 {
            if !self.entries.contains_key(&to.addr) {
                self.dial(to.addr, to.id);
            }
            let Some(entry) = self.entries.get_mut(&to.addr) else {
                return false;
            };
            entry.last_used = Instant::now();
            match entry.requests.try_send(outgoing) {
                Ok(()) => return true,
                // The connection ended but the driver has not heard yet: dial afresh, once.
                Err(TrySendError::Closed(back)) => {
                    self.entries.remove(&to.addr);
                    outgoing = back;
                }
                Err(TrySendError::Full(_)) => return false,
            }
        }
        false
    }

    /// The connection `conn` to `addr` ended.
    pub(super) fn closed(&mut self, addr: SocketAddr, conn: u64) {
        if self.entries.get(&addr).is_some_and(|e| e.conn == conn) {
            self.entries.remove(&addr);
        }
    }

    /// Lets every connection close once its requests are answered.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    fn dial(&mut self, addr: SocketAddr, expected: Option<NodeId>) {
        if self.entries.len() >= self.shared.config.max_outbound {
            // Make room: the least recently used connection closes once its requests are done.
            if let Some(lru) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(a, _)| *a)
            {
                self.entries.remove(&lru);
            }
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let (requests, queue) = mpsc::channel(QUEUE);
        let entry = PoolEntry {
            conn,
            requests,
            last_used: Instant::now(),
        };
        self.entries.insert(addr, entry);
        let shared = self.shared.clone();
        tokio::spawn(connection::dial(addr, expected, conn, queue, shared));
    }
}
