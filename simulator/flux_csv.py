"""InfluxDB 2's annotated CSV, as its /api/v2/query writes it, for fakes and benchmarks.

#group, #datatype and #default annotate each block; a block holds the tables of one
result that share a schema, one `table` number per group key; a blank line ends it.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def rfc3339(ns: int) -> str:
    """Go's RFC3339Nano: trailing zeros of the fraction trimmed."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


@dataclass
class Table:
    key: dict[str, str]  # group key columns
    rows: list[dict[str, Any]]
    types: dict[str, str]  # column -> annotated CSV datatype


def csv_answer(results: list[tuple[str, list[Table]]]) -> str:
    """Annotated CSV as InfluxDB 2 writes it."""
    out: list[str] = []
    for name, tables in results:
        schema: tuple[tuple[str, str], ...] | None = None
        for number, table in enumerate(tables):
            columns = ["result", "table", *table.types]
            # Same names with other types (a long _value, then a double) is a new schema.
            if tuple(table.types.items()) != schema:
                if schema is not None:
                    out.append("")
                schema = tuple(table.types.items())
                out.append(",".join(["#group", "false", "false",
                                     *("true" if c in table.key else "false"
                                       for c in table.types)]))
                out.append(",".join(["#datatype", "string", "long", *table.types.values()]))
                out.append(",".join(["#default", name, *[""] * (len(columns) - 1)]))
                out.append("," + ",".join(columns))
            for row in table.rows:
                cells = ["", str(number)]
                for column, kind in table.types.items():
                    value = row[column]
                    cells.append(rfc3339(value) if kind.startswith("dateTime") else str(value))
                out.append("," + ",".join(cells))
        out.append("")
    return "\r\n".join(out) + "\r\n"


def error_table(message: str) -> str:
    return ("#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n"
            f',"{message}",\r\n')


_DEVICES = re.compile(r"=~ /\^\((.*?)\)\$/")
_YIELDS = re.compile(r'yield\(name: "([^"]+)"\)')
_TIME = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
_EDGE_STOP = re.compile(r"src\(start: -86400s, stop: " + _TIME + r"\)")
_POINTS = re.compile(r"src\(start: " + _TIME + r", stop: (now\(\)|" + _TIME[1:-1] + r")\).*"
                     r'yield\(name: "points"\)')


def seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def healthy_answer(script: str, now: int) -> str:
    """Every device of the exporter's script up, a sample a minute, the newest 30 s old;
    the raw points span what the script asks for, at most a day."""
    devices = re.sub(r"\\(.)", r"\1", _DEVICES.search(script)[1]).split("|")
    tag = re.search(r'r\["(\w+)"\] =~', script)[1]
    ns = 10**9
    stamps = [now - 30 - 60 * k for k in range(1440)][::-1]
    edge_found = _EDGE_STOP.search(script)  # only while the ledger asks the edge counts
    edge_stop = seconds(edge_found[1]) if edge_found else now
    edge = sum(1 for t in stamps if now - 86400 <= t < edge_stop)
    points = _POINTS.search(script)
    start = seconds(points[1])
    stop = now + 1 if points[2] == "now()" else seconds(points[2])
    raw = [t for t in stamps if start <= t < stop]
    results: list[tuple[str, list[Table]]] = []
    for name in _YIELDS.findall(script):
        tables = []
        for address in devices:
            if name.startswith("edge:"):
                tables.append(Table({tag: address}, [{tag: address, "_value": edge}],
                                    {tag: "string", "_value": "long"}))
                continue
            at = [now - 30]
            fields: dict[str, Any] = {"latest": {"result_code": 0, "percent_packet_loss": 0.0,
                                                 "average_response_ms": 35.412},
                                      "last_reply": {"percent_packet_loss": 0.0},
                                      "points": {"result_code": 0,
                                                 "percent_packet_loss": 0.0,
                                                 "average_response_ms": 35.412}}[name]
            if name == "points":
                at = raw
            for field, value in fields.items():
                key = {"_field": field, tag: address}
                kind = "double" if isinstance(value, float) else "long"
                rows = [{**key, "_time": t * ns, "_value": value} for t in at]
                if rows:
                    tables.append(Table(key, rows, {"_time": "dateTime:RFC3339", "_value": kind,
                                                    "_field": "string", tag: "string"}))
        results.append((name, tables))
    return csv_answer(results)
