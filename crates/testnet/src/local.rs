//! The nodes of one process: started on loopback addresses of their own under one connection
//! budget sized from the process's open-file limit, joined, counted and stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_node::cairn_core::MemoryStore;
use cairn_node::{Config, Dht, Identity};
use cairn_report::resident_bytes_from_statm;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::member::{Member, join};
use crate::{Progress, TestnetError};

/// The nodes of one process: a whole network, or one share of a spread one.
pub struct Testnet {
    /// Handles of the nodes, in order.
    pub nodes: Vec<Dht>,
    /// Their listen addresses.
    pub addrs: Vec<SocketAddr>,
    budget: usize,
    permits: Arc<Semaphore>,
    rss_before: u64,
}

/// The loopback address of test node `i`: each node a host of its own in a /24 of its own
/// (127.a.b.1), as nodes on the internet are, so that the per-host and per-subnet limits see
/// a network of many hosts rather than one.
pub fn loopback_host(i: usize) -> std::net::IpAddr {
    let [.., a, b] = u32::try_from(i % 65_024).unwrap_or(0).to_be_bytes();
    std::net::IpAddr::from([127, a.wrapping_add(1), b, 1])
}

/// The soft limit on open files of this process, from `/proc/self/limits` (1,024 if unknown).
pub fn open_file_limit() -> usize {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_024)
}

/// Resident memory of this process in bytes, from `/proc/self/statm` (0 if unknown).
pub fn resident_bytes() -> u64 {
    resident_bytes_from_statm(&std::fs::read_to_string("/proc/self/statm").unwrap_or_default())
}

/// Descriptors a process keeps aside from its nodes' connections: its own files and pipes,
/// plus one listener per node.
pub(crate) fn spare_descriptors(nodes: usize) -> usize {
    // Each node holds a TCP listener and a UDP socket outside the budget.
    256 + 2 * nodes
}

impl Testnet {
    /// Starts `count` nodes, each on its own loopback address (not yet joined), sharing a
    /// connection budget sized from the open-file limit.
    pub async fn start(count: usize) -> Result<Self, TestnetError> {
        Self::start_at(0, 1, count).await
    }

    /// Starts `count` nodes of a network, numbers `first`, `first + stride`, ...: node `i`
    /// listens on [`loopback_host`]`(i)`.
    pub async fn start_at(first: usize, stride: usize, count: usize) -> Result<Self, TestnetError> {
        Self::start_configured(first, stride, count, |config| config).await
    }

    /// Starts nodes as [`Testnet::start_at`] does, each with the configuration `configure`
    /// makes of the default one (say, `|c| c.datagrams(false)` for version-1 nodes).
    pub async fn start_configured(
        first: usize,
        stride: usize,
        count: usize,
        configure: impl Fn(Config) -> Config,
    ) -> Result<Self, TestnetError> {
        let rss_before = resident_bytes();
        // A permit per connection end, dialed or accepted: a descriptor each. A node's pool
        // may fill a third of its share: as many connections come in as go out on average,
        // and the rest is room for the nodes that more dial than others.
        let budget = open_file_limit()
            .saturating_sub(spare_descriptors(count))
            .max(48);
        let shared = Arc::new(Semaphore::new(budget));
        let per_node = (budget / (3 * count.max(1))).clamp(4, 64);
        let mut nodes = Vec::with_capacity(count);
        let mut addrs = Vec::with_capacity(count);
        for i in (0..count).map(|n| first + n * stride.max(1)) {
            let config = Config::default()
                .listen(SocketAddr::new(loopback_host(i), 0))
                .max_outbound(per_node)
                // A node's pool is bounded by its share of the budget, so connections can stay
                // open between operations rather than be set up again for the next one.
                .idle_timeout(Duration::from_secs(30));
            let config = configure(config);
            let store = MemoryStore::new(config.limits);
            let dht = cairn_node::start_with_budget(
                config,
                Identity::generate(),
                store,
                None,
                shared.clone(),
            )
            .await?;
            let addr = dht
                .status()
                .await
                .map(|s| s.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
            nodes.push(dht);
            addrs.push(addr);
        }
        Ok(Testnet {
            nodes,
            addrs,
            budget,
            permits: shared,
            rss_before,
        })
    }

    /// Joins every node but the first through up to three random nodes that joined before it,
    /// `concurrency` joins at a time. Returns how many failed.
    pub async fn join(
        &self,
        rng: &mut StdRng,
        concurrency: usize,
        progress: &dyn Progress,
    ) -> usize {
        let members: Vec<Member> = self.nodes.iter().cloned().map(Member::Local).collect();
        join(&members, &self.addrs, rng, concurrency, progress).await
    }

    /// Stops every node.
    pub async fn shutdown(&self) {
        let mut all = JoinSet::new();
        for dht in &self.nodes {
            let dht = dht.clone();
            all.spawn(async move { dht.shutdown().await });
        }
        while all.join_next().await.is_some() {}
    }

    /// The counters of these nodes, added up.
    pub(crate) async fn totals(&self) -> Totals {
        let mut totals = Totals::of_process(self.budget, &self.permits, self.rss_before);
        for dht in &self.nodes {
            totals.add_node(dht).await;
        }
        totals
    }
}

/// Counters of one process's nodes, added up; a spread network adds those of its processes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub(crate) requests_sent: u64,
    pub(crate) connections_opened: u64,
    pub(crate) budget_exhausted: u64,
    pub(crate) dial_failures: u64,
    pub(crate) connections_open: usize,
    pub(crate) budget: usize,
    pub(crate) rss_before: u64,
    pub(crate) rss_after: u64,
}

impl Totals {
    /// A process's totals before its nodes' counters are added: its connection budget (of
    /// which `permits` are not in use) and its memory before the nodes started and now.
    pub(crate) fn of_process(budget: usize, permits: &Semaphore, rss_before: u64) -> Self {
        Totals {
            budget,
            connections_open: budget - permits.available_permits(),
            rss_before,
            rss_after: resident_bytes(),
            ..Totals::default()
        }
    }

    /// Adds the counters of a running node (nothing if it does not answer).
    pub(crate) async fn add_node(&mut self, dht: &Dht) {
        if let Ok(s) = dht.status().await {
            self.requests_sent += s.requests_sent;
            self.connections_opened += s.connections_opened;
            self.budget_exhausted += s.connection_budget_exhausted;
            self.dial_failures += s.dial_failures;
        }
    }
}

impl std::ops::Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals {
            requests_sent: self.requests_sent + o.requests_sent,
            connections_opened: self.connections_opened + o.connections_opened,
            budget_exhausted: self.budget_exhausted + o.budget_exhausted,
            dial_failures: self.dial_failures + o.dial_failures,
            connections_open: self.connections_open + o.connections_open,
            budget: self.budget + o.budget,
            rss_before: self.rss_before + o.rss_before,
            rss_after: self.rss_after + o.rss_after,
        }
    }
}
