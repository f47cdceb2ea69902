"""Reports against ground truth: a month of known pings in a real influxd 1.6, collected by
the exporter with an injected clock, reported by the CLI in every format."""

import asyncio
import csv
import io
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from exporter.cli import main
from exporter.config import load_config
from exporter.reports import text
from exporter.reports.build import build_report
from exporter.reports.model import Report
from exporter.reports.period import parse_period
from exporter.reports.table import COLUMNS
from exporter.service import open_service
from simulator.fleetconfig import write_fleet_config
from tests.helpers import Clock, Metrics
from tests.html_tree import parse
from tests.report_truth import Plan, Truth, lines, plan, truth
from tests.servers import InfluxServer

VESSEL = "caledonia"
ZONES = ("Europe/Oslo", "Asia/Kolkata")  # whole-hour offsets with DST; a half-hour one
MINUTE = 60.0


@dataclass
class Collected:
    plan: Plan
    config: Path
    config_down: Path  # the same ledger under sla.unknown: down
    metrics: Metrics  # the exporter's gauges at the plan's clock
    rolling: Report  # the report of the 24 h before the clock, from the live ledger
    out: Path


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _config(p: Plan, influx: str, state: Path, unknown: str) -> dict[str, Any]:
    return {
        "listen": "127.0.0.1:9470",
        "collection": {"interval": "5m", "timeout": "30s", "attempts": 1, "lookback": "400d"},
        "sla": {"objective": 0.95, "unknown": unknown},
        "state": {"path": str(state)},
        "ledger": {"backfill": "45d", "max_catchup": "7d"},
        "defaults": {"sample_interval": "5m"},
        "maintenance": [{"id": "srv-patch", "vessels": [VESSEL], "components": ["server"],
                         "start": _iso(p.maintenance[0][0]), "end": _iso(p.maintenance[0][1]),
                         "reason": "server patching", "reference": "OPS-7"}],
        "vessels": [{"id": VESSEL, "name": "MV Caledonia",
                     "influx": {"url": influx, "database": "reports_caledonia"},
                     "devices": [{"address": d.address, "component": d.component,
                                  "name": d.name} for d in p.devices]}],
    }


async def _collect(path: Path, p: Plan) -> tuple[Metrics, Report]:
    config = load_config(path)
    clock = Clock(p.clock)
    async with open_service(config, clock=clock) as service:
        for _ in range(20):  # 7 days of points a request
            await service.run_once()
            books = service.ledger.vessels.get(VESSEL)
            if books is not None and books.frozen_until >= p.clock - 600:
                break
        metrics = Metrics(service.cache.body(clock()).decode())
        period = parse_period(period=None, start=_iso(p.clock - 86400), end=_iso(p.clock),
                              timezone="UTC", now=p.clock)
        report = await build_report(service.runlog.db, service.ledger, config,
                                    config.maintenance, period, None, p.clock)
    return metrics, report


@pytest.fixture(scope="module")
def collected(influxd: InfluxServer, tmp_path_factory: pytest.TempPathFactory) -> Collected:
    p = plan(time.time())
    seeded = lines(p.devices)
    for k in range(0, len(seeded), 20000):
        influxd.write("reports_caledonia", seeded[k:k + 20000])
    root = tmp_path_factory.mktemp("reports")
    state = root / "exporter.db"
    path, down = root / "fleet.yml", root / "fleet-down.yml"
    write_fleet_config(path, _config(p, influxd.url, state, "exclude"))
    write_fleet_config(down, _config(p, influxd.url, state, "down"))
    metrics, rolling = asyncio.run(_collect(path, p))
    out = root / "out"
    out.mkdir()
    for fmt in ("json", "csv", "xlsx", "html", "pdf"):
        assert main(["report", "--config", str(path), "--period", p.month, "--format", fmt,
                     "--output", str(out / f"month.{fmt}")]) == 0
    assert main(["report", "--config", str(down), "--period", p.month,
                 "--output", str(out / "down.json")]) == 0
    for zone in ZONES:
        assert main(["report", "--config", str(path), "--period", p.month, "--timezone", zone,
                     "--output", str(out / f"{zone.replace('/', '-')}.json")]) == 0
    return Collected(p, path, down, metrics, rolling, out)


def _truths(p: Plan, start: float | None = None,
            end: float | None = None) -> dict[str, Truth]:
    held = {"server": p.maintenance, "access_point": ()}
    lo, hi = p.start if start is None else start, p.end if end is None else end
    return {d.name: truth(d.points, held[d.component], lo, hi) for d in p.devices}


def _combined(parts: list[Truth]) -> Truth:
    return Truth(sum(t.up for t in parts), sum(t.down for t in parts),
                 sum(t.held for t in parts), sum(t.outages for t in parts),
                 max(t.longest for t in parts))


