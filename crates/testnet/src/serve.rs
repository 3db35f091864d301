//! The worker's side of a network spread over processes ([`crate::spread`]): starts its share
//! of the nodes (in memory, or on data directories for a soak), prints their addresses, and
//! carries out the requests read from its standard input, many at once.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use cairn_node::Dht;
use cairn_node::cairn_core::Key;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::durable::DurableShare;
use crate::local::Testnet;
use crate::member::{
    Member, census_local, delete_local, fetch_local, get_local, put_local, watch_local,
};
use crate::spread::{Op, Reply, Request, Response, STOP_GRACE, Started};

/// What a worker runs: nodes in memory, or nodes on data directories under a root (a soak).
pub(crate) enum Share {
    Memory(Testnet),
    Durable(DurableShare),
}

impl Share {
    async fn node(&self, n: usize) -> Option<Dht> {
        match self {
            Share::Memory(net) => net.nodes.get(n).cloned(),
            Share::Durable(share) => share.node(n).await,
        }
    }

    /// Every node of the share that runs, with its number in the share.
    async fn running(&self) -> Vec<(usize, Dht)> {
        match self {
            Share::Memory(net) => net.nodes.iter().cloned().enumerate().collect(),
            Share::Durable(share) => {
                let mut running = Vec::new();
                for n in 0..share.len() {
                    running.extend(share.node(n).await.map(|dht| (n, dht)));
                }
                running
            }
        }
    }

    async fn shutdown(&self) {
        match self {
            Share::Memory(net) => net.shutdown().await,
            Share::Durable(share) => share.shutdown().await,
        }
    }
}

/// The worker's side: starts `count` nodes, numbers `first`, `first + stride`, ..., (speaking
/// datagrams if `datagrams`; on data directories under `data`, if given), prints their
/// addresses, and carries out requests from standard input until it closes.
pub async fn serve_worker(
    first: usize,
    stride: usize,
    count: usize,
    datagrams: bool,
    data: Option<PathBuf>,
) -> std::io::Result<()> {
    let mut stdout = tokio::io::stdout();
    let started = match data {
        Some(root) => DurableShare::start(root, first, stride, count, datagrams)
            .await
            .map(Share::Durable),
        None => Testnet::start_configured(first, stride, count, |c| c.datagrams(datagrams))
            .await
            .map(Share::Memory),
    };
    let share = match started {
        Ok(share) => share,
        Err(e) => {
            write_line(&mut stdout, &Started::Failed(e.to_string())).await?;
            return Err(std::io::Error::other(e.to_string()));
        }
    };
    let addrs = match &share {
        Share::Memory(net) => net.addrs.clone(),
        Share::Durable(share) => share.addrs().await,
    };
    write_line(&mut stdout, &Started::Listening(addrs)).await?;
    let share = std::sync::Arc::new(share);
    let (answers, mut to_write) = mpsc::unbounded_channel::<Response>();
    let writer = tokio::spawn(async move {
        while let Some(response) = to_write.recv().await {
            if write_line(&mut stdout, &response).await.is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(Request { id, op }) = serde_json::from_str::<Request>(&line) else {
            tracing::warn!("testnet worker: unreadable request line");
            continue;
        };
        let (share, answers) = (share.clone(), answers.clone());
        tokio::spawn(async move {
            let reply = carry_out(&share, op).await;
            let _ = answers.send(Response { id, reply });
        });
    }
    share.shutdown().await;
    drop(answers);
    let _ = tokio::time::timeout(STOP_GRACE, writer).await;
    Ok(())
}

async fn carry_out(share: &Share, op: Op) -> Reply {
    let i = match &op {
        Op::Totals => {
            return Reply::Totals(match share {
                Share::Memory(net) => net.totals().await,
                Share::Durable(share) => share.totals().await,
            });
        }
        Op::Census { key } => {
            let Ok(key) = Key::from_hex(key) else {
                return Reply::Refused(format!("bad key: {key}"));
            };
            let mut held = Vec::new();
            for (n, dht) in share.running().await {
                if let Some((id, found)) = census_local(&dht, key).await {
                    held.push((n, id, found));
                }
            }
            return Reply::Census(held);
        }
        Op::Stop { node } | Op::Start { node, .. } => {
            let Share::Durable(durable) = share else {
                return Reply::Refused("only a soak worker stops and starts nodes".into());
            };
            return match op {
                Op::Start { wipe, .. } => Reply::Started(durable.restart(*node, wipe).await),
                _ => Reply::Stopped(durable.stop(*node).await),
            };
        }
        Op::Join { node, .. }
        | Op::Put { node, .. }
        | Op::Get { node, .. }
        | Op::Fetch { node, .. }
        | Op::Delete { node, .. }
        | Op::Watch { node, .. } => *node,
    };
    let Some(dht) = share.node(i).await else {
        return Reply::Refused(format!("no node {i} running"));
    };
    let bad_key = |e| Reply::Refused(format!("bad key: {e}"));
    match op {
        Op::Join { seeds, .. } => Reply::Joined(Member::Local(dht).join(seeds).await),
        Op::Put { name, value, .. } => Reply::Put(put_local(&dht, name, Bytes::from(value)).await),
        Op::Get { key, expect, .. } => match Key::from_hex(&key) {
            Ok(key) => Reply::Got(get_local(&dht, key, &expect).await),
            Err(e) => bad_key(e),
        },
        Op::Fetch { key, .. } => match Key::from_hex(&key) {
            Ok(key) => {
                let (found, micros) = fetch_local(&dht, key).await;
                Reply::Fetched { found, micros }
            }
            Err(e) => bad_key(e),
        },
        Op::Delete { name, .. } => {
            let (ok, micros) = delete_local(&dht, &name).await;
            Reply::Deleted { ok, micros }
        }
        Op::Watch { key, millis, .. } => match Key::from_hex(&key) {
            Ok(key) => {
                let watched = watch_local(&dht, key, Duration::from_millis(millis)).await;
                Reply::Watched {
                    notifications: watched.0,
                    in_order: watched.1,
                }
            }
            Err(e) => bad_key(e),
        },
        Op::Totals | Op::Census { .. } | Op::Stop { .. } | Op::Start { .. } => {
            Reply::Refused("answered above".into())
        }
    }
}

async fn write_line<T: Serialize>(out: &mut tokio::io::Stdout, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_refuses_a_node_it_does_not_have() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let net = Share::Memory(Testnet::start_at(3, 1, 1).await.expect("starts"));
            let reply = carry_out(
                &net,
                Op::Join {
                    node: 1,
                    seeds: vec![],
                },
            )
            .await;
            assert!(matches!(reply, Reply::Refused(_)), "{reply:?}");
            let bad_key = carry_out(
                &net,
                Op::Get {
                    node: 0,
                    key: "zz".into(),
                    expect: vec![],
                },
            )
            .await;
            assert!(matches!(bad_key, Reply::Refused(_)), "{bad_key:?}");
            net.shutdown().await;
        });
    }
}
