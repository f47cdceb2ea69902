"""The Flux script for one vessel, and strict parsing of its annotated-CSV answer.

One script yields every figure the InfluxQL statements give: the raw points the ledger
asks for and, when the ledger asks them (see sla/ledger.py Ask), the 24 h window's edge
counts and per series the newest point and reply; in steady state the newest sample and
reply come from the points. Several series may carry one device; their rows are merged.
"""

import csv
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from .aggregates import Row, edge_counts, observe
from .config import VesselConfig
from .model import Answer, QueryError
from .sla.ledger import Ask

LOSS, RTT, CODE = "percent_packet_loss", "average_response_ms", "result_code"
FAR_FUTURE = "2262-04-11T00:00:00Z"  # just before Flux's latest time


def _string(value: str) -> str:
    # `${` would start an interpolation inside a Flux string.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$/")


def _regex(values: Sequence[str]) -> str:
    """An anchored Flux regex literal matching exactly `values`."""

    def escape(value: str) -> str:
        # Only regex syntax and the literal's `/`: Flux's Rust parser (before regex 1.8)
        # rejects escapes such as \_ or \: that Go's RE2 takes.
        return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in value)

    return "/^(" + "|".join(escape(v) for v in values) + ")$/"


def bytes_per_point(vessel: VesselConfig) -> int:
    """The most CSV one raw point takes: a row per field (three at most), each like
    `,,12,2023-11-14T22:13:21.123456789Z,33.333333333333336,percent_packet_loss,<address>`."""
    longest = max(len(d.address) for d in vessel.devices)
    return 3 * (2 * longest + 88)  # an address with a comma or quote is quoted, doubled


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_script(vessel: VesselConfig, ask: Ask, lookback: float) -> str:
    influx = vessel.influx
    tag = _string(influx.device_tag)
    devices = _regex([d.address for d in vessel.devices])
    reply = f'r._field == "{LOSS}" and r._value < 100.0'
    lines = [
        f"src = (start, stop) => from(bucket: {_string(influx.bucket)})",
        "  |> range(start: start, stop: stop)",
        f"  |> filter(fn: (r) => r._measurement == {_string(influx.measurement)}"
        f" and r[{tag}] =~ {devices})",
    ]
    fields = f'r._field == "{CODE}" or r._field == "{LOSS}" or r._field == "{RTT}"'
    if ask.edges:
        # The 24 h window's oldest partial hour; the stop keeps points ahead of now() out.
        edge = f"src(start: -86400s, stop: {_time(ask.edge_end)})"
        # group() merges the series of one device (several hosts may ping it).
        lines.append(f'{edge} |> filter(fn: (r) => r._field == "{CODE}") '
                     f'|> group(columns: [{tag}]) |> count() |> yield(name: "edge:total")')
        lines.append(f"{edge} |> filter(fn: (r) => {reply}) "
                     f'|> group(columns: [{tag}]) |> count() |> yield(name: "edge:up")')
    if ask.newest:
        # No stop before the end of time: the newest sample is the latest word even when
        # stamped ahead; how far ahead is measured, and beyond a tolerance it is clock_skew.
        since = f"src(start: -{int(lookback)}s, stop: {FAR_FUTURE})"
        # Selectors per series and field: a handful of rows per device.
        lines.append(f"{since} |> filter(fn: (r) => {fields}) |> last() "
                     '|> yield(name: "latest")')
        lines.append(f"{since} |> filter(fn: (r) => {reply}) |> last() "
                     '|> yield(name: "last_reply")')
    # Raw points after the ledger's cursor: range() includes its start, InfluxQL's
    # `time > since` does not, hence the second more. In steady state no stop either: the
    # points tell the newest sample, and the ledger leaves those ahead of its clock out.
    # The RTT is read only for the newest sample, when "latest" is not asked.
    stop = FAR_FUTURE if ask.until is None else _time(ask.until + 1)
    raw = fields if not ask.newest else f'r._field == "{CODE}" or r._field == "{LOSS}"'
    lines.append(f"src(start: {_time(ask.since + 1)}, stop: {stop}) "
                 f"|> filter(fn: (r) => {raw}) "
                 '|> keep(columns: ["_time", "_field", "_value", ' + tag + ']) '
                 '|> yield(name: "points")')
    return "\n".join(lines) + "\n"