def _figures(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """component name and device name -> figures, of the one vessel."""
    (vessel,) = doc["vessels"]
    out = {}
    for c in vessel["components"]:
        out[c["name"]] = c["figures"]
        for d in c["devices"]:
            out[d["name"]] = d["figures"]
    return out


def _check(f: dict[str, Any], t: Truth, length: float, members: int,
           unknown: str = "exclude") -> None:
    assert f["uptime"] == pytest.approx(t.uptime(length * members, unknown), abs=1e-4)
    assert f["up"] == pytest.approx(t.up, abs=MINUTE)
    assert f["down"] == pytest.approx(t.down, abs=MINUTE)
    assert f["maintenance"] == pytest.approx(t.held, abs=MINUTE)
    assert f["unobserved"] + f["unheld"] == pytest.approx(t.unobserved(length * members),
                                                          abs=MINUTE)
    assert f["outages"] == t.outages
    assert f["longest"] == pytest.approx(t.longest, abs=MINUTE)


class TestMonthAgainstGroundTruth:
    def test_devices_match_the_raw_points(self, collected: Collected):
        p = collected.plan
        doc = json.loads((collected.out / "month.json").read_text())
        figures, truths = _figures(doc), _truths(p)
        length = p.end - p.start
        for name, t in truths.items():
            _check(figures[name], t, length, 1)
            assert figures[name]["coverage"] == pytest.approx(t.coverage(length), abs=1e-4)
        # What the month holds, by construction: the 5 h outage that began the month
        # before counts its whole length but not as an outage of this month.
        assert figures["srv-1"]["outages"] == 2
        assert figures["srv-1"]["longest"] == pytest.approx(5 * 3600 - 60, abs=MINUTE)
        assert figures["srv-1"]["maintenance"] == pytest.approx(3.5 * 3600, abs=MINUTE)
        assert figures["ap-1"]["unobserved"] == pytest.approx(6 * 3600, abs=MINUTE)
        assert figures["srv-2"]["outages"] == 2

    def test_components_combine_devices_as_the_metrics_do(self, collected: Collected):
        p = collected.plan
        doc = json.loads((collected.out / "month.json").read_text())
        figures, truths = _figures(doc), _truths(p)
        length = p.end - p.start
        server = _combined([truths["srv-1"], truths["srv-2"]])
        _check(figures["server"], server, length, 2)
        _check(figures["access_point"], truths["ap-1"], length, 1)
        f = figures["server"]
        counted = server.up + server.down
        assert f["budget_used"] == pytest.approx(server.down / (0.05 * counted), rel=1e-4)
        assert f["time_to_recover"] == pytest.approx(f["down"] / f["outages"])
        assert f["met"] is (f["uptime"] >= 0.95)
        assert doc["header"]["gaps"] == []
        summary = doc["summary"]
        met = sum(1 for c in ("server", "access_point") if figures[c]["met"])
        assert summary["current"] == {
            "label": p.month, "met": met, "with_data": 2, "components": 2,
            "uptime": pytest.approx((figures["server"]["up"] + figures["access_point"]["up"])
                                    / (figures["server"]["counted"]
                                       + figures["access_point"]["counted"]))}
        # The month before holds only the last three days of it, with srv-1's outage.
        assert summary["previous"]["with_data"] == 2
        assert summary["previous"]["label"] < p.month
        assert [r["component"] for r in summary["worst"]] == sorted(
            ("server", "access_point"),
            key=lambda c: figures[c]["uptime"] - figures[c]["objective"])
        (window,) = doc["header"]["policy"]["maintenance"]
        assert (window["id"], window["seconds"]) == ("srv-patch", 3.5 * 3600)

    def test_unknown_down_counts_unobserved_time_as_down(self, collected: Collected):
        p = collected.plan
        doc = json.loads((collected.out / "down.json").read_text())
        figures, truths = _figures(doc), _truths(p)
        length = p.end - p.start
        _check(figures["ap-1"], truths["ap-1"], length, 1, "down")
        assert figures["ap-1"]["downtime"] == pytest.approx(
            truths["ap-1"].down + truths["ap-1"].unobserved(length), abs=MINUTE)
        assert doc["header"]["policy"]["unknown"] == "down"


class TestTimezones:
    @pytest.mark.parametrize("zone", ZONES)
    def test_the_month_in_another_timezone_matches_the_raw_points(self, collected: Collected,
                                                                  zone: str):
        """Oslo's midnights are whole UTC hours; Kolkata's fall at 18:30 UTC, where the
        ledger's hour is split by share: exact here, the devices being in one state
        through those hours."""
        doc = json.loads((collected.out / f"{zone.replace('/', '-')}.json").read_text())
        period = doc["header"]["period"]
        assert period["timezone"] == zone
        assert doc["header"]["edges_weighed"] is (zone == "Asia/Kolkata")
        start, end = period["start"], period["end"]
        assert start != collected.plan.start
        figures, truths = _figures(doc), _truths(collected.plan, start, end)
        for name, t in truths.items():
            _check(figures[name], t, end - start, 1)
        _check(figures["server"], _combined([truths["srv-1"], truths["srv-2"]]),
               end - start, 2)
        days = len(next(c for c in doc["vessels"][0]["components"])["strip"])
        assert days == round((end - start) / 86400)


class TestRollingAgreesWithReport:
    def test_the_24h_gauges_and_a_report_of_the_same_24h(self, collected: Collected):
        m = collected.metrics
        (vessel,) = collected.rolling.vessels
        checked = 0
        for c in vessel.components:
            labels = {"vessel": VESSEL, "component": c.name, "window": "24h"}
            assert c.figures.uptime == pytest.approx(
                m.get("fleet_component_uptime_ratio", **labels), abs=1e-12)
            assert c.figures.coverage == pytest.approx(
                m.get("fleet_component_coverage_ratio", **labels), abs=1e-12)
            for d in c.devices:
                dl = {**labels, "device": d.name, "address": d.address}
                assert d.figures.uptime == pytest.approx(
                    m.get("fleet_device_uptime_ratio", **dl), abs=1e-12)
                checked += 1
        assert checked == 3
        assert vessel.complete
        # The 24 h hold the end of the outage that crossed the month's end: not all up.
        assert vessel.components[1].devices[0].figures.down > 0


def _json_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for v in doc["vessels"]:
        for c in v["components"]:
            rows.append((c["figures"], c["previous"]["uptime"], c["name"], None))
            rows.extend((d["figures"], None, c["name"], d["name"]) for d in c["devices"])
    keys = {"up_seconds": "up", "down_seconds": "down", "maintenance_seconds": "maintenance",
            "unobserved_seconds": "unobserved", "unheld_seconds": "unheld",
            "counted_seconds": "counted", "downtime_seconds": "downtime",
            "longest_outage_seconds": "longest", "time_to_recover_seconds": "time_to_recover"}
    out = []
    for f, prev, component, device in rows:
        row = {c: f[keys.get(c, c)] for c in COLUMNS if keys.get(c, c) in f}
        out.append({**row, "component": component, "device": device, "previous_uptime": prev})
    return out


def _csv_value(raw: str) -> Any:
    if raw == "":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw


class TestEveryFormatCarriesTheSameNumbers:
    def _expected(self, collected: Collected) -> list[dict[str, Any]]:
        return _json_rows(json.loads((collected.out / "month.json").read_text()))

    def test_csv(self, collected: Collected):
        body = (collected.out / "month.csv").read_text()
        data = "\n".join(line for line in body.splitlines() if not line.startswith("#"))
        got = list(csv.DictReader(io.StringIO(data)))
        expected = self._expected(collected)
        assert len(got) == len(expected) == 5
        for row, want in zip(got, expected, strict=True):
            for key, value in want.items():
                assert _csv_value(row[key]) == value, key

    def test_xlsx(self, collected: Collected):
        book = openpyxl.load_workbook(collected.out / "month.xlsx", read_only=True)
        sheet = book["Figures"]
        table = list(sheet.iter_rows(values_only=True))
        header, body = table[0], table[1:]
        expected = self._expected(collected)
        assert len(body) == len(expected)
        for values, want in zip(body, expected, strict=True):
            row = dict(zip(header, values, strict=True))
            for key, value in want.items():
                if isinstance(value, float):  # XLSX keeps 16 significant digits
                    assert row[key] == pytest.approx(value, rel=1e-15, abs=0), key
                else:
                    assert row[key] == value, key
        strips = list(book["Strips"].iter_rows(values_only=True))
        days = (collected.plan.end - collected.plan.start) // 86400
        assert len(strips) - 1 == 2 * days  # two components, a cell a day
        book.close()

    def test_html(self, collected: Collected):
        page = parse((collected.out / "month.html").read_text())
        section = page.by_id(f"vessel-{VESSEL}")
        rows = section.one("table", "figures").table()
        expected = self._expected(collected)
        assert len(rows) == len(expected)
        for row, want in zip(rows, expected, strict=True):
            assert row["Uptime"] == text.percent(want["uptime"])
            assert row["Coverage"] == text.percent(want["coverage"])
            assert row["Budget used"] == text.percent(want["budget_used"])
            assert row["Downtime"] == text.minutes(want["downtime_seconds"])
            assert row["Longest"] == text.minutes(want["longest_outage_seconds"])
            assert row["Outages"] == str(want["outages"])
            assert row["Objective met"] == text.met(want["met"])
        strips = section.all("div", "strip")
        assert len(strips) == 2
        cells = strips[1].all("span")
        assert len(cells) == (collected.plan.end - collected.plan.start) // 86400
        assert "missed" in {c.attrs["class"] for c in cells}

    @pytest.mark.skipif(shutil.which("pdftotext") is None, reason="no pdftotext")
    def test_pdf(self, collected: Collected):
        done = subprocess.run(["pdftotext", "-layout", str(collected.out / "month.pdf"), "-"],
                              capture_output=True, text=True, check=True, timeout=60)
        lines = done.stdout.splitlines()
        expected = self._expected(collected)
        for want in expected:
            name = want["device"] or want["component"]
            line = next(line for line in lines if line.strip().startswith(name + " "))
            for shown in (text.percent(want["uptime"]), text.percent(want["coverage"]),
                          text.minutes(want["downtime_seconds"]),
                          text.minutes(want["longest_outage_seconds"])):
                assert shown in line, (name, shown, line)
        assert f"SLA report {collected.plan.month}" in done.stdout
