//! `cairn testnet --serve`: the dashboard of a whole test network, served from the moment its
//! nodes start, and a gentle workload that keeps the network busy while someone watches.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_node::cairn_core::Key;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cairn_node::Dht;
use tokio::task::JoinHandle;

use crate::{Network, TestnetError};

/// Serves the API of `nodes[0]` at `addr`, with a dashboard that shows every one of `nodes`
/// (it reads each one's ring and activity, so they must all run in this process). Returns the
/// server's task, which ends when node 0 stops; `None` with no nodes.
pub(crate) async fn serve_dashboard(
    nodes: &[Dht],
    addr: SocketAddr,
) -> Result<Option<JoinHandle<()>>, TestnetError> {
    let Some(entry) = nodes.first().cloned() else {
        return Ok(None);
    };
    let app = cairn_node::api::network_router(entry.clone(), nodes.to_vec());
    let server = cairn_node::api::serve_router(app, entry, addr)
        .await
        .map_err(|error| TestnetError::Dashboard { addr, error })?;
    Ok(Some(server))
}

impl Network {
    /// Until `stop` resolves, every `every` a random node puts a signed item (`live-N`, a
    /// new version of one of eight names) or gets one put before. Returns the operations run.
    pub async fn keep_busy(
        &self,
        seed: u64,
        every: Duration,
        stop: impl Future<Output = ()>,
    ) -> u64 {
        let nodes = &self.local.nodes;
        if nodes.is_empty() {
            return 0;
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut put: Vec<Key> = Vec::new();
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tokio::pin!(stop);
        let mut ran = 0;
        loop {
            tokio::select! {
                () = &mut stop => return ran,
                _ = tick.tick() => {}
            }
            let node = &nodes[rng.random_range(0..nodes.len())];
            if put.is_empty() || rng.random_bool(0.4) {
                let name = format!("live-{}", rng.random_range(0..8));
                let value = Bytes::from(format!("tick {ran}"));
                if let Ok(receipt) = node.put_signed(&name, value, None).await {
                    put.push(receipt.key);
                }
            } else {
                let key = put[rng.random_range(0..put.len())];
                let _ = node.get(key).await;
            }
            ran += 1;
        }
    }
}
