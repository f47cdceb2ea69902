"""The state DB's ledger and last states: what is written is read back, rows of the previous
version are still read, hostile rows are skipped and counted, and the fast paths (day
totals, window totals) agree with summing every hour."""

import random
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

from exporter import ledger_db
from exporter import runlog as runlog_module
from exporter.collector import RunResult, VesselResult
from exporter.config import DeviceConfig, InfluxConfig, LedgerConfig, VesselConfig, Window
from exporter.model import DeviceObservation, VesselObservation, VesselStatus
from exporter.runlog import RunLog
from exporter.sla import hour as packed_hour
from exporter.sla.hour import HOUR, Hour
from exporter.sla.hours import Book, Carry, Hours, Profile, Span, estimate, window
from exporter.sla.ledger import Ledger, VesselBooks
from tests.test_ledger import old_pack_day

DAY = 86400
T0 = 1_800_000_000 // DAY * DAY  # a UTC midnight
WINDOWS = [Window("24h", 86400.0), Window("7d", 7 * 86400.0), Window("30d", 30 * 86400.0)]


def random_hour(rng: random.Random) -> Hour:
    up = rng.choice([3600, 3600, 3000, 0, 1800, 3700])
    down = rng.choice([0, 0, 600, 3600 - up if up < 3600 else 0])
    held = rng.choice([0, 0, 0, 300])
    return Hour(up=up, down=down, maintenance=held, up_samples=up // 60,
                down_samples=down // 60, outages=1 if down else 0, longest=down,
                estimated=rng.random() < 0.1)


def random_hours(rng: random.Random, first: int, count: int) -> dict[int, Hour]:
    return {k: random_hour(rng) for k in range(first, first + count) if rng.random() < 0.85}


def vessel(vid: str, addresses: list[str]) -> VesselConfig:
    return VesselConfig(id=vid, name=vid, influx=InfluxConfig(url="http://127.0.0.1:9"),
                        devices=tuple(DeviceConfig(f"d{n}", a, "server")
                                      for n, a in enumerate(addresses)),
                        sample_interval=60.0, objectives={})


