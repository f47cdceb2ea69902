"""InfluxQL statements for one vessel, and strict parsing of the answer.

In steady state the request is one statement: the raw points after the ledger's cursor
(three fields, epoch seconds: a few minutes' worth), from which the newest sample and reply
follow too. The newest sample and reply over the lookback, and the counts of the 24 h
window's oldest partial hour, are asked only when the exporter does not know them (see
sla/ledger.py Ask). The device filter is a regex sent once, as a bound parameter.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .aggregates import Row, edge_counts, observe
from .config import InfluxConfig, VesselConfig
from .model import Answer, QueryError
from .sla.ledger import Ask

# The bound parameter that holds the device regex: influxd 1.x takes a typed parameter
# ({"regex": ...}) where a regex literal goes; a string parameter is no regex.
DEVICES_PARAM = "d"


@dataclass(frozen=True, slots=True)
class Statement:
    purpose: str  # "edge:total", "edge:up", "latest", "last_reply", "points", "points:rtt"
    text: str


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _escape(value: str) -> str:
    # RE2 reads a backslash before ASCII punctuation as that character.
    return "".join("\\" + c if c.isascii() and not c.isalnum() else c for c in value)


def device_regex(values: Sequence[str]) -> str:
    """An anchored regex matching exactly `values`, their common prefix said once:
    `^10\\.0\\.0\\.(1|2|17)$`."""
    if len(values) == 1:
        return "^" + _escape(values[0]) + "$"
    first, last = min(values), max(values)
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False))
                 if a != b), len(first))
    prefix = first[:size]  # common to the least and the greatest, so to all
    rest = "|".join(_escape(v[len(prefix):]) for v in values)
    return "^" + _escape(prefix) + "(" + rest + ")$"


def params(vessel: VesselConfig) -> str:
    """The /query `params` field: the device regex, bound once for every statement."""
    regex = device_regex([d.address for d in vessel.devices])
    return json.dumps({DEVICES_PARAM: {"regex": regex}}, separators=(",", ":"))


def build_statements(vessel: VesselConfig, ask: Ask, lookback: float) -> list[Statement]:
    """The raw points the ledger asks for and, when asked, the newest sample and reply and
    the edge counts of the 24 h window."""
    influx: InfluxConfig = vessel.influx
    tag = _ident(influx.device_tag)
    source = _ident(influx.measurement)
    only = f"{tag} =~ ${DEVICES_PARAM}"
    loss = '"percent_packet_loss"'
    reply = f"{loss} < 100"
    statements = []
    if ask.edges:
        # The upper bounds keep points from a clock that runs ahead out of the ledger.
        edge = f"time > now() - 86400s AND time < {ask.edge_end}s AND time <= now() AND {only}"
        statements += [
            Statement("edge:total", f'SELECT count("result_code") FROM {source} WHERE {edge} '
                                    f"GROUP BY {tag}"),
            Statement("edge:up", f"SELECT count({loss}) FROM {source} WHERE {reply} AND "
                                 f"{edge} GROUP BY {tag}"),
        ]
    if ask.newest:
        # No upper bound: the newest sample is the latest word even when stamped ahead;
        # how far ahead is measured, and beyond a tolerance the vessel is in clock_skew.
        newest = f"time > now() - {int(lookback)}s AND {only}"
        statements += [
            # A ping error writes only result_code, so it is selected too: the newest row
            # must be the newest sample whatever fields it has.
            Statement("latest", f'SELECT "result_code", {loss}, "average_response_ms" FROM '
                                f"{source} WHERE {newest} GROUP BY {tag} ORDER BY time DESC "
                                "LIMIT 1"),
            # Raw reads with LIMIT 1 stop at the first match; last() with a field condition
            # reads the whole lookback.
            Statement("last_reply", f"SELECT {loss} FROM {source} WHERE {reply} AND {newest} "
                                    f"GROUP BY {tag} ORDER BY time DESC LIMIT 1"),
        ]
    # In steady state no upper bound either: the points also give the newest sample (so
    # its RTT too), and the ledger leaves out those stamped ahead of its clock. A catch-up
    # stops at `until`, and its RTTs would only add to a large answer.
    until = "" if ask.until is None else f" AND time <= {ask.until}s AND time <= now()"
    purpose, rtt = ("points", "") if ask.newest else ("points:rtt", ', "average_response_ms"')
    statements.append(Statement(
        purpose, f'SELECT "result_code", {loss}{rtt} FROM {source} WHERE '
                 f"time > {ask.since}s{until} AND {only} GROUP BY {tag}"))
    return statements


def _statement_error(error: Any, index: int, statement: Statement, vessel: VesselConfig) -> str:
    message = f"statement {index} ({statement.purpose}): {error}"
    if error == "not executed":
        # What influxd 1.x says for every statement of a batch when the database is missing.
        message += f" (does database {vessel.influx.database!r} exist?)"
    return message


# The columns read from each statement's rows, and those that may be null.
_WANTED = {
    "edge": ("count",),
    "points": ("time", "percent_packet_loss"),
    "points:rtt": ("time", "percent_packet_loss", "average_response_ms"),
    "latest": ("time", "percent_packet_loss", "average_response_ms"),
    "last_reply": ("time",),
    "first": ("time",),
}
_NULLABLE = frozenset({"percent_packet_loss", "average_response_ms"})


# InfluxDB's numbers are 64-bit; anything beyond is not an answer to our query. NaN
# compares false with both bounds, so one test rejects it too.
_LIMIT = float(2**64)


def _rows(result: Any, index: int, statement: Statement, tag: str,
          asked: frozenset[str]) -> dict[str, list[Row]]:
    """Device address -> the wanted columns of its rows, checked to be numbers; one row
    for every statement but the raw points."""
    where = f"statement {index} ({statement.purpose})"
    if not isinstance(result, dict):
        raise QueryError(f"malformed answer: {where}: expected an object")
    series = result.get("series", [])
    if not isinstance(series, list):
        raise QueryError(f"malformed answer: {where}: series is not a list")
    if len(series) > len(asked):
        # One series per device asked for: more is refused before any is read.
        raise QueryError(f"malformed answer: {where}: {len(series)} series for "
                         f"{len(asked)} devices")
    wanted = _WANTED.get(statement.purpose) or _WANTED[statement.purpose.partition(":")[0]]
    many = statement.purpose.startswith("points")
    rows: dict[str, list[Row]] = {}
    known_columns: list[Any] | None = None
    positions: list[int] = []
    for n, item in enumerate(series):
        try:  # the well-formed case, tested cheaply: this loop runs for every device
            address, columns, row = item["tags"][tag], item["columns"], item["values"][0]
            valid = (type(address) is str and type(columns) is list and type(row) is list
                     and len(row) == len(columns) and "time" in columns)
        except (TypeError, KeyError, IndexError):
            valid = False
        if not valid:
            problem = _series_problem(item, tag) or "unexpected shape"
            raise QueryError(f"malformed answer: {where} series {n}: {problem}")
        if address not in asked:
            raise QueryError(f"malformed answer: {where} series {n}: device "
                             f"{address[:60]!r} was not asked for")
        if address in rows:
            raise QueryError(f"malformed answer: {where} series {n}: device "
                             f"{address[:60]!r} appears twice")
        if columns != known_columns:
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise QueryError(f"malformed answer: {where} series {n}: no column {missing[0]}")
            known_columns, positions = columns, [columns.index(c) for c in wanted]
        table = item["values"] if many else [row]
        if not isinstance(table, list):
            raise QueryError(f"malformed answer: {where} series {n}: values is not a list")
        found: list[Row] = []
        width = len(columns)
        for r in table:
            if type(r) is not list or len(r) != width:
                raise QueryError(f"malformed answer: {where} series {n}: "
                                 "row does not match its columns")
            values = tuple([r[p] for p in positions])
            if not all([type(v) in (int, float) and -_LIMIT < v < _LIMIT for v in values]):
                _check_values(values, wanted, f"{where} series {n}")  # nulls, or a bad value
            found.append(values)
        rows[address] = found
    return rows


def _check_values(values: Row, wanted: tuple[str, ...], where: str) -> None:
    for column, value in zip(wanted, values, strict=True):
        if value is None and column in _NULLABLE:
            continue
        number: Any = value  # JSON: anything at all
        if (not isinstance(number, int | float) or isinstance(number, bool)
                or (isinstance(number, float) and not math.isfinite(number))):
            raise QueryError(f"malformed answer: {where} column {column}: "
                             f"expected a number, got {_shown(number)}")
        if not -_LIMIT < number < _LIMIT:
            raise QueryError(f"malformed answer: {where} column {column}: "
                             "number out of range")


def _shown(value: Any) -> str:
    """A short description of a value: nested JSON is not echoed (or repr'd)."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return repr(value[:40])
    return repr(value)


def _series_problem(item: Any, tag: str) -> str | None:
    if not isinstance(item, dict):
        return "expected an object"
    tags, columns, values = item.get("tags"), item.get("columns"), item.get("values")
    if not isinstance(tags, dict) or not isinstance(tags.get(tag), str):
        return f"missing tag {tag!r}"
    if not isinstance(columns, list) or "time" not in columns:
        return "missing columns"
    if not isinstance(values, list) or not values:
        return "empty series"
    if not isinstance(values[0], list) or len(values[0]) != len(columns):
        return "row does not match its columns"
    return None


def parse_answer(
    document: Any, statements: Sequence[Statement], vessel: VesselConfig
) -> Answer:
    """Turn a decoded /query answer into observations; any surprise is a QueryError."""
    if not isinstance(document, dict):
        raise QueryError("malformed answer: expected a JSON object")
    if "error" in document:
        raise QueryError(f"InfluxDB error: {document['error']}")
    results = document.get("results")
    if isinstance(results, list):
        # InfluxDB stops at the first failing statement; its error says more than the count.
        for i, result in enumerate(results[: len(statements)]):
            if isinstance(result, dict) and "error" in result:
                raise QueryError(_statement_error(result["error"], i, statements[i], vessel))
    if not isinstance(results, list) or len(results) != len(statements):
        got = len(results) if isinstance(results, list) else "no"
        raise QueryError(f"malformed answer: {got} results for {len(statements)} statements")
    tag = vessel.influx.device_tag
    asked = frozenset(d.address for d in vessel.devices)
    by_purpose = {
        st.purpose: _rows(result, i, st, tag, asked)
        for i, (st, result) in enumerate(zip(statements, results, strict=True))
    }
    raw = by_purpose.get("points") or by_purpose.get("points:rtt") or {}
    single = {purpose: {a: rows[0] for a, rows in found.items()}
              for purpose, found in by_purpose.items() if not purpose.startswith("points")}
    edges = (edge_counts(single["edge:total"], single["edge:up"])
             if "edge:total" in single else {})
    if "latest" not in single:
        # Time-ordered: the last row is the newest sample, the last with a reply the newest
        # reply; the exporter merges them with what it knew (sla/ledger.py Ledger.newest).
        single["latest"] = {a: rows[-1] for a, rows in raw.items() if rows}
        single["last_reply"] = {a: (reply[0],) for a, rows in raw.items()
                                if (reply := _newest_reply(rows)) is not None}
    points = {a: [(int(t), loss is not None and loss < 100) for t, loss, *_ in rows]  # type: ignore[arg-type]
              for a, rows in raw.items()}
    return Answer(observation=observe(vessel, single), response_bytes=0, points=points,
                  edges=edges)


def _newest_reply(rows: Sequence[Row]) -> Row | None:
    for row in reversed(rows):
        loss = row[1]
        if loss is not None and loss < 100:
            return row
    return None
