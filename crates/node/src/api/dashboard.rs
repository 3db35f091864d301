//! The web dashboard and what it draws from, plus the Prometheus metrics.
//!
//! - `GET /` and its two assets: the page, its script and its style, embedded in the binary
//!   (no build step, nothing fetched from elsewhere);
//! - `GET /v1/ring`: the nodes and items to place on the ring ([`Ring`]);
//! - `GET /v1/items?after=KEY&limit=N`: the items held, without values ([`HeldItem`]);
//! - `GET /v1/events`: Server-Sent Events, one [`Activity`] per event as JSON, the recent
//!   finished operations first; a reader that fell behind gets `event: lagged` with the
//!   number of events it missed;
//! - `GET /metrics`: every metric in the OpenMetrics text format.

use std::convert::Infallible;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;

use super::{Api, ApiError, parse_key};
use crate::activity::{Activity, ActivityError, ActivityFeed, RECENT_OPERATIONS};
use crate::view::{HeldItem, MAX_LISTED, Ring};

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The dashboard's routes and the metrics endpoint.
pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/metrics", get(metrics))
        .route("/v1/ring", get(ring))
        .route("/v1/items", get(items))
        .route("/v1/events", get(events))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let text = api.dht.metrics().await?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        text,
    )
        .into_response())
}

/// The nodes whose ring and activity the dashboard shows.
fn shown(api: &Api) -> Vec<crate::Dht> {
    match &api.network {
        Some(network) => network.to_vec(),
        None => vec![api.dht.clone()],
    }
}

async fn ring(State(api): State<Api>) -> Result<axum::Json<Ring>, ApiError> {
    if api.network.is_none() {
        return Ok(axum::Json(api.dht.ring().await?));
    }
    let mut rings = Vec::new();
    for dht in shown(&api) {
        // A node of the network that stopped is no longer on the ring.
        rings.extend(dht.ring().await.ok());
    }
    Ok(axum::Json(Ring::of_network(rings)))
}

#[derive(Deserialize)]
struct ItemsParams {
    after: Option<String>,
    limit: Option<usize>,
}

async fn items(
    State(api): State<Api>,
    params: Result<Query<ItemsParams>, QueryRejection>,
) -> Result<axum::Json<Vec<HeldItem>>, ApiError> {
    let Query(params) = params?;
    let after = params.after.as_deref().map(parse_key).transpose()?;
    let limit = params.limit.unwrap_or(MAX_LISTED);
    Ok(axum::Json(api.dht.items(after, limit).await?))
}

/// One node's live events as a stream; a lag becomes one `lagged` event.
fn live(feed: ActivityFeed) -> impl Stream<Item = SseEvent> + Send {
    stream::unfold(feed, |mut feed| async move {
        let event = match feed.recv().await {
            Ok(activity) => data(&activity),
            Err(ActivityError::Lagged { missed }) => SseEvent::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}")),
            Err(_) => return None,
        };
        Some((event, feed))
    })
}

fn data(activity: &Activity) -> SseEvent {
    SseEvent::default()
        .json_data(activity)
        .unwrap_or_else(|_| SseEvent::default().event("error"))
}

async fn events(State(api): State<Api>) -> Response {
    let mut recent = Vec::new();
    let mut feeds = Vec::new();
    for dht in shown(&api) {
        let feed = dht.activity();
        recent.extend(feed.recent().iter().cloned());
        feeds.push(live(feed).boxed());
    }
    recent.sort_by_key(|a| match **a {
        Activity::Done { at, .. } => at,
        _ => 0,
    });
    let skip = recent.len().saturating_sub(RECENT_OPERATIONS);
    let replay = stream::iter(recent.into_iter().skip(skip).map(|a| data(&a)));
    let events = replay
        .chain(stream::select_all(feeds))
        .map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
