"""`fleet-receiver`: serve the webhook and approval page, check a config, hash a password."""

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from fleet_common.durations import format_duration

from .config import ConfigError, load_config
from .errors import Unavailable
from .passwords import hash_password
from .web import HEADER_TIMEOUT, create_app

log = logging.getLogger("receiver")


def _with_incident(record: logging.LogRecord) -> bool:
    """Every line carries an incident field, "-" when it is about none."""
    if not hasattr(record, "incident"):
        record.incident = "-"
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fleet-receiver",
        description="Alertmanager webhook receiver: incidents, approvals, JIRA tickets.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("hash-password", help="read a password on stdin, print its hash")
    parser.add_argument("--config", help="path to the YAML config")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the config and exit (0 when valid)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.command is None and not args.config:
        parser.error("--config is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "hash-password":
        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline()
        password = password.rstrip("\n")
        if not password:
            print("fleet-receiver: empty password", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_with_incident)
    handler.setFormatter(logging.Formatter(
        "ts=%(asctime)s level=%(levelname)s logger=%(name)s incident=%(incident)s"
        " msg=%(message)r"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"fleet-receiver: config error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"config ok: {len(config.users)} users, "
              f"{'JIRA ' + config.jira.url if config.jira else 'dry-run tickets'}")
        print(f"incidents.alert_expiry {format_duration(config.incidents.alert_expiry)}: a"
              " firing alert Alertmanager has not sent for this long counts as gone, and its"
              " incident resolves when no alert fires. It must exceed Alertmanager's"
              " repeat_interval (the longest of all routes; 24h shipped), which re-sends"
              " every firing alert, or firing incidents resolve and reopen.")
        return 0
    log.info("serving on %s:%d", config.listen_host, config.listen_port)
    try:
        web.run_app(create_app(config), host=config.listen_host, port=config.listen_port,
                    print=None, access_log=None, keepalive_timeout=HEADER_TIMEOUT,
                    lingering_time=min(2.0, HEADER_TIMEOUT))
    except (OSError, Unavailable) as exc:
        print(f"fleet-receiver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
