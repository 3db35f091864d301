//! The driver: one task that owns the core [`Node`], its one timer and the connection pool.
//!
//! Run loop (the order the core asks for): wait for a command, a message from a connection,
//! a commit reported by the store, or the timer; feed it to the node with the current time;
//! then drain every output (requests go to the [`pool`], finished commands to the
//! [`waiters`]) and re-arm the timer at `poll_timeout`. Nothing here waits on a file: the
//! routing-table snapshot is saved on a blocking task, and a durable store commits on its own
//! thread. What stays on the driver is a durable store's read of one item (a `find_value` hit,
//! a watch's or a subscription's first copy, a republish): one redb read transaction, about
//! 13 µs in a release build (`benches/store.rs` has the figure and the reasons).
//!
//! - `inbox`: the types that reach the driver and that it hands to connections;
//! - `pool`: dialed connections, LRU and bounded;
//! - `waiters`: callers of running commands, and answers held until their commit lands.

mod datagrams;
pub(crate) mod inbox;
mod observe;
mod pool;
mod reach;
mod relay;
pub(crate) use relay::{circuit_ip, circuit_of};
mod rendezvous;
mod waiters;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use cairn_core::{
    CommitOutcome, Event, GetFailure, Item, Message, Node, QueryId, Request, Store, WatchId,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};

use crate::clock::Clock;
use crate::connection;
use crate::error::{DeleteError, PutError};
use crate::outcome::{PeerInfo, PutReceipt, Status};
use crate::shared::Shared;
use crate::store::{CommitReceiver, Committed, StorageHealth, StorageStatus};
use inbox::{Command, ToDriver};
use pool::Pool;
use waiters::{Waiter, Waiters};

/// The driver of a node keeping its items in `S`.
pub(crate) struct Driver<S: Store> {
    node: Node<S>,
    shared: Arc<Shared>,
    clock: Clock,
    commands: mpsc::Receiver<Box<Command>>,
    inbound: mpsc::Receiver<Box<ToDriver>>,
    /// Commit outcomes of a durable store (`None` for an in-memory one).
    commits: Option<CommitReceiver>,
    /// The durable store's health (`None` for an in-memory one, which is always ok).
    storage: Option<StorageHealth>,
    pool: Pool,
    waiters: Waiters,
    /// Set once shutdown began: who to tell when done, and the latest moment to stop.
    stopping: Option<(Vec<oneshot::Sender<()>>, Instant)>,
    /// When the routing table is next saved (nodes with a data directory).
    snapshot_due: Instant,
    /// The routing-table save under way on a blocking task, if any.
    snapshot_task: Option<JoinHandle<()>>,
    /// Incoming connections that sent `listen`, by number: where their `notify` frames go.
    subscribers: HashMap<u64, mpsc::Sender<Box<Message>>>,
    /// Where each watch's updates go.
    watchers: HashMap<WatchId, mpsc::UnboundedSender<Item>>,
    /// Deletes looking for the item's newest `seq` before they sign a tombstone.
    deletes: HashMap<QueryId, PendingDelete>,
    /// Metrics, lookup spans and activity from the core's traces.
    observer: observe::Observer,
    /// The datagram plane, when the node speaks datagrams.
    plane: Option<cairn_core::datagram::Plane<cairn_core::datagram::Real>>,
    /// Peers' `reach` requests relayed, by the node's token: where each answer goes (at most
    /// the node's bound on relays at once).
    relays: HashMap<u64, cairn_core::datagram::Reply>,
    /// Peers' `introduce` requests relayed, by the node's token: where each answer goes (at
    /// most the node's bound on introductions at once).
    introductions: HashMap<u64, cairn_core::datagram::Reply>,
    /// Exchanges under way: where each answer goes (one per [`crate::Dht::ping_key`] step).
    exchanges: HashMap<cairn_core::ExchangeId, oneshot::Sender<Option<cairn_core::Exchanged>>>,
    /// Circuits this node is an end of: the relay each goes through, and when it was last
    /// used (at most `relay::MAX_ENDS`).
    ends: HashMap<u64, (SocketAddr, Instant)>,
}

