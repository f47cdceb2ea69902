"""A stand-in for InfluxDB 2's /api/v2/query, answering the exporter's Flux script.

It speaks the wire format InfluxDB 2 does: annotated CSV (#group, #datatype, #default, a
table per group key, a new block where the schema changes, a blank line between results),
gzip when asked, JSON error bodies, and error tables in the middle of a stream. Its data
are the raw points of a real influxd (the bucket "db/rp" names the database), so both
backends read the very same samples. It runs the operations the exporter's script uses,
with Flux's semantics: range() includes its start and excludes now, selectors work per
series, group() merges series, keep() drops columns and leaves dropped ones out of the
group key.
"""

import asyncio
import json
import re
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from simulator.flux_csv import Table, csv_answer

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]

_YIELD = re.compile(r'^src\(start: (-\d+s|[0-9TZ:-]+), stop: (now\(\)|[0-9TZ:-]+)\) (.*) '
                    r'\|> yield\(name: "([^"]+)"\)$')
_KEEP = re.compile(r'^keep\(columns: \[(.*)\]\)$')
_TAG_FILTER = re.compile(r'r\._measurement == "([^"]+)" and r\["(\w+)"\] =~ /(.*)/\)$')


@dataclass(frozen=True)
class Point:
    tags: tuple[tuple[str, str], ...]
    field: str
    time: int  # ns
    value: float | int


def _datatype(value: Any) -> str:
    return "double" if isinstance(value, float) else "long"


def _time_ns(when: str, now_ns: int) -> int:
    """A range() bound: now(), a duration before now (-86400s), or an RFC3339 time."""
    if when == "now()":
        return now_ns
    if when.startswith("-"):
        return now_ns - int(when[1:-1]) * 10**9
    return int(datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()) * 10**9