# --- annotated CSV --------------------------------------------------------------------------

Value = str | int | float | bool | None


@dataclass
class _Block:
    """One annotation block: the tables of one result sharing a schema."""

    datatypes: list[str] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    picks: list[tuple[int, str, str, str]] = field(default_factory=list)  # read columns


def _rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch; datetime alone would drop the last three digits."""
    base, dot, rest = text.partition(".")
    fraction = ""
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
        base += zone
    moment = datetime.fromisoformat(base.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)


_LONG = range(-(2**63), 2**63)
_UNSIGNED = range(2**64)


def _convert(raw: str, datatype: str) -> Value:
    if raw == "":
        return None
    if datatype in ("long", "unsignedLong"):
        if len(raw) > 20:  # int() of a long string is slow: no 64-bit number is longer
            raise ValueError("too long")
        whole = int(raw)
        if whole not in (_LONG if datatype == "long" else _UNSIGNED):
            raise ValueError("out of range")
        return whole
    if datatype == "double":
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError(f"not a finite number: {raw}")
        return number
    if datatype.startswith("dateTime"):
        return _rfc3339_ns(raw)
    if datatype == "boolean":
        if raw not in ("true", "false"):
            raise ValueError(f"not a boolean: {raw}")
        return raw == "true"
    return raw


def records(text: str, wanted: frozenset[str]) -> Iterator[dict[str, Value]]:
    """Every data row of an annotated CSV answer, its `wanted` columns by name; errors
    raise QueryError. Only wanted columns are converted: most of a row is never read."""
    # newline="": only CR/LF end a row (splitlines() also splits on \u2028 and the like),
    # and a quoted cell may hold a line break.
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        yield from _rows(rows, wanted)
    except csv.Error as exc:
        raise QueryError(f"malformed answer: line {rows.line_num}: {exc}") from None


def _rows(rows: Iterator[list[str]], wanted: frozenset[str]) -> Iterator[dict[str, Value]]:
    block: _Block | None = None
    for line, row in enumerate(rows, start=1):
        if not row or row == [""]:
            block = None  # a blank line ends a block
            continue
        if row[0].startswith("#"):
            if block is None or block.columns:
                block = _Block()
            if row[0] == "#datatype":
                block.datatypes = row[1:]
            elif row[0] == "#default":
                block.defaults = row[1:]
            continue
        if block is None:
            raise QueryError(f"malformed answer: line {line}: a table without annotations")
        if not block.columns:
            block.columns = row[1:]
            if block.columns[:2] == ["error", "reference"]:
                block.columns = ["error", "reference"]
            elif len(block.datatypes) != len(block.columns):
                raise QueryError(f"malformed answer: line {line}: "
                                 f"{len(block.columns)} columns, "
                                 f"{len(block.datatypes)} datatypes")
            block.picks = [
                (i, name, block.datatypes[i],
                 block.defaults[i] if i < len(block.defaults) else "")
                for i, name in enumerate(block.columns) if name in wanted]
            continue
        if block.columns == ["error", "reference"]:
            # InfluxDB reports a failure after the header, even mid-stream, as a table.
            message = row[1] if len(row) > 1 else ""
            # Not cut short here: the collector redacts secrets, then shortens.
            raise QueryError(f"InfluxDB error: {message or 'no message'}")
        cells = row[1:]
        if len(cells) != len(block.columns):
            raise QueryError(f"malformed answer: line {line}: {len(cells)} values for "
                             f"{len(block.columns)} columns")
        values: dict[str, Value] = {}
        for i, name, datatype, default in block.picks:
            raw = cells[i] or default
            try:
                values[name] = _convert(raw, datatype)
            except ValueError:
                raise QueryError(f"malformed answer: line {line} column {name}: expected "
                                 f"{datatype}, got {raw[:40]!r}") from None
        yield values


# --- figures -------------------------------------------------------------------------------

_T = TypeVar("_T", str, int)


def _require(values: dict[str, Value], name: str, kind: type[_T], where: str) -> _T:
    value = values.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise QueryError(f"malformed answer: {where}: column {name} missing or not "
                         f"{'a number' if kind is not str else 'a string'}")
    return value


# Rows one device may legitimately bring to one selector result: a row per series (several
# hosts may ping it), three fields for "latest".
ROWS_PER_DEVICE = 32


def parse_answer(text: str, vessel: VesselConfig, points_per_device: int,
                 newest_asked: bool = True) -> Answer:
    """Reduce the answer to the figures the InfluxQL backend gets. Without `newest_asked`
    the newest sample and reply are those of the points."""
    tag = vessel.influx.device_tag
    asked = frozenset(d.address for d in vessel.devices)
    limits = {"points": 3 * points_per_device * len(asked)}
    most = ROWS_PER_DEVICE * len(asked)
    rows: dict[str, int] = {}
    found: dict[str, dict[str, Row]] = {"edge:total": {}, "edge:up": {}, "latest": {},
                                        "last_reply": {}}
    # latest: address -> field -> (time ns, value); selectors: address -> time ns
    newest: dict[str, dict[str, tuple[int, float | None]]] = {}
    replies: dict[str, int] = {}
    # points: address -> time (s) -> up; a ping error writes result_code alone
    raw: dict[str, dict[int, bool]] = {}
    # The newest of the points, as "latest" and "last_reply" would have them.
    newest_raw: dict[str, dict[str, tuple[int, float | None]]] = {}
    replies_raw: dict[str, int] = {}
    for values in records(text, frozenset({"result", tag, "_field", "_time", "_value"})):
        result = values.get("result")
        where = f"result {result}"
        if result not in found and result != "points":
            raise QueryError(f"malformed answer: unexpected result {str(result)[:40]!r}")
        address = str(_require(values, tag, str, where))
        if address not in asked:
            raise QueryError(f"malformed answer: {where}: device {address[:60]!r} "
                             "was not asked for")
        rows[result] = seen = rows.get(result, 0) + 1
        if seen > limits.get(result, most):
            raise QueryError(f"malformed answer: {where}: more than {limits.get(result, most)}"
                             f" rows for {len(asked)} devices")
        if result in ("edge:total", "edge:up"):
            count = _require(values, "_value", int, where)
            before = found[result].get(address, (0,))[0] or 0
            found[result][address] = (before + count,)
            continue
        at = int(_require(values, "_time", int, where))
        name = _require(values, "_field", str, where)
        value = values.get("_value")
        number = float(value) if isinstance(value, int | float) and not isinstance(
            value, bool) else None
        if result == "points":
            stamps = raw.setdefault(address, {})
            up = stamps.get(at // 1_000_000_000, False)
            if name == LOSS and number is not None:
                up = number < 100
                if up:
                    replies_raw[address] = max(at, replies_raw.get(address, at))
            stamps[at // 1_000_000_000] = up
            _newer(newest_raw, address, name, at, number)
        elif result == "latest":
            _newer(newest, address, name, at, number)
        else:
            replies[address] = max(at, replies.get(address, at))

    def seconds(ns: int) -> float:
        return float(ns // 1_000_000_000)  # as InfluxQL's epoch=s truncates

    if not newest_asked:
        newest, replies = newest_raw, replies_raw

    for address, fields in newest.items():
        # The newest sample is the newest point of any field; its loss and RTT are the
        # fields written at that instant, if any (a ping error writes only result_code).
        at = max(t for t, _ in fields.values())
        loss, rtt = (fields[n][1] if n in fields and fields[n][0] == at else None
                     for n in (LOSS, RTT))
        found["latest"][address] = (seconds(at), loss, rtt)
    found["last_reply"] = {a: (seconds(t),) for a, t in replies.items()}
    points = {a: sorted(stamps.items()) for a, stamps in raw.items()}
    return Answer(observation=observe(vessel, found), response_bytes=0, points=points,
                  edges=edge_counts(found["edge:total"], found["edge:up"]))


def _newer(newest: dict[str, dict[str, tuple[int, float | None]]], address: str, name: str,
           at: int, number: float | None) -> None:
    fields = newest.setdefault(address, {})
    if name not in fields or at > fields[name][0]:
        fields[name] = (at, number)
