"""Helpers shared by the exporter tests: config files and scraped metrics."""

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.appkeys import SERVICE
from tests.servers import require_binary

DEVICES = [
    {"address": "10.10.1.5", "component": "access_point", "name": "ap-bridge"},
    {"address": "10.10.1.20", "component": "server", "name": "nav-server"},
]


def vessel(vessel_id: str, url: str, **extra: Any) -> dict[str, Any]:
    influx = {"url": url, "database": "telegraf", **extra.pop("influx", {})}
    return {"id": vessel_id, "name": f"MV {vessel_id.title()}", "influx": influx,
            "devices": extra.pop("devices", DEVICES), **extra}


def write_config(path: Path, vessels: list[dict[str, Any]], **sections: Any) -> Path:
    """A config file with fast collection settings; `sections` replace top-level keys."""
    document: dict[str, Any] = {
        "listen": "127.0.0.1:9470",
        "collection": {"interval": "1h", "timeout": "2s", "attempts": 2, "backoff": "10ms"},
        "state": {"path": str(path.parent / "exporter.db")},
        # The fakes hold a day of samples: the first request reads all of it.
        "ledger": {"backfill": "1d", "max_catchup": "2d"},
        "vessels": vessels,
    }
    document.update(sections)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


class Clock:
    """An injectable clock that moves only when a test moves it."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Ticks:
    """The collection loop's sleep: the next run starts only when a test lets it."""

    def __init__(self) -> None:
        self._go = asyncio.Semaphore(0)

    async def __call__(self, seconds: float) -> None:
        await self._go.acquire()

    async def runs(self, client: Any, count: int = 1) -> None:
        """Let `count` more runs happen and wait until they have finished."""
        service = client.app[SERVICE]
        target = service.runs_done + count
        for _ in range(count):
            self._go.release()
        await asyncio.wait_for(service.wait_runs(target), timeout=30)


class Metrics:
    """Parsed exposition text: look samples up by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, metric: str, /, **labels: str) -> float | None:
        return self.samples.get((metric, frozenset(labels.items())))

    def series(self, metric: str, /, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every series of `metric` whose labels include `labels`."""
        wanted = set(labels.items())
        return {key: value for (n, key), value in self.samples.items()
                if n == metric and wanted <= key}

    def status(self, vessel_id: str) -> str:
        found = [dict(k)["status"] for k, v in self.series(
            "fleet_vessel_data_status", vessel=vessel_id).items() if v == 1]
        assert len(found) == 1, f"expected exactly one status for {vessel_id}, got {found}"
        return found[0]


async def wait_ready(client: Any, within: float = 30.0) -> None:
    """Wait for the first collection to finish; /readyz must then say so."""
    try:
        await asyncio.wait_for(client.app[SERVICE].ready.wait(), within)
    except TimeoutError:
        raise AssertionError("the exporter did not become ready") from None
    assert (await client.get("/readyz")).status == 200


async def scrape(client: Any) -> Metrics:
    response = await client.get("/metrics")
    assert response.status == 200
    return Metrics(await response.text())


def assert_promtool_clean(text: str) -> None:
    """`promtool check metrics` finds nothing to say about the exposition `text`."""
    promtool = require_binary("promtool", "/usr/bin/promtool")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == ""
