"""Shared fixtures: real servers started once per test session."""

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from exporter.config import load_config
from exporter.web import create_app
from receiver.config import load_config as load_receiver_config
from receiver.web import create_app as create_receiver_app
from simulator.answers import FAKE_NOW
from tests.fake_influx import DeviceFacts, FakeInflux
from tests.helpers import Clock, wait_ready
from tests.receiver_helpers import write_receiver_config
from tests.servers import InfluxServer, require_binary


@pytest.fixture(scope="session")
def influxd() -> Iterator[InfluxServer]:
    """An InfluxDB 1.x without auth on a free loopback port."""
    with InfluxServer(require_binary("influxd", "/usr/bin/influxd")) as server:
        yield server


@pytest.fixture(scope="session")
def influxd_auth() -> Iterator[InfluxServer]:
    """An InfluxDB 1.x with HTTP auth enabled and an admin user (server.username/password)."""
    with InfluxServer(require_binary("influxd", "/usr/bin/influxd"), auth=True) as server:
        yield server


@pytest.fixture
async def fake_influx(aiohttp_server) -> Callable[..., Awaitable[tuple[FakeInflux, str]]]:
    """Factory: start a scriptable /query server; returns it and its URL."""

    async def start(**devices: DeviceFacts) -> tuple[FakeInflux, str]:
        fake = FakeInflux(devices={k.replace("_", "."): v for k, v in devices.items()})
        server = await aiohttp_server(fake.app())
        return fake, f"http://127.0.0.1:{server.port}"

    return start


@pytest.fixture
async def exporter(aiohttp_client) -> Callable[..., Awaitable[TestClient]]:
    """Factory: serve the exporter for a config file; waits for the first collection."""

    async def start(config_path: Path, ready: bool = True, **options: Any) -> TestClient:
        # The fakes' samples sit at FAKE_NOW: the wall clock would make every figure drift.
        options.setdefault("clock", Clock(FAKE_NOW + 60))
        options.setdefault("config_path", config_path)
        client = await aiohttp_client(create_app(load_config(config_path), **options))
        if ready:
            await wait_ready(client)
        return client

    return start


@pytest.fixture
async def receiver(tmp_path: Path, aiohttp_client) -> Callable[..., Awaitable[TestClient]]:
    """Factory: serve the receiver for a config written with `sections` overrides."""

    async def start(clock: Callable[[], float] | None = None, sweep_every: float = 30.0,
                    **sections: Any) -> TestClient:
        config = load_receiver_config(write_receiver_config(tmp_path / "receiver.yml",
                                                            **sections))
        options: dict[str, Any] = {"clock": clock} if clock is not None else {}
        return await aiohttp_client(create_receiver_app(config, sweep_every=sweep_every,
                                                        **options))

    return start


# Pictures a test keeps for people to look at (record_property("picture: …", path)),
# named at the end of the run, passed tests included.
PICTURE = "picture: "


def pytest_terminal_summary(terminalreporter: Any) -> None:
    kept = [(r.nodeid, name[len(PICTURE):], value)
            for r in terminalreporter.getreports("passed")
            for name, value in r.user_properties if name.startswith(PICTURE)]
    if kept:
        terminalreporter.section("pictures kept")
        for nodeid, what, path in kept:
            terminalreporter.write_line(f"{what}: {path} ({nodeid})")
