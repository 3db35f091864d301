"""cairn: an asyncio client for the cairn distributed hash table.

It talks to a running node's HTTP API; no Rust toolchain and no C extension are needed::

    import asyncio, cairn

    async def main():
        async with cairn.Client("http://127.0.0.1:7401") as c:
            published = await c.put("greeting", b"hello")
            print(await c.get(published.public_key, "greeting"))

    asyncio.run(main())
"""

from .client import DEFAULT_URL, Client, Peer, Pinged, Published, Status, Version, read_token
from .errors import (
    CairnError,
    Deleted,
    InvalidRequest,
    NotFound,
    Stale,
    Stopping,
    StoreFull,
    StreamError,
    TooLarge,
    Unauthorized,
    Unavailable,
    Unreachable,
)
from .local import LocalNetwork, find_binary
from .stream import Stream

__all__ = [
    "DEFAULT_URL",
    "CairnError",
    "Client",
    "Deleted",
    "InvalidRequest",
    "LocalNetwork",
    "NotFound",
    "Peer",
    "Pinged",
    "Published",
    "Stale",
    "Status",
    "Stopping",
    "StoreFull",
    "Stream",
    "StreamError",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "Version",
    "find_binary",
    "read_token",
]
