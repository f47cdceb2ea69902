"""The collection service's life cycle: what is logged, recorded and released, and when."""

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exporter.appkeys import SERVICE
from exporter.config import load_config
from exporter.runlog import RunLog
from exporter.service import CollectionService
from exporter.web import create_app
from tests.fake_influx import DeviceFacts, reply
from tests.helpers import Clock, Ticks, scrape, vessel, write_config

T0 = 1_800_000_000.0


@pytest.fixture
async def two_vessels(tmp_path: Path, fake_influx, exporter):
    """Factory: an exporter over two fake vessels, run by a test-controlled sleep."""

    async def start(clock: Clock, ticks: Ticks, **options):
        fakes = [await fake_influx(**{"10_10_1_5": DeviceFacts(), "10_10_1_20": DeviceFacts()})
                 for _ in range(2)]
        config = write_config(tmp_path / "fleet.yml",
                              [vessel(vid, url) for vid, (_, url) in zip(("aurora", "borealis"),
                                                                          fakes, strict=True)],
                              collection={"interval": "5m", "timeout": "2s", "attempts": 1})
        client = await exporter(config, clock=clock, sleep=ticks, **options)
        return [fake for fake, _ in fakes], client

    return start


def vessel_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "exporter.vessels"]


class TestVesselLog:
    async def test_a_status_change_is_logged_once_and_summarised_hourly(
        self, two_vessels, caplog: pytest.LogCaptureFixture
    ):
        caplog.set_level(logging.INFO, logger="exporter.vessels")
        clock, ticks = Clock(T0 + 60), Ticks()
        (aurora, borealis), client = await two_vessels(clock, ticks)
        assert vessel_lines(caplog) == []  # both ok from the start: nothing to say

        async def run_later() -> None:
            clock.now += 300
            for fake in (aurora, borealis):  # both keep writing samples
                fake.devices = {a: DeviceFacts(last_sample=int(clock.now) - 30)
                                for a in fake.devices}
            await ticks.runs(client)

        aurora.script.extend([reply(status=503)] * 20)
        for _ in range(12):  # the first failed run, then 55 minutes more
            await run_later()
        [(level, line)] = vessel_lines(caplog)
        assert level == logging.WARNING
        assert line.startswith("vessel aurora: unreachable (was ok): HTTP 503 from 127.0.0.1:")
        await run_later()  # an hour after the failure began
        assert vessel_lines(caplog)[1:] == [
            (logging.WARNING, "1 vessel(s) not ok: aurora (unreachable)")]
        aurora.script.clear()
        caplog.clear()
        await run_later()
        assert vessel_lines(caplog) == [(logging.INFO, "vessel aurora: ok (was unreachable)")]

    async def test_each_failure_is_still_in_the_debug_log(
        self, two_vessels, caplog: pytest.LogCaptureFixture
    ):
        caplog.set_level(logging.DEBUG, logger="exporter.collector")
        clock, ticks = Clock(T0 + 60), Ticks()
        (aurora, _), client = await two_vessels(clock, ticks)
        aurora.script.extend([reply(status=503)] * 2)
        await ticks.runs(client, 2)
        debug = [r for r in caplog.records
                 if r.name == "exporter.collector" and r.levelno == logging.DEBUG]
        assert len(debug) == 2 and all("aurora" in r.getMessage() for r in debug)


class TestRunRecording:
    async def test_a_run_is_shown_only_once_recorded_and_survives_a_stop(
        self, two_vessels, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ):
        writing, finish = asyncio.Event(), asyncio.Event()
        record = RunLog.record

        async def slow_record(self: RunLog, run, retention: float, *ledger) -> int:
            writing.set()
            await finish.wait()
            return await record(self, run, retention, *ledger)

        monkeypatch.setattr(RunLog, "record", slow_record)
        clock, ticks = Clock(T0 + 60), Ticks()
        _, client = await two_vessels(clock, ticks, ready=False)
        await asyncio.wait_for(writing.wait(), 10)
        assert (await client.get("/readyz")).status == 503
        assert (await scrape(client)).series("fleet_vessel_data_status") == {}
        # Stop the exporter while the run is being written; the write still completes.
        [collection] = [t for t in asyncio.all_tasks() if t.get_name() == "collection"]
        closing = asyncio.create_task(client.close())
        async with asyncio.timeout(10):
            # No event says a task was cancelled: yield until shutdown has done it.
            while not collection.cancelling():  # noqa: ASYNC110
                await asyncio.sleep(0)
        for _ in range(5):  # let the run take that cancel and wait for its write
            await asyncio.sleep(0)
        collection.cancel()  # and a second cancel must not cut the write short either
        finish.set()
        await asyncio.wait_for(closing, 10)
        runlog = await RunLog.open(tmp_path / "exporter.db")
        try:
            [run] = await runlog.runs(10)
            assert run["result"] == "success" and run["vessels_ok"] == 2
        finally:
            await runlog.close()


class TestWiring:
    async def test_a_failed_restore_releases_what_was_opened(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        sessions: list[aiohttp.ClientSession] = []
        real = aiohttp.ClientSession

        def tracked(*args, **kwargs) -> aiohttp.ClientSession:
            sessions.append(real(*args, **kwargs))
            return sessions[-1]

        async def broken(self: CollectionService) -> None:
            raise RuntimeError("restore failed")

        monkeypatch.setattr("exporter.service.aiohttp.ClientSession", tracked)
        monkeypatch.setattr(CollectionService, "restore", broken)
        config = write_config(tmp_path / "fleet.yml", [vessel("aurora", "http://127.0.0.1:9")])
        runner = web.AppRunner(create_app(load_config(config)))
        with pytest.raises(RuntimeError, match="restore failed"):
            await runner.setup()  # runs the app's startup, as serving it would
        assert len(sessions) == 1 and sessions[0].closed

    async def test_the_service_is_reachable_by_its_key(self, two_vessels):
        clock, ticks = Clock(T0 + 60), Ticks()
        _, client = await two_vessels(clock, ticks)
        assert client.app[SERVICE].runs_done == 1
