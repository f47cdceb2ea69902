"""Alertmanager's webhook payload, version 4, validated strictly.

Every problem is a PayloadError naming the field, e.g. ``alerts[3].labels: ...``. Fields
this version does not know are ignored, so a newer Alertmanager still gets through, but
they too must be storable and readable again: no lone surrogates, no numbers Python
cannot read back, no deep nesting.
"""

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATUSES = ("firing", "resolved")
# Times the pages and tickets can print: 1970-01-01 up to a day before year 10000.
MIN_TIME, MAX_TIME = 0.0, 253402214400.0
MAX_DEPTH = 32  # Alertmanager's own payload is 4 deep
MAX_ALERTS = 10_000
MAX_LABELS = 128
MAX_NAME = 1024  # a label or annotation name
MAX_LABEL_VALUE = 4096
MAX_ANNOTATION_VALUE = 65536
MAX_KEY = 16384  # groupKey, URLs
_FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ALERT = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
          "fingerprint"}


class PayloadError(ValueError):
    pass


class _Unreadable:
    """A JSON number Python cannot hold or write back; the walk names where it is."""

    def __init__(self, why: str) -> None:
        self.why = why


def _int(text: str) -> int | _Unreadable:
    try:
        return int(text)
    except ValueError:  # more digits than int() takes
        return _Unreadable("integer too long")


def _float(text: str) -> float | _Unreadable:
    value = float(text)
    return value if math.isfinite(value) else _Unreadable("number out of range")


def _constant(text: str) -> _Unreadable:
    return _Unreadable(f"{text} is not JSON")


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent or 'body'}[{key}]"
    return f"{parent}.{key}" if parent else key


def _valid_text(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a \ud800 escape
        return False
    return True


def _check_tree(document: Any) -> None:
    """Every string valid Unicode, every number readable, nesting bounded; iterative."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            if not _valid_text(value):
                raise PayloadError(f"{where or 'body'}: not valid Unicode (lone surrogate)")
        elif isinstance(value, _Unreadable):
            raise PayloadError(f"{where or 'body'}: {value.why}")
        elif isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise PayloadError(f"{where or 'body'}: nested more than {MAX_DEPTH} deep")
            if isinstance(value, list):
                stack.extend((item, _path(where, i), depth + 1)
                             for i, item in enumerate(value))
                continue
            for key, item in value.items():
                if not _valid_text(key):
                    raise PayloadError(f"{where or 'body'}: a key is not valid Unicode")
                stack.append((item, _path(where, key), depth + 1))


def load_json(text: str) -> Any:
    """Parse JSON that must be storable as it is; only PayloadError leaves here."""
    try:
        document = json.loads(text, parse_int=_int, parse_float=_float,
                              parse_constant=_constant)
    except RecursionError:
        raise PayloadError(f"body: nested more than {MAX_DEPTH} deep") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body: invalid JSON ({exc.msg})") from None
    _check_tree(document)
    return document


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


def _string(value: Any, where: str, *, empty: bool = True, limit: int = MAX_KEY) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise PayloadError(f"{where}: expected a {'' if empty else 'non-empty '}string")
    if len(value) > limit:
        raise PayloadError(f"{where}: longer than {limit} characters")
    return value


def _labels(value: Any, where: str, limit: int = MAX_LABEL_VALUE) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object of strings")
    if len(value) > MAX_LABELS:
        raise PayloadError(f"{where}: more than {MAX_LABELS} entries")
    for key, item in value.items():
        if len(key) > MAX_NAME:
            raise PayloadError(f"{where}: a name is longer than {MAX_NAME} characters")
        _string(item, f"{where}.{key}", limit=limit)
    return value


def _bounded(moment: float, where: str) -> float:
    if not MIN_TIME <= moment <= MAX_TIME:
        raise PayloadError(f"{where}: outside 1970-01-01 to 9999-12-30")
    return moment


def _time(value: Any, where: str) -> float | None:
    text = _string(value, where, empty=False, limit=64)
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
    try:
        stamp = moment.timestamp()
    except (OverflowError, ValueError):
        raise PayloadError(f"{where}: outside 1970-01-01 to 9999-12-30") from None
    return _bounded(stamp, where)


def _annotations(value: Any, where: str) -> dict[str, str]:
    annotations = _labels(value, where, MAX_ANNOTATION_VALUE)
    # The rules write down_since as Unix seconds; pages and tickets print it.
    down_since = annotations.get("down_since", "")
    if down_since:
        try:
            moment = float(down_since)
        except ValueError:
            raise PayloadError(f"{where}.down_since: expected Unix seconds") from None
        _bounded(moment, f"{where}.down_since")  # also refuses nan and inf
    return annotations


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
    fingerprint = _string(raw["fingerprint"], f"{where}.fingerprint", empty=False)
    if not _FINGERPRINT.match(fingerprint):
        raise PayloadError(f"{where}.fingerprint: expected up to 64 letters, digits, _ or -")
    return Alert(
        status=status,
        labels=_labels(raw["labels"], f"{where}.labels"),
        annotations=_annotations(raw["annotations"], f"{where}.annotations"),
        starts_at=starts,
        ends_at=_time(raw["endsAt"], f"{where}.endsAt"),
        generator_url=_string(raw.get("generatorURL", ""), f"{where}.generatorURL"),
        fingerprint=fingerprint,
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
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"alerts: more than {MAX_ALERTS}")
    truncated = document.get("truncatedAlerts", 0)
    if (isinstance(truncated, bool) or not isinstance(truncated, int)
            or not 0 <= truncated < 2 ** 31):
        raise PayloadError("truncatedAlerts: expected a non-negative integer")
    for key in ("commonLabels", "commonAnnotations"):
        if key in document:
            _labels(document[key], key, MAX_ANNOTATION_VALUE)
    return Notification(
        receiver=_string(document.get("receiver", ""), "receiver"),
        status=document["status"],
        group_key=_string(document["groupKey"], "groupKey", empty=False),
        group_labels=_labels(document.get("groupLabels", {}), "groupLabels"),
        external_url=_string(document.get("externalURL", ""), "externalURL"),
        truncated_alerts=truncated,
        alerts=tuple(_alert(a, f"alerts[{i}]") for i, a in enumerate(alerts)),
    )