/// A delete whose item was not held here: the get that finds its `seq` runs.
struct PendingDelete {
    name: String,
    ttl: Option<Duration>,
    reply: oneshot::Sender<Result<PutReceipt, DeleteError>>,
}

/// How often the routing table is saved while the node runs.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(300);

/// When a node whose mode is forced (server or client) checks its reachability first.
const FORCED_FIRST_CHECK: Duration = Duration::from_secs(30);

/// How long a stopping node waits for the store to report its last commits.
const COMMIT_GRACE: Duration = Duration::from_secs(5);

/// The next commit report, or never for a node without a durable store.
async fn next_commit(commits: &mut Option<CommitReceiver>) -> Option<Committed> {
    match commits {
        Some(commits) => commits.recv().await,
        None => std::future::pending().await,
    }
}

impl<S: Store> Driver<S> {
    pub(crate) fn new(
        node: Node<S>,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Box<Command>>,
        inbound: mpsc::Receiver<Box<ToDriver>>,
        commits: Option<CommitReceiver>,
    ) -> Self {
        let mut node = node;
        node.set_tracing(true);
        let observer =
            observe::Observer::new(shared.metrics.clone(), shared.activity.clone(), node.id());
        let clock = Clock::new();
        let plane = datagrams::plane(&shared, clock.now());
        if plane.is_some() {
            // Only a node that speaks datagrams can be probed. An auto node's mode waits on
            // its verdict: it checks at once. A node whose mode is forced checks only to
            // report, and leaves its first moments to joining.
            let mut seed = [0; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
            let first = match shared.config.mode {
                crate::mode::ModeSetting::Auto => clock.now(),
                _ => clock.now() + FORCED_FIRST_CHECK,
            };
            node.start_reach_checks(first, seed);
        }
        Driver {
            plane,
            observer,
            node,
            pool: Pool::new(shared.clone()),
            shared,
            clock,
            commands,
            inbound,
            storage: commits.as_ref().map(CommitReceiver::health),
            commits,
            waiters: Waiters::default(),
            stopping: None,
            snapshot_due: Instant::now() + SNAPSHOT_INTERVAL,
            snapshot_task: None,
            subscribers: HashMap::new(),
            watchers: HashMap::new(),
            deletes: HashMap::new(),
            relays: HashMap::new(),
            introductions: HashMap::new(),
            exchanges: HashMap::new(),
            ends: HashMap::new(),
        }
    }

    /// Runs the node until it has stopped. The driver is boxed, here and in
    /// [`Self::finish_shutdown`]: an `async fn` keeps its arguments twice in its future
    /// (rust-lang/rust#62958), so a 4.5 KB driver taken by value by both made each node's task
    /// 18.5 KB, four drivers' worth (measured with `size_of`, release build).
    pub(crate) async fn run(mut self: Box<Self>) {
        loop {
            let timer = self.node.poll_timeout().map(|t| self.clock.instant(t));
            let plane_timer = self
                .plane
                .as_ref()
                .and_then(|p| p.poll_timeout())
                .map(|t| self.clock.instant(t));
            tokio::select! {
                command = self.commands.recv(), if self.stopping.is_none() => match command {
                    Some(command) => self.command(*command),
                    None => self.begin_shutdown(None),
                },
                Some(message) = self.inbound.recv() => self.on_connection_message(*message),
                Some(done) = next_commit(&mut self.commits) => self.on_commit(done),
                () = sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    self.node.handle_timeout(self.clock.now());
                }
                () = sleep_until(plane_timer.unwrap_or_else(Instant::now)), if plane_timer.is_some() => {
                    if let Some(plane) = &mut self.plane {
                        plane.handle_timeout(self.clock.now());
                    }
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
        self.finish_shutdown().await;
    }

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        let _ = self.shared.shutdown.send(true);
        self.shared.streams.shut_down();
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

    /// Stops: closes the pool and saves the routing table; then, until every incoming
    /// connection has closed (each gives up after its grace period), answers the requests
    /// they hand over and releases the answers held on commits; then closes the store (every
    /// accepted write is committed before the node reports that it stopped).
    async fn finish_shutdown(mut self: Box<Self>) {
        let _ = self.shared.shutdown.send(true);
        self.shared.streams.shut_down();
        self.pool.clear();
        self.save_last_snapshot().await;
        let inbound = self.shared.inbound.clone();
        let closed = inbound.all_closed();
        tokio::pin!(closed);
        let give_up = Instant::now() + connection::SHUTDOWN_GRACE + Duration::from_millis(500);
        loop {
            tokio::select! {
                _ = &mut closed => break,
                () = sleep_until(give_up) => break,
                Some(message) = self.inbound.recv() => {
                    // Only answers matter now: the pool is closed, so nothing is sent.
                    if let ToDriver::Request { .. } = *message {
                        self.on_connection_message(*message);
                    }
                }
                Some(done) = next_commit(&mut self.commits) => self.on_commit(done),
            }
        }
        // Puts and stores whose commit is still under way are answered before the store
        // closes, if the commit lands within the grace.
        let deadline = Instant::now() + COMMIT_GRACE;
        while self.waiters.holds_answers() {
            match timeout(deadline - Instant::now(), next_commit(&mut self.commits)).await {
                Ok(Some(done)) => self.on_commit(done),
                _ => break,
            }
        }
        let id = *self.node.id();
        let Driver { node, stopping, .. } = *self;
        drop(node);
        for reply in stopping.map(|s| s.0).unwrap_or_default() {
            let _ = reply.send(());
        }
        tracing::info!(node = %id, "node stopped");
    }

    /// Starts saving the routing table on a blocking task, so that the file I/O and its
    /// `fsync` never hold up the driver; skipped while the previous save still runs.
    fn save_snapshot(&mut self) {
        if self
            .snapshot_task
            .as_ref()
            .is_some_and(|t| !t.is_finished())
        {
            tracing::debug!("the previous routing-table save still runs; this one is skipped");
            return;
        }
        self.snapshot_task = self.spawn_snapshot();
    }

    /// At shutdown: waits for a save under way, then saves the table as it is now and waits
    /// for that too, so the node stops with its last table on disk.
    async fn save_last_snapshot(&mut self) {
        let running = self.snapshot_task.take();
        for task in [running, self.spawn_snapshot()].into_iter().flatten() {
            if let Err(e) = task.await {
                self.shared.metrics.snapshot_failures.inc();
                tracing::warn!("the routing-table save did not finish: {e}");
            }
        }
    }

    /// A blocking task that saves the routing table in the data directory (none without one);
    /// a failure is logged and counted (`cairn_snapshot_failures`).
    fn spawn_snapshot(&self) -> Option<JoinHandle<()>> {
        let dir = self.shared.config.data_dir.clone()?;
        let contacts: Vec<_> = self
            .node
            .routing_table()
            .entries()
            .map(|e| e.contact)
            .collect();
        let metrics = self.shared.metrics.clone();
        Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::snapshot::save(&dir, &contacts) {
                metrics.snapshot_failures.inc();
                tracing::warn!("cannot save the routing table in {}: {e}", dir.display());
            }
        }))
    }

