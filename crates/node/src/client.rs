//! A client of the local HTTP API, for the `cairn` commands that talk to a running node.
//!
//! One HTTP/1.1 request per connection over hyper: the API is on loopback and these are
//! one-shot commands, so there is nothing to pool.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::api::{Published, WatchUpdate};
use crate::identity::ApiToken;
use crate::outcome::Status;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing answers at the address.
    #[error(
        "cannot reach the cairn API at {addr}: {error} (is `cairn node` running there? use --api ADDR)"
    )]
    Unreachable {
        /// The API address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The item asked for was deleted by its publisher (HTTP 410).
    #[error("{message}")]
    Deleted {
        /// The tombstone's `seq`.
        seq: Option<u64>,
        /// The API's message.
        message: String,
    },
    /// The API answered with an error.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The API's message.
        message: String,
    },
    /// The exchange broke or the answer made no sense.
    #[error("talking to the cairn API at {addr}: {message}")]
    Protocol {
        /// The API address.
        addr: SocketAddr,
        /// What went wrong.
        message: String,
    },
}

/// A value fetched from the API with its key and `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The value bytes.
    pub value: Bytes,
    /// The `cairn-key` header.
    pub key: Option<String>,
    /// The `cairn-seq` header (signed items).
    pub seq: Option<u64>,
}

/// A client of one node's API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    addr: SocketAddr,
    /// Sent as `Authorization: Bearer` on every request when set.
    token: Option<ApiToken>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

