//! `cairn testnet --serve`: the dashboard of a whole test network, served from the moment its
//! nodes start, and a gentle workload that keeps the network busy while someone watches.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cairn_node::cairn_core::Key;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Network;
use crate::TestnetError;

impl Network {
    /// Serves node 0's API at `addr`, with a dashboard that shows every node of the network.
    /// Every node must run in this process (the dashboard reads each one's ring and activity).
    pub(super) async fn serve(&mut self, addr: SocketAddr) -> Result<(), TestnetError> {
        if !self.workers.is_empty() {
            return Err(TestnetError::DashboardSpread);
        }
        let nodes = self.local.nodes.clone();
        let Some(entry) = nodes.first().cloned() else {
            return Ok(());
        };
        let app = cairn_node::api::network_router(entry.clone(), nodes);
        let server = cairn_node::api::serve_router(app, entry, addr)
            .await
            .map_err(|error| TestnetError::Dashboard { addr, error })?;
        self.server = Some(server);
        Ok(())
    }

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
