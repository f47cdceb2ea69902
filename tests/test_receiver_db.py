"""The data-access module: typed rows, and rows this version does not know."""

import logging
import sqlite3
from pathlib import Path

import pytest

from receiver.db import (
    Approval,
    Database,
    DecisionKind,
    EventKind,
    IncidentState,
    SyncWriter,
    WorkKind,
    WorkState,
)
from receiver.errors import Unavailable
from tests.receiver_helpers import alert, fire, signed_in

T = 1_800_000_000.0
ENTRY = {"labels": {}, "annotations": {}, "starts_at": T, "generator_url": "",
         "status": "firing"}


@pytest.fixture
async def db(tmp_path: Path):
    database = await Database.open(tmp_path / "receiver.db")
    yield database
    await database.close()


def foreign_write(path: Path, sql: str, *args: object) -> None:
    """Write a row the way another version could have: past today's CHECK constraints."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA ignore_check_constraints=ON")
        connection.execute(sql, args)
        connection.commit()
    finally:
        connection.close()


class TestTypedRows:
    async def test_an_incident_reads_back_typed(self, db):
        async with db.transaction() as tx:
            incident = await tx.add_incident("k", {"vessel": "v1"}, Approval.PENDING, T, T + 1,
                                             {"fp": ENTRY}, T + 1)
            await tx.append_event(incident, T + 1, EventKind.OPENED, "approval pending")
            await tx.add_decision(incident, T + 2, "alice", DecisionKind.APPROVE, "ok")
            await tx.set_approval(incident, Approval.APPROVED)
            await tx.enqueue(incident, WorkKind.CREATE, T + 2)
            await tx.enqueue(incident, WorkKind.CREATE, T + 3)  # one ticket, however asked
        async with db.snapshot() as reader:
            found = await reader.incident(incident)
            events = await reader.events(incident)
            work = await reader.work(incident)
            decisions = await reader.decisions()
        assert found is not None
        assert found.state is IncidentState.FIRING and found.approval is Approval.APPROVED
        assert found.labels == {"vessel": "v1"} and found.details == {"fp": ENTRY}
        assert [(e.kind, e.detail) for e in events] == [(EventKind.OPENED, "approval pending")]
        assert [(w.kind, w.state, w.attempts) for w in work] == [
            (WorkKind.CREATE, WorkState.PENDING, 0)]
        assert [(d.user, d.kind) for d in decisions] == [("alice", DecisionKind.APPROVE)]

    async def test_a_failed_transaction_leaves_nothing_and_says_unavailable(self, db):
        with pytest.raises(Unavailable):
            async with db.transaction() as tx:
                incident = await tx.add_incident("k", {}, Approval.NONE, T, T, {}, None)
                await tx.append_event(incident + 1000, T, EventKind.OPENED)  # no such incident
        async with db.snapshot() as reader:
            assert await reader.incidents() == []

    async def test_unknown_stored_values_read_as_unknown_with_a_warning(self, db, tmp_path,
                                                                        caplog):
        async with db.transaction() as tx:
            incident = await tx.add_incident("k", {}, Approval.NONE, T, T, {}, None)
        foreign_write(tmp_path / "receiver.db",
                      "UPDATE incidents SET state = 'muted', approval = 'escalated',"
                      " labels = 'not json' WHERE id = ?", incident)
        foreign_write(tmp_path / "receiver.db",
                      "INSERT INTO incident_events (incident_id, at, kind) VALUES (?, ?, ?)",
                      incident, T, "paged")
        with caplog.at_level(logging.WARNING, logger="receiver.db"):
            async with db.snapshot() as reader:
                found = await reader.incident(incident)
                events = await reader.events(incident)
        assert found is not None
        assert found.state is IncidentState.UNKNOWN and found.approval is Approval.UNKNOWN
        assert found.labels == {}
        assert [e.kind for e in events] == [EventKind.UNKNOWN]
        warnings = " ".join(r.getMessage() for r in caplog.records)
        assert "'muted'" in warnings and "'escalated'" in warnings and "'paged'" in warnings
        assert "labels is not a JSON object" in warnings



class TestWrite:
    """Database.write: a whole transaction run in the database's thread."""

    async def test_commits_and_answers_what_its_function_returns(self, db):
        committed: list[int] = []
        db.on_commit(lambda: committed.append(1))

        def work(tx: SyncWriter) -> int:
            incident = tx.add_incident("k", {"vessel": "v1"}, Approval.NONE, T, T, {}, None)
            tx.append_event(incident, T, EventKind.OPENED)
            return incident

        incident = await db.write(work)
        assert committed == [1]
        async with db.snapshot() as reader:
            assert [e.kind for e in await reader.events(incident)] == [EventKind.OPENED]

    async def test_a_failure_anywhere_leaves_nothing_and_the_next_write_works(self, db):
        committed: list[int] = []
        db.on_commit(lambda: committed.append(1))

        def bad_statement(tx: SyncWriter) -> None:
            incident = tx.add_incident("k", {}, Approval.NONE, T, T, {}, None)
            tx.append_event(incident + 1000, T, EventKind.OPENED)  # no such incident

        def bad_code(tx: SyncWriter) -> None:
            tx.add_incident("k", {}, Approval.NONE, T, T, {}, None)
            raise KeyError("a bug")

        with pytest.raises(Unavailable):
            await db.write(bad_statement)
        with pytest.raises(KeyError):  # not a database error: leaves as it is
            await db.write(bad_code)
        assert committed == []
        async with db.snapshot() as reader:
            assert await reader.incidents() == []
        await db.write(lambda tx: tx.add_incident("k", {}, Approval.NONE, T, T, {}, None))
        async with db.snapshot() as reader:
            assert [i.dedupe_key for i in await reader.incidents()] == ["k"]


class TestRowsFromOtherVersions:
    async def test_pages_and_api_show_an_unknown_approval_without_failing(self, receiver,
                                                                          tmp_path):
        client = await receiver()
        incident = await fire(client, alert())
        foreign_write(tmp_path / "receiver.db",
                      "UPDATE incidents SET approval = 'escalated', labels = '['"
                      " WHERE id = ?", incident)
        foreign_write(tmp_path / "receiver.db",
                      "INSERT INTO incident_events (incident_id, at, kind) VALUES (?, ?, ?)",
                      incident, T, "paged")
        page = await client.get(f"/incidents/{incident}", headers=signed_in())
        assert page.status == 200
        assert 'approval <span class="badge unknown">' in await page.text()
        assert (await client.get("/", headers=signed_in())).status == 200
        api = await client.get(f"/api/v1/incidents/{incident}", headers=signed_in())
        document = await api.json()
        assert document["approval"] == "unknown"
        assert [e["kind"] for e in document["events"]] == ["opened", "unknown"]
        decided = await client.post(f"/api/v1/incidents/{incident}/approve", json={},
                                    headers=signed_in())
        assert decided.status == 409
        assert "approval: unknown" in (await decided.json())["error"]
