"""Answer the exporter's InfluxQL statements from per-device facts, as influxd 1.x would.

A synthetic vessel InfluxDB for tests that need answers no real server gives on demand
and for benchmarks with thousands of vessels. It recognises only the exporter's own
statement shapes.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

# The device filter: a bound parameter ($d, its regex in the request's `params`), or a
# regex literal. Either is `^prefix(a|b)$` or `^address$`, backslash-escaped.
_DEVICES = re.compile(r'"url" =~ (?:\$(\w+)|/(\^.*?\$)/)')
_UNESCAPED = r"(?<!\\)"
_LATEST = ["time", "result_code", "percent_packet_loss", "average_response_ms"]


FAKE_NOW = 1_800_000_000  # where the default facts' samples sit


@dataclass
class DeviceFacts:
    """What a vessel's InfluxDB holds about one device; None where it has no such sample."""

    total: int = 1440  # samples in each window
    up: int = 1440  # samples with a reply in each window
    last_sample: int = FAKE_NOW
    result_code: int | None = 0  # of the newest sample
    loss: float | None = 0.0  # percent, of the newest sample
    rtt_ms: float | None = 20.0  # of the newest sample
    last_reply: int | None = FAKE_NOW
    first_sample: int = 1_797_000_000


def regex_addresses(regex: str) -> list[str]:
    """The addresses an anchored `^prefix(a|b)$` or `^address$` matches, unescaped."""
    if not (regex.startswith("^") and regex.endswith("$")):
        raise ValueError(f"not an anchored regex: {regex[:80]}")
    body = regex[1:-1]
    group = re.search(_UNESCAPED + r"\(", body)
    if group is None:
        prefix, alternatives = body, [""]
    else:
        if not body.endswith(")"):
            raise ValueError(f"unexpected regex: {regex[:80]}")
        prefix = body[:group.start()]
        alternatives = re.split(_UNESCAPED + r"\|", body[group.end():-1])

    def plain(text: str) -> str:
        return re.sub(r"\\(.)", r"\1", text)

    return [plain(prefix) + plain(a) for a in alternatives]


def addresses(statement: str, params: str | None = None) -> list[str]:
    """Device addresses from the statement's filter: a regex literal, or a bound
    parameter whose value is in `params` (the request's JSON field)."""
    match = _DEVICES.search(statement)
    if match is None:
        raise ValueError(f"no device filter in {statement[:80]}")
    if match[2] is not None:
        return regex_addresses(match[2])
    bound = json.loads(params or "{}").get(match[1])
    if not isinstance(bound, dict) or not isinstance(bound.get("regex"), str):
        # What influxd says when a parameter is missing or is not a regex.
        raise ValueError(f"missing parameter: {match[1]}")
    return regex_addresses(bound["regex"])


_SINCE = re.compile(r"time > (\d+)s(?: AND time <= (\d+)s AND time <= now\(\))? AND")


def _points(text: str, f: DeviceFacts) -> tuple[list[str], list[list[Any]]] | None:
    """The raw points the ledger asks for: `total` samples a minute apart up to the
    newest, the oldest `total - up` of them without a reply."""
    match = _SINCE.search(text)
    if match is None:
        raise ValueError(f"unexpected statement: {text[:80]}")
    since = int(match[1])
    until = int(match[2]) if match[2] else f.last_sample
    rows = []
    for k in range(f.total - 1, -1, -1):
        at = f.last_sample - 60 * k
        if since < at <= until:
            up = k < f.up
            rows.append([at, 0 if up else 1, 0.0 if up else 100.0, f.rtt_ms if up else None])
    if '"average_response_ms" FROM' not in text:  # the RTT is asked only in steady state
        return (_LATEST[:3], [r[:3] for r in rows]) if rows else None
    return (_LATEST, rows) if rows else None


_EDGE = re.compile(r"time > now\(\) - 86400s AND time < (\d+)s")


def _edge(text: str, f: DeviceFacts, now: int) -> tuple[list[str], list[Any]] | None:
    """The 24 h window's edge counts, its start taken as `now` - 24 h."""
    match = _EDGE.search(text)
    assert match is not None
    end = int(match[1])
    ks = [k for k in range(f.total) if now - 86400 < f.last_sample - 60 * k < end]
    if 'count("percent_packet_loss")' in text:
        ks = [k for k in ks if k < f.up]
    return (["time", "count"], [0, len(ks)]) if ks else None


def _row(text: str, f: DeviceFacts, now: int) -> tuple[list[str], list[Any]] | None:
    if "86400s AND time <" in text:
        return _edge(text, f, now)
    if 'count("result_code")' in text:
        return (["time", "count"], [0, f.total]) if f.total else None
    if 'count("percent_packet_loss")' in text:
        return (["time", "count"], [0, f.up]) if f.up else None
    if 'first("result_code")' in text:
        return ["time", "first"], [f.first_sample, 0]
    if "ORDER BY time DESC LIMIT 1" in text and "< 100" in text:
        return (["time", "percent_packet_loss"], [f.last_reply, 0.0]) if f.last_reply else None
    if "ORDER BY time DESC LIMIT 1" in text:
        return _LATEST, [f.last_sample, f.result_code, f.loss, f.rtt_ms]
    raise ValueError(f"unexpected statement: {text[:80]}")


def answer(statements: list[str], devices: dict[str, DeviceFacts],
           now: int = FAKE_NOW + 60, params: str | None = None) -> dict[str, Any]:
    """The /query JSON document for `statements` (epoch=s); `now` is the server's now();
    `params` the request's bound parameters (JSON)."""
    results = []
    for index, text in enumerate(statements):
        series = []
        raw = "ORDER BY" not in text and "count(" not in text and "first(" not in text
        for address in addresses(text, params):
            facts = devices.get(address)
            if facts is None:
                continue
            found = _points(text, facts) if raw else _row(text, facts, now)
            if found is not None:
                values = found[1] if raw else [found[1]]
                series.append({"name": "ping", "tags": {"url": address},
                               "columns": found[0], "values": values})
        result: dict[str, Any] = {"statement_id": index}
        if series:
            result["series"] = series
        results.append(result)
    return {"results": results}
