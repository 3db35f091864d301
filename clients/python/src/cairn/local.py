"""A network of real ``cairn node`` processes on loopback, for tests and notebooks::

    async with cairn.LocalNetwork(5) as net:
        async with net.client(0) as c:
            await c.put("greeting", b"hello")
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
from types import TracebackType
from typing import List, Optional, Sequence, Type

from .client import Client
from .errors import CairnError, Unreachable


def find_binary(binary: Optional[str] = None) -> str:
    """The ``cairn`` program: ``binary``, else ``$CAIRN_BIN``, else ``cairn`` on the PATH."""
    candidate = binary or os.environ.get("CAIRN_BIN") or shutil.which("cairn")
    if not candidate or not os.access(candidate, os.X_OK):
        raise CairnError(
            "cannot find the cairn binary: pass binary=, set CAIRN_BIN, or put cairn on the PATH "
            "(`cargo build --release` makes target/release/cairn)"
        )
    return candidate


# On Linux every 127.x.y.z is this machine: each node gets a /24 of its own (127.a.b.1), as
# nodes on the internet have, since a node keeps at most two contacts of one /24 per bucket.
# Elsewhere only 127.0.0.1 is sure to work, and a node may know only some of the others.
_OWN_HOSTS = sys.platform.startswith("linux")


def _host(i: int) -> str:
    return f"127.{1 + i // 256}.{i % 256}.1" if _OWN_HOSTS else "127.0.0.1"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalNetwork:
    """Starts ``n`` ``cairn node`` processes on free loopback ports, each with a temporary
    data directory, joins them through the first, and stops them all on exit (SIGTERM, then
    SIGKILL for any that has not stopped after ``stop_timeout`` seconds).

    ``binary`` is the ``cairn`` program (see :func:`find_binary`); ``node_args`` are added to
    every node's command line. Each node logs to nowhere unless ``$CAIRN_LOG`` sets a
    ``RUST_LOG`` filter."""

    def __init__(
        self,
        n: int,
        binary: Optional[str] = None,
        *,
        node_args: Sequence[str] = (),
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if n < 1:
            raise ValueError("a network needs at least one node")
        self.n = n
        self.binary = find_binary(binary)
        #: Arguments added to every ``cairn node`` (say ``["--config", "limits.toml"]``).
        self.node_args = list(node_args)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        #: Each node's API address, ``http://127.0.0.1:PORT``.
        self.urls: List[str] = []
        #: Each node's peer address, ``127.0.0.1:PORT``.
        self.listen: List[str] = []
        self._processes: List[asyncio.subprocess.Process] = []
        self._dir: Optional[str] = None

    def client(self, i: int = 0, **kwargs: float) -> Client:
        """A client of node ``i`` (use it with ``async with``)."""
        return Client(self.urls[i], **kwargs)

    async def __aenter__(self) -> "LocalNetwork":
        self._dir = tempfile.mkdtemp(prefix="cairn-local-")
        try:
            # The first node must listen before the others try to join through it.
            await self._start(0)
            await self._wait(0, peers=0)
            for i in range(1, self.n):
                await self._start(i)
            # Joined: every node knows a peer, and the first knows every other (or, past
            # k = 20 of them, a table's worth) where each node has a host of its own.
            for i in range(1, self.n):
                await self._wait(i, peers=1)
            await self._wait(0, peers=min(self.n - 1, 20) if _OWN_HOSTS else 1)
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.stop()

    async def _start(self, i: int) -> None:
        assert self._dir is not None
        host = _host(i)
        listen, api = f"{host}:{_free_port(host)}", f"127.0.0.1:{_free_port()}"
        # Servers, as `cairn testnet`'s: nodes on one machine cannot show each other that
        # they are reachable, so in the command's default mode (auto) they would stay clients.
        args = ["node", "--listen", listen, "--api", api, "--mode", "server",
                "--data-dir", os.path.join(self._dir, f"node-{i}")]
        if self.listen:
            args += ["--bootstrap", self.listen[0]]
        args += self.node_args
        process = await asyncio.create_subprocess_exec(
            self.binary, *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("CAIRN_LOG", "warn")},
        )
        self._processes.append(process)
        self.listen.append(listen)
        self.urls.append(f"http://{api}")

    async def _wait(self, i: int, peers: int) -> None:
        """Waits until node ``i`` answers and knows at least ``peers`` others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        async with Client(self.urls[i], timeout=5) as c:
            while True:
                if self._processes[i].returncode is not None:
                    raise CairnError(f"node {i} exited with {self._processes[i].returncode}")
                try:
                    if (await c.status()).peers >= peers:
                        return
                except Unreachable:
                    pass
                if loop.time() > deadline:
                    raise CairnError(f"node {i} did not join within {self.start_timeout} s")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stops every node and removes their data directories."""
        for process in self._processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), self.stop_timeout)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        self._processes.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
