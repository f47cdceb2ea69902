"""GET /api/v1/ledger: one device's hours over a range, from the state DB and memory.

Strict: every parameter is required and checked, a range is whole UTC hours and at most
MAX_DAYS long, so an answer holds at most MAX_DAYS * 24 rows. Unpacking and encoding run
in a thread; the DB read runs in aiosqlite's.
"""

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from aiohttp import web

from . import ledger_db
from .config import DeviceConfig, VesselConfig
from .sla.hour import HOUR, Hour
from .sla.ledger import Ledger

MAX_DAYS = 400
MAX_ROWS = MAX_DAYS * 24
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class BadParameter(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def _one(query: Any, name: str) -> str:
    values = query.getall(name, [])
    if not values:
        raise BadParameter(name, "required")
    if len(values) > 1:
        raise BadParameter(name, "given more than once")
    value: str = values[0]
    if not value or len(value) > 256:
        raise BadParameter(name, "expected 1 to 256 characters")
    return value


def _moment(name: str, raw: str) -> int:
    """Epoch seconds or RFC3339 UTC (2026-01-01T00:00:00Z), on a whole hour."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 11:
        value = int(raw)
    elif _RFC3339.fullmatch(raw):
        try:
            value = int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())
        except ValueError:
            raise BadParameter(name, f"not a valid time: {raw[:40]!r}") from None
    else:
        raise BadParameter(name, "expected epoch seconds or YYYY-MM-DDTHH:MM:SSZ, "
                                 f"got {raw[:40]!r}")
    if value % HOUR:
        raise BadParameter(name, "must be on a whole UTC hour")
    return value


@dataclass(frozen=True, slots=True)
class LedgerQuery:
    vessel: VesselConfig
    device: DeviceConfig
    start: int
    end: int


def parse_query(query: Any, vessels: Mapping[str, VesselConfig]) -> LedgerQuery:
    """BadParameter for a bad or missing parameter; web.HTTPNotFound for an unknown name."""
    names = ("vessel", "component", "device", "from", "to")
    unknown = sorted(set(query) - set(names))
    if unknown:
        raise BadParameter(unknown[0][:40], "unknown parameter")
    vessel_id, component, name = (_one(query, n) for n in names[:3])
    start = _moment("from", _one(query, "from"))
    end = _moment("to", _one(query, "to"))
    if end <= start:
        raise BadParameter("to", "must be after from")
    if end - start > MAX_DAYS * 86400:
        raise BadParameter("to", f"a range is at most {MAX_DAYS} days")
    vessel = vessels.get(vessel_id)
    if vessel is None:
        raise _not_found(f"vessel {vessel_id[:60]!r} not found")
    found = [d for d in vessel.devices if d.component == component and d.name == name]
    if not found:
        raise _not_found(f"device {component[:60]!r}/{name[:60]!r} not found on "
                         f"vessel {vessel_id[:60]!r}")
    return LedgerQuery(vessel, found[0], start, end)


def _not_found(message: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": message}), content_type="application/json")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(start: int, hour: Hour | None, span: int, held: bool, open_: bool) -> dict[str, Any]:
    h = hour or Hour()
    return {"start": _iso(start), "up": h.up, "down": h.down, "maintenance": h.maintenance,
            "unobserved": h.unobserved(span), "outages": h.outages, "longest_outage": h.longest,
            "held": held, "open": open_, "estimated": h.estimated}


def document(q: LedgerQuery, stored: Mapping[int, Hour], memory: Mapping[int, Hour],
             held_from: int | None, frozen_until: int | None, now: float) -> bytes:
    """The JSON answer; hours in memory (recent and open ones) win over stored ones; both
    by hour number."""
    rows = []
    totals = Hour()
    for key in range(q.start // HOUR, q.end // HOUR):
        at = key * HOUR
        if at >= now:
            break  # no future hours
        span = int(min(HOUR, now - at))
        hour = memory.get(key) or stored.get(key)
        held = held_from is not None and at >= held_from
        open_ = frozen_until is None or at + HOUR > frozen_until
        row = _row(at, hour, span, held, open_)
        rows.append(row)
        if hour is not None:
            totals = totals.add(hour)
    total_span = sum(int(min(HOUR, now - k * HOUR)) for k in range(q.start // HOUR, q.end // HOUR)
                     if k * HOUR < now)
    body = {
        "vessel": q.vessel.id, "component": q.device.component, "device": q.device.name,
        "address": q.device.address, "from": _iso(q.start), "to": _iso(q.end),
        "totals": {"up": totals.up, "down": totals.down, "maintenance": totals.maintenance,
                   "unobserved": totals.unobserved(total_span), "outages": totals.outages,
                   "longest_outage": totals.longest},
        "hours": rows,
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def answer(db: aiosqlite.Connection, ledger: Ledger, q: LedgerQuery,
                 now: float) -> bytes:
    found = await ledger_db.read(db, q.vessel.id, [q.device.address], q.start, q.end)
    stored = {at // HOUR: h for at, h in found.get(q.device.address, {}).items()}
    books = ledger.vessels.get(q.vessel.id)
    memory: dict[int, Hour] = {}
    held_from = frozen_until = None
    if books is not None:
        held_from, frozen_until = books.held_from, books.frozen_until
        book = books.books.get(q.device.address)
        if book is not None:  # memory holds a few weeks at most: a short copy
            first, last = q.start // HOUR, q.end // HOUR
            for key in {*book.frozen, *book.fresh}:
                if first <= key < last and (hour := book.hour(key)) is not None:
                    memory[key] = hour
    return await asyncio.to_thread(document, q, stored, memory, held_from, frozen_until, now)
