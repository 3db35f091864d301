"""Byte streams to other nodes, carried by a WebSocket to the node's API
(``GET /v1/connect/{public_key}`` and ``GET /v1/listen``).

On the WebSocket a binary message carries bytes and an empty one ends the bytes of the side
that sends it; the node closes it with 1000 once both sides' bytes ended and the other node has
all of this side's, or with 1011 and the reason if the stream broke.
"""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any, Optional, Type

import aiohttp

from .errors import CairnError, StreamError

#: The most bytes one WebSocket message carries: a larger write is cut into several.
_CHUNK = 64 * 1024
#: How long closing a stream abandoned by an exception waits for the node's close frame.
_ABORT_WAIT = 1.0
#: The close code of a stream that ended cleanly.
_NORMAL = 1000


class Stream:
    """An encrypted byte stream to another node, from :meth:`Client.connect` or
    :meth:`Client.listen`. Use it as an async context manager::

        async with await c.connect(public_key) as stream:
            await stream.write(b"hello")
            await stream.write_eof()
            reply = await stream.read()

    Leaving the block without an exception closes the stream as :meth:`close` does; with one,
    it drops the stream at once (bytes in flight may be lost).
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        route: Optional[str] = None,
        peer: Optional[str] = None,
        addr: Optional[str] = None,
    ) -> None:
        self._ws = ws
        #: How the other node was reached: ``"direct"``, ``"punched"`` or ``"relayed"``; for a
        #: stream :meth:`Client.listen` took, ``"relayed"`` or None.
        self.route = route
        #: The other node's public key (64 hex digits), proven by the stream's handshake.
        self.peer = peer
        #: Where the other node's packets come from (``ip:port``; :meth:`Client.listen` only).
        self.addr = addr
        self._buffer = bytearray()
        self._eof = False  # the other node's bytes ended
        self._eof_sent = False  # this side's bytes ended
        self._closed = False  # the node's close frame (or the connection's end) arrived
        self._error: Optional[StreamError] = None
        self._receiving = False

    def __repr__(self) -> str:
        return f"<cairn.Stream peer={self.peer} route={self.route} addr={self.addr}>"

    async def __aenter__(self) -> "Stream":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self._abort()

    # ---- reading ------------------------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes the other node sent, as soon as some arrive; with ``n`` negative
        (the default), every byte until the other node ends its bytes. ``b""`` once they
        ended. Raises :class:`StreamError` if the stream broke."""
        if n < 0:
            everything = bytearray(self._buffer)
            self._buffer.clear()
            while True:
                chunk = await self._receive()
                if not chunk:
                    return bytes(everything)
                everything += chunk
        if n == 0:
            return b""
        if not self._buffer:
            chunk = await self._receive()
            if len(chunk) <= n:
                return chunk
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def _receive(self) -> bytes:
        """The next bytes of the other node, ``b""`` at their end."""
        while not self._eof:
            if self._error is not None:
                raise self._error
            if self._closed:
                return b""  # a clean close ends the bytes too
            data = await self._next()
            if data is not None:
                return data
        return b""

    async def _next(self) -> Optional[bytes]:
        """Takes the next message from the node: the bytes of a non-empty binary message, else
        None (the state says what came)."""
        if self._receiving:
            raise StreamError("another task is reading this stream: read it from one at a time")
        self._receiving = True
        try:
            message = await self._ws.receive()
        finally:
            self._receiving = False
        return self._take(message)

    def _take(self, message: aiohttp.WSMessage) -> Optional[bytes]:
        kind = message.type
        if kind == aiohttp.WSMsgType.BINARY:
            if message.data:
                return bytes(message.data)
            self._eof = True
        elif kind == aiohttp.WSMsgType.CLOSE:
            self._closed = True
            code, reason = message.data, message.extra
            if code != _NORMAL:
                self._error = StreamError(
                    reason or f"the stream ended with WebSocket code {code}", code
                )
        elif kind in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            self._closed = True
            if self._ws.close_code != _NORMAL:
                self._error = StreamError(
                    "the connection to the node's API ended before the stream did",
                    self._ws.close_code,
                )
        elif kind == aiohttp.WSMsgType.ERROR:
            self._closed = True
            self._error = StreamError(f"the connection to the node's API broke: {message.data}")
        elif kind == aiohttp.WSMsgType.TEXT:
            self._error = StreamError(f"the node sent text on a byte stream: {message.data!r}")
        return None

    # ---- writing ------------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Sends ``data`` to the other node; waits while the node cannot take more."""
        if self._eof_sent:
            raise StreamError("this side's bytes have ended (write_eof): nothing more goes out")
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            await self._send(view[start : start + _CHUNK])

    async def write_eof(self) -> None:
        """Ends this side's bytes: the other node reads their end, and may still send."""
        if not self._eof_sent:
            await self._send(b"")
            self._eof_sent = True

    async def _send(self, data: Any) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise StreamError("the stream is closed")
        try:
            await self._ws.send_bytes(data)
        except (aiohttp.ClientError, OSError) as e:
            # The node closed the WebSocket; its close frame, unless a read is waiting for
            # it, says why.
            if not self._receiving:
                try:
                    while not self._closed:
                        await asyncio.wait_for(self._next(), _ABORT_WAIT)
                except (asyncio.TimeoutError, StreamError):
                    pass
            if self._error is not None:
                raise self._error from e
            raise StreamError(f"the stream is closed: {e or type(e).__name__}") from e

    # ---- closing ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Ends this side's bytes if :meth:`write_eof` did not, then waits until the node
        closes the stream: once the other node ended its bytes too (any this side did not read
        are dropped) and has all of this side's. Raises :class:`StreamError` unless the stream
        ended cleanly."""
        try:
            if self._error is None and not self._closed:
                if not self._eof_sent:
                    await self.write_eof()
                while not self._closed:
                    await self._next()
                self._buffer.clear()
        finally:
            await self._abort()
        if self._error is not None:
            raise self._error

    async def _abort(self) -> None:
        """Closes the WebSocket, waiting for the node's answer for :data:`_ABORT_WAIT` at most."""
        self._closed = True
        if self._ws.closed:
            return
        try:
            # On the timeout aiohttp drops the connection, which the node sees.
            await asyncio.wait_for(self._ws.close(), _ABORT_WAIT)
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
            pass

    async def _accepted(self) -> None:
        """Reads what ``GET /v1/listen`` says first, when a stream arrives: who opened it."""
        try:
            message = await self._ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                try:
                    accepted = json.loads(message.data)
                    self.peer, self.addr = accepted["peer"], accepted["addr"]
                    self.route = accepted.get("route")
                    return
                except (ValueError, KeyError, TypeError) as e:
                    raise CairnError(f"unexpected answer of the node: {message.data!r}") from e
            self._take(message)
            if self._error is not None:
                raise self._error
            raise CairnError("the node's API ended the listen without a stream")
        except BaseException:
            await self._abort()
            raise
