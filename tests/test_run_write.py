"""A run's rows are packed as each vessel's result comes in (RunLog.prepare) and stored
by the run's write: what is stored is what memory holds at the write, whatever changed
between the two, and a write that fails loses nothing the next one does not store."""

import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import ledger_db
from exporter.collector import RunResult, VesselResult
from exporter.config import LedgerConfig
from exporter.model import DeviceObservation, VesselObservation, VesselStatus
from exporter.runlog import RunLog
from exporter.sla.hour import HOUR
from exporter.sla.hours import no_maintenance
from exporter.sla.ledger import Ledger
from exporter.sla.unwritten import DayKey, Unwritten
from tests.test_state_db import DAY, T0, WINDOWS, vessel

ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
VESSELS = {vid: vessel(vid, ADDRESSES) for vid in ("v1", "v2")}
START = T0 - 2 * HOUR  # the ledger's backfill reaches back to here


def ledger() -> Ledger:
    return Ledger(LedgerConfig(backfill=2 * HOUR), WINDOWS)


def collect(ledger: Ledger, vid: str, now: float, seed: int) -> VesselResult:
    """A cycle of one vessel: points up to now, a device down now and then."""
    config = VESSELS[vid]
    ask = ledger.ask(config, now)
    rng = random.Random(seed)
    points = {a: [(t, rng.random() > 0.2) for t in range(ask.since + 60, int(now) + 1, 60)]
              for a in ADDRESSES}
    ledger.take(config, ask, points, {}, now)
    devices = {a: DeviceObservation(spans={}, last_sample=now, last_reply=now)
               for a in ADDRESSES}
    return VesselResult(vessel=vid, status=VesselStatus.OK, attempts=1, duration=0.1,
                        finished_at=now, observation=VesselObservation(devices=devices))


def run(*results: VesselResult) -> RunResult:
    at = max(r.finished_at for r in results)
    return RunResult(started_at=at - 1, finished_at=at, duration=1.0, vessels=results)


async def record(runlog: RunLog, ledger: Ledger, *results: VesselResult) -> None:
    await runlog.record(run(*results), 86400.0, ledger, 400 * DAY)


async def assert_stored_as_held(runlog: RunLog, held: Ledger, now: float) -> None:
    restored = ledger()
    assert await ledger_db.restore(runlog.db, restored, now) == 0
    assert set(restored.vessels) == set(held.vessels)
    for vid, books in held.vessels.items():
        back = restored.vessels[vid]
        assert (back.frozen_until, back.held_from, back.replay_from) == (
            books.frozen_until, books.held_from, books.replay_from)
        for address, book in books.books.items():
            assert dict(back.books[address].frozen) == dict(book.frozen), (vid, address)
            assert back.books[address].carry == book.carry


@pytest.fixture
async def runlog(tmp_path: Path) -> AsyncIterator[RunLog]:
    log = await RunLog.open(tmp_path / "state.db")
    yield log
    await log.close()


def last_hour(vessel: str, component: str, device: str, start: float,
              end: float) -> list[tuple[float, float]]:
    """A maintenance window over the hour before T0, declared after the fact."""
    return [(max(start, T0 - HOUR), min(end, T0))] if start < T0 else []


