"""Reports over HTTP and on a schedule: GET /api/v1/reports, the console's /reports page,
and the monthly files the exporter writes (fleet.yml `reports:`).

The fleet's history is written into the ledger as the demo does it
(simulator/ledger_history.py): November 2026 whole, every vessel's InfluxDB out of reach,
so the reports read what the ledger holds and nothing else.
"""

import asyncio
import contextlib
import json
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.appkeys import REPORTS, SERVICE
from exporter.config import ConfigError, parse_config
from exporter.report_schedule import ReportScheduler, due_months
from exporter.report_store import ReportStore
from exporter.reports.formats import ReportFormat, render
from exporter.reports.model import Report
from simulator.fleetconfig import fleet_config, unused_loopback_url, write_fleet_config
from simulator.ledger_history import seed_ledger
from simulator.scenarios import plan_fleet
from tests.helpers import Clock, Ticks, assert_promtool_clean, scrape

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC).timestamp()  # November closed 4.5 days ago
VESSELS = plan_fleet(3)  # v000 healthy, v001 flapping (ap-2 misses 1 ping in 16), v002 down_4d
FLAPPING_AP = (1 + 15 / 16) / 2  # ap-1 always up, ap-2 up 15 of 16 pings


class Hold:
    """The report schedule's sleep: it never wakes on its own."""

    async def __call__(self, seconds: float) -> None:
        await asyncio.Event().wait()


def write(path: Path, reports: dict[str, Any] | None,
          maintenance: list[dict[str, Any]] | None = None) -> Path:
    url = unused_loopback_url()
    config = fleet_config(VESSELS, url, url, int(NOW), state_path=str(path.parent / "state.db"),
                          interval="1h", timeout="1s", attempts=1)
    if reports is not None:
        config["reports"] = reports
    if maintenance:
        config["maintenance"] = maintenance
    write_fleet_config(path, config)
    return path