@dataclass
class FakeFlux:
    influx_url: str = ""  # the real influxd holding the points
    token: str = ""
    script: deque[Responder] = field(default_factory=deque)  # used first, one per request
    requests: list[dict[str, Any]] = field(default_factory=list)

    def points(self, bucket: str, measurement: str, fields: set[str], since_ns: int
               ) -> list[Point]:
        database = bucket.split("/")[0]
        selected = ", ".join(f'"{f}"' for f in sorted(fields))
        q = f'SELECT {selected}, *::tag FROM "{measurement}" WHERE time >= {since_ns}'
        params = urllib.parse.urlencode({"db": database, "q": q, "epoch": "ns"})
        with urllib.request.urlopen(f"{self.influx_url}/query?{params}", timeout=30) as r:
            result = json.load(r)["results"][0]
        tag_keys = {row[0] for row in self._show(database, f'SHOW TAG KEYS FROM "{measurement}"')}
        # JSON writes a float 0 as 0: the field's type says which it is.
        floats = {row[0] for row in self._show(database, f'SHOW FIELD KEYS FROM "{measurement}"')
                  if row[1] == "float"}
        found = []
        for series in result.get("series", []):
            columns = series["columns"]
            for row in series["values"]:
                values = dict(zip(columns, row, strict=True))
                tags = tuple(sorted((k, v) for k, v in values.items() if k in tag_keys and v))
                for name, value in values.items():
                    if name not in tag_keys and name != "time" and value is not None:
                        value = float(value) if name in floats else value
                        found.append(Point(tags, name, values["time"], value))
        return found

    def _show(self, database: str, q: str) -> list[list[Any]]:
        params = urllib.parse.urlencode({"db": database, "q": q})
        with urllib.request.urlopen(f"{self.influx_url}/query?{params}", timeout=30) as r:
            series = json.load(r)["results"][0].get("series", [])
        return [row for s in series for row in s["values"]]

    def run(self, script: str, now_ns: int) -> list[tuple[str, list[Table]]]:
        lines = script.splitlines()
        bucket = re.search(r'from\(bucket: "([^"]*)"\)', lines[0])
        tag_filter = _TAG_FILTER.search(lines[2])
        assert bucket and tag_filter, script
        measurement, tag, regex = tag_filter.groups()
        devices = re.compile(regex)
        yields = [m.groups() for line in lines[3:] if (m := _YIELD.match(line))]
        assert len(yields) == len(lines) - 3, script
        earliest = min(_time_ns(start, now_ns) for start, _, _, _ in yields)
        fields = set(re.findall(r'r\._field == "(\w+)"', script))
        data = [p for p in self.points(bucket[1], measurement, fields, earliest)
                if devices.match(dict(p.tags).get(tag, ""))]
        return [(name, self._pipeline(data, _time_ns(start, now_ns), _time_ns(stop, now_ns),
                                      chain, tag, measurement))
                for start, stop, chain, name in yields]

    def _pipeline(self, data: list[Point], start: int, stop: int, chain: str, tag: str,
                  measurement: str) -> list[Table]:
        ops = chain.split(" |> ")
        fields = set(re.findall(r'r\._field == "(\w+)"', ops[0]))
        below = re.search(r"r\._value < ([\d.]+)", ops[0])
        rows = [p for p in data if start <= p.time < stop and p.field in fields
                and (below is None or p.value < float(below[1]))]
        if ops[1:] == [f'group(columns: ["{tag}"])', "count()"]:
            counts: dict[str, int] = {}
            for p in rows:
                address = dict(p.tags)[tag]
                counts[address] = counts.get(address, 0) + 1
            return [Table({tag: a}, [{tag: a, "_value": n}], {tag: "string", "_value": "long"})
                    for a, n in sorted(counts.items())]
        if len(ops) == 2 and (keep := _KEEP.match(ops[1])):
            return self._keep(rows, [c.strip('" ') for c in keep[1].split(",")])
        assert ops[1:] in (["last()"], ["first()"]), chain
        chosen: dict[tuple[Any, ...], Point] = {}
        for p in sorted(rows, key=lambda p: p.time, reverse=ops[1] == "last()"):
            chosen.setdefault((p.tags, p.field), p)
        tables = []
        for (tags, name), p in sorted(chosen.items()):
            key = {"_start": start, "_stop": stop, "_field": name, "_measurement": measurement,
                   **dict(tags)}
            types = {"_start": "dateTime:RFC3339", "_stop": "dateTime:RFC3339",
                     "_time": "dateTime:RFC3339", "_value": _datatype(p.value),
                     "_field": "string", "_measurement": "string",
                     **{k: "string" for k, _ in tags}}
            row = {**key, "_time": p.time, "_value": p.value}
            tables.append(Table({k: str(v) for k, v in key.items()}, [row], types))
        return tables

    @staticmethod
    def _keep(rows: list[Point], columns: list[str]) -> list[Table]:
        """Raw rows, a table per series; dropped group-key columns leave the key."""
        series: dict[tuple[Any, ...], list[Point]] = {}
        for p in sorted(rows, key=lambda p: p.time):
            series.setdefault((p.tags, p.field), []).append(p)
        tables = []
        for (tags, name), points in sorted(series.items()):
            full = {"_field": name, **dict(tags)}
            key = {k: v for k, v in full.items() if k in columns}
            types = {"_time": "dateTime:RFC3339", "_value": _datatype(points[0].value),
                     **{k: "string" for k in key}}
            types = {k: t for k, t in types.items() if k in columns}
            tables.append(Table(key, [{**key, "_time": p.time, "_value": p.value}
                                      for p in points], types))
        return tables

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append({"headers": dict(request.headers), "query": dict(request.query),
                              "body": body, "peer": peer})
        if self.script:
            return await self.script.popleft()(request)
        if request.headers.get("Authorization") != f"Token {self.token}":
            return web.json_response({"code": "unauthorized", "message": "unauthorized access"},
                                     status=401)
        if not self.influx_url:
            return csv_response("")  # no data behind it
        # In a thread: the exporter under test shares this event loop.
        text = csv_answer(await asyncio.to_thread(self.run, body["query"], time.time_ns()))
        return csv_response(text)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v2/query", self.handle)
        return app


def csv_response(text: str, status: int = 200) -> web.Response:
    response = web.Response(status=status, text=text, content_type="text/csv")
    response.enable_compression()  # gzip when the request accepts it, as InfluxDB 2 does
    return response


def reply(status: int = 200, text: str = "", content_type: str = "text/csv") -> Responder:
    async def respond(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text, content_type=content_type)
    return respond
