"""Alertmanager's webhook payload, version 4, validated strictly.

Every problem is a PayloadError naming the field, e.g. ``alerts[3].labels: ...``. Fields
this version does not know are ignored, so a newer Alertmanager still gets through.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATUSES = ("firing", "resolved")
_ALERT = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
          "fingerprint"}


class PayloadError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Alert:
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None  # None: Alertmanager's zero time, not ended
    generator_url: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Notification:
    receiver: str
    status: str
    group_key: str
    group_labels: Mapping[str, str]
    external_url: str
    truncated_alerts: int
    alerts: tuple[Alert, ...]


def _string(value: Any, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise PayloadError(f"{where}: expected a {'' if empty else 'non-empty '}string")
    return value


def _labels(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{where}.{key}: expected a string")
    return value


def _time(value: Any, where: str) -> float | None:
    text = _string(value, where, empty=False)
    if text.startswith("0001-01-01T00:00:00"):
        return None
    # Go writes nanoseconds; Python reads at most microseconds.
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{where}: expected an RFC 3339 time, got {value!r}") from None
    if moment.tzinfo is None:
        raise PayloadError(f"{where}: the time has no offset")
    return moment.timestamp()


def _alert(raw: Any, where: str) -> Alert:
    if not isinstance(raw, dict):
        raise PayloadError(f"{where}: expected an object")
    missing = sorted(_ALERT - {"generatorURL"} - set(raw))
    if missing:
        raise PayloadError(f"{where}.{missing[0]}: missing")
    status = raw["status"]
    if status not in STATUSES:
        raise PayloadError(f"{where}.status: expected firing or resolved, got {status!r}")
    starts = _time(raw["startsAt"], f"{where}.startsAt")
    if starts is None:
        raise PayloadError(f"{where}.startsAt: missing start time")
    return Alert(
        status=status,
        labels=_labels(raw["labels"], f"{where}.labels"),
        annotations=_labels(raw["annotations"], f"{where}.annotations"),
        starts_at=starts,
        ends_at=_time(raw["endsAt"], f"{where}.endsAt"),
        generator_url=_string(raw.get("generatorURL", ""), f"{where}.generatorURL"),
        fingerprint=_string(raw["fingerprint"], f"{where}.fingerprint", empty=False),
    )


def parse_notification(document: Any) -> Notification:
    if not isinstance(document, dict):
        raise PayloadError("body: expected a JSON object")
    missing = sorted({"version", "status", "alerts", "groupKey"} - set(document))
    if missing:
        raise PayloadError(f"{missing[0]}: missing")
    if document["version"] != "4":
        raise PayloadError(f"version: expected \"4\", got {document['version']!r}")
    if document["status"] not in STATUSES:
        raise PayloadError(f"status: expected firing or resolved, got {document['status']!r}")
    alerts = document["alerts"]
    if not isinstance(alerts, list) or not alerts:
        raise PayloadError("alerts: expected a non-empty list")
    truncated = document.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts: expected a non-negative integer")
    for key in ("commonLabels", "commonAnnotations"):
        if key in document:
            _labels(document[key], key)
    return Notification(
        receiver=_string(document.get("receiver", ""), "receiver"),
        status=document["status"],
        group_key=_string(document["groupKey"], "groupKey", empty=False),
        group_labels=_labels(document.get("groupLabels", {}), "groupLabels"),
        external_url=_string(document.get("externalURL", ""), "externalURL"),
        truncated_alerts=truncated,
        alerts=tuple(_alert(a, f"alerts[{i}]") for i, a in enumerate(alerts)),
    )
