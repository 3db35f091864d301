//! The driver: one task that owns the core [`Node`], its one timer and the connection pool.
//!
//! Run loop (the order the core asks for): wait for a command, a message from a connection
//! or the timer; feed it to the node with the current time; then drain every output —
//! requests go to pooled connections, finished commands go back to their callers — and re-arm
//! the timer at `poll_timeout`. Nothing here blocks: sends to connections use `try_send`, so a
//! slow peer can never stall the loop (its request fails instead).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::message::Message;
use cairn_core::message::{ErrorCode, ErrorReply, Response};
use cairn_core::node::{Event, Transmit};
use cairn_core::{Item, Node, QueryId, SignedItem, Store};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use crate::clock::Clock;
use crate::connection::{self, Outgoing, ToDriver};
use crate::dht::{
    BootstrapError, Command, Found, GetError, PeerInfo, PutError, PutReceipt, Status,
};
use crate::shared::Shared;
use crate::store::{Commit, NodeStore};

/// A dialed connection the driver can send requests on.
struct PoolEntry {
    conn: u64,
    requests: mpsc::Sender<Outgoing>,
    last_used: Instant,
}

/// Who is waiting for a command to finish.
enum Waiter {
    Put {
        reply: oneshot::Sender<Result<PutReceipt, PutError>>,
        seq: Option<u64>,
        expires: u64,
        /// The local copy's commit; the answer waits for it.
        commit: Option<Commit>,
    },
    Get(oneshot::Sender<Result<Found, GetError>>),
    FindNode(oneshot::Sender<Vec<cairn_core::message::Contact>>),
    Bootstrap {
        reply: oneshot::Sender<Result<usize, BootstrapError>>,
        tried: usize,
    },
}

pub(crate) struct Driver {
    node: Node<NodeStore>,
    shared: Arc<Shared>,
    clock: Clock,
    commands: mpsc::Receiver<Box<Command>>,
    inbound: mpsc::Receiver<Box<ToDriver>>,
    pool: HashMap<SocketAddr, PoolEntry>,
    next_conn: u64,
    waiters: HashMap<QueryId, Waiter>,
    /// Set once shutdown began: who to tell when done, and the latest moment to stop.
    stopping: Option<(Vec<oneshot::Sender<()>>, Instant)>,
    /// When the routing table is next saved (nodes with a data directory).
    snapshot_due: Instant,
}

/// How often the routing table is saved while the node runs.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(300);

