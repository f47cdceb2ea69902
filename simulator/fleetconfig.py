"""Exporter configuration matching a simulated fleet."""

import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from os import PathLike
from typing import Any

import yaml

from simulator.scenarios import (
    COMPONENTS,
    DRY_DOCK_AFTER,
    DRY_DOCK_BEFORE,
    SLOW_EVERY,
    Vessel,
    link_up,
)

_COLLECTION: dict[str, Any] = {
    "interval": "5m",
    "concurrency": 32,
    "timeout": "30s",
    "attempts": 3,
    "backoff": "1s",
    "windows": ["24h"],
    "stale_after": "15m",
    "lookback": "30d",
}


def unused_loopback_url() -> str:
    """A loopback URL nobody listens on: the port was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# Without an anchor (the compose demo's static fleet.yml) the dry dock spans years, so it
# covers whenever the demo runs.
_DRY_DOCK_SPAN = ("2024-01-01T00:00:00Z", "2040-01-01T00:00:00Z")


def _time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def maintenance(vessels: Sequence[Vessel], now: int | None = None) -> list[dict[str, Any]]:
    """The fleet.yml `maintenance:` list: one dry-dock window over the dry_dock vessels,
    covering `now` (the seeding anchor)."""
    docked = [v.id for v in vessels if v.scenario == "dry_dock"]
    if not docked:
        return []
    start, end = _DRY_DOCK_SPAN if now is None else (_time(now - DRY_DOCK_BEFORE),
                                                     _time(now + DRY_DOCK_AFTER))
    return [{"id": "dry-dock", "vessels": docked, "start": start, "end": end,
             "reason": "dry dock", "reference": "DEMO-1"}]


_UNITS = {"s": 1, "m": 60, "h": 3600}


def _seconds(duration: int | str) -> int:
    """Whole seconds of an int or a "<n>s", "<n>m" or "<n>h" string."""
    if isinstance(duration, int):
        return duration
    return int(duration[:-1]) * _UNITS[duration[-1]]


def _vessel(vessel: Vessel, influx_url: str, unreachable_url: str, at: int | None,
            sample_interval: int) -> dict[str, Any]:
    reachable = vessel.scenario != "unreachable" if at is None else link_up(vessel, at)
    entry: dict[str, Any] = {
        "id": vessel.id,
        "name": vessel.name,
        "influx": {"url": influx_url if reachable else unreachable_url,
                   "database": vessel.id},
        "devices": [{"address": d.address, "component": d.component, "name": d.name}
                    for d in vessel.devices],
    }
    if vessel.scenario == "interval_change":
        # The cap is how long one sample may stand for: its sparse samples need all of it.
        entry["sample_interval"] = f"{SLOW_EVERY * sample_interval}s"
    return entry


def fleet_config(
    vessels: Sequence[Vessel],
    influx_url: str,
    unreachable_url: str,
    now: int | None = None,
    *,
    at: int | None = None,
    **collection_overrides: Any,
) -> dict[str, Any]:
    """Exporter config for `vessels`; `now` (the seeding anchor) places the dry dock.

    With `at` (epoch seconds), every vessel whose link is down then (scenarios
    unreachable and unreachable_midnight) points at `unreachable_url`; without it only
    the unreachable ones do.

    Keyword overrides replace keys of `collection`; three are special: `state_path` sets
    state.path, `ledger` the ledger section and `sample_interval` (seconds or a duration
    string of s, m or h) sets defaults.sample_interval.
    """
    state_path = collection_overrides.pop("state_path", "exporter.db")
    # The simulator seeds five days: the ledger reads them in the first request.
    ledger = collection_overrides.pop("ledger", {"backfill": "6d", "max_catchup": "7d"})
    sample_interval = _seconds(collection_overrides.pop("sample_interval", 60))
    # The exporter rejects unknown keys; catch typos here with a clearer message.
    unknown = sorted(set(collection_overrides) - set(_COLLECTION))
    if unknown:
        raise TypeError(f"unknown collection setting(s): {', '.join(unknown)}")
    return {
        "listen": "127.0.0.1:9470",
        "collection": {**_COLLECTION, **collection_overrides},
        "sla": {"objective": 0.95, "components": {"server": 0.99}},
        "components": list(COMPONENTS),
        "state": {"path": str(state_path)},
        "ledger": ledger,
        "defaults": {
            "sample_interval": f"{sample_interval}s",
            "influx": {"database": "telegraf", "measurement": "ping", "device_tag": "url"},
        },
        "vessels": [_vessel(v, influx_url, unreachable_url, at, sample_interval)
                    for v in vessels],
        **({"maintenance": windows} if (windows := maintenance(vessels, now)) else {}),
    }


def write_fleet_config(path: str | PathLike[str], config: dict[str, Any]) -> None:
    """Write `config` as YAML."""
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh, sort_keys=False, default_flow_style=False)
