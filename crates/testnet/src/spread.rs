//! A test network spread over several processes.
//!
//! A process may hold only so many open files (20,000 on the machines cairn is measured on),
//! and a connection between two nodes of one process costs two of them. So a large network
//! runs as shares: node `i` of a network over `P` processes runs in process `i % P`, so that
//! each process holds early and late joiners alike. The driving process is process 0 and starts
//! one worker process for each other share (`cairn testnet-worker --first p --stride P
//! --count C`). A worker
//! starts its nodes on their loopback addresses, prints their listen addresses as its first
//! line, and then carries out requests read from its standard input, one JSON object a line,
//! many at once, answering each with a line on its standard output. When its input closes it
//! stops its nodes and exits.
//!
//! A worker that dies fails the operations it had in flight and every later one (they count as
//! failed puts, gets or joins in the report, and a warning says which worker exited); nothing
//! waits for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use crate::TestnetError;
use crate::local::{Totals, spare_descriptors};
use crate::member::{Fetched, PutDone, WireSample};

/// Each node of a process should be able to keep at least this many connections open: a
/// put's lookup talks to about this many nodes, and its stores reuse the connections the
/// lookup opened only if they are still in the pool.
const MIN_POOL: usize = 48;

/// How long a stopping worker may take to close its nodes before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start a worker process: `program args... --first F --stride S --count C`.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    /// The executable (`cairn` passes itself).
    pub program: PathBuf,
    /// Arguments before `--first`, `--stride` and `--count` (`cairn` passes `testnet-worker`).
    pub args: Vec<String>,
}

/// The processes `nodes` nodes need when each process may hold `open_files` files: as many as
/// let every node keep a listener and a pool of `MIN_POOL` (48) connections, which may be a third
/// of its descriptors (see [`Testnet::start_at`]).
pub fn processes_for(nodes: usize, open_files: usize) -> usize {
    let per_process = (open_files.saturating_sub(spare_descriptors(0)) / (1 + 3 * MIN_POOL)).max(1);
    nodes.div_ceil(per_process).max(1)
}

/// Splits `nodes` into `processes` shares as equal as can be, the larger ones first.
pub fn shares(nodes: usize, processes: usize) -> Vec<usize> {
    let processes = processes.max(1);
    (0..processes)
        .map(|i| nodes / processes + usize::from(i < nodes % processes))
        .collect()
}

/// A request to a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Op {
    /// Join node `node` (an index into the worker's share) through `seeds`.
    Join { node: usize, seeds: Vec<SocketAddr> },
    /// Put `value` from `node`: signed under `name`, or immutable without one.
    Put {
        node: usize,
        name: Option<String>,
        value: Vec<u8>,
    },
    /// Get `key` (hex) from `node` and check that its value is `expect`.
    Get {
        node: usize,
        key: String,
        expect: Vec<u8>,
    },
    /// The counters of the worker's nodes, added up.
    Totals,
    /// Get `key` (hex) from `node` and say what was found (the soak's checks).
    Fetch { node: usize, key: String },
    /// Delete the item `name` that `node` published.
    Delete { node: usize, name: String },
    /// Watch `key` (hex) from `node` for `millis` milliseconds and count what it reports.
    Watch {
        node: usize,
        key: String,
        millis: u64,
    },
    /// Stop `node` gracefully (a soak worker's nodes only).
    Stop { node: usize },
    /// Start `node` again on its data directory, emptied first if `wipe` (a soak worker's
    /// nodes only).
    Start { node: usize, wipe: bool },
    /// What every running node of the worker holds under `key` (hex): the soak's census of
    /// a key whose get found a wrong copy.
    Census { key: String },
}

/// A worker's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Reply {
    Joined(bool),
    Put(PutDone),
    Got(WireSample),
    Totals(Totals),
    /// What a get found, and how long it took.
    Fetched {
        found: Fetched,
        micros: u64,
    },
    /// Whether the delete was acknowledged, and how long it took.
    Deleted {
        ok: bool,
        micros: u64,
    },
    /// Versions a watch reported, and whether they came in order, each once.
    Watched {
        notifications: u64,
        in_order: bool,
    },
    /// Whether a node stopped (it ran).
    Stopped(bool),
    /// Where a restarted node listens, or why it did not start.
    Started(Result<SocketAddr, String>),
    /// Each running node's number in the worker, its id (hex) and the copy it holds of the
    /// key asked about.
    Census(Vec<(usize, String, Option<Held>)>),
    /// The request made no sense (a node index out of range, a bad key).
    Refused(String),
}

/// A node's local copy of a key: its kind (`signed`, `immutable`, `tombstone`) and `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    pub(crate) kind: String,
    pub(crate) seq: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) id: u64,
    pub(crate) op: Op,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Response {
    pub(crate) id: u64,
    pub(crate) reply: Reply,
}

/// A worker's first line: where its nodes listen, or why they could not start.
#[derive(Serialize, Deserialize)]
pub(crate) enum Started {
    Listening(Vec<SocketAddr>),
    Failed(String),
}

