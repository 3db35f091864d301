//! The local HTTP API (see the README), served with axum on top of a [`Dht`] handle.
//!
//! Bound to loopback by default: it signs with the node's key, so whoever reaches it can
//! publish as this node, and [`access`] decides who reaches it. Errors are JSON:
//! `{"error": {"code": 404, "message": "..."}}`.
//!
//! - this file: the items, watches, status and peers (`/v1/...`);
//! - [`access`]: the Host, Origin and token checks in front of every route;
//! - [`serve`]: binding and serving, the API or `/metrics` alone;
//! - [`dashboard`]: the web dashboard at `/`, what it draws from (`/v1/ring`, `/v1/items`,
//!   `/v1/events`) and the Prometheus metrics at `/metrics`.

mod access;
pub mod dashboard;
mod serve;
mod streams;

pub use access::{Access, beyond_loopback};
pub use serve::{serve, serve_metrics, serve_router, serve_with};
pub use streams::Accepted;

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use cairn_core::{ErrorCode, Id, Item};
use serde::{Deserialize, Serialize};

use crate::dht::Dht;
use crate::error::{DeleteError, GetError, PutError, Stopped, WatchError};
use crate::outcome::PutReceipt;

/// The answer to a publish (`PUT /v1/items/{name}` or `POST /v1/blobs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Hex key of the item.
    pub key: String,
    /// Hex public key of the publisher (signed items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The name (signed items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The `seq` published (signed items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Unix seconds of expiry, 0 for never (signed items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Nodes that acknowledged a copy, this one included.
    pub replicas: usize,
}

/// An API error: an HTTP status and a message, rendered as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// The tombstone's `seq` of a 410 (sent as the `cairn-seq` header).
    seq: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            seq: None,
        }
    }

    /// 410 Gone for an item deleted by a tombstone with this `seq`.
    fn deleted(message: String, seq: u64) -> Self {
        ApiError {
            seq: Some(seq),
            ..ApiError::new(StatusCode::GONE, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error =
            serde_json::json!({ "code": self.status.as_u16(), "message": self.message });
        let mut headers = HeaderMap::new();
        if let Some(seq) = self.seq {
            error["seq"] = seq.into();
            headers.insert("cairn-seq", HeaderValue::from(seq));
        }
        let body = serde_json::json!({ "error": error });
        (self.status, headers, axum::Json(body)).into_response()
    }
}

/// axum's rejections (a bad query string, a path that is not UTF-8, an unreadable body) in
/// the API's one error format, with axum's status and explanation.
macro_rules! rejection_into_api_error {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> Self {
                ApiError::new(rejection.status(), rejection.body_text())
            }
        }
    )*};
}

rejection_into_api_error!(PathRejection, QueryRejection, BytesRejection);

