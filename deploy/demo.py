"""`make demo`: the whole stack on loopback, without containers.

InfluxDB seeded with a simulated fleet, the exporter, Prometheus with the shipped rules,
Alertmanager with the shipped routing and the receiver with dry-run tickets. Prints the
URLs, says when the first incidents wait for approval, and stops everything on Ctrl-C.
Run it with the project's venv: .venv/bin/python deploy/demo.py --help
"""

import argparse
import asyncio
import base64
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's packages, also when not installed

from receiver.incidents import facts  # noqa: E402
from receiver.passwords import hash_password  # noqa: E402
from simulator.fleetconfig import fleet_config, unused_loopback_url, write_fleet_config  # noqa: E402
from simulator.influx import SeedError, seed  # noqa: E402
from simulator.ledger_history import history_end, history_start, seed_ledger  # noqa: E402
from simulator.scenarios import plan_fleet  # noqa: E402

USER, PASSWORD = "demo", "demo"
PORTS = {"influx": 18086, "exporter": 19470, "receiver": 19471, "prometheus": 19090,
         "alertmanager": 19093}
BINARIES = {"influxd": "influxdb", "prometheus": "prometheus",
            "prometheus-alertmanager": "prometheus-alertmanager"}


def iso_day(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vessels", type=int, default=int(os.environ.get("VESSELS", 66)),
                        help="simulated vessels (default 66, or $VESSELS)")
    parser.add_argument("--dir", type=Path, default=ROOT / ".demo",
                        help="state and logs, wiped at start (default .demo)")
    parser.add_argument("--alert-for", default="15s",
                        help="every rule's `for:` in the demo, so alerts show in about a "
                             "minute instead of after 5-30 m (default 15s)")
    parser.add_argument("--interval", default="5s",
                        help="scrape, rule evaluation and collection interval (default 5s)")
    for name, port in PORTS.items():
        extra = "; influxd also binds this + 2 for RPC" if name == "influx" else ""
        parser.add_argument(f"--{name}-port", type=int, default=port,
                            help=f"default {port}{extra}")
    args = parser.parse_args(argv)
    if args.vessels < 1:
        parser.error("--vessels must be at least 1")
    return args


def check_ports(ports: list[tuple[str, int]]) -> None:
    for name, port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                sys.exit(f"demo: port {port} ({name}) is taken; pass --{name}-port")


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if not found:
        sys.exit(f"demo: {name} not found; `make deps` installs it "
                 f"(apt-get install {BINARIES[name]})")
    return found


def _die_with_parent() -> None:
    # Linux: a child gets SIGTERM if the demo itself is killed, so nothing is left behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def http_ok(url: str, auth: str | None = None) -> bool:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return 200 <= response.status < 300
    except (OSError, urllib.error.HTTPError):
        return False


class Stack:
    """Child processes, each with a log file; stopped in reverse order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, command: list[str], ready_url: str | None,
              timeout: float = 60) -> None:
        log = self.directory / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, cwd=self.directory, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=_die_with_parent)
        self.children.append((name, proc))
        deadline = time.monotonic() + timeout
        while ready_url and not http_ok(ready_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"{name} did not start; {log}:\n{tail}")
            time.sleep(0.2)

    def exited(self) -> str | None:
        for name, proc in self.children:
            if proc.poll() is not None:
                return f"{name} exited with {proc.returncode}; see {self.directory}/{name}.log"
        return None

    def stop(self) -> None:
        for _, proc in reversed(self.children):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.children):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()


def influx_config(directory: Path, port: int) -> Path:
    path = directory / "influxdb.conf"
    path.write_text(f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{port + 2}"
[meta]
  dir = "{directory}/influx/meta"
[data]
  dir = "{directory}/influx/data"
  wal-dir = "{directory}/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
""", encoding="utf-8")
    return path


