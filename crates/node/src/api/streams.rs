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
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ApiError, parse_public_key};
use crate::dht::Dht;
use crate::stream::{ABORTED, AcceptError, ConnectError, Stream};

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
            ConnectError::DatagramsOff | ConnectError::Busy => {
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
            Err(e) => {
                let (tx, rx) = socket.split();
                return close(tx, rx, 1011, &e.to_string()).await;
            }
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
/// at this point); its pings are answered meanwhile.
async fn gone<S>(socket: &mut S)
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    while let Some(Ok(Message::Ping(_) | Message::Pong(_))) = socket.next().await {}
}

/// How a pipe broke.
enum Broke {
    /// The caller went away (closed the WebSocket, or the connection ended).
    Gone,
    /// The caller broke this API's protocol: the close code and reason to send.
    Caller(u16, &'static str),
    /// The stream failed.
    Stream(std::io::Error),
}

type Sender = SplitSink<WebSocket, Message>;
type Receiver = SplitStream<WebSocket>;

/// Carries bytes between the WebSocket and the stream, both ways at once (neither waits on
/// the other, so two callers sending at once cannot block each other), until both sides'
/// bytes ended; then closes the stream, and the WebSocket with how it went.
async fn pipe(socket: WebSocket, stream: Stream) {
    let connection = stream.connection_handle();
    let (mut tx, mut rx) = socket.split();
    let (mut read, mut write) = tokio::io::split(stream);
    let upstream = async {
        loop {
            match rx.next().await {
                Some(Ok(Message::Binary(bytes))) if bytes.is_empty() => {
                    return write.shutdown().await.map_err(Broke::Stream);
                }
                Some(Ok(Message::Binary(bytes))) => {
                    write.write_all(&bytes).await.map_err(Broke::Stream)?;
                }
                Some(Ok(Message::Text(_))) => {
                    return Err(Broke::Caller(1003, "bytes go in binary messages"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(Broke::Gone),
            }
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = read.read(&mut buf).await.map_err(Broke::Stream)?;
            // An empty message says the other node's bytes ended.
            let bytes = bytes::Bytes::copy_from_slice(&buf[..n]);
            tx.send(Message::Binary(bytes))
                .await
                .map_err(|_| Broke::Gone)?;
            if n == 0 {
                return Ok(());
            }
        }
    };
    let piped = tokio::try_join!(upstream, downstream);
    let why = match piped {
        Ok(_) => {
            let stream = read.unsplit(write);
            // The caller may still go while the other node takes the last bytes.
            let closed = tokio::select! {
                closed = stream.close() => closed.map_err(Broke::Stream),
                () = gone(&mut rx) => Err(Broke::Gone),
            };
            match closed {
                Ok(()) => return close(tx, rx, 1000, "").await,
                Err(why) => why,
            }
        }
        Err(why) => why,
    };
    match why {
        Broke::Gone => {
            connection.close(ABORTED.into(), b"the program on the other node went away");
        }
        Broke::Caller(code, reason) => {
            connection.close(ABORTED.into(), b"its program broke the API's protocol");
            close(tx, rx, code, reason).await;
        }
        Broke::Stream(e) => close(tx, rx, 1011, &e.to_string()).await,
    }
}

/// How long a closing WebSocket waits for the caller's answering close.
const CLOSING: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes the WebSocket with `code` and `reason` (cut to what a close frame holds), then
/// reads what the caller still sends until its answering close (5 s at most): a socket
/// dropped with bytes unread is reset, and the caller would see the reset, not the reason.
async fn close(mut tx: Sender, mut rx: Receiver, code: u16, reason: &str) {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    if tx.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSING, async {
        while let Some(Ok(message)) = rx.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
