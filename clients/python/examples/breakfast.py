"""The talk's picture of asyncio, made real: while breakfast is made, the washing machine
reports its progress through the DHT. Five cairn nodes run on loopback; one task publishes the
machine's state on one node, another watches it from a different node, and breakfast goes on
in between, all on one event loop.

    python examples/breakfast.py [path/to/cairn]
"""

import asyncio
import sys

import cairn

CYCLE = [b"filling", b"washing", b"rinsing", b"spinning", b"done"]


async def washing_machine(net: cairn.LocalNetwork) -> None:
    """Publishes each stage of the cycle under the name `washing-machine` on node 0."""
    async with net.client(0) as c:
        for stage in CYCLE:
            await c.put("washing-machine", stage)
            await asyncio.sleep(0.5)


async def watch_the_machine(net: cairn.LocalNetwork, public_key: str) -> None:
    """Watches the machine from node 4 until it is done."""
    async with net.client(4) as c:
        async for version in c.watch(f"{public_key}/washing-machine"):
            print(f"  [node 4 hears] the washing machine is {version.value.decode()}")
            if version.value == b"done":
                return


async def breakfast() -> None:
    for step in ["boil the kettle", "toast the bread", "brew the tea", "butter the toast"]:
        print(f"breakfast: {step}")
        await asyncio.sleep(0.6)


async def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else None
    async with cairn.LocalNetwork(5, binary) as net:
        print(f"five nodes: {', '.join(net.urls)}")
        async with net.client(0) as c:
            public_key = (await c.status()).public_key
            await c.put("washing-machine", b"idle")
        await asyncio.gather(
            washing_machine(net),
            watch_the_machine(net, public_key),
            breakfast(),
        )
    print("all stopped")


if __name__ == "__main__":
    asyncio.run(main())