def demo_rules(path: Path, alert_for: str) -> Path:
    """The shipped rules, with every `for:` cut so the demo shows alerts within minutes."""
    text = (ROOT / "rules" / "fleet-sla.rules.yml").read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^(\s+for:) \S+$", rf"\1 {alert_for}", text), encoding="utf-8")
    return path


def prometheus_config(args: argparse.Namespace, rules: Path) -> dict[str, Any]:
    """The shipped Prometheus config, pointed at the demo's loopback ports."""
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    config["global"].update(scrape_interval=args.interval, evaluation_interval=args.interval)
    config["rule_files"] = [str(rules)]
    ports = {"exporter": args.exporter_port, "receiver": args.receiver_port,
             "alertmanager": args.alertmanager_port, "localhost": args.prometheus_port}

    def local(target: str) -> str:
        return f"127.0.0.1:{ports[target.split(':')[0]]}"

    for job in config["scrape_configs"]:
        job.pop("scrape_timeout", None)  # must not exceed the shortened interval
        for static in job["static_configs"]:
            static["targets"] = [local(t) for t in static["targets"]]
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            static["targets"] = [local(t) for t in static["targets"]]
    return config


def alertmanager_config(args: argparse.Namespace, token_file: Path) -> dict[str, Any]:
    """The shipped routing, delivering to the demo's receiver after a short wait."""
    config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    config["route"].update(group_wait="5s", group_interval="30s")
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"http://127.0.0.1:{args.receiver_port}/api/v1/alerts"
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return config


