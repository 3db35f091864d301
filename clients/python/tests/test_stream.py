"""Byte streams between real nodes: one client listens on its node, another connects to that
node by its key through its own node."""

import asyncio
import hashlib
import os

import pytest

import cairn


async def _open(listener: cairn.Client, connector: cairn.Client):
    """A stream from ``connector``'s node to ``listener``'s: (connected, accepted)."""
    ready = asyncio.Event()
    listening = asyncio.create_task(listener.listen(ready=ready))
    await asyncio.wait_for(ready.wait(), 30)
    connected = await connector.connect((await listener.status()).public_key)
    return connected, await asyncio.wait_for(listening, 30)


async def test_a_stream_carries_bytes_both_ways_and_closes_cleanly(network):
    async with network.client(0) as a, network.client(1) as b:
        connected, accepted = await _open(a, b)
        assert connected.route == "direct"
        assert connected.peer == (await a.status()).public_key
        assert accepted.peer == (await b.status()).public_key
        assert accepted.addr == network.listen[1] and accepted.route is None
        sent = os.urandom(1 << 20)

        async def connector() -> bytes:
            async with connected:
                await connected.write(sent)
                await connected.write_eof()
                with pytest.raises(cairn.StreamError, match="write_eof"):
                    await connected.write(b"more")
                head = await connected.read(4)
                return head + await connected.read()

        async def listener() -> bytes:
            async with accepted:
                received = await accepted.read()
                assert await accepted.read() == b"" and await accepted.read(10) == b""
                # Half-closed: the connector's bytes ended, the listener still answers.
                await accepted.write(b"got " + hashlib.sha256(received).hexdigest().encode())
                return received

        reply, received = await asyncio.wait_for(asyncio.gather(connector(), listener()), 60)
    assert received == sent
    assert reply == b"got " + hashlib.sha256(sent).hexdigest().encode()


async def test_read_takes_what_arrived_up_to_n(network):
    async with network.client(2) as a, network.client(1) as b:
        connected, accepted = await _open(a, b)
        async with connected, accepted:
            await connected.write(b"hello world")
            await connected.write_eof()
            parts = []
            while True:
                part = await accepted.read(3)
                if not part:
                    break
                assert 1 <= len(part) <= 3
                parts.append(part)
            assert b"".join(parts) == b"hello world"


async def test_connect_refused_where_nobody_listens_and_bad_keys(network):
    async with network.client(0) as a, network.client(1) as b:
        key = (await a.status()).public_key
        with pytest.raises(cairn.CairnError) as refused:
            await b.connect(key)
        assert refused.value.status == 502 and "refused" in refused.value.message
        with pytest.raises(cairn.NotFound):
            await b.connect("07" * 32)
        with pytest.raises(cairn.InvalidRequest) as bad:
            await b.connect("not-a-key")
        assert bad.value.status == 400 and "64 hex digits" in bad.value.message
        with pytest.raises(cairn.InvalidRequest, match="own key"):
            await a.connect(key)


async def test_a_stream_the_other_side_drops_breaks_with_the_reason(network):
    async with network.client(0) as a, network.client(1) as b:
        connected, accepted = await _open(a, b)
        await connected.write(b"hi")
        with pytest.raises(RuntimeError):
            async with accepted:
                assert await accepted.read(2) == b"hi"
                raise RuntimeError("the listener gives up")
        with pytest.raises(cairn.StreamError) as broken:
            await asyncio.wait_for(connected.read(), 30)
        assert broken.value.code == 1011 and broken.value.message
        with pytest.raises(cairn.StreamError):
            await connected.close()


async def test_a_cancelled_listen_stops_the_node_taking_streams(network):
    async with network.client(0) as a, network.client(1) as b:
        ready = asyncio.Event()
        listening = asyncio.create_task(a.listen(ready=ready))
        await asyncio.wait_for(ready.wait(), 30)
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening
        with pytest.raises(cairn.CairnError, match="refused"):
            await b.connect((await a.status()).public_key)


async def test_a_closed_client_cannot_stream():
    with pytest.raises(cairn.CairnError, match="async with"):
        await cairn.Client().listen()


async def test_an_error_answer_without_a_message_names_its_status():
    from aiohttp import web

    async def plain(request: web.Request) -> web.Response:
        return web.Response(status=503, text="not JSON")

    async def not_a_websocket(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/v1/listen", plain)
    app.router.add_get("/v1/connect/{key}", not_a_websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with cairn.Client(f"http://127.0.0.1:{port}") as c:
            with pytest.raises(cairn.Unavailable, match="503") as unavailable:
                await c.listen()
            assert unavailable.value.status == 503
            with pytest.raises(cairn.CairnError, match="WebSocket"):
                await c.connect("07" * 32)
    finally:
        await runner.cleanup()
