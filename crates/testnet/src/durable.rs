//! A worker's share of a soak network ([`crate::soak`]): nodes that keep their items in a data
//! directory each (`DIR/node-I`: key pair, redb store, routing snapshot) and listen where they
//! listened before, so that a worker killed with SIGKILL and started again brings the same
//! nodes back, and one node can be stopped gracefully and started again on its directory.
//!
//! A node's listen address is kept in `DIR/node-I/listen` (testnet bookkeeping, not a node
//! file): a restarted node binds it again, so its peers' contacts stay right. If another
//! socket took the port meanwhile, the node takes a new one and says so in its start's answer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_node::store::RedbStore;
use cairn_node::{Config, Dht, Identity};
use tokio::sync::{Mutex, Semaphore};

use crate::TestnetError;
use crate::local::{Totals, loopback_host, open_file_limit, resident_bytes, spare_descriptors};

/// The file in a node's directory that holds where it listens.
const LISTEN_FILE: &str = "listen";

/// Descriptors a durable node holds beyond a memory one: its redb file, and the files it
/// opens briefly (key, snapshot, format).
const FILES_PER_NODE: usize = 3;

/// The directory of node `i` of a soak network whose data lives under `root`.
pub fn node_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("node-{i}"))
}

/// The nodes of one worker of a soak network, each of which may be stopped and started.
pub(crate) struct DurableShare {
    root: PathBuf,
    first: usize,
    stride: usize,
    datagrams: bool,
    per_node: usize,
    budget: usize,
    permits: Arc<Semaphore>,
    rss_before: u64,
    /// The running node of each slot (`None` while stopped) and its address.
    nodes: Vec<Mutex<(Option<Dht>, SocketAddr)>>,
}

impl DurableShare {
    /// Starts `count` nodes, numbers `first`, `first + stride`, ..., on their directories
    /// under `root` (created if need be).
    pub(crate) async fn start(
        root: PathBuf,
        first: usize,
        stride: usize,
        count: usize,
        datagrams: bool,
    ) -> Result<Self, TestnetError> {
        let rss_before = resident_bytes();
        let budget = open_file_limit()
            .saturating_sub(spare_descriptors(count) + FILES_PER_NODE * count)
            .max(48);
        let mut share = DurableShare {
            root,
            first,
            stride: stride.max(1),
            datagrams,
            per_node: (budget / (3 * count.max(1))).clamp(4, 64),
            budget,
            permits: Arc::new(Semaphore::new(budget)),
            rss_before,
            nodes: Vec::with_capacity(count),
        };
        for n in 0..count {
            let (dht, addr) = share.launch(n, false).await?;
            share.nodes.push(Mutex::new((Some(dht), addr)));
        }
        Ok(share)
    }

    /// The addresses of the nodes, in order.
    pub(crate) async fn addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = Vec::with_capacity(self.nodes.len());
        for slot in &self.nodes {
            addrs.push(slot.lock().await.1);
        }
        addrs
    }

    /// Nodes in this share, running or not.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `n` of this share, if it exists and runs.
    pub(crate) async fn node(&self, n: usize) -> Option<Dht> {
        self.nodes.get(n)?.lock().await.0.clone()
    }

    /// Stops node `n` gracefully. `false` if there is no such node or it was stopped.
    pub(crate) async fn stop(&self, n: usize) -> bool {
        let Some(slot) = self.nodes.get(n) else {
            return false;
        };
        let mut slot = slot.lock().await;
        match slot.0.take() {
            Some(dht) => {
                dht.shutdown().await;
                true
            }
            None => false,
        }
    }

    /// Starts node `n` again on its directory (emptied first if `wipe`: a test's way to
    /// lose data on purpose). Returns its address, or why it did not start.
    pub(crate) async fn restart(&self, n: usize, wipe: bool) -> Result<SocketAddr, String> {
        let slot = self.nodes.get(n).ok_or(format!("no node {n}"))?;
        let mut slot = slot.lock().await;
        if let Some(dht) = slot.0.take() {
            dht.shutdown().await;
        }
        let (dht, addr) = self.launch(n, wipe).await.map_err(|e| e.to_string())?;
        *slot = (Some(dht), addr);
        Ok(addr)
    }

    /// Starts node `n` on its directory, where it listened before if it can.
    async fn launch(&self, n: usize, wipe: bool) -> Result<(Dht, SocketAddr), TestnetError> {
        let i = self.first + n * self.stride;
        let dir = node_dir(&self.root, i);
        if wipe {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let io = |error: std::io::Error| TestnetError::Worker(format!("node {i}: {error}"));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let listen_file = dir.join(LISTEN_FILE);
        let before: Option<SocketAddr> = std::fs::read_to_string(&listen_file)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        let fresh = SocketAddr::new(loopback_host(i), 0);
        let started = match before {
            Some(addr) => match self.start_node(&dir, addr).await {
                Ok(started) => Ok(started),
                Err(e) => {
                    tracing::warn!(
                        "node {i} cannot listen on {addr} again ({e}): takes a new port"
                    );
                    self.start_node(&dir, fresh).await
                }
            },
            None => self.start_node(&dir, fresh).await,
        }?;
        std::fs::write(&listen_file, started.1.to_string()).map_err(io)?;
        Ok(started)
    }

    async fn start_node(
        &self,
        dir: &Path,
        listen: SocketAddr,
    ) -> Result<(Dht, SocketAddr), TestnetError> {
        let config = Config::default()
            .listen(listen)
            .data_dir(dir)
            .max_outbound(self.per_node)
            .idle_timeout(Duration::from_secs(30))
            .datagrams(self.datagrams);
        cairn_node::datadir::prepare(dir).map_err(cairn_node::StartError::from)?;
        let identity = Identity::load_or_create(dir).map_err(cairn_node::StartError::from)?;
        let (store, commits) =
            RedbStore::open(dir, config.limits).map_err(cairn_node::StartError::from)?;
        let dht = cairn_node::start_with_budget(
            config,
            identity,
            store,
            Some(commits),
            self.permits.clone(),
        )
        .await?;
        let addr = dht.status().await.map(|s| s.listen).unwrap_or(listen);
        Ok((dht, addr))
    }

    /// Stops every node.
    pub(crate) async fn shutdown(&self) {
        for n in 0..self.nodes.len() {
            self.stop(n).await;
        }
    }

    /// The counters of the running nodes, added up.
    pub(crate) async fn totals(&self) -> Totals {
        let mut totals = Totals::of_process(self.budget, &self.permits, self.rss_before);
        for n in 0..self.nodes.len() {
            if let Some(dht) = self.node(n).await {
                totals.add_node(&dht).await;
            }
        }
        totals
    }
}