def receiver_config(args: argparse.Namespace, token: str) -> dict[str, Any]:
    return {
        # Incidents link back to the vessel's page in the exporter's console.
        "links": {"console": f"http://127.0.0.1:{args.exporter_port}/"},
        "listen": f"127.0.0.1:{args.receiver_port}",
        "database": str(args.dir / "receiver.db"),
        "webhook": {"bearer_token": token},
        "users": [{"name": USER, "password_hash": hash_password(PASSWORD),
                   "role": "approver"}],
        # No `jira:` section: tickets are dry-run (DRY-<incident>).
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def pending(args: argparse.Namespace) -> list[dict[str, Any]]:
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{args.receiver_port}/api/v1/incidents?state=pending",
        headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.load(response)["incidents"]
    except (OSError, ValueError, KeyError):
        return []


def run(args: argparse.Namespace, stack: Stack) -> int:
    directory: Path = args.dir
    influx_url = f"http://127.0.0.1:{args.influx_port}"
    binaries = {name: binary(name) for name in BINARIES}

    stack.start("influxd", [binaries["influxd"], "-config",
                            str(influx_config(directory, args.influx_port))],
                f"{influx_url}/ping")
    vessels = plan_fleet(args.vessels)
    started, anchor = time.monotonic(), int(time.time())
    # InfluxDB gets the last 5 days and back to the midnight before them; the exporter's
    # ledger the history before that, from the first of last month, so that last month's
    # report is there at once.
    days = (anchor - history_end(anchor) + 120) / 86400
    say(f"seeding {len(vessels)} vessels ({days:.1f} days of pings each) into {influx_url}")
    try:
        points = asyncio.run(seed(influx_url, vessels, anchor, days=days))
    except SeedError as exc:
        say(f"seeding failed: {exc}")
        return 1
    rows = asyncio.run(seed_ledger(directory / "exporter.db", vessels, anchor))
    say(f"seeded {points:,} points in {time.monotonic() - started:.0f} s, and the ledger "
        f"from {iso_day(history_start(anchor))} to {iso_day(history_end(anchor))} "
        f"({rows:,} device-days)")
    # Keeps the fleet live, one sample per device a minute, so nothing goes stale.
    stack.start("simulator", [sys.executable, "-m", "simulator.cli", "--influx-url", influx_url,
                              "--vessels", str(args.vessels), "--now", str(anchor),
                              "--no-seed", "--follow"], None)

    exporter = fleet_config(vessels, influx_url, unused_loopback_url(), anchor,
                            interval=args.interval,
                            state_path=str(directory / "exporter.db"))
    exporter["listen"] = f"127.0.0.1:{args.exporter_port}"
    exporter["links"] = {"receiver": f"http://127.0.0.1:{args.receiver_port}/"}
    # Last month's report is written at once: the demo's history is in the ledger.
    exporter["reports"] = {"dir": str(directory / "reports"), "formats": ["pdf", "csv"],
                           "timezone": "UTC", "grace": "1m"}
    write_fleet_config(directory / "fleet.yml", exporter)
    token = secrets.token_hex(16)
    token_file = directory / "receiver-token"
    token_file.write_text(token, encoding="utf-8")
    write_yaml(directory / "receiver.yml", receiver_config(args, token))
    write_yaml(directory / "alertmanager.yml", alertmanager_config(args, token_file))
    rules = demo_rules(directory / "fleet-sla.rules.yml", args.alert_for)
    write_yaml(directory / "prometheus.yml", prometheus_config(args, rules))

    urls = {name: f"http://127.0.0.1:{getattr(args, f'{name}_port')}" for name in PORTS}
    python = sys.executable
    stack.start("exporter", [python, "-m", "exporter", "--config", "fleet.yml"],
                f"{urls['exporter']}/healthz")
    stack.start("receiver", [python, "-m", "receiver", "--config", "receiver.yml"],
                f"{urls['receiver']}/healthz")
    stack.start("alertmanager", [
        binaries["prometheus-alertmanager"], "--config.file=alertmanager.yml",
        f"--storage.path={directory}/alertmanager", "--cluster.listen-address=",
        f"--web.listen-address=127.0.0.1:{args.alertmanager_port}",
        f"--web.external-url={urls['alertmanager']}",
    ], f"{urls['alertmanager']}/-/ready")
    stack.start("prometheus", [
        binaries["prometheus"], "--config.file=prometheus.yml",
        f"--storage.tsdb.path={directory}/prometheus",
        f"--web.listen-address=127.0.0.1:{args.prometheus_port}",
        f"--web.external-url={urls['prometheus']}",
    ], f"{urls['prometheus']}/-/ready")

    print(f"""
  console        {urls['exporter']}/          the fleet's SLA, vessels, devices and runs
  reports        {urls['exporter']}/reports   last month's SLA report; PDF, CSV, XLSX, JSON
  approval page  {urls['receiver']}/          sign in as {USER} / {PASSWORD}
  metrics        {urls['exporter']}/metrics
  prometheus     {urls['prometheus']}/classic/alerts
  alertmanager   {urls['alertmanager']}/api/v2/alerts   (Debian's package has no web UI; amtool)
  influxdb       {influx_url}   (/ping, /query)
  logs, configs  {directory}/

Alert `for:` durations are cut to {args.alert_for} so the 3-day alerts show within a minute
or two. Tickets are dry-run. Ctrl-C stops everything.
""", flush=True)

    announced = False
    while True:
        failed = stack.exited()
        if failed:
            say(failed)
            return 1
        if not announced and (waiting := pending(args)):
            names = sorted({facts(i["details"], i["labels"], i["opened_at"])["vessel_name"]
                            for i in waiting})
            count = f"{len(waiting)} incident{'s' if len(waiting) != 1 else ''}"
            say(f"{count} wait{'s' if len(waiting) == 1 else ''} for approval "
                f"({', '.join(names)}): {urls['receiver']}/")
            announced = True
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.dir = args.dir.resolve()
    check_ports([(name, getattr(args, f"{name}_port")) for name in PORTS]
                + [("influx", args.influx_port + 2)])  # influxd's RPC port
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and kill stop the same way; SIGINT explicitly, as a shell ignores it for
    # background jobs and Python then keeps it ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    stack = Stack(args.dir)
    try:
        code = run(args, stack)
    except KeyboardInterrupt:
        code = 0
    except RuntimeError as exc:
        say(str(exc))
        code = 1
    finally:
        say("stopping")
        stack.stop()
    say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
