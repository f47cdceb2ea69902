"""Turn the fleet's state into the /metrics body, once per collection.

prometheus_client formats every sample, one vessel at a time, and the text is cut into
per-family blocks and reassembled, so that:
- a vessel whose observation did not change (it is unreachable) is not formatted again;
- the event loop keeps serving scrapes between vessels;
- the downtime ages, which must be exact at scrape time, sit at the end of the body:
  they are rendered with their ongoing outages and turned into ages per scrape, leaving
  out maintenance windows to the second (one that starts or ends between runs included),
  behind a prefix that is rendered and gzip-compressed once;
- the maintenance families are rendered with each run, and again at the first scrape after
  a window starts or ends (CollectionService.refresh).
"""

import asyncio
import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .config import Window
from .fleet import FleetSnapshot, VesselState
from .maintenance_metrics import MaintenanceCollector
from .metrics import (
    COMPONENT_AGE,
    DEVICE_AGE,
    AgeCollector,
    ExporterCollector,
    ObservedCollector,
    ReloadState,
    StatusCollector,
)
from .model import VesselObservation
from .sla.downtime import Outage, downtime_age
from .sla.maintenance import MaintenanceSchedule

SLICE_SECONDS = 0.005  # longest stretch of formatting before scrapes get a turn
# Text, or (line up to the value, the ongoing outages whose age is the value).
Template = list[bytes | tuple[bytes, tuple[Outage, ...]]]


_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_go_float: Callable[[float], str] = floatToGoString  # the library's, typed


class _One:
    """One family as a collector, for generate_latest."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterable[Metric]:
        yield self._metric


def _escaped(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


def text_format(collector: Collector) -> bytes:
    """generate_latest's text, byte for byte, written here for plain gauges: they are
    nearly every sample of a run's render, and prometheus_client validates and escapes
    every name of every sample (about 10 µs a sample; this takes a third of that). Any
    other family (a counter, a timestamp, a name that is not a legacy one) is left to
    generate_latest."""
    out: list[str] = []
    valid: dict[tuple[str, ...], bool] = {}
    for metric in collector.collect():
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines = [f"# HELP {metric.name} {doc}\n# TYPE {metric.name} gauge\n"]
        plain = metric.type == "gauge" and _LEGACY_NAME.match(metric.name) is not None
        for s in metric.samples if plain else ():
            labels = s.labels
            keys = tuple(sorted(labels))
            ok = valid.get(keys)
            if ok is None:
                ok = valid[keys] = all(_LEGACY_LABEL.match(k) for k in keys)
            if not ok or s.timestamp is not None or s.name != metric.name:
                plain = False
                break
            value = _go_float(s.value)
            if keys:
                pairs = ",".join([f'{k}="{_escaped(labels[k])}"' for k in keys])
                lines.append(f"{s.name}{{{pairs}}} {value}\n")
            else:
                lines.append(f"{s.name} {value}\n")
        if plain:
            out.extend(lines)
        else:
            out.append(generate_latest(_One(metric)).decode())
    return "".join(out).encode()


def _blocks(collector: Collector) -> dict[str, tuple[bytes, bytes]]:
    """The text cut per family: name -> (HELP and TYPE lines, samples)."""
    blocks: dict[str, tuple[bytes, bytes]] = {}
    text = b"\n" + text_format(collector)
    # Sample lines never start with "#" (label values escape newlines), so this cut is safe.
    for chunk in text.split(b"\n# HELP ")[1:]:
        name = chunk[: chunk.index(b" ")].decode()
        help_line, _, rest = chunk.partition(b"\n")
        type_line, _, samples = rest.partition(b"\n")
        if samples and not samples.endswith(b"\n"):
            samples += b"\n"  # the split took the newline before the next family
        blocks[name] = (b"# HELP " + help_line + b"\n" + type_line + b"\n", samples)
    return blocks


def _age_items(collector: AgeCollector,
               blocks: dict[str, bytes]) -> dict[str, list[tuple[bytes, tuple[Outage, ...]]]]:
    """Each age line up to its value, with the outages it stands for."""
    outages: dict[str, list[tuple[Outage, ...]]] = {}
    for family, _, own in collector.rows():  # the order of the lines
        outages.setdefault(family, []).append(own)
    items: dict[str, list[tuple[bytes, tuple[Outage, ...]]]] = {}
    for family, samples in blocks.items():
        lines = samples.splitlines()
        assert len(lines) == len(outages.get(family, ())), family
        items[family] = [(line.rpartition(b" ")[0] + b" ", own)
                         for line, own in zip(lines, outages.get(family, ()), strict=True)]
    return items


@dataclass(slots=True)
class _Observed:
    """A vessel's device, component and age text, for one observation."""

    source: VesselObservation | None
    lines: dict[str, bytes]
    ages: dict[str, list[tuple[bytes, tuple[Outage, ...]]]]