class TestPreparedRows:
    async def test_rows_prepared_as_results_come_in_are_what_is_stored(self, runlog: RunLog):
        held = ledger()
        for n in range(3):
            now = T0 + 600 * (n + 1)
            results = [collect(held, vid, now, n) for vid in VESSELS]
            for result in results:
                runlog.prepare(result, held)
            await record(runlog, held, *results)
            await assert_stored_as_held(runlog, held, now)

    async def test_a_vessel_folded_again_after_its_rows_were_packed_is_packed_again(
            self, runlog: RunLog):
        held = ledger()
        first = collect(held, "v1", T0 + 600, 1)
        runlog.prepare(first, held)
        # Folded again before the write (its rows as packed lack these hours).
        later = collect(held, "v1", T0 + HOUR + 600, 2)
        await record(runlog, held, later)
        await assert_stored_as_held(runlog, held, T0 + HOUR + 600)

    async def test_hours_merged_from_the_db_after_packing_are_stored(self, runlog: RunLog):
        held = ledger()
        await record(runlog, held, collect(held, "v1", T0 + 600, 1))
        result = collect(held, "v1", T0 + 1200, 2)
        runlog.prepare(result, held)
        # An hour memory no longer holds comes back from the DB as it was stored, older
        # than the rows packed: they are packed again.
        book = held.vessels["v1"].books[ADDRESSES[0]]
        key = T0 // HOUR
        packed = book.frozen.pop(key)
        await ledger_db.load(runlog.db, held, "v1", key // 24)
        assert book.frozen[key] != packed
        await record(runlog, held, result)
        await assert_stored_as_held(runlog, held, T0 + 1200)

    async def test_a_window_declared_after_packing_is_stored(self, runlog: RunLog):
        held = ledger()
        result = collect(held, "v1", T0 + 1200, 1)
        runlog.prepare(result, held)
        config = VESSELS["v1"]
        plan = held.affected(config, last_hour)
        assert plan
        held.amend(config, plan, no_maintenance, last_hour, kept_from=T0 + DAY)
        await record(runlog, held, result)
        await assert_stored_as_held(runlog, held, T0 + 1200)
        stored = held.vessels["v1"].books[ADDRESSES[0]].frozen[T0 // HOUR - 1]
        assert stored.maintenance == HOUR and stored.estimated

    async def test_a_rewind_after_packing_stores_the_profiles_it_left(self, runlog: RunLog):
        held = ledger()
        await record(runlog, held, collect(held, "v1", T0 + 600, 1))
        result = collect(held, "v1", T0 + 1200, 2)
        runlog.prepare(result, held)
        packed = held.saved_profiles("v1")
        # Points still held: the cursor goes back and the profiles are cut to it.
        config = VESSELS["v1"]
        held.amend(config, held.affected(config, last_hour), no_maintenance, last_hour,
                   kept_from=0)
        assert held.vessels["v1"].replay_from is not None
        assert held.saved_profiles("v1") != packed
        await record(runlog, held, result)
        await assert_stored_as_held(runlog, held, T0 + 1200)
        [(_, _, _, profiles)] = list(await runlog.last_states())
        assert {a: p.packed_bytes() for a, p in profiles.items()} == held.saved_profiles("v1")

    async def test_a_failed_write_keeps_the_rows_for_the_next(self, runlog: RunLog):
        held = ledger()
        results = [collect(held, vid, T0 + 600, 1) for vid in VESSELS]
        for result in results:
            runlog.prepare(result, held)
        await runlog.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON runs"
                                " BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        with pytest.raises(Exception, match="disk full"):
            await record(runlog, held, *results)
        await runlog.db.execute("DROP TRIGGER refuse")
        # v2 does not answer the next run: what it changed before is stored all the same.
        again = collect(held, "v1", T0 + 1200, 2)
        runlog.prepare(again, held)
        failed = VesselResult(vessel="v2", status=VesselStatus.UNREACHABLE, attempts=1,
                              duration=1.0, finished_at=T0 + 1200, error="timed out")
        runlog.prepare(failed, held)
        await record(runlog, held, again, failed)
        await assert_stored_as_held(runlog, held, T0 + 1200)

    async def test_a_fault_while_packing_ahead_fails_nothing(
            self, runlog: RunLog, monkeypatch: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture):
        held = ledger()
        result = collect(held, "v1", T0 + 600, 1)
        real = ledger_db.pack_vessel
        faults = iter([RuntimeError("a bug")])

        def once(*args: object, **kwargs: object) -> object:
            if (fault := next(faults, None)) is not None:
                raise fault
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(ledger_db, "pack_vessel", once)
        runlog.prepare(result, held)
        assert "cannot pack the rows of vessel v1" in caplog.text
        await record(runlog, held, result)
        await assert_stored_as_held(runlog, held, T0 + 600)
        assert [vid for vid, *_ in await runlog.last_states()] == ["v1"]

    async def test_a_result_replaced_after_packing_stores_its_own_state(self, runlog: RunLog):
        held = ledger()
        result = collect(held, "v1", T0 + 600, 1)
        runlog.prepare(result, held)
        # As the fleet does for a skewed vessel: another observation for the same result.
        kept = VesselObservation(devices={a: DeviceObservation(spans={}, last_sample=T0,
                                                               offset=42.0)
                                          for a in ADDRESSES})
        await record(runlog, held, dataclasses.replace(result, observation=kept))
        [(vid, at, observation, _)] = list(await runlog.last_states())
        assert (vid, at, observation) == ("v1", T0 + 600, kept)


KEYS = st.tuples(st.sampled_from(["v1", "v2", "v3"]), st.sampled_from(["a", "b", "c"]),
                 st.integers(0, 3))


class TestUnwritten:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["add", "discard"]), KEYS), max_size=40))
    def test_it_is_the_set_of_its_keys_indexed_by_vessel(
            self, steps: list[tuple[str, DayKey]]):
        unwritten, plain = Unwritten(), set[DayKey]()
        for action, key in steps:
            getattr(unwritten, action)(key)
            getattr(plain, action)(key)
        assert set(unwritten) == plain and len(unwritten) == len(plain)
        assert all(key in unwritten for key in plain)
        assert set(unwritten.vessels()) == {v for v, _, _ in plain}
        for vid in ("v1", "v2", "v3"):
            assert {(vid, a, d) for d, addresses in unwritten.days(vid).items()
                    for a in addresses} == {k for k in plain if k[0] == vid}
        unwritten.clear()
        assert not unwritten and list(unwritten) == [] and not unwritten.vessels()
