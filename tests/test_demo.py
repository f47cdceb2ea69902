"""`make demo` end to end: deploy/demo.py runs the real stack on loopback (influxd, the
exporter, Prometheus with the shipped rules, Alertmanager, the receiver), and every
dashboard query is run against that Prometheus."""

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from simulator.scenarios import EXPECTATIONS, SCENARIOS, plan_fleet
from tests.grafana import Prometheus, load_dashboards, panels, substitute, variables
from tests.servers import free_port, require_binary
from tests.test_receiver_browser import CHROMIUM_FLAGS

ROOT = Path(__file__).parent.parent
CONSOLE_SIZES = {"wide": {"width": 1400, "height": 900}, "phone": {"width": 375, "height": 740}}
FLEET = plan_fleet(len(SCENARIOS))  # one vessel per scenario, as the demo plans it
DOWN_4D = [v for v in FLEET if v.scenario == "down_4d"]
AUTH = "Basic " + base64.b64encode(b"demo:demo").decode()


async def shoot(page, path: Path) -> None:
    assert len(await page.screenshot(path=str(path), full_page=True)) > 5_000, path
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        f"{path.name} scrolls sideways"


def _influx_port() -> int:
    # The demo's influxd also binds port + 2 for RPC.
    while True:
        port = free_port()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port + 2)) != 0:
                return port


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def _read_pdf(pdf: Path, period: str, uptime: float) -> Path:
    """Check the PDF's text (pdftotext) and picture its first page (pdftoppm)."""
    pdftotext = require_binary("pdftotext", "/usr/bin/pdftotext")
    pdftoppm = require_binary("pdftoppm", "/usr/bin/pdftoppm")
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert period in text
    for vessel in FLEET:
        assert vessel.name in text, vessel.name
    assert f"{uptime * 100:.3f} %" in text  # 96.875 %, as the JSON API says
    prefix = pdf.with_name("report-page-1")
    subprocess.run([pdftoppm, "-png", "-r", "100", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(prefix)], check=True, timeout=60)
    picture = prefix.with_suffix(".png")
    assert picture.stat().st_size > 10_000
    return picture


class Demo:
    def __init__(self, proc: subprocess.Popen[str], log: Path, ports: dict[str, int],
                 directory: Path) -> None:
        self.directory = directory  # the demo's --dir
        self.proc = proc
        self.log = log
        self.ports = ports
        self.prometheus = Prometheus(f"http://127.0.0.1:{ports['prometheus']}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def get(self, port: str, path: str) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[port]}{path}",
                                         headers={"Authorization": AUTH})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()


@pytest.fixture(scope="class")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    for name, fallback in [("influxd", "/usr/bin/influxd"), ("prometheus", "/usr/bin/prometheus"),
                           ("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager")]:
        require_binary(name, fallback)
    directory = tmp_path_factory.mktemp("demo")
    ports = {"influx": _influx_port(), **{name: free_port() for name in
                                           ("exporter", "receiver", "prometheus", "alertmanager")}}
    log = directory / "demo.out"
    command = [sys.executable, str(ROOT / "deploy" / "demo.py"), "--vessels", str(len(FLEET)),
               "--dir", str(directory / "state"), "--alert-for", "2s", "--interval", "2s",
               *[arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]]
    with open(log, "w", encoding="utf-8") as out:
        # Started as a shell starts a background job (`make demo &`): SIGINT ignored.
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True,
                                cwd=directory,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    running = Demo(proc, log, ports, directory / "state")
    try:
        deadline = time.monotonic() + 120
        while not re.search(r"waits? for approval", running.output()):
            assert proc.poll() is None, f"demo exited:\n{running.output()}"
            assert time.monotonic() < deadline, f"no approval in 120 s:\n{running.output()}"
            time.sleep(0.5)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


