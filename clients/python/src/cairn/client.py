"""The asyncio client of a running cairn node's HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Tuple, Type
from urllib.parse import quote

import aiohttp

from .errors import CairnError, Unreachable, from_response
from .stream import Stream

#: The API address a node uses unless told otherwise.
DEFAULT_URL = "http://127.0.0.1:7401"

#: The file in a node's data directory that holds its API token.
TOKEN_FILE = "api.token"


def read_token(data_dir: "os.PathLike[str] | str") -> Optional[str]:
    """The API token a node keeps in ``data_dir/api.token``, or None if there is none."""
    try:
        with open(os.path.join(data_dir, TOKEN_FILE), encoding="ascii") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Published:
    """What a put or a delete did."""

    #: The item's key: 128 hex digits.
    key: str
    #: Nodes that acknowledged a copy, the node itself included.
    replicas: int
    #: The publisher's public key (signed items and deletes).
    public_key: Optional[str] = None
    #: The item's name (signed items and deletes).
    name: Optional[str] = None
    #: The version published (signed items and deletes).
    seq: Optional[int] = None
    #: Unix seconds of expiry, 0 for never (signed items and deletes).
    expires: Optional[int] = None


@dataclass(frozen=True)
class Version:
    """One version of a watched key: a value, or its deletion."""

    key: str
    #: ``signed``, ``immutable`` or ``tombstone``.
    kind: str
    seq: Optional[int]
    #: Unix seconds of expiry, 0 for never.
    expires: int
    #: The value (empty for a deletion).
    value: bytes

    @property
    def deleted(self) -> bool:
        """Whether this version is the item's deletion."""
        return self.kind == "tombstone"


@dataclass(frozen=True)
class Status:
    """A node's state (``GET /v1/status``)."""

    node_id: str
    public_key: str
    network: str
    listen: str
    peers: int
    network_size: int
    items: int
    uptime_s: int
    version: str
    #: Every other figure the node reports (requests, connections, refusals, ...).
    counters: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    """A contact in the node's routing table."""

    node_id: str
    addr: str
    last_seen_s: int
    failures: int


@dataclass(frozen=True)
class Pinged:
    """How a node was reached by its key (``GET /v1/ping/{public_key}``)."""

    #: ``"direct"`` (a server), ``"punched"`` (through its NAT, introduced by a rendezvous
    #: point) or ``"relayed"`` (through that point).
    route: str
    #: Where it answered from (for a relayed route, the relay).
    addr: str
    #: The rendezvous point that introduced or relayed it, if any.
    via: Optional[str]
    #: The round trip of a ping, in milliseconds (whole ones: the node's clock).
    rtt_ms: float


_STATUS_FIELDS = ("node_id", "public_key", "network", "listen", "peers", "network_size",
                  "items", "uptime_s", "version")


