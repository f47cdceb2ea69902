"""`fleet-exporter`: serve metrics, check a config, or run one collection."""

import argparse
import asyncio
import logging
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from .config import Config, ConfigError, load_config
from .service import open_service
from .web import create_app

log = logging.getLogger("exporter")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fleet-exporter",
        description="Export per-device and per-component uptime of a fleet's InfluxDBs."
        " `fleet-exporter report --help`: SLA reports from the ledger.",
    )
    parser.add_argument("--config", required=True, help="path to the YAML config")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check-config", action="store_true", help="validate the config and exit (0 when valid)"
    )
    mode.add_argument(
        "--once",
        action="store_true",
        help="run one collection, print the metrics to stdout and exit",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser.parse_args(argv)


async def run_once(config: Config) -> bytes:
    async with open_service(config) as service:
        await service.run_once()
        return service.cache.body(service.clock())


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        from .reports.cli import main as report_main
        return report_main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"fleet-exporter: config error: {exc}", file=sys.stderr)
        return 2
    devices = sum(len(v.devices) for v in config.vessels)
    if args.check_config:
        windows = len(config.maintenance.windows)
        print(f"config ok: {len(config.vessels)} vessels, {devices} devices"
              + (f", {windows} maintenance window{'s' if windows > 1 else ''}"
                 if windows else ""))
        return 0
    try:
        if args.once:
            # Failed vessels are reported in the metrics, so the exit code stays 0.
            sys.stdout.buffer.write(asyncio.run(run_once(config)))
            sys.stdout.flush()
            return 0
        log.info("serving %d vessels, %d devices on %s:%d", len(config.vessels), devices,
                 config.listen_host, config.listen_port)
        web.run_app(create_app(config, config_path=Path(args.config)),
                    host=config.listen_host, port=config.listen_port, print=None,
                    access_log=None)
    except sqlite3.Error as exc:
        print(f"fleet-exporter: state database {config.state_path}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fleet-exporter: {exc}", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
