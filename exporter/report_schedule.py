"""The monthly report schedule (fleet.yml `reports:`).

Once a month has closed in the schedule's timezone, and `grace` more has passed for
vessels still catching up, the month's report is written into `dir` in each configured
format, atomically (a temporary file, then a rename). Every hour the last
`RECHECK_MONTHS` closed months are built again; when a report's figures have changed
(late data, a maintenance window declared afterwards) its files are written again and the
earlier ones kept beside them, renamed with the time they were written. A format that
fails is logged and counted and never stops the others, the other months or the exporter.
"""

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .config import ReportsConfig
from .report_store import ReportStore, Written
from .reports.build import build_report
from .reports.formats import ReportFormat, filename, render
from .reports.model import Report
from .reports.period import ReportError, closed_months, parse_period
from .service import CollectionService

log = logging.getLogger(__name__)

RECHECK_SECONDS = 3600.0  # how often closed months are built again
RECHECK_MONTHS = 3  # how many closed months are checked: older ones are left as written

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Render = Callable[[Report, ReportFormat], bytes]


def due_months(now: float, reports: ReportsConfig, count: int = RECHECK_MONTHS) -> list[str]:
    """The newest `count` months, oldest first, closed in the schedule's timezone at least
    `grace` before `now` ("2026-11")."""
    out: list[str] = []
    # The newest two closed months may still be in their grace (up to 31 d, after a
    # February): two more are looked at.
    for label, end in islice(closed_months(now, ZoneInfo(reports.timezone)), count + 2):
        if end + reports.grace <= now:
            out.append(label)
            if len(out) == count:
                break
    return out[::-1]


def fingerprint(report: Report) -> str:
    """A hash of the report's figures: what it says about its period, without when it was
    made or what the vessels' links say now."""
    header = report.header
    steady = dataclasses.replace(
        report,
        header=dataclasses.replace(
            header, generated_at=0.0, generated_text="",
            gaps=tuple(dataclasses.replace(g, status=None, last_success=None, text="")
                       for g in header.gaps)))
    text = json.dumps(dataclasses.asdict(steady), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


# Read once: os.umask() can only be read by setting it, process-wide.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _write_atomically(target: Path, data: bytes) -> None:
    # A temporary name of its own (not one per process): two writers of one report, a
    # scheduled one and another, must not rename each other's file away.
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)  # as open() would make it, not mkstemp's 0600
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _keep_earlier(target: Path, written_at: float) -> Path:
    """Move the file now at `target` aside, named with the time it was written."""
    n = 1
    while True:
        suffix = "" if n == 1 else f"-{n}"
        kept = target.with_name(f"{target.stem}.{_stamp(written_at)}{suffix}{target.suffix}")
        try:
            # A link fails where a name is taken, so two writers never both take one; the
            # new file then replaces `target`, which is never missing meanwhile.
            os.link(target, kept)
            return kept
        except FileExistsError:
            n += 1


@dataclass(slots=True)
class ReportCounters:
    """What /metrics says about the schedule, by format."""

    formats: tuple[str, ...] = ()
    written: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    last_written: dict[str, float] = field(default_factory=dict)
    last_check: float | None = None


