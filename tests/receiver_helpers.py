"""Builders for receiver tests: configs, Alertmanager payloads, signed-in requests."""

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from receiver.passwords import hash_password

TOKEN = "webhook-token-0123456789"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
_HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}
T0 = 1_800_000_000.0


def write_receiver_config(path: Path, **sections: Any) -> Path:
    document: dict[str, Any] = {
        "listen": "127.0.0.1:9471",
        "database": str(path.parent / "receiver.db"),
        "webhook": {"bearer_token": TOKEN},
        "users": [
            {"name": "alice", "password_hash": _HASHES["alice"], "role": "approver"},
            {"name": "bob", "password_hash": _HASHES["bob"], "role": "viewer"},
        ],
        **sections,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def rfc3339(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


def alert(vessel: str = "v002", component: str = "server", status: str = "firing",
          starts: float = T0 - 4 * 86400, ends: float | None = None, ticket: bool = True,
          alertname: str = "FleetComponentDownPersistent") -> dict[str, Any]:
    labels = {"alertname": alertname, "vessel": vessel, "component": component,
              "severity": "critical", "job": "fleet-exporter", "instance": "exporter:9470"}
    if ticket:
        labels["ticket"] = "jira"
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{component} on {vessel} has been down for 4d"},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends) if ends is not None else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": f"{abs(hash((vessel, component, alertname))):016x}",
    }


def notification(*alerts: dict[str, Any], group_key: str = "{}:{alertname=\"X\"}",
                 receiver: str = "fleet-jira") -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4", "receiver": receiver, "status": status, "groupKey": group_key,
        "truncatedAlerts": 0, "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed_in(name: str = "alice", password: str | None = None) -> dict[str, str]:
    pair = f"{name}:{password if password is not None else PASSWORDS[name]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def body(document: Any) -> str:
    return json.dumps(document)


async def fire(client: Any, *alerts: dict[str, Any]) -> int:
    """Post a notification as Alertmanager would; returns its first incident id."""
    response = await client.post("/api/v1/alerts", data=body(notification(*alerts)),
                                 headers=bearer())
    assert response.status == 200
    return (await response.json())["incidents"][0]


def annotated(vessel_name: str = "MV Aurora", uptime: str = "41.2%",
              devices: str = "srv-1 (10.0.3.20)", down_since: float = T0 - 5 * 86400,
              **kwargs: Any) -> dict[str, Any]:
    """An alert as the rules send it: the vessel's name, uptime, down devices, since when."""
    made = alert(**kwargs)
    made["annotations"].update(vessel_name=vessel_name, uptime_24h=uptime,
                               devices_down=devices, down_since=f"{down_since:.0f}")
    return made


async def until(check: Callable[[], Awaitable[Any]], within: float = 5.0) -> Any:
    """What `check` returns once it is truthy: for work the receiver does in the
    background (the outbox, the sweeper), which no event announces to a test."""
    async with asyncio.timeout(within):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.02)
