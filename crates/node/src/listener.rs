//! The listening side: accepts connections and serves each in its own task, within the
//! bounds of the inbound table (`max_inbound`, `max_inbound_per_host`, eviction).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::connection;
use crate::inbound::{Admitted, NoPlace};
use crate::shared::Shared;

/// Accepts connections until shutdown, serving each in its own task within the bounds of
/// [`crate::inbound`]; a connection refused a place is closed at once.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, &shared),
                Err(e) => {
                    // Typically EMFILE: out of file descriptors. Back off rather than spin.
                    tracing::warn!("accept failed: {e}; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    let counters = &shared.metrics;
    let count = |counter: &prometheus_client::metrics::counter::Counter| counter.inc();
    // Under a shared budget, the accepted end of a connection holds a permit too.
    let permit = match &shared.connection_budget {
        None => None,
        Some(budget) => match budget.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                count(&counters.budget_exhausted);
                tracing::debug!(%peer, "refusing a connection: the connection budget is spent");
                return;
            }
        },
    };
    match shared.inbound.admit(peer.ip()) {
        Ok(Admitted { place, evicted }) => {
            count(&counters.connections_accepted);
            if evicted {
                count(&counters.connections_evicted);
            }
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            tokio::spawn(async move {
                connection::serve_inbound(stream, peer, place, shared).await;
                drop(permit);
            });
        }
        Err(NoPlace::Host) => {
            count(&counters.connections_refused_per_host);
            tracing::debug!(%peer, "refusing a connection: its host holds max_inbound_per_host");
        }
        Err(NoPlace::Full) => {
            count(&counters.connections_refused);
            tracing::debug!(%peer, "refusing a connection: max_inbound busy connections");
        }
    }
}