class ReportsCollector:
    def __init__(self, counters: ReportCounters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        c = self._counters
        formats = sorted({*c.formats, *c.written, *c.errors})
        if not formats:
            return
        written = CounterMetricFamily(
            "fleet_reports_written", "Report files written by the schedule, by format.",
            labels=["format"])
        errors = CounterMetricFamily(
            "fleet_report_errors", "Report files the schedule failed to build or write.",
            labels=["format"])
        last = GaugeMetricFamily(
            "fleet_report_last_written_timestamp_seconds",
            "When the schedule last wrote a report file, by format.", labels=["format"])
        for fmt in formats:
            written.add_metric([fmt], c.written.get(fmt, 0))
            errors.add_metric([fmt], c.errors.get(fmt, 0))
            if fmt in c.last_written:
                last.add_metric([fmt], c.last_written[fmt])
        yield from (written, errors, last)
        if c.last_check is not None:
            yield GaugeMetricFamily(
                "fleet_report_last_check_timestamp_seconds",
                "When the schedule last checked the closed months.", value=c.last_check)


class ReportScheduler:
    def __init__(self, service: CollectionService, store: ReportStore, *,
                 clock: Clock = time.time, sleep: Sleep = asyncio.sleep,
                 renderer: Render = render) -> None:
        self._service = service
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._render = renderer
        self.counters = ReportCounters()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def _fail(self, fmt: str) -> None:
        self.counters.errors[fmt] = self.counters.errors.get(fmt, 0) + 1

    async def run_once(self) -> list[Path]:
        """Write what is due or changed; returns the files written."""
        async with self._lock:
            return await self._run()

    async def _run(self) -> list[Path]:
        config = self._service.config
        reports = config.reports
        if reports.dir is None:
            self.counters.formats = ()
            return []
        self.counters.formats = reports.formats
        now = self._clock()
        self.counters.last_check = now
        ledger = self._service.ledger
        # Months before every vessel's ledger would be all gaps: left alone.
        starts = [books.held_from for books in ledger.vessels.values()]
        if not starts:
            return []
        written: list[Path] = []
        for label in due_months(now, reports):
            try:
                period = parse_period(period=label, start=None, end=None,
                                      timezone=reports.timezone, now=now)
            except ReportError as exc:
                log.error("report %s: %s", label, exc)
                continue
            if period.end <= min(starts):
                continue
            try:
                report = await build_report(self._service.runlog.db, ledger, config,
                                            config.maintenance, period, None, now)
            except Exception:
                log.exception("report %s: building it failed", label)
                for fmt in reports.formats:
                    self._fail(fmt)
                continue
            figures = fingerprint(report)
            for fmt in reports.formats:
                try:
                    path = await self._write(reports, report, ReportFormat(fmt), figures, now)
                except Exception as exc:
                    log.error("report %s: writing %s into %s failed: %s", label, fmt,
                              reports.dir, exc)
                    self._fail(fmt)
                    continue
                if path is not None:
                    written.append(path)
        return written

    async def _write(self, reports: ReportsConfig, report: Report, fmt: ReportFormat,
                     figures: str, now: float) -> Path | None:
        label = report.header.period.label
        before = await self._store.get(label, reports.timezone, fmt.value)
        assert reports.dir is not None  # checked by the caller
        directory = reports.dir
        target = directory / filename(report, fmt)
        if before is not None and before.fingerprint == figures and target.exists():
            return None
        data = await asyncio.to_thread(self._render, report, fmt)
        kept: Path | None = None

        def put() -> None:
            nonlocal kept
            directory.mkdir(parents=True, exist_ok=True)
            if target.exists():
                when = before.written_at if before is not None else target.stat().st_mtime
                kept = _keep_earlier(target, when)
            _write_atomically(target, data)

        await asyncio.to_thread(put)
        await self._store.record(Written(
            period=label, timezone=reports.timezone, format=fmt.value, fingerprint=figures,
            path=str(target), written_at=now,
            versions=(before.versions + 1) if before is not None else 1))
        self.counters.written[fmt.value] = self.counters.written.get(fmt.value, 0) + 1
        self.counters.last_written[fmt.value] = now
        if kept is None:
            log.info("report %s (%s) written: %s", label, reports.timezone, target)
        else:
            log.info("report %s (%s) changed: written again: %s; the earlier one is kept "
                     "as %s", label, reports.timezone, target, kept.name)
        return target

    async def recent(self, limit: int = 12) -> list[Written]:
        return await self._store.recent(limit)

    def wake(self) -> None:
        """Check now rather than at the next hour (after a config reload)."""
        self._wake.set()

    async def loop(self) -> None:
        # The first check waits for the first collection, which brings the vessels'
        # latest hours in.
        await self._service.ready.wait()
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("report schedule failed")
            sleeping = asyncio.ensure_future(self._sleep(RECHECK_SECONDS))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeping, woken):
                    task.cancel()


def metrics_text(counters: ReportCounters) -> bytes:
    """The schedule's families for /metrics; empty without a schedule."""
    return generate_latest(ReportsCollector(counters))