class TestDemo:
    def test_approval_page_lists_the_vessels_down_over_three_days(self, demo: Demo):
        status, body = demo.get("receiver", "/api/v1/incidents?state=pending")
        assert status == 200
        pending = json.loads(body)["incidents"]
        assert {(i["labels"]["alertname"], i["labels"]["vessel"]) for i in pending} == {
            ("FleetComponentDownPersistent", v.id) for v in DOWN_4D}
        status, page = demo.get("receiver", "/")
        assert status == 200
        for vessel in DOWN_4D:
            assert vessel.name in page
        healthy = [v for v in FLEET if v.scenario == "healthy"]
        assert healthy and all(v.name not in page for v in healthy)

    def test_each_vessel_raises_the_alerts_the_readme_says(self, demo: Demo):
        def alerts(answer_series: list[dict]) -> set[tuple[str, str]]:
            found = set()
            for series in answer_series:
                labels = series["metric"]
                component = f" ({labels['component']})" if "component" in labels else ""
                found.add((labels.get("vessel", ""), labels["alertname"] + component))
            return found

        expected = {(v.id, alert) for v in FLEET for alert in EXPECTATIONS[v.scenario].alerts}
        deadline = time.monotonic() + 60
        while True:  # the rules need a few evaluations after the first collection
            now = time.time()
            firing = alerts(demo.prometheus.query('ALERTS{alertstate="firing"}',
                                                  instant=True, now=now).series)
            if firing == expected or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert firing == expected
        # Nothing else was even pending since the demo started. FleetExporterDown is left
        # out: absent(up) holds until Prometheus's first scrape, which can come after the
        # test's 2 s `for:` (the shipped 5 m never lets it fire at start-up).
        ever = demo.prometheus.query('ALERTS{alertname!="FleetExporterDown"}', instant=False,
                                     now=now)
        assert ever.error is None and alerts(ever.series) == expected

    def test_demo_prints_where_everything_is(self, demo: Demo):
        output = demo.output()
        printed = {name: (int(port), path) for name, port, path in re.findall(
            r"(?m)^  (\w+)[^\n]*?http://127\.0\.0\.1:(\d+)(/\S*)", output)}
        assert {name: port for name, (port, _) in printed.items()} == {
            "console": demo.ports["exporter"], "approval": demo.ports["receiver"],
            "metrics": demo.ports["exporter"], "reports": demo.ports["exporter"],
            **{name: demo.ports[name] for name in ("prometheus", "alertmanager")}}
        assert next(iter(printed)) == "console" and printed["console"][1] == "/"
        for name, (port, path) in printed.items():
            service = next(n for n, p in demo.ports.items() if p == port)
            status, _ = demo.get(service, path)
            assert status == 200, (name, path)
        assert "sign in as demo / demo" in output
        names = ", ".join(sorted(v.name for v in DOWN_4D))
        assert re.search(rf"demo: \d+ incidents? waits? for approval \({names}\)", output)
        assert "Tickets are dry-run" in output

    def test_template_variables_list_the_fleet(self, demo: Demo):
        now = time.time()
        found = {}
        for board in load_dashboards().values():
            for variable in variables(board):
                if variable["type"] == "query":
                    found[variable["name"]] = demo.prometheus.variable_values(variable, now)
        assert found == {
            "component": ["access_point", "dashboard", "server"],
            "vessel": sorted(v.id for v in FLEET),
        }

    def test_every_panel_query_runs_and_returns_data(self, demo: Demo):
        now = time.time()
        values = {"vessel": DOWN_4D[0].id, "__rate_interval": "30s"}
        components = demo.prometheus.variable_values(
            {"name": "component", "query": "label_values(fleet_component_sla_objective_ratio,"
                                            " component)"}, now)
        problems = []
        checked = 0
        for name, board in load_dashboards().items():
            for panel in panels(board):
                repeats = components if panel.get("repeat") == "component" else [""]
                with_data: dict[str, bool] = {}
                for component in repeats:
                    for target in panel.get("targets", []):
                        expr = substitute(target["expr"], {**values, "component": component})
                        answer = demo.prometheus.query(expr, instant=target["instant"], now=now)
                        checked += 1
                        where = f"{name} / {panel['title']} / {target['refId']} {component}"
                        if answer.error:
                            problems.append(f"{where}: {answer.error}\n  {expr}")
                        with_data[target["refId"]] = (with_data.get(target["refId"], False)
                                                      or bool(answer.series))
                # Every query shows data (in a repeated panel: for some repeat value), as a
                # fleet with one vessel per scenario has something for each.
                empty = sorted(ref for ref, has in with_data.items() if not has)
                if empty:
                    problems.append(f"{name} / {panel['title']}: no data from {empty}")
        assert checked > 50
        assert not problems, "\n".join(problems)

    async def test_console_in_chromium(self, demo: Demo, tmp_path: Path):
        """Every console page at 1400 px and phone width, and a run's progress live."""
        chromium = require_binary("chromium", "/usr/bin/chromium")
        base = f"http://127.0.0.1:{demo.ports['exporter']}"
        [breach] = [v for v in FLEET if v.scenario == "breach"]
        [empty] = [v for v in FLEET if v.scenario == "no_data"]
        down = DOWN_4D[0]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium,
                                                       args=CHROMIUM_FLAGS)
            try:
                for size, viewport in CONSOLE_SIZES.items():
                    page = await (await browser.new_context(viewport=viewport)).new_page()
                    await page.goto(f"{base}/")
                    tile = page.locator(f"li.vessel:has(a[href='/vessels/{breach.id}']) "
                                        ".tile.t-breach")
                    assert "dashboard ✗ breach" in await tile.inner_text()
                    grey = page.locator(f"li.vessel:has(a[href='/vessels/{empty.id}'])")
                    assert "no data" in await grey.locator(".status").inner_text()
                    assert "down" not in (await grey.inner_text()).lower()
                    # Asked through the locator, which finds the row again if the live
                    # script has just swapped it for a newer one (a detached row has no
                    # computed style).
                    await expect(grey.locator(".status")).to_have_css("border-top-style",
                                                                      "dashed")
                    await shoot(page, tmp_path / f"overview-{size}.png")
                    await page.goto(f"{base}/vessels/{down.id}")
                    ips = await page.locator("table.devices td.ip").all_inner_texts()
                    assert sorted(ips) == sorted(d.address for d in down.devices)
                    # The server's 4-day outage fills its strip: every hour of the last
                    # three whole days is down.
                    days = await page.locator("details.component:has(summary:text-is('server'))"
                                              " table.days tr").all_inner_texts()
                    assert len(days) >= 4
                    assert all("down 24 h" in day for day in days[-4:-1]), days
                    await shoot(page, tmp_path / f"vessel-{size}.png")
                    await page.goto(f"{base}/runs")
                    await page.click("table a >> nth=0")
                    await page.wait_for_url(re.compile(r"/runs/\d+$"))
                    assert await page.locator("tbody tr").count() == len(FLEET)
                    await shoot(page, tmp_path / f"run-{size}.png")
                    await page.goto(f"{base}/maintenance")
                    [dock] = await page.locator("#maintenance tbody tr").all_inner_texts()
                    assert "dry-dock" in dock and "in force" in dock and "DEMO-1" in dock
                    await shoot(page, tmp_path / f"maintenance-{size}.png")
                page = await (await browser.new_context(viewport=CONSOLE_SIZES["wide"])).new_page()
                await page.goto(f"{base}/")
                await page.wait_for_selector("html[data-live=on]")
                # The demo collects every 2 s: progress arrives over the stream, no reload.
                await page.wait_for_selector("#progress[data-total]", timeout=15_000)
                assert await page.get_attribute("#progress", "data-total") == str(len(FLEET))
            finally:
                await browser.close()

    async def test_last_months_report_in_chromium(self, demo: Demo, tmp_path: Path,
                                                  record_property):
        """The report page: pick last month, view it, download its PDF; the PDF's text
        carries the vessels and the JSON API's figures, and its first page is kept as a
        picture (its path is printed and recorded with the test)."""
        chromium = require_binary("chromium", "/usr/bin/chromium")
        require_binary("pdftotext", "/usr/bin/pdftotext")
        base = f"http://127.0.0.1:{demo.ports['exporter']}"
        today = datetime.now(UTC)
        last = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        status, body = demo.get("exporter", f"/api/v1/reports?period={last}&format=json")
        assert status == 200, body
        report = json.loads(body)
        [flapping] = [v for v in FLEET if v.scenario == "flapping"]
        [ap] = [c for v in report["vessels"] if v["id"] == flapping.id
                for c in v["components"] if c["name"] == "access_point"]
        # The demo's history covers last month whole: ap-2 misses one ping in 16.
        assert ap["figures"]["uptime"] == pytest.approx((1 + 15 / 16) / 2)
        assert ap["figures"]["coverage"] == 1.0
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium,
                                                       args=CHROMIUM_FLAGS)
            try:
                context = await browser.new_context(viewport=CONSOLE_SIZES["wide"],
                                                    accept_downloads=True)
                page = await context.new_page()
                await page.goto(f"{base}/")
                await page.click("nav >> text=Reports")
                await page.wait_for_url(f"{base}/reports")
                # A bad timezone is named on the form, and nothing is shown.
                await page.fill("input[name=timezone]", "Mars/Olympus")
                await page.click("text=Show report")
                await expect(page.locator("#timezone-error")).to_contain_text(
                    "timezone: unknown timezone 'Mars/Olympus'")
                assert await page.locator("iframe.report").count() == 0
                await page.fill("input[name=timezone]", "UTC")
                await page.select_option("select[name=period]", last)
                await page.select_option("select[name=format]", "html")
                await page.click("text=Show report")
                await page.wait_for_url(re.compile(rf"period={last}"))
                frame = page.frame_locator("iframe.report")
                await expect(frame.locator("body")).to_contain_text(flapping.name)
                await shoot(page, tmp_path / "reports-page.png")
                async with page.expect_download() as download_info:
                    await page.click("a[data-format=pdf]")
                download = await download_info.value
                assert download.suggested_filename == f"sla-report-{last}.pdf"
                pdf = tmp_path / download.suggested_filename
                await download.save_as(pdf)
            finally:
                await browser.close()
        picture = await asyncio.to_thread(_read_pdf, pdf, last, ap["figures"]["uptime"])
        record_property("picture: the report PDF's first page", str(picture))
        print(f"the PDF's first page: {picture}")
        # The schedule wrote last month's report too, in the formats the demo configures.
        written = await asyncio.to_thread(os.listdir, demo.directory / "reports")
        assert sorted(written) == [f"sla-report-{last}.csv", f"sla-report-{last}.pdf"]

    def test_ctrl_c_stops_every_process(self, demo: Demo):
        children = _children(demo.proc.pid)
        # influxd, the live simulator, exporter, receiver, Alertmanager, Prometheus
        assert len(children) == 6, children
        demo.proc.send_signal(signal.SIGINT)  # although started with SIGINT ignored
        assert demo.proc.wait(timeout=30) == 0
        assert demo.output().rstrip().endswith("demo: stopped")
        assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
        for port in demo.ports.values():
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, port


@pytest.mark.parametrize(("option", "offset"), [("receiver", 0), ("influx", 2)])
def test_demo_refuses_a_taken_port(tmp_path: Path, option: str, offset: int):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # influxd also binds --influx-port + 2 for RPC. The other ports are free ones, so a
        # demo already running on the defaults does not matter.
        ports = {"influx": _influx_port(), **{name: free_port() for name in
                                               ("exporter", "receiver", "prometheus",
                                                "alertmanager")}, option: port - offset}
        result = subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "demo.py"), "--dir", str(tmp_path / "d"),
             *[arg for name, p in ports.items() for arg in (f"--{name}-port", str(p))]],
            capture_output=True, text=True, timeout=60, env={**os.environ, "VESSELS": "1"})
    assert result.returncode != 0
    assert f"port {port} ({option}) is taken; pass --{option}-port" in result.stderr
    assert not (tmp_path / "d").exists()  # nothing started, nothing written
