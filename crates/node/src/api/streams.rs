//! Byte streams through the API (README, "HTTP API"): `GET /v1/connect/{public_key}` and
//! `GET /v1/listen` are WebSockets that carry one [`Stream`] each.
//!
//! On the WebSocket, a binary message carries bytes, and an empty binary message ends the
//! bytes of the side that sends it (the other side may still send). The API closes the
//! WebSocket with 1000 once both sides' bytes ended and the peer has all of this side's, or
//! with 1011 and the reason if the stream broke. `connect` dials before it upgrades, so that a
//! node that cannot be reached is an HTTP error; the upgrade's `cairn-route` header says how
//! it was reached. `listen` upgrades at once; its first message is text, the JSON
//! [`Accepted`], when a stream arrives.

use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ApiError, parse_public_key};
use crate::dht::Dht;
use crate::stream::{AcceptError, ConnectError, Stream};

/// What `GET /v1/listen` says first, when a stream arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The other node's public key, hex.
    pub peer: String,
    /// Where its packets come from.
    pub addr: String,
    /// `relayed` for a stream through a circuit, else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::Route>,
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Reach(e) => e.into(),
            ConnectError::DatagramsOff => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ConnectError::Refused | ConnectError::Failed { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(e: AcceptError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

fn not_a_websocket(rejection: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!(
            "this endpoint is a WebSocket ({rejection}); `cairn connect` and `cairn listen` use it"
        ),
    )
}

pub(super) async fn connect(
    State(dht): State<Dht>,
    path: Result<Path<String>, PathRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Path(public_key) = path?;
    let public_key = parse_public_key(&public_key)?;
    let upgrade = upgrade.map_err(not_a_websocket)?;
    let stream = dht.connect(&public_key).await?;
    let route = stream.route().map_or("direct", crate::Route::as_str);
    let mut response = upgrade.on_upgrade(move |socket| pipe(socket, stream));
    response
        .headers_mut()
        .insert("cairn-route", HeaderValue::from_static(route));
    Ok(response.into_response())
}

pub(super) async fn listen(
    State(dht): State<Dht>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(not_a_websocket)?;
    let listener = dht.listen()?;
    Ok(upgrade.on_upgrade(move |mut socket| async move {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = gone(&mut socket) => return,
        };
        drop(listener);
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => return close(socket, 1011, &e.to_string()).await,
        };
        let accepted = Accepted {
            peer: cairn_core::to_hex(stream.peer()),
            addr: stream.addr().to_string(),
            route: stream.route(),
        };
        let text = serde_json::to_string(&accepted).unwrap_or_default();
        if socket.send(Message::Text(text.into())).await.is_ok() {
            pipe(socket, stream).await;
        }
    }))
}

/// Resolves when the caller has gone (closed the WebSocket, or sent what it should not have
/// before a stream arrived); its pings are answered meanwhile.
async fn gone(socket: &mut WebSocket) {
    while let Some(Ok(Message::Ping(_) | Message::Pong(_))) = socket.recv().await {}
}

/// Carries bytes between the WebSocket and the stream until both sides' bytes ended.
async fn pipe(mut socket: WebSocket, mut stream: Stream) {
    let mut buf = vec![0u8; 16 * 1024];
    let (mut sent_all, mut got_all) = (false, false);
    while !(sent_all && got_all) {
        tokio::select! {
            // Read on after the caller's end too: its going away ends the stream.
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(_))) if sent_all => {
                    stream.abort("its program sent bytes after their end");
                    return close(socket, 1003, "bytes after their end").await;
                }
                Some(Ok(Message::Binary(bytes))) if bytes.is_empty() => {
                    sent_all = true;
                    if let Err(e) = stream.shutdown().await {
                        return close(socket, 1011, &e.to_string()).await;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if let Err(e) = stream.write_all(&bytes).await {
                        return close(socket, 1011, &e.to_string()).await;
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    stream.abort("its program broke the API's protocol");
                    return close(socket, 1003, "bytes go in binary messages").await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                // The caller went away: the stream ends with it.
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    return stream.abort("the program on the other node went away");
                }
            },
            read = stream.read(&mut buf), if !got_all => match read {
                Ok(0) => {
                    got_all = true;
                    if socket.send(Message::Binary(Default::default())).await.is_err() {
                        return;
                    }
                }
                Ok(n) => {
                    let bytes = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Err(e) => return close(socket, 1011, &e.to_string()).await,
            },
        }
    }
    match stream.close().await {
        Ok(()) => close(socket, 1000, "").await,
        Err(e) => close(socket, 1011, &e.to_string()).await,
    }
}

/// How long a closing WebSocket waits for the caller's answering close.
const CLOSING: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes the WebSocket with `code` and `reason` (cut to what a close frame holds), then
/// reads what the caller still sends until its answering close (5 s at most): a socket
/// dropped with bytes unread is reset, and the caller would see the reset, not the reason.
async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSING, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