class Client:
    """A client of one cairn node's API. Use it as an async context manager::

        async with cairn.Client("http://127.0.0.1:7401") as c:
            published = await c.put("greeting", b"hello")
            value = await c.get(published.public_key, "greeting")

    A node whose API is bound beyond loopback takes changes only with its token: pass
    ``token=``, or ``data_dir=`` (the node's data directory, whose ``api.token`` is read), or
    set ``$CAIRN_API_TOKEN``. A node on loopback needs none.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 60.0,
        token: Optional[str] = None,
        data_dir: "Optional[os.PathLike[str] | str]" = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: Optional[aiohttp.ClientSession] = None
        if token is None and data_dir is not None:
            token = read_token(data_dir)
        if token is None:
            token = os.environ.get("CAIRN_API_TOKEN") or None
        self._headers = {"Authorization": f"Bearer {token.strip()}"} if token else {}

    async def __aenter__(self) -> "Client":
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, headers=self._headers, trace_configs=[_handshake_trace()]
        )
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the client's connections (the context manager does it on exit)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- items ----------------------------------------------------------------------------

    async def put(self, name: str, value: bytes, ttl: Optional[int] = None) -> Published:
        """Signs ``value`` under ``name`` with the node's key and publishes it (a new version
        if the name was put before). ``ttl`` is in seconds; by default the item never expires."""
        params = {"ttl": str(ttl)} if ttl is not None else None
        data = await self._json("PUT", f"/v1/items/{_segment(name)}", data=value, params=params)
        return _published(data)

    async def put_blob(self, value: bytes) -> Published:
        """Publishes an immutable item; its key is the SHA-512 of ``value``."""
        return _published(await self._json("POST", "/v1/blobs", data=value))

    async def get(self, public_key: str, name: str) -> bytes:
        """The newest value of the item ``name`` signed by ``public_key``."""
        return await self._bytes(f"/v1/items/{_segment(public_key)}/{_segment(name)}")

    async def get_key(self, key: str) -> bytes:
        """The value of any item by its 128-hex-digit key."""
        return await self._bytes(f"/v1/keys/{_segment(key)}")

    async def delete(self, name: str, ttl: Optional[int] = None) -> Published:
        """Deletes an item this node published: a signed tombstone that stale copies cannot
        undo. It is kept for ever unless ``ttl`` (seconds) is given."""
        params = {"ttl": str(ttl)} if ttl is not None else None
        return _published(await self._json("DELETE", f"/v1/items/{_segment(name)}", params=params))

    async def watch(self, key: str) -> AsyncIterator[Version]:
        """Each version of ``key`` (128 hex digits, or ``PUBLIC_KEY/NAME``) as it arrives: the
        newest first, then every newer one, once and in order, until the loop ends::

            async for version in c.watch(key):
                print(version.seq, version.value)
        """
        path = "/v1/watch/" + "/".join(_segment(part) for part in key.split("/", 1))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total)
        async with self._request("GET", path, timeout=timeout) as response:
            await _raise_for(response)
            async for event, data in _server_sent_events(response):
                if event in ("value", "deleted"):
                    yield _version(json.loads(data))

    # ---- streams ------------------------------------------------------------------------------

    async def connect(self, public_key: str) -> Stream:
        """Opens an encrypted byte stream to the node with ``public_key`` (64 hex digits),
        which must be listening (:meth:`listen`). ``stream.route`` says how it was reached.

        Raises ``NotFound`` when no server has that key and it published no rendezvous
        record, ``InvalidRequest`` for a malformed key or the node's own, and ``CairnError``
        (502) when the node refused the stream (nothing listens on it) or could not be reached.
        """
        ws, headers = await self._websocket(f"/v1/connect/{_segment(public_key)}")
        return Stream(ws, route=headers.get("cairn-route"), peer=public_key)

    async def listen(self, *, ready: Optional[asyncio.Event] = None) -> Stream:
        """Waits for a stream another node opens to this one (:meth:`connect`);
        ``stream.peer`` is its key and ``stream.addr`` its address. The node refuses streams
        while nothing listens: it takes one from when ``ready`` (if given) is set until this
        returns."""
        ws, _ = await self._websocket("/v1/listen")
        stream = Stream(ws)
        if ready is not None:
            ready.set()
        await stream._accepted()
        return stream

    # ---- the node ---------------------------------------------------------------------------

    async def status(self) -> Status:
        """The node's id, peers, items and counters."""
        data = await self._json("GET", "/v1/status")
        main = {name: data.get(name) for name in _STATUS_FIELDS}
        counters = {k: v for k, v in data.items() if k not in _STATUS_FIELDS}
        return Status(**main, counters=counters)

    async def ping(self, public_key: str) -> Pinged:
        """Has the node reach the node with ``public_key`` (64 hex digits) and say how.

        Raises ``NotFound`` when no server has that key and it published no rendezvous
        record, ``InvalidRequest`` for the node's own key, and ``CairnError`` (502) when
        every way failed.
        """
        data = await self._json("GET", f"/v1/ping/{_segment(public_key)}")
        return Pinged(data["route"], data["addr"], data.get("via"), data["rtt_ms"])

    async def peers(self) -> List[Peer]:
        """The contacts in the node's routing table."""
        data = await self._json("GET", "/v1/peers")
        return [Peer(p["node_id"], p["addr"], p["last_seen_s"], p["failures"]) for p in data]

    # ---- plumbing --------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._session is None:
            raise CairnError("the client is closed: use it in `async with cairn.Client(...)`")
        return _Call(self, self._session.request(method, self.url + path, **kwargs))

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._request(method, path, **kwargs) as response:
            await _raise_for(response)
            return await response.json()

    async def _bytes(self, path: str) -> bytes:
        async with self._request("GET", path) as response:
            await _raise_for(response)
            return await response.read()

    async def _websocket(
        self, path: str
    ) -> Tuple[aiohttp.ClientWebSocketResponse, Mapping[str, str]]:
        """A WebSocket to the API and its upgrade's headers; an error answer raises as any
        other call's does."""
        if self._session is None:
            raise CairnError("the client is closed: use it in `async with cairn.Client(...)`")
        handshake = _Handshake()
        token = _HANDSHAKE.set(handshake)
        try:
            ws = await self._session.ws_connect(self.url + path)
        except aiohttp.WSServerHandshakeError as e:
            if e.status < 400:
                raise CairnError(f"the node's API did not open a WebSocket: {e.message}") from e
            message = handshake.message or f"the node answered HTTP {e.status} to the WebSocket"
            raise from_response(e.status, message, None) from None
        except (aiohttp.ClientConnectionError, OSError) as e:
            raise Unreachable(self.url, str(e) or type(e).__name__) from e
        finally:
            _HANDSHAKE.reset(token)
        return ws, handshake.headers


