//! The listening side: accepts connections and serves each in its own task, within the
//! `max_inbound` bound.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::connection;
use crate::shared::Shared;

/// Accepts connections until shutdown, serving each in its own task, at most `max_inbound`
/// at once; a connection beyond that is closed at once.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let slots = shared.inbound_slots.clone();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        shared.counters.connections_accepted.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.set_nodelay(true);
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            connection::serve_inbound(stream, peer, shared).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        shared.counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "refusing a connection: max_inbound reached");
                    }
                },
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
