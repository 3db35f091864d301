//! A running network: this process's nodes and those of its worker processes, started from a
//! [`Plan`], counted and stopped.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::local::{Testnet, Totals, open_file_limit};
use crate::member::Member;
use crate::{Plan, TestnetError, show, spread};

/// A running network: its nodes in this process and those in worker processes.
pub struct Network {
    /// The nodes in this process (node 0 first).
    pub local: Testnet,
    workers: Vec<Arc<spread::Worker>>,
    /// Every node of the network, in order, wherever it runs.
    pub(crate) members: Vec<Member>,
    /// Their listen addresses.
    pub(crate) addrs: Vec<SocketAddr>,
    /// The dashboard's server, when the plan asked for one; it stops with node 0.
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Network {
    /// Starts `plan.nodes` nodes over the processes the plan asks for.
    pub(crate) async fn start(plan: &Plan) -> Result<Self, TestnetError> {
        let nodes = plan.nodes.max(1);
        let processes = plan
            .processes
            .unwrap_or_else(|| spread::processes_for(nodes, open_file_limit()))
            .clamp(1, nodes);
        let shares = spread::shares(nodes, processes);
        let datagrams = plan.datagrams;
        let local =
            Testnet::start_configured(0, processes, shares[0], |c| c.datagrams(datagrams)).await?;
        // Node i runs in process i % P, as number i / P there.
        let mut placed: Vec<Vec<(Member, SocketAddr)>> = vec![
            local
                .nodes
                .iter()
                .cloned()
                .map(Member::Local)
                .zip(local.addrs.iter().copied())
                .collect(),
        ];
        let mut workers = Vec::new();
        if processes > 1 {
            let command = plan.worker.as_ref().ok_or(TestnetError::NoWorkerCommand)?;
            for (p, &count) in shares.iter().enumerate().skip(1) {
                let (worker, addrs) = spread::Worker::spawn(command, p, processes, count).await?;
                placed.push(
                    (0..count)
                        .map(|n| Member::Remote(worker.clone(), n))
                        .zip(addrs)
                        .collect(),
                );
                workers.push(worker);
            }
        }
        let (members, addrs) = (0..nodes)
            .map(|i| placed[i % processes][i / processes].clone())
            .unzip();
        Ok(Network {
            local,
            workers,
            members,
            addrs,
            server: None,
        })
    }

    /// Serves node 0's API at `addr`, with a dashboard that shows every node of the network.
    /// Every node must run in this process (the dashboard reads each one's ring and activity).
    pub(crate) async fn serve(&mut self, addr: SocketAddr) -> Result<(), TestnetError> {
        if !self.workers.is_empty() {
            return Err(TestnetError::DashboardSpread);
        }
        self.server = show::serve_dashboard(&self.local.nodes, addr).await?;
        Ok(())
    }

    /// Processes the nodes run in.
    pub fn processes(&self) -> usize {
        1 + self.workers.len()
    }

    /// Nodes in the whole network.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the network has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) async fn totals(&self) -> Totals {
        let mut totals = self.local.totals().await;
        for worker in &self.workers {
            if let Some(spread::Reply::Totals(t)) = worker.call(spread::Op::Totals).await {
                totals = totals + t;
            }
        }
        totals
    }

    /// Stops every node, in this process and in the workers (which then exit), and the
    /// dashboard's server with them.
    pub async fn shutdown(&mut self) {
        for worker in &self.workers {
            worker.stop().await;
        }
        self.local.shutdown().await;
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}
