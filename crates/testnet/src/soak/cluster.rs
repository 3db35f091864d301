//! A soak's nodes: every one in a worker process on its data directory (this process only
//! drives), which the chaos kills and starts again, and whose single nodes it stops and
//! starts. Node `i` of `W` workers runs in worker `i % W` as its number `i / W`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::task::JoinSet;

use crate::member::{Member, join};
use crate::spread::{Held, Op, Reply, Worker, shares};
use crate::{Silent, TestnetError, WorkerCommand};

/// How long the driver waits for a worker's answer before it counts the operation failed
/// (a lookup gives up well before).
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// Joins run at once when a worker's nodes come back.
const REJOINS: usize = 16;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The worker processes of a soak and which nodes are down.
pub(super) struct Cluster {
    command: WorkerCommand,
    shares: Vec<usize>,
    workers: Vec<Mutex<Arc<Worker>>>,
    addrs: Mutex<Vec<SocketAddr>>,
    down: Mutex<HashSet<usize>>,
}

impl Cluster {
    /// Starts `nodes` nodes over `processes` workers and joins them, `concurrency` at once.
    /// Returns the cluster and the joins that failed.
    pub(super) async fn start(
        command: WorkerCommand,
        nodes: usize,
        processes: usize,
        concurrency: usize,
        rng: &mut StdRng,
    ) -> Result<(Cluster, usize), TestnetError> {
        let shares = shares(nodes, processes);
        let mut workers = Vec::new();
        let mut placed = Vec::new();
        for (w, &count) in shares.iter().enumerate() {
            let (worker, addrs) = Worker::spawn(&command, w, processes, count).await?;
            placed.push(addrs);
            workers.push(Mutex::new(worker));
        }
        let addrs: Vec<SocketAddr> = (0..nodes)
            .map(|i| placed[i % processes][i / processes])
            .collect();
        let cluster = Cluster {
            command,
            shares,
            workers,
            addrs: Mutex::new(addrs.clone()),
            down: Mutex::new(HashSet::new()),
        };
        let members: Vec<Member> = (0..nodes).map(|i| cluster.member(i)).collect();
        let failed = join(&members, &addrs, rng, concurrency, &Silent).await;
        Ok((cluster, failed))
    }

    pub(super) fn len(&self) -> usize {
        lock(&self.addrs).len()
    }

    pub(super) fn workers(&self) -> usize {
        self.workers.len()
    }

    fn member(&self, i: usize) -> Member {
        let worker = lock(&self.workers[i % self.workers.len()]).clone();
        Member::Remote(worker, i / self.workers.len())
    }

    /// Sends node `i` the operation `make` builds from its number in its worker; `None` if
    /// the worker is gone or did not answer in time.
    pub(super) async fn call(&self, i: usize, make: impl FnOnce(usize) -> Op) -> Option<Reply> {
        let worker = lock(&self.workers[i % self.workers.len()]).clone();
        let op = make(i / self.workers.len());
        tokio::time::timeout(ANSWER_WITHIN, worker.call(op))
            .await
            .ok()
            .flatten()
    }

    /// What every running node holds under `key` (hex): its number, its id and its copy.
    pub(super) async fn census(&self, key: &str) -> Vec<(usize, String, Option<Held>)> {
        let stride = self.workers.len();
        let mut all = Vec::new();
        for (w, worker) in self.workers.iter().enumerate() {
            let worker = lock(worker).clone();
            let op = Op::Census { key: key.into() };
            if let Ok(Some(Reply::Census(held))) =
                tokio::time::timeout(ANSWER_WITHIN, worker.call(op)).await
            {
                all.extend(held.into_iter().map(|(n, id, h)| (w + n * stride, id, h)));
            }
        }
        all
    }

    pub(super) fn is_up(&self, i: usize) -> bool {
        !lock(&self.down).contains(&i)
    }

    /// A random node that is up, other than `except`.
    pub(super) fn random_up(&self, rng: &mut StdRng, except: &[usize]) -> Option<usize> {
        let n = self.len();
        let down = lock(&self.down);
        (0..32)
            .map(|_| rng.random_range(0..n))
            .find(|i| !down.contains(i) && !except.contains(i))
    }

    /// Joins nodes `nodes` through three random nodes that are up each. Returns the failures.
    async fn rejoin(&self, nodes: &[usize], rng: &mut StdRng) -> usize {
        let mut running = JoinSet::new();
        let mut failed = 0;
        for &i in nodes {
            let seeds: Vec<SocketAddr> = (0..3)
                .filter_map(|_| self.random_up(rng, nodes))
                .map(|s| lock(&self.addrs)[s])
                .collect();
            running.spawn(self.member(i).join(seeds));
            if running.len() >= REJOINS {
                failed += usize::from(!matches!(running.join_next().await, Some(Ok(true))));
            }
        }
        while let Some(joined) = running.join_next().await {
            failed += usize::from(!matches!(joined, Ok(true)));
        }
        failed
    }

    /// The nodes of worker `w`.
    fn nodes_of(&self, w: usize) -> Vec<usize> {
        let stride = self.workers.len();
        (0..self.shares[w]).map(|n| w + n * stride).collect()
    }

    /// Kills worker `w` with SIGKILL; its nodes are down until [`Cluster::restart_worker`].
    pub(super) async fn kill_worker(&self, w: usize) {
        lock(&self.down).extend(self.nodes_of(w));
        let worker = lock(&self.workers[w]).clone();
        worker.kill().await;
    }

    /// Starts worker `w` again on its nodes' data directories and joins them again.
    pub(super) async fn restart_worker(
        &self,
        w: usize,
        rng: &mut StdRng,
    ) -> Result<(), TestnetError> {
        let stride = self.workers.len();
        let (worker, addrs) = Worker::spawn(&self.command, w, stride, self.shares[w]).await?;
        *lock(&self.workers[w]) = worker;
        let nodes = self.nodes_of(w);
        for (&i, addr) in nodes.iter().zip(addrs) {
            lock(&self.addrs)[i] = addr;
        }
        let failed = self.rejoin(&nodes, rng).await;
        if failed > 0 {
            tracing::warn!("soak: {failed} nodes of worker {w} did not join again");
        }
        let mut down = lock(&self.down);
        nodes.iter().for_each(|i| {
            down.remove(i);
        });
        Ok(())
    }

    /// Stops node `i` gracefully. `false` if it was not running.
    pub(super) async fn stop_node(&self, i: usize) -> bool {
        lock(&self.down).insert(i);
        matches!(
            self.call(i, |node| Op::Stop { node }).await,
            Some(Reply::Stopped(true))
        )
    }

    /// Starts node `i` again on its data directory (emptied first if `wipe`) and joins it.
    pub(super) async fn start_node(&self, i: usize, wipe: bool, rng: &mut StdRng) -> bool {
        let started = match self.call(i, |node| Op::Start { node, wipe }).await {
            Some(Reply::Started(Ok(addr))) => {
                lock(&self.addrs)[i] = addr;
                true
            }
            other => {
                tracing::warn!("soak: node {i} did not start again: {other:?}");
                false
            }
        };
        if started {
            self.rejoin(&[i], rng).await;
            lock(&self.down).remove(&i);
        }
        started
    }

    /// Stops every worker gracefully (each stops its nodes).
    pub(super) async fn shutdown(&self) {
        let workers: Vec<Arc<Worker>> = self.workers.iter().map(|w| lock(w).clone()).collect();
        for worker in workers {
            worker.stop().await;
        }
    }
}
