"""`fleet-simulator`: seed InfluxDB with a simulated fleet, keep it live, write its config."""

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence

from simulator.fleetconfig import fleet_config, unused_loopback_url, write_fleet_config
from simulator.influx import SeedError, follow, seed
from simulator.scenarios import SCENARIOS, plan_fleet


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet-simulator",
        description="Write simulated Telegraf ping data for a fleet into InfluxDB 1.x "
        "and an exporter config that points at it.",
    )
    parser.add_argument("--influx-url", default="http://127.0.0.1:8086")
    parser.add_argument("--username", help="InfluxDB user, when auth is enabled")
    parser.add_argument("--password", help="InfluxDB password, when auth is enabled")
    parser.add_argument("--vessels", type=int, default=8, help="number of vessels (default 8)")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated scenarios assigned round-robin (default: {','.join(SCENARIOS)})",
    )
    parser.add_argument("--devices-per-vessel", type=int, default=4)
    parser.add_argument("--id-prefix", default="v", help="vessel id prefix (default v)")
    parser.add_argument("--days", type=float, default=5.0, help="history to write (default 5)")
    parser.add_argument("--interval", type=int, default=60, help="seconds between samples")
    parser.add_argument("--config-out", help="also write an exporter config for the fleet here")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="after seeding, write one sample per device every --interval until stopped, "
        "each device keeping its scenario's state",
    )
    parser.add_argument(
        "--no-seed", action="store_true", help="write no history (with --follow and the "
        "earlier seeding's --now: go on from it)",
    )
    parser.add_argument(
        "--unreachable-url",
        help="InfluxDB URL for 'unreachable' vessels (default: a free loopback port)",
    )
    parser.add_argument("--now", type=int, help="anchor time, epoch seconds (default: now)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s] if args.scenarios else None
    try:
        vessels = plan_fleet(args.vessels, scenarios, args.devices_per_vessel, args.id_prefix)
    except ValueError as exc:
        print(f"fleet-simulator: {exc}", file=sys.stderr)
        return 2
    now = args.now if args.now is not None else int(time.time())

    if not args.no_seed:
        started = time.monotonic()
        try:
            points = asyncio.run(
                seed(
                    args.influx_url,
                    vessels,
                    now,
                    days=args.days,
                    interval=args.interval,
                    username=args.username,
                    password=args.password,
                )
            )
        except (SeedError, ValueError) as exc:
            print(f"fleet-simulator: {exc}", file=sys.stderr)
            return 1
        print(f"seeded {len(vessels)} vessels, {points} points in "
              f"{time.monotonic() - started:.2f} s", flush=True)

    if args.config_out:
        config = fleet_config(
            vessels,
            args.influx_url,
            args.unreachable_url or unused_loopback_url(),
            now,
            sample_interval=args.interval,
        )
        try:
            write_fleet_config(args.config_out, config)
        except OSError as exc:
            print(f"fleet-simulator: cannot write {args.config_out}: {exc}", file=sys.stderr)
            return 1
        print(f"config written to {args.config_out}", flush=True)

    if args.follow:
        print(f"following: one sample per device every {args.interval} s", flush=True)
        # Stop cleanly on SIGTERM too, also as a container's PID 1 (which ignores it).
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(follow(args.influx_url, vessels, now, args.interval, args.username,
                               args.password, on_error=_report))
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _report(exc: SeedError) -> None:
    print(f"fleet-simulator: {exc}; trying again next interval", file=sys.stderr, flush=True)

if __name__ == "__main__":
    sys.exit(main())