    fn command(&mut self, command: Command) {
        let now = self.clock.now();
        let (query, waiter) = match command {
            Command::PutSigned {
                name,
                value,
                ttl,
                reply,
            } => {
                let key = self.shared.identity.signing_key();
                match self.node.publish(now, key, &name, value, ttl) {
                    Ok(query) => (query, Waiter::Put(reply)),
                    Err(e) => {
                        let _ = reply.send(Err(PutError::Invalid(e)));
                        return;
                    }
                }
            }
            Command::PutItem { item, reply } => (self.node.put(now, item), Waiter::Put(reply)),
            Command::Get { key, reply } => (self.node.get(now, key), Waiter::Get(reply)),
            Command::Delete { name, ttl, reply } => {
                self.delete(PendingDelete { name, ttl, reply }, None);
                return;
            }
            Command::Watch {
                key,
                updates,
                reply,
            } => {
                let watch = self.node.watch(now, key);
                self.watchers.insert(watch, updates);
                let _ = reply.send(watch);
                return;
            }
            Command::Unwatch { watch } => {
                self.watchers.remove(&watch);
                self.node.unwatch(now, watch);
                return;
            }
            Command::FindNode { target, reply } => {
                (self.node.find_node(now, target), Waiter::FindNode(reply))
            }
            Command::Bootstrap { seeds, reply } => {
                if !seeds.is_empty() {
                    self.joined();
                }
                let query = self.node.bootstrap(now, &seeds);
                let heard = Vec::new();
                (
                    query,
                    Waiter::Bootstrap {
                        reply,
                        seeds,
                        heard,
                    },
                )
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
                return;
            }
            Command::UpdateGauges { reply } => {
                self.update_gauges();
                let _ = reply.send(());
                return;
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peers());
                return;
            }
            Command::Ring { reply } => {
                let _ = reply.send(self.ring());
                return;
            }
            Command::Items {
                after,
                limit,
                reply,
            } => {
                let listed = self.node.store().list(after.as_ref(), limit);
                let _ = reply.send(listed.into_iter().map(Into::into).collect());
                return;
            }
            Command::Shutdown { reply } => {
                self.begin_shutdown(Some(reply));
                return;
            }
            Command::OpenCircuit {
                circuit,
                via,
                reply,
            } => {
                let _ = reply.send(self.open_end(circuit, via));
                return;
            }
            Command::Exchange { to, request, reply } => {
                let exchange = self.node.exchange(now, to, request);
                self.exchanges.insert(exchange, reply);
                return;
            }
        };
        self.waiters.insert(query, waiter);
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
                if let Request::Listen { .. } = *request {
                    self.subscribers
                        .entry(requester.connection)
                        .or_insert_with(|| reply.clone());
                }
                let name = request.name();
                let answer = self.node.handle_request(now, requester, id, *request);
                let answer = self.send_probe(answer);
                let error = match &answer.response {
                    cairn_core::Response::Error(e) => Some(e.code.0),
                    _ => None,
                };
                self.observer.request_received(name, error);
                self.waiters.answer(id, answer, reply);
            }
            ToDriver::Response {
                from,
                id,
                response,
                role,
            } => self
                .node
                .handle_response_from(now, from, role, id, *response),
            ToDriver::Client { id } => self.node.handle_client(now, &id),
            ToDriver::Failed { ids } => {
                for id in ids {
                    self.node.handle_failure(now, id);
                }
            }
            ToDriver::Closed {
                addr,
                conn,
                failure,
            } => {
                if let Some(failure) = failure {
                    self.waiters.dial_failed(addr, &failure);
                }
                self.pool.closed(addr, conn);
            }
            ToDriver::Notify { from, id, item } => self.node.handle_notify(now, from, id, *item),
            ToDriver::Verified { requester } => self.node.handle_verified(now, requester),
            ToDriver::InboundClosed { connection } => {
                self.subscribers.remove(&connection);
                self.node.connection_closed(connection);
            }
            ToDriver::Datagram { from, bytes } => {
                if bytes.first() == Some(&cairn_core::datagram::RELAYED) {
                    self.on_relayed(from, &bytes);
                } else if let Some(plane) = &mut self.plane {
                    plane.handle_datagram(now, from, &bytes);
                }
            }
            ToDriver::StreamOut { to, bytes } => self.send_datagram(to, &bytes),
            ToDriver::TcpOnly { addr } => {
                if let Some(plane) = &mut self.plane {
                    plane.speaks_tcp_only(now, addr);
                }
            }
        }
    }

    /// Deletes the item `pending.name` of this node: with the `seq` held here, or else with
    /// the one a get found (`found`, once it ran); refuses when nothing is found or it is
    /// deleted already.
    fn delete(&mut self, pending: PendingDelete, found: Option<Result<Item, GetFailure>>) {
        let now = self.clock.now();
        let public_key = self.shared.identity.public_key();
        let key = cairn_core::signed_key(&public_key, &pending.name);
        let newest = match found {
            Some(Ok(item)) => Some(item),
            Some(Err(GetFailure::NotFound { .. })) => None,
            Some(Err(GetFailure::Unavailable { .. })) => {
                let name = pending.name;
                let _ = pending.reply.send(Err(DeleteError::Unavailable { name }));
                return;
            }
            None => match self.node.store().get(&key, now) {
                Ok(Some(item)) => Some(item),
                held => {
                    if let Err(e) = held {
                        tracing::warn!("delete of {:?}: {e}; asking the network", pending.name);
                    }
                    let query = self.node.get(now, key);
                    self.deletes.insert(query, pending);
                    return;
                }
            },
        };
        let PendingDelete { name, ttl, reply } = pending;
        let seq = match newest {
            None => {
                let _ = reply.send(Err(DeleteError::NotFound { name }));
                return;
            }
            Some(Item::Tombstone(t)) => {
                let seq = t.seq();
                let _ = reply.send(Err(DeleteError::AlreadyDeleted { name, seq }));
                return;
            }
            Some(item) => item.seq(),
        };
        let signing_key = self.shared.identity.signing_key();
        match self.node.delete(now, signing_key, &name, seq, ttl) {
            Ok(query) => {
                // The tombstone's put reports like any put; its caller hears a delete's error.
                let (put_reply, receipt) = oneshot::channel();
                self.waiters.insert(query, Waiter::Put(put_reply));
                tokio::spawn(async move {
                    let result = receipt.await.unwrap_or(Err(PutError::Stopped));
                    let _ = reply.send(result.map_err(DeleteError::from));
                });
            }
            Err(e) => {
                let _ = reply.send(Err(DeleteError::Put(PutError::Invalid(e))));
            }
        }
    }

    /// The store reported a group commit: the node learns each write's outcome (undoing failed
    /// ones), then whoever waited on them is answered.
    fn on_commit(&mut self, done: Committed) {
        let (outcome, label) = match done.result {
            Ok(()) => (CommitOutcome::Durable, "ok"),
            Err(_) => (CommitOutcome::Failed, "failed"),
        };
        let metrics = &self.shared.metrics;
        metrics
            .commits
            .get_or_create(&crate::metrics::OutcomeLabel { outcome: label })
            .inc();
        metrics.commit_duration.observe(done.took.as_secs_f64());
        let room = self.shared.config.max_requests_per_connection.max(1);
        for commit in done.commits {
            self.node.handle_commit(commit, outcome);
            let datagrams = self.waiters.committed(commit, &done.result, room);
            self.answer_datagrams(datagrams);
        }
    }

    /// Drains every output of the node, until an event handled here starts nothing more.
    fn drain(&mut self) {
        let room = self.shared.config.max_requests_per_connection.max(1);
        loop {
            while let Some(transmit) = self.node.poll_transmit() {
                self.transmit(transmit);
            }
            while let Some(id) = self.node.poll_cancelled() {
                if let Some(plane) = &mut self.plane {
                    plane.cancel(self.clock.now(), id);
                }
            }
            let mut again = self.drain_plane();
            self.drain_reach();
            self.drain_rendezvous();
            while let Some(n) = self.node.poll_notification() {
                if let Some(reply) = self.subscribers.get(&n.connection) {
                    let message = Box::new(Message::Notify {
                        id: n.id,
                        item: n.item,
                    });
                    self.waiters.notify(n.commit, reply.clone(), message, room);
                }
            }
            let now = self.clock.now();
            while let Some(trace) = self.node.poll_trace() {
                self.observer.record(now, trace);
            }
            while let Some(event) = self.node.poll_event() {
                match event {
                    Event::WatchUpdate { watch, item } => {
                        let gone = self
                            .watchers
                            .get(&watch)
                            .is_none_or(|updates| updates.send(item).is_err());
                        if gone {
                            self.watchers.remove(&watch);
                            self.node.unwatch(self.clock.now(), watch);
                            again = true;
                        }
                    }
                    Event::GetDone { query, result, .. } if self.deletes.contains_key(&query) => {
                        if let Some(pending) = self.deletes.remove(&query) {
                            self.delete(pending, Some(result));
                            again = true;
                        }
                    }
                    Event::ObservedChanged(change) => self.observed_changed(change),
                    Event::ReachabilityChanged { from, to } => {
                        self.reachability_changed(from, to);
                    }
                    event @ Event::Exchanged { .. } => self.exchanged(event),
                    event @ Event::BootstrapDone { .. } => {
                        self.bootstrapped();
                        self.waiters.event(event);
                    }
                    event => self.waiters.event(event),
                }
            }
            if !again {
                return;
            }
        }
    }

    /// This node's address as its peers see it changed: logged and counted.
    fn observed_changed(&self, change: cairn_core::ObservedChange) {
        let family = change.family.as_str();
        match change.from {
            Some(from) => tracing::info!(
                family,
                "peers now see this node at {} (was {from})",
                change.to
            ),
            None => tracing::info!(family, "peers see this node at {}", change.to),
        }
        self.shared
            .metrics
            .observed_changes
            .get_or_create(&crate::metrics::FamilyLabel { family })
            .inc();
    }

    fn status(&self) -> Status {
        let stats = self.node.stats();
        let counters = &*self.shared.metrics;
        let count = |counter: &prometheus_client::metrics::counter::Counter| counter.get();
        Status {
            node_id: *self.node.id(),
            public_key: self.shared.identity.public_key(),
            network: self.shared.config.network.to_string(),
            listen: SocketAddr::new(self.shared.config.listen.ip(), self.shared.listen_port),
            listen_addrs: self.shared.listening.clone(),
            peers: self.node.routing_table().len(),
            network_size: self.node.routing_table().network_size(),
            items: self.node.store().len(),
            uptime_s: self.clock.uptime().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            lookups: count(&counters.lookups_ended),
            requests_sent: stats.requests_sent,
            requests_handled: stats.requests_handled,
            requests_failed: stats.requests_failed,
            contacts_crowded_out: stats.contacts_crowded_out,
            stores_over_share: stats.stores_over_share,
            connections_opened: count(&counters.connections_opened),
            connections_accepted: count(&counters.connections_accepted),
            connection_budget_exhausted: count(&counters.budget_exhausted),
            dial_failures: count(&counters.dial_failures),
            connections_refused: count(&counters.connections_refused),
            invalid_messages: count(&counters.invalid_messages),
            connections_refused_per_host: count(&counters.connections_refused_per_host),
            connections_evicted: count(&counters.connections_evicted),
            handshake_timeouts: count(&counters.handshake_timeouts),
            requests_rate_limited: count(&counters.requests_rate_limited),
            stores_rate_limited: count(&counters.stores_rate_limited),
            subscriptions: self.node.subscription_count(),
            watches: self.node.watch_count(),
            datagrams: self.datagram_status(),
            storage: self.storage_status(),
            reachability: self.reachability(),
            mode: self.node.mode().as_str().to_owned(),
        }
    }

    /// What the node knows of how peers reach it: its checks, and per family the address.
    fn reachability(&self) -> crate::outcome::Reachability {
        use cairn_core::Family;
        let now = self.clock.now();
        let report = self.node.reachability();
        let (probes, served, checked_at) = self.reach_status();
        crate::outcome::Reachability {
            status: report.status.as_str().to_owned(),
            checked_at,
            checks: report.checks,
            probes,
            served,
            rendezvous: self.rendezvous_counts(),
            mode: self.node.mode().as_str().to_owned(),
            setting: self.shared.config.mode.as_str().to_owned(),
            ipv4: self.node.observed(Family::Ipv4, now).into(),
            ipv6: self.node.observed(Family::Ipv6, now).into(),
        }
    }

    /// The durable store's health now (ok for an in-memory store).
    fn storage_status(&self) -> StorageStatus {
        self.storage
            .as_ref()
            .map(StorageHealth::status)
            .unwrap_or_default()
    }

    /// Brings the metrics that mirror the node's state up to date (before a scrape).
    fn update_gauges(&self) {
        let m = &self.shared.metrics;
        let table = self.node.routing_table();
        let store = self.node.store();
        let gauge = |g: &prometheus_client::metrics::gauge::Gauge, v: usize| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge(&m.items, store.len());
        gauge(&m.item_bytes, store.bytes());
        gauge(&m.contacts, table.len());
        gauge(&m.network_size, table.network_size() as usize);
        gauge(&m.subscriptions, self.node.subscription_count());
        gauge(&m.watches, self.node.watch_count());
        gauge(&m.uptime, self.clock.uptime().as_secs() as usize);
        for (direction, open) in [
            ("outbound", self.pool.len()),
            ("inbound", self.shared.inbound.len()),
        ] {
            let labels = crate::metrics::DirectionLabel { direction };
            gauge(&m.connections_open.get_or_create(&labels), open);
        }
        // The core counts these itself; the metrics catch up.
        let stats = self.node.stats();
        let behind = |counter: &prometheus_client::metrics::counter::Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        behind(&m.stores_over_share, stats.stores_over_share);
        behind(&m.traces_dropped, self.node.traces_dropped());
        m.storage.update(&self.storage_status());
        self.update_datagram_metrics();
        self.update_reach_metrics();
    }

    /// The ring as this node sees it: itself, its contacts by bucket, and what it holds.
    fn ring(&self) -> crate::view::Ring {
        use crate::view::{MAX_LISTED, Ring, RingItem, RingNode};
        let own = *self.node.id();
        let store = self.node.store();
        let listen = SocketAddr::new(self.shared.config.listen.ip(), self.shared.listen_port);
        let mut nodes = vec![RingNode {
            id: own.to_hex(),
            addr: listen,
            bucket: None,
            items: Some(store.len()),
        }];
        nodes.extend(self.node.routing_table().entries().map(|e| RingNode {
            id: e.contact.id.to_hex(),
            addr: e.contact.addr,
            bucket: own.distance(&e.contact.id).bucket_index(),
            items: None,
        }));
        let items = store
            .list(None, MAX_LISTED)
            .into_iter()
            .map(|l| RingItem {
                key: l.key.to_hex(),
                kind: l.kind.as_str().to_owned(),
                holders: 1,
            })
            .collect();
        Ring {
            center: Some(own.to_hex()),
            nodes,
            items,
            truncated: store.len() > MAX_LISTED,
        }
    }

    fn peers(&self) -> Vec<PeerInfo> {
        let now = self.clock.now();
        self.node
            .routing_table()
            .entries()
            .map(|e| PeerInfo {
                node_id: e.contact.id,
                addr: e.contact.addr,
                last_seen_s: now.since(e.last_seen).as_secs(),
                failures: e.failures,
            })
            .collect()
    }
}
#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::Driver;
    use crate::store::NodeStore;

    /// The size of the future an `async fn` of one argument returns.
    fn future_size<A, F>(_: impl FnOnce(A) -> F) -> usize {
        size_of::<F>()
    }

    #[test]
    fn a_nodes_task_holds_its_driver_behind_a_box() {
        // Every node's driver task lives as long as the node: were the driver in its
        // future (four times over, as `run` and `finish_shutdown` each keep their arguments
        // twice), each node would cost 18.5 KB of task where 5 KB serve. A future smaller
        // than the driver cannot hold it.
        let task = future_size(Driver::<NodeStore>::run);
        let driver = size_of::<Driver<NodeStore>>();
        assert!(
            task < driver,
            "the task's future is {task} bytes, the driver {driver}"
        );
    }
}
