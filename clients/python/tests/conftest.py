"""Every test runs against real `cairn node` processes: the binary comes from $CAIRN_BIN
(the cargo test that runs these sets it) or from the PATH."""

import pytest

import cairn


@pytest.fixture
async def network():
    async with cairn.LocalNetwork(3) as net:
        yield net