@pytest.fixture
async def fleet(tmp_path: Path, exporter):
    """Factory: an exporter over the seeded November, with `reports` as its section."""

    async def start(reports: dict[str, Any] | None = None, clock: Clock | None = None):
        await seed_ledger(tmp_path / "state.db", VESSELS, int(NOW))
        path = write(tmp_path / "fleet.yml", reports)
        return await exporter(path, clock=clock or Clock(NOW), sleep=Ticks(),
                              report_sleep=Hold())

    return start


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def stored(db: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        if not conn.execute("SELECT name FROM sqlite_master WHERE name = 'report_files'"
                            ).fetchall():
            return []
        return conn.execute("SELECT * FROM report_files ORDER BY 1, 2, 3").fetchall()


def component(body: dict[str, Any], vessel: str, name: str) -> dict[str, Any]:
    [found] = [c for v in body["vessels"] if v["id"] == vessel for c in v["components"]
               if c["name"] == name]
    return found


BASE = {"vessels": [{"id": "a", "influx": {"url": "http://10.0.0.1:8086", "database": "t"},
                     "devices": [{"name": "d", "address": "10.0.0.2", "component": "server"}]}]}


class TestConfig:
    def parse(self, reports: Any) -> Any:
        return parse_config({**BASE, "reports": reports}).reports

    def test_no_section_means_no_schedule_and_utc(self):
        reports = parse_config(BASE).reports
        assert (reports.dir, reports.timezone) == (None, "UTC")

    def test_a_schedule_with_its_defaults_and_its_keys(self):
        assert self.parse({"dir": "/srv/reports"}).formats == ("pdf", "csv")
        reports = self.parse({"dir": "/srv/reports", "formats": ["xlsx", "pdf"],
                              "timezone": "Europe/Oslo", "grace": "12h"})
        assert (str(reports.dir), reports.formats, reports.timezone, reports.grace) == (
            "/srv/reports", ("xlsx", "pdf"), "Europe/Oslo", 43200.0)

    @pytest.mark.parametrize(("reports", "message"), [
        ({"dir": "r", "timezone": "Mars/Olympus"}, "reports.timezone: unknown time zone"),
        ({"dir": "r", "formats": ["docx"]}, "reports.formats[0]: expected one of html, csv"),
        ({"dir": "r", "formats": ["pdf", "pdf"]}, "reports.formats[1]: duplicate format"),
        ({"dir": "r", "formats": []}, "reports.formats: name at least one format"),
        ({"dir": "r", "grace": "40d"}, "reports.grace: must be between 1m and 31d"),
        ({"dir": "r", "grace": "soon"}, "reports.grace: expected a duration"),
        ({"dir": " "}, "reports.dir: must name a directory"),
        ({"formats": ["pdf"]}, "reports.formats: belongs to the schedule, which needs "
                               "reports.dir"),
        ({"dir": "r", "every": "1d"}, "reports.every: unknown key"),
    ])
    def test_errors_name_the_key(self, reports: dict[str, Any], message: str):
        with pytest.raises(ConfigError) as caught:
            self.parse(reports)
        assert str(caught.value).startswith(message), str(caught.value)

    def test_formats_are_those_the_reports_render(self):
        from exporter.config import REPORT_FORMATS
        assert set(REPORT_FORMATS) == {f.value for f in ReportFormat}


class TestApi:
    async def test_last_month_as_json_with_the_ledgers_figures(self, fleet):
        client = await fleet()
        response = await client.get("/api/v1/reports", params={"period": "2026-11"})
        assert response.status == 200, await response.text()
        assert response.content_type == "application/json"
        body = await response.json()
        assert body["header"]["period"]["label"] == "2026-11"
        # November was all before the down_4d server's outage; the flapping AP misses
        # one ping in 16, a whole month long.
        assert component(body, "v002", "server")["figures"]["uptime"] == 1.0
        assert component(body, "v001", "access_point")["figures"]["uptime"] == \
            pytest.approx(FLAPPING_AP)
        # November 30 is the vessels' InfluxDB's to give, out of reach here: unobserved.
        assert component(body, "v001", "access_point")["figures"]["coverage"] == \
            pytest.approx(29 / 30)

    async def test_no_period_is_last_month_and_one_vessel_can_be_asked(self, fleet):
        client = await fleet()
        body = await (await client.get("/api/v1/reports?vessel=v001&vessel=v001")).json()
        assert body["header"]["period"]["label"] == "2026-11"
        assert [v["id"] for v in body["vessels"]] == ["v001"]

    async def test_a_download_is_an_attachment_named_for_its_period(self, fleet):
        client = await fleet()
        response = await client.get("/api/v1/reports?period=2026-11&format=csv")
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.headers["Content-Disposition"] == \
            'attachment; filename="sla-report-2026-11.csv"'
        text = await response.text()
        assert text.startswith("# SLA report 2026-11")
        assert {v.id for v in VESSELS} <= set(text.split(","))

    async def test_a_quarter_and_a_range_in_a_timezone(self, fleet):
        client = await fleet()
        body = await (await client.get(
            "/api/v1/reports", params={"from": "2026-11-02T00:00+01:00",
                                        "to": "2026-11-09T00:00+01:00",
                                        "timezone": "Europe/Oslo"})).json()
        period = body["header"]["period"]
        assert (period["start"], period["end"]) == (
            datetime(2026, 11, 1, 23, tzinfo=UTC).timestamp(),
            datetime(2026, 11, 8, 23, tzinfo=UTC).timestamp())
        assert period["timezone"] == "Europe/Oslo"
        response = await client.get("/api/v1/reports?period=2026-Q3")
        assert response.status == 200  # before the ledger: a report of gaps, not an error

    @pytest.mark.parametrize(("query", "field", "words"), [
        ("period=2026-11&vessel=v000&vessel=atlantis", "vessel", "unknown vessel 'atlantis'"),
        ("period=2026-12", "period", "has not ended yet"),
        ("period=2027", "period", "has not ended yet"),
        ("period=2026-11&timezone=Mars/Olympus", "timezone", "unknown timezone"),
        ("from=2026-11-20T00:00Z&to=2026-11-10T00:00Z", "to", "must be after from"),
        ("from=2026-11-20T00:00Z", "to", "required"),
        ("from=yesterday&to=2026-11-10T00:00Z", "from", "expected RFC 3339"),
        ("period=November", "period", "expected YYYY-MM"),
        ("period=2026-11&format=docx", "format", "expected one of html, csv"),
    ])
    async def test_bad_input_is_a_400_naming_the_parameter_and_stores_nothing(
            self, fleet, tmp_path: Path, query: str, field: str, words: str):
        reports = tmp_path / "reports"
        client = await fleet({"dir": str(reports), "formats": ["csv"], "grace": "1d"})
        await client.app[REPORTS].run_once()
        before = (files(reports), stored(tmp_path / "state.db"),
                  (await scrape(client)).series("fleet_reports_written_total"))
        response = await client.get(f"/api/v1/reports?{query}")
        assert response.status == 400
        body = await response.json()
        assert body["field"] == field
        assert body["error"].startswith(f"{field}: ") and words in body["error"], body
        assert (files(reports), stored(tmp_path / "state.db"),
                (await scrape(client)).series("fleet_reports_written_total")) == before


class TestPage:
    async def test_the_form_offers_last_month_and_shows_it(self, fleet):
        client = await fleet()
        response = await client.get("/reports")
        assert response.status == 200
        html = await response.text()
        assert '<a href="/reports" aria-current="page">Reports</a>' in html
        assert '<option value="2026-11" selected>' in html
        assert 'src="/api/v1/reports?period=2026-11&amp;timezone=UTC&amp;format=html"' in html
        assert 'href="/api/v1/reports?period=2026-11&amp;timezone=UTC&amp;format=pdf"' in html
        for v in VESSELS:
            assert f'<option value="{v.id}">{v.name} ({v.id})</option>' in html
        assert "No schedule" in html

    async def test_a_range_from_the_form_is_taken_in_its_timezone(self, fleet):
        client = await fleet()
        html = await (await client.get(
            "/reports?period=&from=2026-11-02T00:00&to=2026-11-09T00:00"
            "&timezone=Europe/Oslo&vessel=v002&format=html")).text()
        assert ("from=2026-11-02T00%3A00%2B01%3A00&amp;to=2026-11-09T00%3A00%2B01%3A00"
                "&amp;timezone=Europe%2FOslo&amp;vessel=v002&amp;format=html") in html
        assert '<option value="v002" selected>' in html

    async def test_a_download_from_the_form_goes_to_the_api(self, fleet):
        client = await fleet()
        response = await client.get("/reports?period=2026-11&format=csv",
                                    allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == \
            "/api/v1/reports?period=2026-11&timezone=UTC&format=csv"

    @pytest.mark.parametrize(("query", "field"), [
        ("period=2026-11&vessel=atlantis", "vessel"),
        ("period=2027-01", "period"),
        ("period=2026-11&timezone=Nowhere/Atall", "timezone"),
        ("period=&from=2026-11-20T00:00&to=2026-11-10T00:00", "to"),
    ])
    async def test_bad_input_is_shown_on_the_form_naming_the_field(self, fleet, query: str,
                                                                  field: str):
        client = await fleet()
        response = await client.get(f"/reports?{query}")
        assert response.status == 400
        html = await response.text()
        assert f'<span class="field-error" id="{field}-error" role="alert">{field}: ' in html
        assert f'aria-invalid="true" aria-describedby="{field}-error"' in html
        assert "<iframe" not in html  # nothing built


class TestSchedule:
    def test_a_month_is_due_once_closed_and_its_grace_over(self):
        reports = parse_config({**BASE, "reports": {"dir": "r", "grace": "3d"}})
        december_4 = datetime(2026, 12, 4, tzinfo=UTC).timestamp()
        assert due_months(december_4 - 1, reports.reports) == ["2026-08", "2026-09", "2026-10"]
        assert due_months(december_4, reports.reports) == ["2026-09", "2026-10", "2026-11"]
        oslo = parse_config({**BASE, "reports": {
            "dir": "r", "grace": "1h", "timezone": "Europe/Oslo"}}).reports
        # November closes at 23:00 UTC in Oslo.
        assert due_months(datetime(2026, 12, 1, 0, 0, tzinfo=UTC).timestamp(), oslo)[-1] == \
            "2026-11"
        assert due_months(datetime(2026, 11, 30, 23, 59, tzinfo=UTC).timestamp(), oslo)[-1] \
            == "2026-10"

    async def test_a_closed_month_is_written_once_logged_and_counted(self, fleet, tmp_path: Path,
                                                                     caplog):
        caplog.set_level(logging.INFO, "exporter.report_schedule")
        reports = tmp_path / "out"
        client = await fleet({"dir": str(reports), "formats": ["csv", "json"], "grace": "3d"})
        await client.app[REPORTS].run_once()
        # October and before are older than every vessel's ledger: left alone.
        assert files(reports) == ["sla-report-2026-11.csv", "sla-report-2026-11.json"]
        body = json.loads((reports / "sla-report-2026-11.json").read_bytes())
        assert component(body, "v001", "access_point")["figures"]["uptime"] == \
            pytest.approx(FLAPPING_AP)
        assert f"report 2026-11 (UTC) written: {reports / 'sla-report-2026-11.csv'}" in \
            caplog.text
        metrics = await scrape(client)
        for fmt in ("csv", "json"):
            assert metrics.get("fleet_reports_written_total", format=fmt) == 1
            assert metrics.get("fleet_report_errors_total", format=fmt) == 0
            assert metrics.get("fleet_report_last_written_timestamp_seconds", format=fmt) == NOW
        assert metrics.get("fleet_report_last_check_timestamp_seconds") == NOW
        # Unchanged figures: nothing is written again, an hour or a restart later.
        assert await client.app[REPORTS].run_once() == []
        assert files(reports) == ["sla-report-2026-11.csv", "sla-report-2026-11.json"]
        page = await (await client.get("/reports")).text()
        assert f"<code>{reports / 'sla-report-2026-11.json'}</code>" in page

    async def test_a_window_declared_afterwards_writes_it_again_keeping_the_first(
            self, fleet, tmp_path: Path):
        reports = tmp_path / "out"
        section = {"dir": str(reports), "formats": ["json"], "grace": "3d"}
        clock = Clock(NOW)
        client = await fleet(section, clock)
        await client.app[REPORTS].run_once()
        first = (reports / "sla-report-2026-11.json").read_bytes()
        # The flapping vessel's access points were in maintenance for November's first
        # week, declared only now.
        clock.now = NOW + 3600
        write(tmp_path / "fleet.yml", section, maintenance=[{
            "id": "ap-swap", "vessels": ["v001"], "components": ["access_point"],
            "start": "2026-11-01T00:00:00Z", "end": "2026-11-08T00:00:00Z",
            "reason": "access points replaced"}])
        assert (await client.post("/-/reload")).status == 200
        await client.app[REPORTS].run_once()
        assert files(reports) == ["sla-report-2026-11.20261205T120000Z.json",
                                  "sla-report-2026-11.json"]
        assert (reports / "sla-report-2026-11.20261205T120000Z.json").read_bytes() == first
        body = json.loads((reports / "sla-report-2026-11.json").read_bytes())
        figures = component(body, "v001", "access_point")["figures"]
        assert figures["maintenance"] == pytest.approx(2 * 7 * 86400)  # two devices
        metrics = await scrape(client)
        assert metrics.get("fleet_reports_written_total", format="json") == 2
        assert metrics.get("fleet_report_last_written_timestamp_seconds", format="json") == \
            NOW + 3600
        [row] = stored(tmp_path / "state.db")
        assert row[-1] == 2  # versions

    async def test_a_format_that_fails_stops_neither_the_others_nor_the_exporter(
            self, fleet, tmp_path: Path, caplog):
        reports = tmp_path / "out"
        client = await fleet({"dir": str(reports), "formats": ["csv", "json"], "grace": "3d"})

        def broken(report: Report, fmt: ReportFormat) -> bytes:
            if fmt is ReportFormat.CSV:
                raise OSError("disk full")
            return render(report, fmt)

        store = await ReportStore.open(tmp_path / "other.db")
        try:
            scheduler = ReportScheduler(client.app[SERVICE], store, clock=Clock(NOW),
                                        renderer=broken)
            written = await scheduler.run_once()
        finally:
            await store.close()
        assert [p.name for p in written] == ["sla-report-2026-11.json"]
        assert scheduler.counters.errors == {"csv": 1}
        assert "report 2026-11: writing csv into" in caplog.text and "disk full" in caplog.text
        assert (await client.get("/healthz")).status == 200

    async def test_without_a_schedule_nothing_is_written_nor_exposed(self, fleet):
        client = await fleet()
        assert await client.app[REPORTS].run_once() == []
        text = (await scrape(client)).text
        assert "fleet_report" not in text

    async def test_a_reload_adds_the_schedule(self, fleet, tmp_path: Path):
        client = await fleet()
        reports = tmp_path / "added"
        write(tmp_path / "fleet.yml", {"dir": str(reports), "formats": ["csv"], "grace": "1d"})
        assert (await client.post("/-/reload")).status == 200
        await client.app[REPORTS].run_once()
        assert files(reports) == ["sla-report-2026-11.csv"]

    async def test_promtool_finds_nothing_to_lint(self, fleet, tmp_path: Path):
        client = await fleet({"dir": str(tmp_path / "out"), "formats": ["csv"]})
        await client.app[REPORTS].run_once()
        text = (await scrape(client)).text
        assert "fleet_reports_written_total" in text
        await asyncio.to_thread(assert_promtool_clean, text)


async def test_the_seeded_history_is_what_the_config_expects(tmp_path: Path):
    """The demo's ledger history: from November 1 to the midnight before the last five
    days, every vessel but the unreachable one."""
    rows = await seed_ledger(tmp_path / "s.db", plan_fleet(11), int(NOW))
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as db:
        cursors = dict((v, (f, h)) for v, f, h in db.execute("SELECT * FROM ledger_vessels"))
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    end = datetime(2026, 11, 30, tzinfo=UTC).timestamp()
    assert set(cursors.values()) == {(end, start)}
    assert "v007" not in cursors and len(cursors) == 10  # unreachable: never answered
    assert rows == 9 * 4 * 29  # 9 vessels with pings, 4 devices, 29 days
