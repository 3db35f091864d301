"""The API token against a real node whose API is bound beyond loopback (0.0.0.0), reached
through 127.0.0.1: changes need the token, given as ``token=`` or read from ``data_dir=``."""

import asyncio
import os
import signal
import socket
import tempfile

import pytest

import cairn


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def exposed_node():
    """A node with ``--api 0.0.0.0:PORT``: its URL and its data directory."""
    with tempfile.TemporaryDirectory(prefix="cairn-token-") as data_dir:
        port = _free_port("0.0.0.0")
        process = await asyncio.create_subprocess_exec(
            cairn.find_binary(), "node",
            "--listen", f"127.0.0.1:{_free_port('127.0.0.1')}",
            "--api", f"0.0.0.0:{port}", "--data-dir", data_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            async with cairn.Client(url, timeout=5) as c:
                while True:
                    assert process.returncode is None, "the node exited"
                    try:
                        await c.status()
                        break
                    except cairn.Unreachable:
                        assert loop.time() < deadline, "the node never answered"
                        await asyncio.sleep(0.05)
            yield url, data_dir
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 10)


async def test_changes_need_the_token_and_reads_do_not(exposed_node, monkeypatch):
    monkeypatch.delenv("CAIRN_API_TOKEN", raising=False)
    url, data_dir = exposed_node
    token = cairn.read_token(data_dir)
    assert token is not None and len(token) == 64

    async with cairn.Client(url) as anonymous:
        assert (await anonymous.status()).peers == 0
        with pytest.raises(cairn.Unauthorized) as refused:
            await anonymous.put("greeting", b"hello")
        assert refused.value.status == 401 and "api.token" in refused.value.message
    async with cairn.Client(url, token="0" * 64) as wrong:
        with pytest.raises(cairn.Unauthorized):
            await wrong.put_blob(b"hello")

    async with cairn.Client(url, token=token) as c:
        published = await c.put("greeting", b"hello")
        assert await c.get(published.public_key, "greeting") == b"hello"
    async with cairn.Client(url, data_dir=data_dir) as c:
        await c.delete("greeting")
    monkeypatch.setenv("CAIRN_API_TOKEN", token)
    async with cairn.Client(url) as c:
        assert (await c.put_blob(b"by env")).replicas >= 1


async def test_a_stream_needs_the_token(exposed_node, monkeypatch):
    # A WebSocket opens a byte stream as the node: a change, whatever its method.
    monkeypatch.delenv("CAIRN_API_TOKEN", raising=False)
    url, data_dir = exposed_node
    async with cairn.Client(url) as anonymous:
        with pytest.raises(cairn.Unauthorized) as refused:
            await anonymous.listen()
        assert refused.value.status == 401 and "api.token" in refused.value.message
        with pytest.raises(cairn.Unauthorized):
            await anonymous.connect("07" * 32)
    async with cairn.Client(url, data_dir=data_dir) as c:
        ready = asyncio.Event()
        listening = asyncio.create_task(c.listen(ready=ready))
        await asyncio.wait_for(ready.wait(), 30)
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening
        with pytest.raises(cairn.NotFound):
            await c.connect("07" * 32)


def test_no_token_file_is_no_token(tmp_path):
    assert cairn.read_token(tmp_path) is None