/// Percent-encodes one path segment.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl ApiClient {
    /// A client of the API at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        ApiClient { addr, token: None }
    }

    /// This client, sending `token` with every request (an API bound beyond loopback takes
    /// changes only with it; one on loopback does not look at it).
    #[must_use]
    pub fn with_token(mut self, token: Option<ApiToken>) -> Self {
        self.token = token;
        self
    }

    /// Sends one request and returns the response with its body still to read; an error
    /// status is read and turned into its [`ClientError`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.send_upgrading(method, path, body, false).await
    }

    /// [`ApiClient::send`], asking to upgrade to a WebSocket if `websocket` (the answer is
    /// then 101 Switching Protocols).
    async fn send_upgrading(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        websocket: bool,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let addr = self.addr;
        let protocol = |message: String| ClientError::Protocol { addr, message };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|error| ClientError::Unreachable { addr, error })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| protocol(e.to_string()))?;
        tokio::spawn(connection.with_upgrades());
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string());
        if websocket {
            request = request
                .header(hyper::header::CONNECTION, "upgrade")
                .header(hyper::header::UPGRADE, "websocket")
                .header(hyper::header::SEC_WEBSOCKET_VERSION, "13")
                .header(
                    hyper::header::SEC_WEBSOCKET_KEY,
                    tokio_tungstenite::tungstenite::handshake::client::generate_key(),
                );
        }
        if let Some(token) = &self.token {
            request = request.header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", token.as_str()),
            );
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| protocol(e.to_string()))?;
        // Lookups end within the node's lookup timeout (30 s by default); allow some slack.
        let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
            .await
            .map_err(|_| protocol("no answer within 60 s".into()))?
            .map_err(|e| protocol(e.to_string()))?;
        let upgraded = websocket && response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if response.status().is_success() || upgraded {
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .to_bytes();
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| format!("HTTP {}", parts.status));
        if parts.status == StatusCode::GONE {
            let seq = parts
                .headers
                .get("cairn-seq")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.parse().ok());
            return Err(ClientError::Deleted { seq, message });
        }
        Err(ClientError::Api {
            status: parts.status,
            message,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<Bytes>, ClientError> {
        let response = self.send(method, path, body).await?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| ClientError::Protocol {
                addr: self.addr,
                message: e.to_string(),
            })?
            .to_bytes();
        Ok(hyper::Response::from_parts(parts, bytes))
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<T, ClientError> {
        let response = self.call(method, path, body).await?;
        serde_json::from_slice(response.body()).map_err(|e| ClientError::Protocol {
            addr: self.addr,
            message: format!("unexpected answer: {e}"),
        })
    }

    async fn fetch(&self, path: &str) -> Result<Fetched, ClientError> {
        let response = self.call(Method::GET, path, Bytes::new()).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let key = header("cairn-key");
        let seq = header("cairn-seq").and_then(|s| s.parse().ok());
        Ok(Fetched {
            value: response.into_body(),
            key,
            seq,
        })
    }

    /// Opens a byte stream to the node whose public key is `public_key` (hex), through the
    /// node's `GET /v1/connect/{public_key}`.
    pub async fn connect_stream(&self, public_key: &str) -> Result<ApiStream, ClientError> {
        let path = format!("/v1/connect/{public_key}");
        let (route, ws) = self.websocket(&path).await?;
        Ok(ApiStream {
            addr: self.addr,
            ws,
            route,
            accepted: None,
        })
    }

    /// Waits for a stream another node opens to this node, through `GET /v1/listen`.
    pub async fn listen_stream(&self) -> Result<ApiStream, ClientError> {
        self.listen().await?.accepted().await
    }

    /// Has this node take streams (`GET /v1/listen`): it does from when this returns until
    /// the [`ApiListening`] takes one or is dropped.
    pub async fn listen(&self) -> Result<ApiListening, ClientError> {
        let (_, ws) = self.websocket("/v1/listen").await?;
        Ok(ApiListening {
            addr: self.addr,
            ws,
        })
    }

    async fn websocket(&self, path: &str) -> Result<(Option<String>, WebSocket), ClientError> {
        let response = self
            .send_upgrading(Method::GET, path, Bytes::new(), true)
            .await?;
        let route = response
            .headers()
            .get("cairn-route")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| ClientError::Protocol {
                addr: self.addr,
                message: e.to_string(),
            })?;
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        Ok((route, ws))
    }

    /// Publishes `value` under `name`, signed by the node; `ttl` in seconds.
    pub async fn put(
        &self,
        name: &str,
        value: Bytes,
        ttl: Option<u64>,
    ) -> Result<Published, ClientError> {
        let mut path = format!("/v1/items/{}", encode_segment(name));
        if let Some(ttl) = ttl {
            path.push_str(&format!("?ttl={ttl}"));
        }
        self.json(Method::PUT, &path, value).await
    }

    /// Deletes the item `name` the node published; the tombstone lives `ttl` seconds, for
    /// ever without one.
    pub async fn delete(&self, name: &str, ttl: Option<u64>) -> Result<Published, ClientError> {
        let mut path = format!("/v1/items/{}", encode_segment(name));
        if let Some(ttl) = ttl {
            path.push_str(&format!("?ttl={ttl}"));
        }
        self.json(Method::DELETE, &path, Bytes::new()).await
    }

    /// Watches the signed item `name` of `public_key` (both as given), or with `name` `None`,
    /// any item by its hex key `public_key`: a stream of Server-Sent Events.
    pub async fn watch(&self, target: &str) -> Result<WatchStream, ClientError> {
        let path = match target.split_once('/') {
            Some((public_key, name)) => format!(
                "/v1/watch/{}/{}",
                encode_segment(public_key),
                encode_segment(name)
            ),
            None => format!("/v1/watch/{}", encode_segment(target)),
        };
        let response = self.send(Method::GET, &path, Bytes::new()).await?;
        Ok(WatchStream {
            addr: self.addr,
            body: response.into_body(),
            buffer: Vec::new(),
        })
    }

    /// Publishes an immutable item.
    pub async fn put_immutable(&self, value: Bytes) -> Result<Published, ClientError> {
        self.json(Method::POST, "/v1/blobs", value).await
    }

    /// Fetches the signed item `name` of `public_key` (hex).
    pub async fn get_signed(&self, public_key: &str, name: &str) -> Result<Fetched, ClientError> {
        self.fetch(&format!(
            "/v1/items/{}/{}",
            encode_segment(public_key),
            encode_segment(name)
        ))
        .await
    }

    /// Fetches any item by its hex key.
    pub async fn get_key(&self, key: &str) -> Result<Fetched, ClientError> {
        self.fetch(&format!("/v1/keys/{}", encode_segment(key)))
            .await
    }

    /// Has the node reach the node with `public_key` (hex), and says how.
    pub async fn ping_key(&self, public_key: &str) -> Result<crate::PingReport, ClientError> {
        let path = format!("/v1/ping/{}", encode_segment(public_key));
        self.json(Method::GET, &path, Bytes::new()).await
    }

    /// The node's status.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.json(Method::GET, "/v1/status", Bytes::new()).await
    }
}

/// The versions of a watched key, read from the API's Server-Sent Events.
#[derive(Debug)]
pub struct WatchStream {
    addr: SocketAddr,
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
}