class _Handshake:
    """What the answer to a WebSocket upgrade said: aiohttp's error keeps only its status."""

    def __init__(self) -> None:
        self.headers: Mapping[str, str] = {}
        self.message: Optional[str] = None


#: The handshake under way in this task, for the trace that reads its answer.
_HANDSHAKE: "ContextVar[Optional[_Handshake]]" = ContextVar("cairn_handshake", default=None)


def _handshake_trace() -> aiohttp.TraceConfig:
    """Keeps the headers of a WebSocket upgrade's answer and the message of an error answer,
    read before aiohttp drops its body."""

    async def on_request_end(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        handshake = _HANDSHAKE.get()
        if handshake is None:
            return
        response = params.response
        handshake.headers = response.headers
        if response.status >= 400:
            try:
                handshake.message = (await response.json(content_type=None))["error"]["message"]
            except (ValueError, KeyError, TypeError, aiohttp.ClientError):
                pass

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


class _Call:
    """A request whose connection errors become :class:`Unreachable`."""

    def __init__(self, client: Client, request: Any) -> None:
        self._client = client
        self._request = request

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            return await self._request.__aenter__()
        except (aiohttp.ClientConnectionError, OSError) as e:
            raise Unreachable(self._client.url, str(e) or type(e).__name__) from e

    async def __aexit__(self, *exc: Any) -> None:
        await self._request.__aexit__(*exc)


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    message, seq = response.reason or "error", None
    try:
        error = (await response.json(content_type=None))["error"]
        message, seq = error["message"], error.get("seq")
    except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
        pass
    raise from_response(response.status, message, seq)


async def _server_sent_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple]:
    """(event, data) pairs of a text/event-stream response."""
    event, data = "message", []
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue  # a keep-alive comment
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _segment(text: str) -> str:
    return quote(text, safe="")


def _published(data: Dict[str, Any]) -> Published:
    return Published(
        key=data["key"],
        replicas=data["replicas"],
        public_key=data.get("public_key"),
        name=data.get("name"),
        seq=data.get("seq"),
        expires=data.get("expires"),
    )


def _version(data: Dict[str, Any]) -> Version:
    return Version(
        key=data["key"],
        kind=data["kind"],
        seq=data.get("seq"),
        expires=data["expires"],
        value=bytes.fromhex(data["value"]),
    )