impl From<PutError> for ApiError {
    fn from(e: PutError) -> Self {
        let status = match &e {
            PutError::Invalid(_) => StatusCode::BAD_REQUEST,
            PutError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            PutError::Refused(e) => match e.code() {
                ErrorCode::CONFLICT => StatusCode::CONFLICT,
                ErrorCode::OVER_LIMIT => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::BAD_REQUEST => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            PutError::NotDurable(e) if e.is_disk_full() => StatusCode::INSUFFICIENT_STORAGE,
            PutError::NotDurable(_) | PutError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PutError::NoPeer { .. } | PutError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<GetError> for ApiError {
    fn from(e: GetError) -> Self {
        let status = match e {
            GetError::NotFound { .. } => StatusCode::NOT_FOUND,
            GetError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GetError::Deleted { seq, .. } => return ApiError::deleted(e.to_string(), seq),
            GetError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            GetError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::PingError> for ApiError {
    fn from(e: crate::PingError) -> Self {
        use crate::PingError;
        let status = match e {
            PingError::Myself => StatusCode::BAD_REQUEST,
            PingError::NotFound(_) => StatusCode::NOT_FOUND,
            PingError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.to_string())
    }
}

/// `GET /v1/ping/{public_key}`: reaches the node with that key, and says how.
async fn ping(
    State(dht): State<Dht>,
    path: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<crate::PingReport>, ApiError> {
    let Path(public_key) = path?;
    let public_key = parse_public_key(&public_key)?;
    let pinged = dht.ping_key(&public_key).await?;
    Ok(axum::Json((&pinged).into()))
}

impl From<DeleteError> for ApiError {
    fn from(e: DeleteError) -> Self {
        match e {
            DeleteError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            DeleteError::Unavailable { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            DeleteError::AlreadyDeleted { seq, .. } => ApiError::deleted(e.to_string(), seq),
            DeleteError::Put(e) => e.into(),
            DeleteError::Stopped => Stopped.into(),
        }
    }
}

impl From<WatchError> for ApiError {
    fn from(e: WatchError) -> Self {
        match e {
            WatchError::Stopped => Stopped.into(),
        }
    }
}

impl From<Stopped> for ApiError {
    fn from(e: Stopped) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

/// What the API's handlers share: the node they act through, and the nodes whose ring and
/// activity the dashboard shows (that node alone, or a whole test network).
#[derive(Clone, Debug)]
pub struct Api {
    dht: Dht,
    network: Option<std::sync::Arc<[Dht]>>,
}

impl axum::extract::FromRef<Api> for Dht {
    fn from_ref(api: &Api) -> Dht {
        api.dht.clone()
    }
}

/// The API's routes over `dht`.
pub fn router(dht: Dht) -> Router {
    routes(Api { dht, network: None })
}

/// The API's routes over `dht`, with a dashboard that shows every node of `network` (a test
/// network in this process) rather than `dht`'s view alone.
pub fn network_router(dht: Dht, network: Vec<Dht>) -> Router {
    routes(Api {
        dht,
        network: Some(network.into()),
    })
}

fn routes(api: Api) -> Router {
    Router::new()
        .route("/v1/items/{name}", put(put_item).delete(delete_item))
        .route("/v1/items/{public_key}/{name}", get(get_item))
        .route("/v1/items/", put(empty_name).delete(empty_name))
        .route("/v1/items/{public_key}/", get(empty_name))
        .route("/v1/watch/{public_key}/", get(empty_name))
        .route("/v1/blobs", post(post_blob))
        .route("/v1/blobs/{key}", get(get_blob))
        .route("/v1/keys/{key}", get(get_key))
        .route("/v1/watch/{key}", get(watch_key))
        .route("/v1/watch/{public_key}/{name}", get(watch_item))
        .route("/v1/status", get(status))
        .route("/v1/ping/{public_key}", get(ping))
        .route("/v1/peers", get(peers))
        .route("/v1/connect/{public_key}", get(streams::connect))
        .route("/v1/listen", get(streams::listen))
        .merge(dashboard::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such endpoint; see /v1/status")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method; see the README's HTTP API",
            )
        })
        .with_state(api)
}

/// The longest `ttl` a put or a delete takes: ten years (3650 days), in seconds. An item
/// meant to live longer should never expire (no `ttl`).
pub const MAX_TTL_SECS: u64 = 3_650 * 86_400;

#[derive(Deserialize)]
struct PutParams {
    ttl: Option<u64>,
}

impl PutParams {
    fn ttl(&self) -> Result<Option<Duration>, ApiError> {
        match self.ttl {
            Some(0) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "a ttl is at least 1 second",
            )),
            Some(ttl) if ttl > MAX_TTL_SECS => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "ttl {ttl} is longer than the longest, {MAX_TTL_SECS} s (ten years); for \
                     an item that never expires, give no ttl"
                ),
            )),
            ttl => Ok(ttl.map(Duration::from_secs)),
        }
    }
}

/// The answer to a path whose item name is empty (`/v1/items/`, `/v1/items/PUBLIC_KEY/`).
async fn empty_name() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "the item name is empty: a name is 1 to 255 bytes",
    )
}

async fn put_item(
    State(dht): State<Dht>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<PutParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Published>, ApiError> {
    let (Path(name), Query(params), body) = (name?, params?, body?);
    let ttl = params.ttl()?;
    let receipt = dht.put_signed(&name, body, ttl).await?;
    let public_key = publisher(&dht).await;
    Ok(axum::Json(Published {
        public_key,
        name: Some(name),
        ..published(&receipt)
    }))
}

async fn delete_item(
    State(dht): State<Dht>,
    name: Result<Path<String>, PathRejection>,
    params: Result<Query<PutParams>, QueryRejection>,
) -> Result<axum::Json<Published>, ApiError> {
    let (Path(name), Query(params)) = (name?, params?);
    let ttl = params.ttl()?;
    let receipt = dht.delete(&name, ttl).await?;
    let public_key = publisher(&dht).await;
    Ok(axum::Json(Published {
        public_key,
        name: Some(name),
        ..published(&receipt)
    }))
}

/// The hex public key this node signs with, if it still runs.
async fn publisher(dht: &Dht) -> Option<String> {
    let status = dht.status().await.ok()?;
    Some(cairn_core::to_hex(&status.public_key))
}

fn published(receipt: &PutReceipt) -> Published {
    Published {
        key: receipt.key.to_hex(),
        public_key: None,
        name: None,
        seq: receipt.seq,
        expires: receipt.seq.map(|_| receipt.expires),
        replicas: receipt.replicas,
    }
}

async fn post_blob(
    State(dht): State<Dht>,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Published>, ApiError> {
    Ok(axum::Json(published(&dht.put_immutable(body?).await?)))
}

fn parse_key(text: &str) -> Result<Id, ApiError> {
    Id::from_hex(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad key {text:?}: {e}")))
}

fn value_response(item: &Item) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(key) = HeaderValue::from_str(&item.key().to_hex()) {
        headers.insert("cairn-key", key);
    }
    if let Some(seq) = item.seq() {
        headers.insert("cairn-seq", HeaderValue::from(seq));
    }
    (headers, item.value().clone()).into_response()
}

fn parse_public_key(text: &str) -> Result<[u8; 32], ApiError> {
    let bytes = cairn_core::from_hex(text).unwrap_or_default();
    bytes.try_into().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad public key {text:?}: expected 64 hex digits"),
        )
    })
}