impl Driver {
    pub(crate) fn new(
        node: Node<NodeStore>,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Box<Command>>,
        inbound: mpsc::Receiver<Box<ToDriver>>,
    ) -> Self {
        Driver {
            node,
            shared,
            clock: Clock::new(),
            commands,
            inbound,
            pool: HashMap::new(),
            next_conn: 0,
            waiters: HashMap::new(),
            stopping: None,
            snapshot_due: Instant::now() + SNAPSHOT_INTERVAL,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let timer = self.node.poll_timeout().map(|t| self.clock.instant(t));
            tokio::select! {
                command = self.commands.recv(), if self.stopping.is_none() => match command {
                    Some(command) => self.command(*command),
                    None => self.begin_shutdown(None),
                },
                Some(message) = self.inbound.recv() => self.on_connection_message(*message),
                () = sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    self.node.handle_timeout(self.clock.now());
                }
                () = sleep_until(self.snapshot_due), if self.shared.config.data_dir.is_some() => {
                    self.snapshot_due = Instant::now() + SNAPSHOT_INTERVAL;
                    self.save_snapshot();
                }
                () = sleep_until(self.stopping.as_ref().map_or_else(Instant::now, |s| s.1)), if self.stopping.is_some() => break,
            }
            self.drain();
            if self.stopping.is_some() && self.waiters.is_empty() {
                break;
            }
        }
        self.answer_queued_requests();
        self.finish_shutdown();
        // Let connections deliver their last answers (each gives up after its grace period).
        let all = u32::try_from(self.shared.config.max_inbound).unwrap_or(u32::MAX);
        let grace = connection::SHUTDOWN_GRACE + Duration::from_millis(500);
        let _ = tokio::time::timeout(grace, self.shared.inbound_slots.acquire_many(all)).await;
        self.notify_stopped();
    }

    /// Answers the requests that reached the driver before the connections stopped reading.
    fn answer_queued_requests(&mut self) {
        while let Ok(message) = self.inbound.try_recv() {
            if let ToDriver::Request { .. } = *message {
                self.on_connection_message(*message);
            }
        }
    }

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        let _ = self.shared.shutdown.send(true);
        let deadline = Instant::now()
            + self
                .shared
                .config
                .protocol
                .lookup_timeout
                .min(Duration::from_secs(5));
        let stopping = self.stopping.get_or_insert_with(|| (Vec::new(), deadline));
        stopping.0.extend(reply);
    }

    fn save_snapshot(&self) {
        let Some(dir) = &self.shared.config.data_dir else {
            return;
        };
        let contacts: Vec<_> = self
            .node
            .routing_table()
            .entries()
            .map(|e| e.contact)
            .collect();
        if let Err(e) = crate::snapshot::save(dir, &contacts) {
            tracing::warn!("cannot save the routing table in {}: {e}", dir.display());
        }
    }

    fn finish_shutdown(&mut self) {
        let _ = self.shared.shutdown.send(true);
        self.pool.clear();
        self.save_snapshot();
        // Every accepted write is committed before the node reports that it stopped.
        self.node.store_mut().close();
    }

    fn notify_stopped(&mut self) {
        if let Some((replies, _)) = self.stopping.take() {
            for reply in replies {
                let _ = reply.send(());
            }
        }
        tracing::info!(node = %self.node.id(), "node stopped");
    }

    fn command(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::PutSigned {
                name,
                value,
                ttl,
                reply,
            } => self.put_signed(&name, value, ttl, reply),
            Command::PutItem { item, reply } => self.start_put(item, reply),
            Command::Get { key, reply } => {
                let query = self.node.get(now, key);
                self.waiters.insert(query, Waiter::Get(reply));
            }
            Command::FindNode { target, reply } => {
                let query = self.node.find_node(now, target);
                self.waiters.insert(query, Waiter::FindNode(reply));
            }
            Command::Bootstrap { seeds, reply } => {
                let tried = seeds.len();
                let query = self.node.bootstrap(now, &seeds);
                self.waiters
                    .insert(query, Waiter::Bootstrap { reply, tried });
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peers());
            }
            Command::Shutdown { reply } => self.begin_shutdown(Some(reply)),
        }
    }

    fn put_signed(
        &mut self,
        name: &str,
        value: Bytes,
        ttl: Option<Duration>,
        reply: oneshot::Sender<Result<PutReceipt, PutError>>,
    ) {
        let now = self.clock.now();
        let key = cairn_core::item::signed_key(&self.shared.identity.public_key(), name);
        let stored = self.node.store().get(&key, now).and_then(|item| item.seq());
        let seq = stored.map_or(now.as_millis(), |s| {
            now.as_millis().max(s.saturating_add(1))
        });
        let expires = ttl.map_or(0, |ttl| (now + ttl).as_secs().max(1));
        match SignedItem::sign(
            self.shared.identity.signing_key(),
            name,
            value,
            seq,
            expires,
        ) {
            Ok(item) => self.start_put(Item::Signed(item), reply),
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn start_put(&mut self, item: Item, reply: oneshot::Sender<Result<PutReceipt, PutError>>) {
        let (seq, expires) = (item.seq(), item.expires());
        let query = self.node.put(self.clock.now(), item);
        let commit = self.node.store_mut().take_commit();
        self.waiters.insert(
            query,
            Waiter::Put {
                reply,
                seq,
                expires,
                commit,
            },
        );
    }

    fn on_connection_message(&mut self, message: ToDriver) {
        let now = self.clock.now();
        match message {
            ToDriver::Request {
                requester,
                id,
                request,
                reply,
            } => {
                let response = self.node.handle_request(now, requester, *request);
                match self.node.store_mut().take_commit() {
                    // `stored` goes out only once the item is durable.
                    Some(commit) if response == Response::Stored => {
                        tokio::spawn(async move {
                            let response = match commit.await {
                                Ok(Ok(())) => Response::Stored,
                                _ => Response::Error(ErrorReply::new(
                                    ErrorCode::INTERNAL,
                                    "the store failed to commit; nothing was stored",
                                )),
                            };
                            let _ = reply
                                .send(Box::new(Message::Response { id, response }))
                                .await;
                        });
                    }
                    _ => {
                        if reply
                            .try_send(Box::new(Message::Response { id, response }))
                            .is_err()
                        {
                            tracing::debug!(
                                "a connection's reply queue is full; dropping a response"
                            );
                        }
                    }
                }
            }
            ToDriver::Response { from, id, response } => {
                self.node.handle_response(now, from, id, *response)
            }
            ToDriver::Failed { ids } => {
                for id in ids {
                    self.node.handle_failure(now, id);
                }
            }
            ToDriver::Closed { addr, conn } => {
                if self.pool.get(&addr).is_some_and(|e| e.conn == conn) {
                    self.pool.remove(&addr);
                }
            }
        }
    }

    /// Drains every output of the node.
    fn drain(&mut self) {
        while let Some(transmit) = self.node.poll_transmit() {
            self.transmit(transmit);
        }
        while let Some(event) = self.node.poll_event() {
            self.event(event);
        }
    }

    /// Hands a request to the pooled connection for its address, dialing one if needed.
    fn transmit(&mut self, Transmit { id, to, request }: Transmit) {
        let mut outgoing = (id, Box::new(request));
        for _attempt in 0..2 {
            if !self.pool.contains_key(&to.addr) {
                self.dial(to.addr, to.id);
            }
            let Some(entry) = self.pool.get_mut(&to.addr) else {
                break;
            };
            entry.last_used = Instant::now();
            match entry.requests.try_send(outgoing) {
                Ok(()) => return,
                // The connection ended but the driver has not heard yet: dial afresh, once.
                Err(TrySendError::Closed(back)) => {
                    self.pool.remove(&to.addr);
                    outgoing = back;
                }
                Err(TrySendError::Full(_)) => break,
            }
        }
        self.node.handle_failure(self.clock.now(), id);
    }

    fn dial(&mut self, addr: SocketAddr, expected: Option<cairn_core::NodeId>) {
        if self.pool.len() >= self.shared.config.max_outbound {
            // Make room: the least recently used connection closes once its requests are done.
            if let Some(lru) = self
                .pool
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(a, _)| *a)
            {
                self.pool.remove(&lru);
            }
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let (requests, queue) = mpsc::channel(64);
        self.pool.insert(
            addr,
            PoolEntry {
                conn,
                requests,
                last_used: Instant::now(),
            },
        );
        tokio::spawn(connection::dial(
            addr,
            expected,
            conn,
            queue,
            self.shared.clone(),
        ));
    }

    fn event(&mut self, event: Event) {
        let waiter = match &event {
            Event::FindNodeDone { query, .. }
            | Event::GetDone { query, .. }
            | Event::PutDone { query, .. }
            | Event::BootstrapDone { query, .. } => match self.waiters.remove(query) {
                Some(waiter) => waiter,
                None => return,
            },
            Event::ContactAdded(c) => {
                return tracing::trace!(peer = %c.id, addr = %c.addr, "contact added");
            }
            Event::ContactRemoved(id) => return tracing::trace!(peer = %id, "contact removed"),
        };
        match (event, waiter) {
            (
                Event::PutDone {
                    key, result, stats, ..
                },
                Waiter::Put {
                    reply,
                    seq,
                    expires,
                    commit,
                },
            ) => {
                let receipt = result
                    .map(|replicas| PutReceipt {
                        key,
                        seq,
                        expires,
                        replicas,
                        stats,
                    })
                    .map_err(PutError::from);
                match commit {
                    None => {
                        let _ = reply.send(receipt);
                    }
                    Some(commit) => {
                        tokio::spawn(async move {
                            let durable = match commit.await {
                                Ok(Ok(())) => receipt,
                                Ok(Err(e)) => Err(PutError::NotDurable(e)),
                                Err(_) => Err(PutError::NotDurable("the store stopped".into())),
                            };
                            let _ = reply.send(durable);
                        });
                    }
                }
            }
            (
                Event::GetDone {
                    key, result, stats, ..
                },
                Waiter::Get(reply),
            ) => {
                let found = result
                    .map(|item| Found { item, stats })
                    .map_err(|_| GetError::NotFound { key });
                let _ = reply.send(found);
            }
            (Event::FindNodeDone { closest, .. }, Waiter::FindNode(reply)) => {
                let _ = reply.send(closest);
            }
            (Event::BootstrapDone { result, .. }, Waiter::Bootstrap { reply, tried }) => {
                let _ = reply.send(result.map_err(|_| BootstrapError::NoContact { tried }));
            }
            _ => tracing::error!("a command finished with an event of another kind"),
        }
    }

    fn status(&self) -> Status {
        let stats = self.node.stats();
        let counters = &self.shared.counters;
        Status {
            node_id: self.node.id().to_hex(),
            public_key: cairn_core::id::to_hex(&self.shared.identity.public_key()),
            network: self.shared.config.network.clone(),
            listen: SocketAddr::new(self.shared.config.listen.ip(), self.shared.listen_port),
            peers: self.node.routing_table().len(),
            items: self.node.store().len(),
            uptime_s: self.clock.uptime().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            requests_sent: stats.requests_sent,
            requests_handled: stats.requests_handled,
            requests_failed: stats.requests_failed,
            connections_opened: counters.connections_opened.load(Ordering::Relaxed),
            connections_accepted: counters.connections_accepted.load(Ordering::Relaxed),
            connection_budget_exhausted: counters.budget_exhausted.load(Ordering::Relaxed),
        }
    }

    fn peers(&self) -> Vec<PeerInfo> {
        let now = self.clock.now();
        self.node
            .routing_table()
            .entries()
            .map(|e| PeerInfo {
                node_id: e.contact.id.to_hex(),
                addr: e.contact.addr,
                last_seen_s: now.since(e.last_seen).as_secs(),
                failures: e.failures,
            })
            .collect()
    }
}
