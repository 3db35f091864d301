//! The table of incoming connections: who holds the node's `max_inbound` places, so that one
//! host cannot hold them all and a newcomer can take the place of a connection that does
//! nothing for anyone.
//!
//! Rules, applied by the accept loop to each new connection:
//! - a host (an IPv4 address, an IPv6 /64) holds at most `max_inbound_per_host` connections;
//!   more are closed at once;
//! - when all `max_inbound` places are taken, the newcomer evicts a connection that has not
//!   completed its handshake (the oldest), or else an authenticated one with no request in
//!   service (the least recently active); only if there is none is the newcomer refused.
//!
//! Each connection task holds a [`Place`]; dropping it frees the place. The table is behind a
//! mutex that each task takes for a moment per frame; nothing awaits while holding it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cairn_core::Prefix;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's entry.
struct Entry {
    host: Prefix,
    authenticated: bool,
    in_service: usize,
    last_active: Instant,
    accepted: Instant,
    /// Notified when the connection is evicted.
    evict: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<u64, Entry>,
    per_host: HashMap<Prefix, usize>,
    next_id: u64,
}

/// Why a connection was not given a place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoPlace {
    /// Its host already holds `max_inbound_per_host` connections.
    Host,
    /// Every place is taken by a connection that is serving requests.
    Full,
}

/// What admitting a connection did.
pub(crate) struct Admitted {
    pub(crate) place: Place,
    /// Whether another connection was evicted to make room.
    pub(crate) evicted: bool,
}

/// The incoming connections of one node.
pub(crate) struct Inbound {
    table: Mutex<Table>,
    /// Notified whenever a place is freed (the driver waits for all of them at shutdown).
    freed: Notify,
    max: usize,
    max_per_host: usize,
}

impl Inbound {
    pub(crate) fn new(max: usize, max_per_host: usize) -> Self {
        Inbound {
            table: Mutex::default(),
            freed: Notify::new(),
            max: max.max(1),
            max_per_host: max_per_host.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves counts that are still consistent enough to go
        // on: every change is a few assignments.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Incoming connections holding a place.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Gives a connection from `ip` a place, evicting an idle or unauthenticated one if all are
    /// taken.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, NoPlace> {
        let host = Prefix::host(ip);
        let mut table = self.lock();
        if table.per_host.get(&host).copied().unwrap_or(0) >= self.max_per_host {
            return Err(NoPlace::Host);
        }
        let mut evicted = false;
        if table.entries.len() >= self.max {
            let victim = table.victim().ok_or(NoPlace::Full)?;
            if let Some(entry) = table.remove(victim) {
                entry.evict.notify_one();
                evicted = true;
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let now = Instant::now();
        let evict = Arc::new(Notify::new());
        table.entries.insert(
            id,
            Entry {
                host,
                authenticated: false,
                in_service: 0,
                last_active: now,
                accepted: now,
                evict: evict.clone(),
            },
        );
        *table.per_host.entry(host).or_default() += 1;
        let place = Place {
            id,
            inbound: self.clone(),
            evict,
        };
        Ok(Admitted { place, evicted })
    }

    /// Waits until no connection holds a place.
    pub(crate) async fn all_closed(&self) {
        loop {
            let freed = self.freed.notified();
            if self.lock().entries.is_empty() {
                return;
            }
            freed.await;
        }
    }
}

impl Table {
    /// The connection a newcomer may evict: the oldest unauthenticated one, else the least
    /// recently active authenticated one with nothing in service.
    fn victim(&self) -> Option<u64> {
        let pending = self
            .entries
            .iter()
            .filter(|(_, e)| !e.authenticated)
            .min_by_key(|(_, e)| e.accepted);
        let idle = || {
            self.entries
                .iter()
                .filter(|(_, e)| e.in_service == 0)
                .min_by_key(|(_, e)| e.last_active)
        };
        pending.or_else(idle).map(|(id, _)| *id)
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        if let Some(count) = self.per_host.get_mut(&entry.host) {
            *count -= 1;
            if *count == 0 {
                self.per_host.remove(&entry.host);
            }
        }
        Some(entry)
    }
}

/// A connection's place in the table; dropping it frees the place.
pub(crate) struct Place {
    id: u64,
    inbound: Arc<Inbound>,
    evict: Arc<Notify>,
}

impl Place {
    /// The connection's number, unique among this node's incoming connections.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Resolves when a newcomer evicted this connection.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// The dialer's `auth` verified.
    pub(crate) fn authenticated(&self) {
        self.update(|e| e.authenticated = true);
    }

    /// `in_service` requests of this connection are being served.
    pub(crate) fn active(&self, in_service: usize) {
        self.update(|e| {
            e.in_service = in_service;
            e.last_active = Instant::now();
        });
    }

    fn update(&self, change: impl FnOnce(&mut Entry)) {
        if let Some(entry) = self.inbound.lock().entries.get_mut(&self.id) {
            change(entry);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.inbound.lock().remove(self.id);
        self.inbound.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[tokio::test]
    async fn a_host_is_limited_and_newcomers_evict_the_idle_and_unauthenticated() {
        let inbound = Arc::new(Inbound::new(3, 2));
        let a1 = inbound.admit(ip("192.0.2.1")).expect("room");
        let a2 = inbound.admit(ip("192.0.2.1")).expect("room");
        assert_eq!(inbound.admit(ip("192.0.2.1")).err(), Some(NoPlace::Host));
        a1.place.authenticated();
        a1.place.active(1);
        a2.place.authenticated();
        a2.place.active(1);
        let b = inbound.admit(ip("192.0.2.2")).expect("a third place");
        assert!(!b.evicted);
        // Full: the one unauthenticated connection makes way.
        let c = inbound.admit(ip("192.0.2.3")).expect("evicts b");
        assert!(c.evicted);
        c.place.authenticated();
        c.place.active(1);
        // Every place serves requests: nobody is evicted, the newcomer is refused.
        assert_eq!(inbound.admit(ip("192.0.2.4")).err(), Some(NoPlace::Full));
        // Once one is idle it can be evicted.
        a2.place.active(0);
        assert!(inbound.admit(ip("192.0.2.4")).expect("evicts a2").evicted);
        drop((a1, b, c));
    }
}