def ledger_with(hours: dict[str, dict[str, dict[int, Hour]]], frozen_until: int) -> Ledger:
    """A ledger holding these frozen hours (vessel -> address -> hour number), all to write."""
    ledger = Ledger(LedgerConfig(), WINDOWS)
    for vid, by_address in hours.items():
        ledger.vessels[vid] = VesselBooks(frozen_until=frozen_until, held_from=T0 - 40 * DAY,
                                          books={a: Book(frozen=Hours(h))
                                                 for a, h in by_address.items()})
        ledger.dirty.update((vid, a, k // 24) for a, h in by_address.items() for k in h)
        ledger.cursors_dirty.add(vid)
    return ledger


async def store(runlog: RunLog, ledger: Ledger, now: float) -> None:
    await ledger_db.write(runlog.db, ledger, now, 400 * DAY, prune=False)
    await runlog.db.commit()
    ledger.dirty.clear()
    ledger.cursors_dirty.clear()


def summed(hours: dict[int, Hour], day: int, now: float | None = None) -> ledger_db.DaySum:
    """A day's totals the straightforward way, from its Hour objects."""
    up = down = held = unobserved = up_n = down_n = outages = longest = count = est = 0
    for key in range(day * 24, day * 24 + 24):
        span = HOUR if now is None else max(0, min(HOUR, int(now) - key * HOUR))
        h = hours.get(key)
        if h is None:
            unobserved += span
            continue
        up, down, held = up + h.up, down + h.down, held + h.maintenance
        unobserved += h.unobserved(span)
        up_n, down_n, outages = up_n + h.up_samples, down_n + h.down_samples, outages + h.outages
        longest, count, est = max(longest, h.longest), count + 1, est + h.estimated
    return ledger_db.DaySum(up, down, held, unobserved, up_n, down_n, outages, longest, count,
                            est)


@pytest.fixture
async def runlog(tmp_path: Path):
    log = await RunLog.open(tmp_path / "state.db")
    yield log
    await log.close()


class TestVesselDays:
    async def test_written_hours_are_restored_and_read_back(self, runlog: RunLog):
        rng = random.Random(1)
        first = (T0 - 5 * DAY) // HOUR
        hours = {"v1": {a: random_hours(rng, first, 5 * 24) for a in ("10.0.0.1", "10.0.0.2")}}
        await store(runlog, ledger_with(hours, T0), T0)
        restored = Ledger(LedgerConfig(), WINDOWS)
        assert await ledger_db.restore(runlog.db, restored, T0 + 600) == 0
        for address, expected in hours["v1"].items():
            assert dict(restored.vessels["v1"].books[address].frozen) == expected
        found = await ledger_db.read(runlog.db, "v1", ["10.0.0.1"], (first + 30) * HOUR, T0)
        assert found == {"10.0.0.1": {k * HOUR: h for k, h in hours["v1"]["10.0.0.1"].items()
                                      if k >= first + 30}}

    async def test_carries_and_cursors_come_back(self, runlog: RunLog):
        ledger = ledger_with({"v1": {"a": {}, "b": {}, "c": {}}}, T0)
        books = ledger.vessels["v1"].books
        carries = {"a": Carry(T0 - 5, False, T0 - DAY, T0 - 65), "b": Carry(),
                   "c": Carry(0, True, 0, None)}
        for address, carry in carries.items():
            books[address].carry = carry
        ledger.vessels["v1"].replay_from = T0 - HOUR
        await store(runlog, ledger, T0)
        restored = Ledger(LedgerConfig(), WINDOWS)
        assert await ledger_db.restore(runlog.db, restored, T0) == 0
        back = restored.vessels["v1"]
        assert {a: b.carry for a, b in back.books.items()} == carries
        assert (back.frozen_until, back.held_from, back.replay_from) == (
            T0, T0 - 40 * DAY, T0 - HOUR)

    async def test_day_totals_are_the_sums_of_the_hours(self, runlog: RunLog):
        rng = random.Random(2)
        first = (T0 - 6 * DAY) // HOUR
        now = T0 + 5 * HOUR + 1800  # today is open
        hours = {"v1": {a: random_hours(rng, first, 6 * 24 + 5) for a in ("a", "b", "c")}}
        ledger = ledger_with(hours, T0 + 5 * HOUR)
        await store(runlog, ledger, now)
        # Changed since, not written yet: memory wins.
        book = ledger.vessels["v1"].books["b"]
        book.frozen[first + 30] = Hour(maintenance=3600, estimated=True)
        ledger.dirty.add(("v1", "b", (first + 30) // 24))
        hours["v1"]["b"][first + 30] = book.frozen[first + 30]
        # An open hour, recomputed each cycle.
        book.fresh = {T0 // HOUR + 5: Hour(up=1700, up_samples=28)}
        hours["v1"]["b"][T0 // HOUR + 5] = book.fresh[T0 // HOUR + 5]
        days = await ledger_db.days(runlog.db, ledger, "v1", ["a", "b", "zz"], first // 24,
                                    T0 // DAY + 1, now=now)
        assert set(days) == {"a", "b", "zz"} and days["zz"] == {}
        for address in ("a", "b"):
            for day in range(first // 24, T0 // DAY + 1):
                assert days[address][day] == summed(hours["v1"][address], day, now), day
        # Whole days read from their stored totals, without the hours.
        whole = await ledger_db.days(runlog.db, Ledger(LedgerConfig(), WINDOWS), "v1", ["c"],
                                     first // 24, T0 // DAY)
        assert whole["c"] == {d: summed(hours["v1"]["c"], d)
                              for d in range(first // 24, T0 // DAY)}

    async def test_an_old_day_changed_for_one_device_keeps_the_others_stored(
            self, runlog: RunLog):
        rng = random.Random(3)
        first = (T0 - 10 * DAY) // HOUR
        hours = {"v1": {a: random_hours(rng, first, 24) for a in ("a", "b")}}
        ledger = ledger_with(hours, T0)
        await store(runlog, ledger, T0)
        books = ledger.vessels["v1"]
        books.books["b"].frozen.clear()  # pruned from memory long ago
        books.books["a"].frozen[first + 3] = Hour(up=1, up_samples=1)  # amended
        ledger.dirty.add(("v1", "a", first // 24))
        await store(runlog, ledger, T0)
        found = await ledger_db.read(runlog.db, "v1", ["a", "b"], first * HOUR, T0)
        assert found["b"] == {k * HOUR: h for k, h in hours["v1"]["b"].items()}
        assert found["a"][(first + 3) * HOUR] == Hour(up=1, up_samples=1)

    async def test_hostile_rows_are_skipped_and_counted(self, runlog: RunLog):
        rng = random.Random(4)
        first = (T0 - 3 * DAY) // HOUR
        hours = {"v1": {"a": random_hours(rng, first, 3 * 24)}}
        await store(runlog, ledger_with(hours, T0), T0)
        db = runlog.db
        await db.execute("UPDATE ledger_vessel_days SET hours = x'0102' WHERE day = ?",
                         (first // 24,))
        await db.execute("UPDATE ledger_vessel_days SET addresses = '{' WHERE day = ?",
                         (first // 24 + 1,))
        await db.execute("INSERT INTO ledger_vessel_days VALUES ('v1', ?, '[\"a\"]', x'00',"
                         " x'01')", (first // 24 + 2 - 10,))
        await db.execute("INSERT INTO ledger_vessels VALUES ('v2', 'soon', 0)")
        await db.commit()
        restored = Ledger(LedgerConfig(), WINDOWS)
        assert await ledger_db.restore(db, restored, T0) == 4
        assert dict(restored.vessels["v1"].books["a"].frozen) == {
            k: h for k, h in hours["v1"]["a"].items() if k // 24 == first // 24 + 2}
        days = await ledger_db.days(db, restored, "v1", ["a"], first // 24 - 10, T0 // DAY)
        # The first day's totals are intact: whole days are read from them alone.
        assert set(days["a"]) == {first // 24, first // 24 + 2}


class TestPreviousVersion:
    async def test_a_db_of_the_previous_version_restores_and_serves_the_same_hours(
            self, tmp_path: Path):
        path = tmp_path / "old.db"
        rng = random.Random(5)
        first = (T0 - 4 * DAY) // HOUR
        hours = {a: random_hours(rng, first, 4 * 24) for a in ("a", "b")}
        with sqlite3.connect(path) as db:  # as the previous version left it
            db.executescript("""
                CREATE TABLE ledger_vessels (vessel TEXT PRIMARY KEY,
                    frozen_until INTEGER NOT NULL, held_from INTEGER NOT NULL);
                CREATE TABLE ledger_carry (vessel TEXT NOT NULL, address TEXT NOT NULL,
                    last INTEGER, last_up INTEGER NOT NULL, first INTEGER, down_from INTEGER,
                    PRIMARY KEY (vessel, address)) WITHOUT ROWID;
                CREATE TABLE ledger_days (vessel TEXT NOT NULL, address TEXT NOT NULL,
                    day INTEGER NOT NULL, hours BLOB NOT NULL,
                    PRIMARY KEY (vessel, address, day)) WITHOUT ROWID;
                CREATE TABLE vessel_state (vessel TEXT PRIMARY KEY,
                    last_success REAL NOT NULL, observation TEXT NOT NULL);
            """)
            db.execute("INSERT INTO ledger_vessels VALUES ('v1', ?, ?)", (T0, T0 - 30 * DAY))
            db.executemany("INSERT INTO ledger_carry VALUES ('v1', ?, ?, 1, ?, NULL)",
                           [(a, T0 - 1, T0 - 4 * DAY) for a in hours])
            db.executemany("INSERT INTO ledger_days VALUES ('v1', ?, ?, ?)", [
                (a, day, old_pack_day([h.get(day * 24 + i) for i in range(24)]))
                for a, h in hours.items() for day in range(first // 24, T0 // DAY)])
            db.execute("INSERT INTO ledger_days VALUES ('v1', 'a', ?, x'00')",
                       (first // 24 - 1,))
            db.execute("INSERT INTO vessel_state VALUES ('v1', ?, ?)", (T0, (
                '{"a": {"spans": {"24h": [1, 2, 3, 4, 5]}, "last_sample": 5.0,'
                ' "last_loss": 0.0, "counts": [1]}}')))
        runlog = await RunLog.open(path)
        try:
            ledger = Ledger(LedgerConfig(), WINDOWS)
            assert await ledger_db.restore(runlog.db, ledger, T0 + 60) == 1  # the damaged row
            books = ledger.vessels["v1"]
            assert books.books["a"].carry.last == T0 - 1
            for address, expected in hours.items():
                assert dict(books.books[address].frozen) == expected
            served = await ledger_db.hours(runlog.db, Ledger(LedgerConfig(), WINDOWS), "v1",
                                           ["a", "b"], first * HOUR, T0)
            assert served == {a: {k * HOUR: h for k, h in hs.items()}
                              for a, hs in hours.items()}
            days = await ledger_db.days(runlog.db, ledger, "v1", ["a"], first // 24 - 1,
                                        T0 // DAY)
            assert days["a"] == {d: summed(hours["a"], d)
                                 for d in range(first // 24, T0 // DAY)}
            # A day written again over the old rows: one device changed, the other's old
            # row still reads (the day is not one memory is trusted with).
            ledger.vessels["v1"].books["b"].frozen.clear()
            ledger.vessels["v1"].books["a"].frozen[first] = Hour(up=7, up_samples=1)
            ledger.dirty.add(("v1", "a", first // 24))
            await store(runlog, ledger, T0 + 60)
            again = await ledger_db.read(runlog.db, "v1", ["a", "b"], first * HOUR, T0)
            assert again["a"][first * HOUR] == Hour(up=7, up_samples=1)
            assert again["b"] == {k * HOUR: h for k, h in hours["b"].items()}
            [(_, _, observation, _)] = list(await runlog.last_states())
            assert observation.devices["a"].spans["24h"] == Span(1, 2, 3, 4, 5)
        finally:
            await runlog.close()


class TestLastStates:
    async def test_observations_come_back_as_recorded(self, runlog: RunLog):
        devices = {
            "10.0.0.1": DeviceObservation(spans={"24h": Span(1.5, 2, 3, 4, 5),
                                                 "7d": Span(6, 7, 8, 9, 10)},
                                          last_sample=1e9 + 0.25, last_loss=0.0,
                                          last_rtt=0.04, last_reply=1e9, first_sample=None,
                                          fresh=False, offset=2.5),
            "10.0.0.2": DeviceObservation(spans={}),
        }
        observation = VesselObservation(devices=devices)
        run = RunResult(started_at=T0, finished_at=T0 + 1, duration=1.0, vessels=(
            VesselResult("v1", VesselStatus.OK, 1, 0.5, T0 + 1, observation=observation),))
        await runlog.record(run, retention=86400)
        await runlog.db.execute("INSERT INTO vessel_state VALUES ('v2', 1, x'01ffff')")
        await runlog.db.commit()
        states = {v: (t, o) for v, t, o, _ in await runlog.last_states()}
        assert states == {"v1": (T0 + 1, observation)}


class TestWindowTotals:
    def straightforward(self, book: Book, start: float, now: float,
                        held_from: float) -> Span:
        """The window hour by hour, as it was summed before running totals."""
        total = Span()
        first, last = int(start // HOUR), int(now // HOUR)
        for key in range(first, last + 1):
            lo, hi = max(key * HOUR, start), min((key + 1) * HOUR, now)
            span = hi - lo
            if span <= 0:
                continue
            unheld = max(0.0, min(hi, held_from) - lo)
            hour = book.hour(key)
            if hour is None:
                total += Span(unobserved=span - unheld, unheld=unheld)
                continue
            share = span / HOUR if key == first and lo > key * HOUR else 1.0
            part = Span(hour.up * share, hour.down * share, hour.maintenance * share)
            rest = max(0.0, span - part.up - part.down - part.maintenance)
            held_rest = max(0.0, rest - unheld)
            total += Span(part.up, part.down, part.maintenance, held_rest, rest - held_rest)
        return total

    def close(self, a: Span, b: Span) -> bool:
        return all(abs(x - y) < 1e-6 for x, y in zip(
            (a.up, a.down, a.maintenance, a.unobserved, a.unheld),
            (b.up, b.down, b.maintenance, b.unobserved, b.unheld), strict=True))

    @pytest.mark.parametrize("seed", range(6))
    def test_windows_agree_with_summing_every_hour_as_hours_change(self, seed: int):
        rng = random.Random(seed)
        now = T0 + rng.randrange(DAY) + rng.random()
        last = int(now // HOUR)
        book = Book(frozen=Hours(random_hours(rng, last - 40 * 24, 40 * 24 - 2)))
        book.fresh = {last - 1: random_hour(rng), last: random_hour(rng)}
        held_from = rng.choice([now - 35 * DAY, (last - 20 * 24) * HOUR,
                                (last - 200) * HOUR + 1234.5, now - 3 * DAY])
        for step in range(40):
            for seconds in (86400.0, 7 * 86400.0, 30 * 86400.0, 31 * 3600 + 7.5):
                start = now - seconds
                assert self.close(window(book, start, now, held_from),
                                  self.straightforward(book, start, now, held_from)), step
            # Hours freeze, are amended with estimates, re-read, and pruned.
            change = rng.randrange(4)
            key = last - rng.randrange(30 * 24)
            if change == 0:
                book.frozen[last - 1] = random_hour(rng)
            elif change == 1 and (hour := book.frozen.get(key)) is not None:
                book.frozen[key] = estimate(hour, rng.choice([-1800, 600, 3600]))
            elif change == 2:
                book.frozen.pop(key, None)
            else:
                for k in [k for k in book.frozen if k < last - rng.randrange(24 * 29, 24 * 40)]:
                    del book.frozen[k]
        assert any(h.estimated for h in book.frozen.values())

    def test_a_plain_dict_of_hours_is_taken_as_well(self):
        rng = random.Random(9)
        now = float(T0 + 5000)
        book = Book(frozen=random_hours(rng, int(now // HOUR) - 800, 790))
        expected = self.straightforward(book, now - 30 * DAY, now, 0.0)
        assert self.close(window(book, now - 30 * DAY, now, 0.0), expected)


def test_a_packed_row_is_rejected_when_its_parts_disagree():
    section = packed_hour.pack({0: Hour(up=1)}, 0)
    with pytest.raises(ValueError):
        ledger_db._row(0, '["a", "b"]', None, b"\x01" + __import__("zlib").compress(section),
                       None)
    with pytest.raises(ValueError):
        ledger_db._row(0, '["a"]', struct.pack("<I", 1), b"\x01", None)


class TestSavedProfiles:
    def test_profiles_ride_in_the_packed_state_and_a_state_without_them_has_none(self) -> None:
        profile = Profile(since=T0, through=T0)
        profile.add([(T0 + 60 * i, i != 7) for i in range(1, 30)], T0 + 1800)
        observation = VesselObservation(devices={
            "10.0.0.1": DeviceObservation(spans={}, last_sample=T0 + 1740),
            "10.0.0.2": DeviceObservation(spans={})})
        blob = runlog_module._pack_observation(observation, {"10.0.0.1": profile.packed_bytes()})
        restored, profiles = runlog_module._unpack_observation(blob)
        assert restored == observation
        assert list(profiles) == ["10.0.0.1"]
        assert profiles["10.0.0.1"].pack() == profile.pack()
        assert profiles["10.0.0.1"].count(T0 + 300, T0 + 900) == profile.count(T0 + 300, T0 + 900)
        _, none = runlog_module._unpack_observation(
            runlog_module._pack_observation(observation, {}))
        assert none == {}


class TestSpanTotals:
    async def test_a_device_held_only_in_a_previous_versions_row_counts_as_days_counts_it(
            self, tmp_path: Path) -> None:
        runlog = await RunLog.open(tmp_path / "state.db")
        try:
            day = T0 // DAY - 3
            h = Hour(up=3000, down=600, up_samples=50, down_samples=10, outages=1, longest=600)
            await store(runlog, ledger_with({"v": {"a": {day * 24 + i: h for i in range(24)}}},
                                            T0), T0)
            await runlog.db.execute("INSERT INTO ledger_days VALUES ('v', 'b', ?, ?)",
                                    (day, old_pack_day([h] * 24)))
            await runlog.db.commit()
            days = await ledger_db.days(runlog.db, None, "v", ["a", "b"], day, day + 1)
            spans = await ledger_db.span_totals(runlog.db, None, "v", ["a", "b"],
                                                [(day, day + 1)])
            assert spans["b"][0] == days["b"][day]
            assert spans["a"][0] == days["a"][day]
        finally:
            await runlog.close()


class TestHostileSavedState:
    @pytest.mark.parametrize("blob", [
        b"\x01" + zlib.compress(struct.pack("<I", 100_000) + b"[" * 100_000),
        b"\x01" + zlib.compress(struct.pack("<I", 27) + b'{"devices":"ab","windows":[]}'),
    ], ids=["deep-header", "devices-not-a-list"])
    async def test_an_unreadable_header_is_skipped_not_a_crash(self, tmp_path: Path,
                                                              blob: bytes) -> None:
        runlog = await RunLog.open(tmp_path / "state.db")
        try:
            await runlog.db.execute("INSERT INTO vessel_state VALUES ('v', 1, ?)", (blob,))
            await runlog.db.commit()
            assert list(await runlog.last_states()) == []
        finally:
            await runlog.close()

    def packed(self, numbers: list[int], tail: bytes = b"") -> bytes:
        observation = VesselObservation(devices={
            "a": DeviceObservation(spans={}), "b": DeviceObservation(spans={})})
        blob = runlog_module._pack_observation(observation, {})
        raw = zlib.decompress(blob[1:])
        return blob[:1] + zlib.compress(
            raw[:-16] + struct.pack(f"<{len(numbers)}q", *numbers) + tail)

    @pytest.mark.parametrize("numbers,tail", [
        ([-1, 5, 100, 200, 100, 10, 11], b""),  # a negative count
        ([9, 5, 100, 200, 100, 10], b""),  # more than is there
        ([0, 0], b"\x01\x02\x03"),  # bytes that are no number
        ([0, 0, 7], b""),  # numbers left over
    ], ids=["negative", "short", "ragged", "left-over"])
    def test_a_damaged_profile_trailer_is_refused_not_given_to_another_device(
            self, numbers: list[int], tail: bytes) -> None:
        with pytest.raises((ValueError, struct.error)):
            runlog_module._unpack_observation(self.packed(numbers, tail))

    def test_the_packing_helper_makes_what_the_writer_makes(self) -> None:
        # The trailer above replaces the two zero counts the writer appends.
        observation, profiles = runlog_module._unpack_observation(self.packed([0, 0]))
        assert set(observation.devices) == {"a", "b"} and profiles == {}
