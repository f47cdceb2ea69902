"""Config reload without a restart: SIGHUP and POST /-/reload, as Prometheus does it."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from exporter.appkeys import SERVICE
from simulator.answers import FAKE_NOW
from simulator.fleetconfig import unused_loopback_url
from tests.fake_influx import DeviceFacts
from tests.helpers import Clock, Metrics, Ticks, scrape, vessel, write_config

T0 = float(FAKE_NOW)
COLLECTION = {"interval": "5m", "timeout": "2s", "attempts": 1}


@pytest.fixture
async def reloadable(tmp_path: Path, fake_influx, exporter):
    """Factory: an exporter over one fake vessel whose config file the test rewrites."""

    async def start(clock: Clock, ticks: Ticks):
        fake, url = await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": DeviceFacts()})
        path = write_config(tmp_path / "fleet.yml", [vessel("aurora", url)],
                            collection=COLLECTION)
        client = await exporter(path, clock=clock, sleep=ticks)
        return fake, url, path, client

    return start


class TestReload:
    async def test_a_new_vessel_and_objective_apply_and_state_is_kept(self, reloadable):
        clock, ticks = Clock(T0 + 60), Ticks()
        _, url, path, client = await reloadable(clock, ticks)
        before = await scrape(client)
        clock.now += 10
        write_config(path, [vessel("aurora", url, sla={"objective": 0.99}),
                            vessel("borealis", url)], collection=COLLECTION)
        response = await client.post("/-/reload")
        assert response.status == 200, await response.text()
        assert (await response.json()) == {"status": "reloaded", "vessels": 2}
        metrics = await scrape(client)
        assert metrics.get("fleet_config_last_reload_successful") == 1
        assert metrics.get("fleet_config_last_reload_success_timestamp_seconds") == T0 + 70
        assert metrics.get("fleet_component_sla_objective_ratio", vessel="aurora",
                           component="server") == 0.99
        assert metrics.get("fleet_vessel_info", vessel="borealis", name="MV Borealis") == 1
        # The kept vessel keeps what it knew; the new one waits for the next run.
        assert metrics.status("aurora") == "ok"
        assert metrics.series("fleet_device_up", vessel="aurora") == \
            before.series("fleet_device_up", vessel="aurora")
        assert metrics.series("fleet_vessel_data_status", vessel="borealis") == {}
        await ticks.runs(client)
        assert (await scrape(client)).status("borealis") == "ok"

    async def test_a_bad_config_is_refused_and_the_running_one_stays(self, reloadable):
        clock, ticks = Clock(T0 + 60), Ticks()
        _, url, path, client = await reloadable(clock, ticks)
        before = await scrape(client)
        write_config(path, [vessel("aurora", url, influx={"url": "ftp://nowhere"})],
                     collection=COLLECTION)
        response = await client.post("/-/reload")
        assert response.status == 500
        error = (await response.json())["error"]
        assert error.startswith("failed to reload config: vessels[0].influx.url: ")
        metrics = await scrape(client)
        assert metrics.get("fleet_config_last_reload_successful") == 0
        assert metrics.get("fleet_config_last_reload_success_timestamp_seconds") == T0 + 60
        assert metrics.series("fleet_vessel_info") == before.series("fleet_vessel_info")
        await ticks.runs(client)  # and collection goes on with the running config
        assert (await scrape(client)).status("aurora") == "ok"

    async def test_a_reload_waits_for_the_run_in_flight(self, reloadable):
        clock, ticks = Clock(T0 + 60), Ticks()
        fake, url, path, client = await reloadable(clock, ticks)
        asked, answer = asyncio.Event(), asyncio.Event()

        async def held(request: web.Request) -> web.StreamResponse:
            asked.set()
            await answer.wait()
            form = await request.post()
            return fake.json_response(fake.answer(str(form["q"]).split(";\n"),
                                                  str(form["params"])))

        class Contended(asyncio.Lock):
            """The service's run/reload lock, saying when a second party has to wait."""

            waiting = asyncio.Event()

            async def acquire(self) -> bool:
                if self.locked():
                    self.waiting.set()
                return await super().acquire()

        service = client.app[SERVICE]
        service._lock = lock = Contended()
        fake.script.append(held)
        next_run = asyncio.create_task(ticks.runs(client))
        await asyncio.wait_for(asked.wait(), 10)  # the run holds the lock
        write_config(path, [vessel("borealis", url)], collection=COLLECTION)
        reload = asyncio.create_task(client.post("/-/reload"))
        await asyncio.wait_for(lock.waiting.wait(), 10)  # the reload waits on it
        assert not reload.done(), "the reload must wait for the run in flight"
        assert [v.id for v in service.config.vessels] == ["aurora"]
        answer.set()
        await asyncio.wait_for(next_run, 10)
        assert (await asyncio.wait_for(reload, 10)).status == 200
        runs = await (await client.get("/api/v1/runs?limit=1")).json()
        run = await (await client.get(f"/api/v1/runs/{runs['runs'][0]['id']}")).json()
        assert [v["vessel"] for v in run["vessels"]] == ["aurora"], "the run was not lost"
        metrics = await scrape(client)
        assert metrics.series("fleet_vessel_info", vessel="aurora") == {}
        assert metrics.get("fleet_vessel_info", vessel="borealis", name="MV Borealis") == 1


class TestSighup:
    def test_sighup_reloads_the_served_config(self, tmp_path: Path):
        port = int(unused_loopback_url().rsplit(":", 1)[1])
        dead = unused_loopback_url()
        path = write_config(tmp_path / "fleet.yml", [vessel("aurora", dead)],
                            listen=f"127.0.0.1:{port}",
                            collection={**COLLECTION, "interval": "1h"})
        proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            def metrics() -> Metrics | None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                timeout=5) as r:
                        return Metrics(r.read().decode())
                except OSError:
                    return None

            deadline = time.monotonic() + 30
            while (m := metrics()) is None or m.get("fleet_vessel_info", vessel="aurora",
                                                    name="MV Aurora") != 1:
                assert time.monotonic() < deadline, "the exporter did not start"
                time.sleep(0.1)
            write_config(path, [vessel("aurora", dead), vessel("borealis", dead)],
                         listen=f"127.0.0.1:{port}", collection={**COLLECTION, "interval": "1h"})
            proc.send_signal(signal.SIGHUP)
            while (m := metrics()) is None or m.get("fleet_vessel_info", vessel="borealis",
                                                    name="MV Borealis") != 1:
                assert time.monotonic() < deadline, "SIGHUP did not reload the config"
                time.sleep(0.1)
            assert proc.poll() is None, "SIGHUP must not stop the exporter"
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        assert b"config reloaded: 2 vessels" in err