async fn get_item(
    State(dht): State<Dht>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((public_key, name)) = path?;
    let public_key = parse_public_key(&public_key)?;
    let found = dht.get_signed(&public_key, &name).await?;
    Ok(value_response(&found.item))
}

/// One version of a watched key, as the data of a Server-Sent Event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchUpdate {
    /// Hex key.
    pub key: String,
    /// `signed`, `immutable` or `tombstone` (deleted).
    pub kind: String,
    /// The version's `seq` (signed items and tombstones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Unix seconds of expiry, 0 for never.
    pub expires: u64,
    /// The value as hex (empty for a tombstone).
    pub value: String,
    /// The value as text, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl WatchUpdate {
    /// The update describing `item`.
    pub fn of(item: &Item) -> Self {
        WatchUpdate {
            key: item.key().to_hex(),
            kind: item.kind().as_str().to_owned(),
            seq: item.seq(),
            expires: item.expires(),
            value: cairn_core::to_hex(item.value()),
            text: std::str::from_utf8(item.value()).ok().map(str::to_owned),
        }
    }
}

async fn watch_key(
    State(dht): State<Dht>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    watch_stream(dht, parse_key(&key?.0)?).await
}

async fn watch_item(
    State(dht): State<Dht>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((public_key, name)) = path?;
    let public_key = parse_public_key(&public_key)?;
    if name.is_empty() || name.len() > cairn_core::MAX_NAME_LEN {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "an item name is 1 to 255 bytes",
        ));
    }
    watch_stream(dht, cairn_core::signed_key(&public_key, &name)).await
}

/// Server-Sent Events, one per version: `event: value` for a value, `event: deleted` for a
/// tombstone, each with a [`WatchUpdate`] as JSON data and the `seq` as the event id.
async fn watch_stream(dht: Dht, key: Id) -> Result<Response, ApiError> {
    let watch = dht.watch(key).await?;
    let events = futures_util::stream::unfold(watch, |mut watch| async move {
        let item = watch.next().await?;
        let name = if item.is_tombstone() {
            "deleted"
        } else {
            "value"
        };
        let mut event = SseEvent::default().event(name);
        if let Some(seq) = item.seq() {
            event = event.id(seq.to_string());
        }
        let event = event
            .json_data(WatchUpdate::of(&item))
            .unwrap_or_else(|_| SseEvent::default().event("error"));
        Some((Ok::<_, std::convert::Infallible>(event), watch))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn get_blob(
    State(dht): State<Dht>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = parse_key(&key?.0)?;
    match dht.get(key).await?.item {
        item @ Item::Immutable(_) => Ok(value_response(&item)),
        Item::Signed(_) | Item::Tombstone(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "that key holds a signed item; use /v1/keys",
        )),
    }
}

async fn get_key(
    State(dht): State<Dht>,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = parse_key(&key?.0)?;
    Ok(value_response(&dht.get(key).await?.item))
}

async fn status(State(dht): State<Dht>) -> Result<Response, ApiError> {
    Ok(axum::Json(dht.status().await?).into_response())
}

async fn peers(State(dht): State<Dht>) -> Result<Response, ApiError> {
    Ok(axum::Json(dht.peers().await?).into_response())
}
