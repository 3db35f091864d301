"""The errors a cairn node's API can answer with, one exception per case.

Every exception derives from :class:`CairnError`, which carries the HTTP status and the
node's message. No call ever raises a bare ``aiohttp`` error.
"""

from __future__ import annotations

from typing import Optional


class CairnError(Exception):
    """Something the node refused or could not do."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Unreachable(CairnError):
    """No node answers at this address (it is not running, or the address is wrong)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot reach the cairn API at {address}: {reason}")
        self.address = address


class InvalidRequest(CairnError):
    """The node refused the request as malformed (a bad key, name or ttl): HTTP 400."""


class Unauthorized(CairnError):
    """The node's API is bound beyond loopback and wants its token (``token=`` or
    ``data_dir=``), or refused this request's origin or host: HTTP 401 or 403."""


class NotFound(CairnError):
    """No node holds a valid copy, or there is nothing to delete: HTTP 404."""


class Deleted(CairnError):
    """The item was deleted by a tombstone with this ``seq``: HTTP 410."""

    def __init__(self, message: str, seq: Optional[int]) -> None:
        super().__init__(message, 410)
        self.seq = seq


class Stale(CairnError):
    """A newer or conflicting version is held already: HTTP 409."""


class TooLarge(CairnError):
    """The value is above the node's limit (64 KiB by default): HTTP 413."""


class StoreFull(CairnError):
    """The node's store is full, or this client is over a limit: HTTP 429."""


class Unavailable(CairnError):
    """The node cannot do it now: HTTP 503. It is shutting down; or no other node stored a put
    or delete (the node keeps its copy, but the write is not acknowledged: try again once the
    node reaches its peers); or its disk cannot read an item it holds."""


class StreamError(CairnError):
    """A byte stream (:meth:`Client.connect`, :meth:`Client.listen`) broke, or was used wrongly
    (a write after ``write_eof``). ``code`` is the WebSocket close code the node sent, if any:
    1011 when the stream to the other node failed, the message saying why."""

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code


#: The name this client gave :class:`Unavailable` when a 503 meant only a node shutting down.
Stopping = Unavailable


_BY_STATUS = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Stale,
    413: TooLarge,
    429: StoreFull,
    503: Unavailable,
}


def from_response(status: int, message: str, seq: Optional[int]) -> CairnError:
    """The exception for an error answer of the API."""
    if status == 410:
        return Deleted(message, seq)
    return _BY_STATUS.get(status, CairnError)(message, status)