@dataclass(slots=True)
class Renderer:
    windows: tuple[Window, ...]
    interval: float
    maintenance: MaintenanceSchedule = field(default_factory=MaintenanceSchedule)
    _headers: dict[str, bytes] = field(default_factory=dict)
    _observed: dict[str, _Observed] = field(default_factory=dict)

    def _observe(self, state: VesselState) -> _Observed:
        cached = self._observed.get(state.config.id)
        if cached is not None and cached.source is state.observation:
            return cached
        lines = self._remember(_blocks(ObservedCollector([state], self.windows)))
        collector = AgeCollector([state])
        ages = self._remember(_blocks(collector))
        cached = _Observed(state.observation, lines, _age_items(collector, ages))
        self._observed[state.config.id] = cached
        return cached

    def _remember(self, blocks: dict[str, tuple[bytes, bytes]]) -> dict[str, bytes]:
        for name, (header, _) in blocks.items():
            self._headers.setdefault(name, header)
        return {name: samples for name, (_, samples) in blocks.items()}

    async def render(self, snapshot: FleetSnapshot, reload: ReloadState,
                     now: float | None = None) -> "MetricsCache":
        """The body for `snapshot`; `now` places the maintenance windows (default: time)."""
        now = time.time() if now is None else now
        families: dict[str, list[bytes]] = {}
        ages: dict[str, list[tuple[bytes, tuple[Outage, ...]]]] = {
            DEVICE_AGE: [], COMPONENT_AGE: []}
        slice_started = time.monotonic()
        for state in snapshot.vessels:
            observed = self._observe(state)
            status = self._remember(_blocks(StatusCollector([state])))
            for name, samples in (*observed.lines.items(), *status.items()):
                families.setdefault(name, []).append(samples)
            for name, items in observed.ages.items():
                ages[name].extend(items)
            if time.monotonic() - slice_started > SLICE_SECONDS:
                await asyncio.sleep(0)
                slice_started = time.monotonic()
        exporter = generate_latest(ExporterCollector(snapshot, self.interval, reload))
        maintenance = generate_latest(MaintenanceCollector(
            [state.config for state in snapshot.vessels], self.maintenance, now))

        # Ages of devices that are up never change: they join the prefix. What changes
        # per scrape (down devices, then every component age) forms the tail.
        device_up = [p + b"0.0\n" for p, own in ages[DEVICE_AGE] if not own]
        device_down: Template = [(p, own) for p, own in ages[DEVICE_AGE] if own]
        prefix = b"".join([
            *(b"".join([self._headers[name], *parts]) for name, parts in families.items()),
            exporter,
            maintenance,
            self._headers.get(DEVICE_AGE, b""),
            *device_up,
        ])
        tail: Template = [*device_down, self._headers.get(COMPONENT_AGE, b"")]
        tail.extend(item if item[1] else item[0] + b"0.0\n" for item in ages[COMPONENT_AGE])
        # zlib releases the GIL, so compressing in a thread leaves the loop free.
        return await asyncio.to_thread(MetricsCache, prefix, tail, self.maintenance)


class MetricsCache:
    """The body as rendered after a run; only the ages are computed per scrape."""

    def __init__(self, prefix: bytes, tail: Template,
                 maintenance: MaintenanceSchedule | None = None) -> None:
        self.prefix = prefix
        self._tail = tail
        self._maintenance = maintenance or MaintenanceSchedule()
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self._gzip_prefix = self._deflate.compress(prefix)

    def _tail_bytes(self, now: float) -> bytes:
        parts = []
        for item in self._tail:
            if isinstance(item, bytes):
                parts.append(item)
            else:
                prefix, outages = item
                age = downtime_age(self._maintenance, outages, now)
                parts.append(prefix + repr(round(age, 3)).encode() + b"\n")
        return b"".join(parts)

    def chunks(self, now: float, extra: bytes = b"") -> tuple[bytes, bytes]:
        """The body; `extra` (families rendered per scrape, such as the report
        schedule's) goes at its end."""
        return self.prefix, self._tail_bytes(now) + extra

    def gzip_chunks(self, now: float, extra: bytes = b"") -> tuple[bytes, bytes]:
        """One gzip stream: the cached compressor state continues with the tail."""
        deflate = self._deflate.copy()
        tail = self._tail_bytes(now) + extra
        return self._gzip_prefix, deflate.compress(tail) + deflate.flush()

    def body(self, now: float, extra: bytes = b"") -> bytes:
        return b"".join(self.chunks(now, extra))