/// A worker process, seen from the process that drives it.
pub(super) struct Worker {
    index: usize,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    child: tokio::sync::Mutex<Child>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
}

/// Requests awaiting their answer; `gone` once the worker's output has ended.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    gone: bool,
}

impl Worker {
    /// Starts worker `index` of `stride` processes with its `count` nodes (numbers `index`,
    /// `index + stride`, ...) and waits for their addresses.
    pub(super) async fn spawn(
        command: &WorkerCommand,
        index: usize,
        stride: usize,
        count: usize,
    ) -> Result<(std::sync::Arc<Worker>, Vec<SocketAddr>), TestnetError> {
        let failed = |why: String| TestnetError::Worker(format!("worker {index}: {why}"));
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .args([
                "--first",
                &index.to_string(),
                "--stride",
                &stride.to_string(),
            ])
            .args(["--count", &count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", command.program.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(failed("no pipes to the worker".into()));
        };
        let mut lines = BufReader::new(stdout).lines();
        let first_line = lines
            .next_line()
            .await
            .map_err(|e| failed(format!("cannot read from it: {e}")))?
            .ok_or_else(|| failed("exited before its nodes started".into()))?;
        let addrs = match serde_json::from_str(&first_line) {
            Ok(Started::Listening(addrs)) if addrs.len() == count => addrs,
            Ok(Started::Listening(addrs)) => {
                return Err(failed(format!(
                    "started {} nodes, not {count}",
                    addrs.len()
                )));
            }
            Ok(Started::Failed(why)) => return Err(failed(why)),
            Err(e) => return Err(failed(format!("unreadable first line: {e}"))),
        };
        let worker = Worker {
            index,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            child: tokio::sync::Mutex::new(child),
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(0),
        };
        let worker = std::sync::Arc::new(worker);
        tokio::spawn(hand_out_answers(worker.clone(), lines));
        Ok((worker, addrs))
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `op` and waits for the answer; `None` if the worker is gone.
    pub(super) async fn call(&self, op: Op) -> Option<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.lock_pending();
            if pending.gone {
                return None;
            }
            pending.waiting.insert(id, tx);
        }
        let mut line = serde_json::to_string(&Request { id, op }).ok()?;
        line.push('\n');
        let written = match self.stdin.lock().await.as_mut() {
            Some(stdin) => stdin.write_all(line.as_bytes()).await.is_ok(),
            None => false,
        };
        if !written {
            self.lock_pending().waiting.remove(&id);
            return None;
        }
        rx.await.ok()
    }

    /// Kills the worker with SIGKILL, as a crash would, and waits for it to be gone.
    pub(super) async fn kill(&self) {
        let mut child = self.child.lock().await;
        if let Err(e) = child.kill().await {
            tracing::warn!("cannot kill worker {}: {e}", self.index);
        }
    }

    /// Closes the worker's input, so that it stops its nodes and exits; kills it if it takes
    /// longer than [`STOP_GRACE`].
    pub(super) async fn stop(&self) {
        drop(self.stdin.lock().await.take());
        let mut child = self.child.lock().await;
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(Ok(status)) if !status.success() => {
                tracing::warn!("worker {} exited with {status}", self.index);
            }
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("worker {} did not stop in time: killed", self.index);
                let _ = child.kill().await;
            }
        }
    }
}

/// Hands the worker's answers to their callers; once its output ends, fails every caller
/// still waiting and every later one.
async fn hand_out_answers(
    worker: std::sync::Arc<Worker>,
    mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let index = worker.index;
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<Response>(&line) {
            Ok(Response { id, reply }) => {
                let waiter = worker.lock_pending().waiting.remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(reply);
                }
            }
            Err(e) => tracing::warn!("worker {index} wrote an unreadable line: {e}"),
        }
    }
    let mut pending = worker.lock_pending();
    if !pending.waiting.is_empty() {
        tracing::warn!(
            "worker {index} exited with {} operations in flight: they fail",
            pending.waiting.len()
        );
    }
    pending.gone = true;
    pending.waiting.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for (nodes, processes) in [(10, 3), (10_000, 17), (5, 5), (7, 1)] {
            let s = shares(nodes, processes);
            assert_eq!(s.len(), processes);
            assert_eq!(s.iter().sum::<usize>(), nodes);
            let (min, max) = (s.iter().min().unwrap(), s.iter().max().unwrap());
            assert!(max - min <= 1, "{s:?}");
        }
    }

    #[test]
    fn processes_grow_with_nodes_and_shrink_with_the_file_limit() {
        assert_eq!(processes_for(100, 20_000), 1);
        assert!(processes_for(10_000, 20_000) > 1);
        assert!(processes_for(10_000, 1_024) > processes_for(10_000, 20_000));
        // Each process can then give each of its nodes a listener and MIN_POOL connections.
        for nodes in [1, 200, 2_000, 10_000] {
            let p = processes_for(nodes, 20_000);
            let per = nodes.div_ceil(p);
            assert!(
                256 + per * (1 + 2 * MIN_POOL) <= 20_000,
                "{nodes} nodes in {p}"
            );
        }
    }
}
