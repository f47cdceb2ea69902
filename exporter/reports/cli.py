"""`fleet-exporter report`: a report from the state DB, written to a file or stdout.

The DB is opened read-only, so a running exporter is not disturbed (SQLite's WAL lets it
write meanwhile). Bad input exits 2 naming the field, and nothing is written.
"""

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiosqlite

from ..config import Config, ConfigError, load_config
from .build import build_report
from .formats import SHOWS_STRIPS, ReportFormat, filename, render
from .model import Report
from .period import ReportError, parse_period, zone


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fleet-exporter report",
        description="Write the SLA report of a period from the exporter's ledger.")
    parser.add_argument("--config", required=True, help="path to the YAML config")
    parser.add_argument("--period", help="YYYY-MM, YYYY-Qn or YYYY (default: the last full"
                                         " month)")
    parser.add_argument("--from", dest="start", help="RFC 3339 start, with --to")
    parser.add_argument("--to", dest="end", help="RFC 3339 end (exclusive), with --from")
    parser.add_argument("--timezone", help="IANA timezone (default: reports.timezone, UTC)")
    parser.add_argument("--vessel", action="append", help="only this vessel (repeatable)")
    parser.add_argument("--format", choices=[f.value for f in ReportFormat],
                        help="default: from the --output name's extension, else html")
    parser.add_argument("--output", help="file to write (default: stdout)")
    return parser.parse_args(argv)


def _format(args: argparse.Namespace) -> ReportFormat:
    if args.format is not None:
        return ReportFormat(args.format)
    suffix = Path(args.output).suffix.lstrip(".").lower() if args.output else ""
    try:
        return ReportFormat(suffix)
    except ValueError:
        if args.output:
            raise ReportError("format", f"give --format: {suffix or 'no extension'!r} names"
                                        " no format") from None
        return ReportFormat.HTML


async def make(config: Config, args: argparse.Namespace, now: float) -> Report:
    timezone = args.timezone or config.reports.timezone
    zone(timezone)
    period = parse_period(period=args.period, start=args.start, end=args.end,
                          timezone=timezone, now=now)
    path = config.state_path
    if not path.exists():
        raise FileNotFoundError(f"state database {path} not found: has the exporter run?")
    async with aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        return await build_report(db, None, config, config.maintenance, period,
                                  args.vessel, now, strips=_format(args) in SHOWS_STRIPS)


def _write(data: bytes, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = Path(output)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: Sequence[str], clock: Callable[[], float] = time.time) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"fleet-exporter report: config error: {exc}", file=sys.stderr)
        return 2
    try:
        fmt = _format(args)
        report = asyncio.run(make(config, args, clock()))
        data = render(report, fmt)
        _write(data, args.output)
    except ReportError as exc:
        print(f"fleet-exporter report: {exc}", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as exc:
        print(f"fleet-exporter report: {exc}", file=sys.stderr)
        return 1
    if args.output and args.output != "-":
        print(f"wrote {args.output} ({len(data)} bytes; suggested name "
              f"{filename(report, fmt)})", file=sys.stderr)
    return 0
