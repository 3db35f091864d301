"""cairn.Client against real nodes: every call, every error, watches across nodes."""

import asyncio
import os
import pathlib
import signal
import socket
import sys

import pytest

import cairn


async def test_put_on_one_node_and_get_from_another(network):
    async with network.client(0) as writer, network.client(2) as reader:
        published = await writer.put("greeting", b"hello", ttl=3600)
        assert published.name == "greeting" and published.replicas >= 2
        assert len(published.key) == 128 and published.seq and published.expires > 0
        assert await reader.get(published.public_key, "greeting") == b"hello"
        assert await reader.get_key(published.key) == b"hello"

        again = await writer.put("greeting", b"hello again")
        assert again.seq > published.seq
        assert await reader.get(published.public_key, "greeting") == b"hello again"

        blob = await writer.put_blob(b"\x00binary\xff")
        assert blob.public_key is None and blob.seq is None
        assert await reader.get_key(blob.key) == b"\x00binary\xff"


async def test_status_and_peers(network):
    # Node 0 is the one the others joined through: it knows them both.
    async with network.client(0) as c:
        status = await c.status()
        assert len(status.node_id) == 128 and len(status.public_key) == 64
        assert status.network == "cairn" and status.peers == 2
        assert "requests_sent" in status.counters
        peers = await c.peers()
        assert len(peers) == 2
        assert all(len(p.node_id) == 128 and p.failures == 0 for p in peers)
        assert {p.addr for p in peers} == {network.listen[1], network.listen[2]}


async def test_delete_and_each_error_is_its_own_exception(network):
    async with network.client(0) as c, network.client(1) as other:
        published = await c.put("doomed", b"soon gone")
        tombstone = await c.delete("doomed")
        assert tombstone.seq > published.seq
        with pytest.raises(cairn.Deleted) as deleted:
            await other.get(published.public_key, "doomed")
        assert deleted.value.seq == tombstone.seq and deleted.value.status == 410
        with pytest.raises(cairn.Deleted):
            await c.delete("doomed")
        with pytest.raises(cairn.NotFound):
            await c.delete("never-put")
        with pytest.raises(cairn.NotFound) as missing:
            await other.get_key("ab" * 64)
        assert "no valid copy" in missing.value.message or missing.value.status == 404
        with pytest.raises(cairn.InvalidRequest):
            await c.get_key("not-a-key")
        with pytest.raises(cairn.TooLarge):
            await c.put("big", b"x" * 70_000)


async def test_a_full_store_raises_store_full(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text("max_items = 1\n")
    async with cairn.LocalNetwork(1, node_args=["--config", str(config)]) as net:
        async with net.client() as c:
            await c.put("first", b"fits")
            with pytest.raises(cairn.StoreFull):
                await c.put("second", b"does not")


def test_a_conflict_is_stale():
    # The API picks each put's seq itself, so no request of this client can meet a 409; the
    # mapping is what is left to check.
    error = cairn.errors.from_response(409, "stale seq", None)
    assert isinstance(error, cairn.Stale) and error.status == 409


async def test_an_address_with_no_node_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with cairn.Client(url) as c:
        with pytest.raises(cairn.Unreachable) as error:
            await c.status()
    assert error.value.address == url and url in str(error.value)


async def test_a_closed_client_says_how_to_use_it():
    with pytest.raises(cairn.CairnError, match="async with"):
        await cairn.Client().status()


async def test_a_watch_on_one_node_sees_every_version_put_on_another(network):
    async with network.client(0) as writer, network.client(2) as watcher:
        first = await writer.put("news", b"v1")
        seen = []
        first_seen = asyncio.Event()

        async def watch():
            async for version in watcher.watch(f"{first.public_key}/news"):
                seen.append(version)
                first_seen.set()
                if version.deleted:
                    return

        task = asyncio.create_task(watch())
        # The newest version comes first: wait for it (bounded), so that the next puts follow it.
        await asyncio.wait_for(first_seen.wait(), 30)
        for value in (b"v2", b"v3"):
            await writer.put("news", value)
        await writer.delete("news")
        await asyncio.wait_for(task, 30)
    assert [v.value for v in seen] == [b"v1", b"v2", b"v3", b""]
    assert [v.kind for v in seen] == ["signed"] * 3 + ["tombstone"]
    seqs = [v.seq for v in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


async def test_a_watch_by_key_and_ending_it_early(network):
    async with network.client(1) as c:
        published = await c.put_blob(b"immutable")
        async for version in c.watch(published.key):
            assert version.value == b"immutable" and version.kind == "immutable"
            break  # leaving the loop ends the watch and frees its connection


async def test_a_put_no_other_node_stored_is_unavailable_and_the_copy_stays():
    async with cairn.LocalNetwork(2) as net:
        # Node 1 joined through node 0; with node 0 gone, its put reaches no other node.
        net._processes[0].send_signal(signal.SIGTERM)
        await net._processes[0].wait()
        async with net.client(1) as c:
            with pytest.raises(cairn.Unavailable, match="no other node stored") as error:
                await c.put("alone", b"not acknowledged")
            assert error.value.status == 503
            # Not acknowledged, but not lost: the node holds its copy.
            assert (await c.status()).items == 1


async def test_the_network_stops_cleanly():
    net = cairn.LocalNetwork(2)
    async with net:
        processes = list(net._processes)
        directory = net._dir
        urls = list(net.urls)
    assert all(p.returncode == 0 for p in processes), [p.returncode for p in processes]
    assert directory is not None and not os.path.exists(directory)
    for url in urls:
        async with cairn.Client(url) as c:
            with pytest.raises(cairn.Unreachable):
                await c.status()


def test_a_missing_binary_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("CAIRN_BIN", "/nonexistent/cairn")
    with pytest.raises(cairn.CairnError, match="CAIRN_BIN"):
        cairn.LocalNetwork(1)


async def test_the_breakfast_example_runs():
    example = pathlib.Path(__file__).parent.parent / "examples" / "breakfast.py"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(example),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode() + err.decode()
    text = out.decode()
    assert "the washing machine is done" in text and "breakfast: butter the toast" in text
    assert text.rstrip().endswith("all stopped")


async def test_an_empty_name_is_an_invalid_request(network):
    async with network.client(0) as c:
        published = await c.put("named", b"v")
        with pytest.raises(cairn.InvalidRequest):
            await c.put("", b"v")
        with pytest.raises(cairn.InvalidRequest):
            await c.get(published.public_key, "")
        with pytest.raises(cairn.InvalidRequest):
            await c.put("named", b"v", ttl=10 * 366 * 86400)


async def test_ping_reaches_a_node_by_its_key_and_refuses_what_it_cannot(network):
    async with network.client(0) as c, network.client(1) as other:
        key = (await other.status()).public_key
        pinged = await c.ping(key)
        # The nodes of a LocalNetwork are servers: reached at their address.
        assert pinged.route == "direct" and pinged.via is None
        assert pinged.addr == network.listen[1]
        assert pinged.rtt_ms >= 0
        with pytest.raises(cairn.NotFound):
            await c.ping("07" * 32)
        with pytest.raises(cairn.InvalidRequest):
            await c.ping((await c.status()).public_key)
        with pytest.raises(cairn.InvalidRequest):
            await c.ping("not-a-key")
