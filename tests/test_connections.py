"""A vessel's connection is kept from one run to the next: over the satellite link a new
one costs a round trip (600 ms) and the TCP handshake's bytes, each run."""

from pathlib import Path

import aiohttp.connector
import pytest

from exporter.config import load_config
from exporter.service import open_service
from simulator.answers import FAKE_NOW
from tests.fake_influx import DeviceFacts
from tests.helpers import Clock, vessel, write_config


@pytest.fixture
async def two_runs(tmp_path: Path, fake_influx, monkeypatch):
    """Factory: two runs `idle` seconds apart, as the connection pool sees time; returns
    the client address of each request."""

    async def run(idle: float, interval: str = "5m") -> list[object]:
        fake, url = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": DeviceFacts()})
        config = load_config(write_config(
            tmp_path / "fleet.yml", [vessel("aurora", url)],
            collection={"interval": interval, "timeout": "2s", "attempts": 1,
                        "backoff": "10ms"}))
        clock = Clock(FAKE_NOW + 60)
        async with open_service(config, clock=clock) as service:
            assert (await service.run_once()).ok == 1
            real = aiohttp.connector.monotonic
            # aiohttp's pool reads its own clock to judge how long a connection sat idle.
            monkeypatch.setattr(aiohttp.connector, "monotonic", lambda: real() + idle)
            clock.now += idle
            assert (await service.run_once()).ok == 1
        return [r.peer for r in fake.requests]

    return run


async def test_the_next_run_reuses_the_connection(two_runs):
    first, second = await two_runs(idle=300.0)
    assert first is not None and second == first


async def test_a_connection_idle_far_longer_than_the_interval_is_not_trusted(two_runs):
    first, second = await two_runs(idle=3 * 300.0)
    assert first is not None and second != first
