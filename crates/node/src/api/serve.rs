//! Binding and serving: the API behind its [`Access`] checks, or `/metrics` alone on an
//! address of its own (so that Prometheus can scrape a node whose API stays on loopback).

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use super::access::{self, Access, Guard};
use super::{Api, ApiError, dashboard, router};
use crate::dht::Dht;

/// Binds `addr` and serves the API until the node stops, to loopback clients only: an
/// address beyond loopback needs a token, given with [`serve_with`].
pub async fn serve(dht: Dht, addr: SocketAddr) -> std::io::Result<tokio::task::JoinHandle<()>> {
    serve_with(router(dht.clone()), dht, addr, Access::default()).await
}

/// Binds `addr` and serves `app` until `dht`'s node stops, to loopback clients only.
pub async fn serve_router(
    app: Router,
    dht: Dht,
    addr: SocketAddr,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    serve_with(app, dht, addr, Access::default()).await
}

/// Binds `addr` and serves `app` behind the checks of `access` until `dht`'s node stops.
///
/// Refuses (`PermissionDenied`, before binding) an address beyond loopback when `access`
/// has no token.
pub async fn serve_with(
    app: Router,
    dht: Dht,
    addr: SocketAddr,
    access: Access,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    Guard::new(access.clone(), addr)?;
    let listener = TcpListener::bind(addr).await?;
    let guard = Guard::new(access, listener.local_addr()?)?;
    let app = app.layer(axum::middleware::from_fn_with_state(guard, access::check));
    Ok(spawn(listener, app, dht))
}

/// Binds `addr` and serves `GET /metrics` alone there until the node stops. It takes no
/// Host or token check: it changes nothing and tells what the node's counters say.
pub async fn serve_metrics(
    dht: Dht,
    addr: SocketAddr,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let app = Router::new()
        .route("/metrics", get(dashboard::metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "this address serves /metrics only")
        })
        .with_state(Api {
            dht: dht.clone(),
            network: None,
        });
    let listener = TcpListener::bind(addr).await?;
    Ok(spawn(listener, app, dht))
}

fn spawn(listener: TcpListener, app: Router, dht: Dht) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stopped = async move { dht.closed().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!("HTTP server failed: {e}");
        }
    })
}