impl WatchStream {
    /// The next version (a `tombstone` kind when the item was deleted); `None` when the node
    /// closed the stream.
    pub async fn next(&mut self) -> Option<Result<WatchUpdate, ClientError>> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let data: String = text
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<Vec<_>>()
                    .join("\n");
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(
                    serde_json::from_str(&data).map_err(|e| ClientError::Protocol {
                        addr: self.addr,
                        message: format!("unexpected event: {e}"),
                    }),
                );
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Err(e) => {
                    return Some(Err(ClientError::Protocol {
                        addr: self.addr,
                        message: e.to_string(),
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/c%é"), "a%20b%2Fc%25%C3%A9");
        assert_eq!(encode_segment("plain-name_1.txt~"), "plain-name_1.txt~");
    }
}

type WebSocket = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A node taking streams for this client ([`ApiClient::listen`]).
#[derive(Debug)]
pub struct ApiListening {
    addr: SocketAddr,
    ws: WebSocket,
}

impl ApiListening {
    /// Waits for the stream.
    pub async fn accepted(self) -> Result<ApiStream, ClientError> {
        let ApiListening { addr, mut ws } = self;
        let protocol = |message: String| ClientError::Protocol { addr, message };
        let accepted = match ws.next().await {
            Some(Ok(WsMessage::Text(text))) => serde_json::from_str::<crate::api::Accepted>(&text)
                .map_err(|e| protocol(format!("unexpected answer: {e}")))?,
            Some(Ok(WsMessage::Close(frame))) => return Err(closed(addr, frame)),
            other => return Err(protocol(format!("unexpected answer: {other:?}"))),
        };
        Ok(ApiStream {
            addr,
            ws,
            route: accepted.route.map(|r| r.as_str().to_owned()),
            accepted: Some(accepted),
        })
    }
}

/// A byte stream to another node, carried by a WebSocket to this node's API
/// ([`ApiClient::connect_stream`], [`ApiClient::listen_stream`]).
#[derive(Debug)]
pub struct ApiStream {
    addr: SocketAddr,
    ws: WebSocket,
    route: Option<String>,
    accepted: Option<crate::api::Accepted>,
}

impl ApiStream {
    /// How the other node was reached (`direct`, `punched`, `relayed`), if known.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// Who opened a stream [`ApiClient::listen_stream`] took.
    pub fn accepted(&self) -> Option<&crate::api::Accepted> {
        self.accepted.as_ref()
    }

    /// Sends everything `input` gives, then ends this side's bytes, while writing everything
    /// the other node sends to `output`; returns once both ended and the node closed the
    /// stream cleanly, or with why it broke.
    pub async fn pipe(
        self,
        mut input: impl AsyncRead + Unpin,
        mut output: impl AsyncWrite + Unpin,
    ) -> Result<(), ClientError> {
        let ApiStream { addr, ws, .. } = self;
        let protocol = |message: String| ClientError::Protocol { addr, message };
        let (mut tx, mut rx) = ws.split();
        // Both ways at once: a download is never held up by an upload, nor the reverse.
        let upload = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| protocol(format!("reading the input: {e}")))?;
                // An empty message ends this side's bytes.
                let bytes = Bytes::copy_from_slice(&buf[..n]);
                tx.send(WsMessage::Binary(bytes))
                    .await
                    .map_err(|e| protocol(e.to_string()))?;
                if n == 0 {
                    // Done: the download decides when the stream is over.
                    return std::future::pending::<Result<(), ClientError>>().await;
                }
            }
        };
        let download = async {
            loop {
                match rx.next().await {
                    Some(Ok(WsMessage::Binary(bytes))) if bytes.is_empty() => {
                        output.flush().await.map_err(|e| protocol(e.to_string()))?;
                    }
                    Some(Ok(WsMessage::Binary(bytes))) => {
                        output
                            .write_all(&bytes)
                            .await
                            .map_err(|e| protocol(format!("writing the output: {e}")))?;
                    }
                    Some(Ok(WsMessage::Close(frame))) => {
                        output.flush().await.map_err(|e| protocol(e.to_string()))?;
                        return match frame {
                            Some(f) if f.code == CloseCode::Normal => Ok(()),
                            frame => Err(closed(addr, frame)),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(protocol(e.to_string())),
                    None => {
                        return Err(protocol(
                            "the API ended the stream without closing it".into(),
                        ));
                    }
                }
            }
        };
        tokio::select! {
            ended = upload => ended,
            ended = download => ended,
        }
    }
}

/// What a close that was not a clean one says.
fn closed(
    addr: SocketAddr,
    frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) -> ClientError {
    let message = match frame {
        Some(f) if !f.reason.is_empty() => f.reason.to_string(),
        Some(f) => format!("the stream ended with WebSocket code {}", u16::from(f.code)),
        None => "the stream ended without a reason".into(),
    };
    ClientError::Protocol { addr, message }
}
