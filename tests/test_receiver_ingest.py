"""Webhook ingest: hostile payloads are refused by name, and never fail a neighbour."""

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from receiver.appkeys import DB, INGEST
from receiver.payload import Alert, Notification
from tests.receiver_helpers import T0, alert, bearer, body, notification, signed_in
from tests.receiver_helpers import until as receiver_until


async def post_text(client, text: str):
    # A file object: aiohttp warns of big raw bytes.
    return await client.post("/api/v1/alerts", data=io.BytesIO(text.encode()),
                             headers=bearer())


async def stored(client) -> list[dict]:
    response = await client.get("/api/v1/incidents", headers=signed_in())
    assert response.status == 200
    return (await response.json())["incidents"]


def with_alert(**fields) -> str:
    made = alert()
    for name, value in fields.items():
        if name in ("summary", "down_since"):
            made["annotations"][name] = value
        elif name == "vessel":
            made["labels"]["vessel"] = value
        else:
            made[name] = value
    return body(notification(made))


def raw_json_in(field: str, raw: str) -> str:
    """A valid notification whose top-level `field` is the raw JSON text `raw`."""
    text = body(notification(alert()))
    return text[:-1] + f', "{field}": {raw}}}'


HOSTILE = [
    (raw_json_in("truncatedAlerts", "9" * 5000), "truncatedAlerts: integer too long"),
    (raw_json_in("extra", "9" * 5000), "extra: integer too long"),
    (raw_json_in("extra", "[" * 100_000 + "]" * 100_000), "body: nested more than"),
    (raw_json_in("extra", "[" * 40 + "]" * 40), "extra" + "[0]" * 31 + ": nested more"),
    (raw_json_in("extra", "NaN"), "extra: NaN is not JSON"),
    (raw_json_in("extra", "1e400"), "extra: number out of range"),
    (raw_json_in("extra", '"\\ud800"'), "extra: not valid Unicode"),
    (with_alert(vessel="\ud800"), "alerts[0].labels.vessel: not valid Unicode"),
    (body({**notification(alert()), "groupKey": "g\ud800"}), "groupKey: not valid Unicode"),
    (with_alert(summary="down \udfff"), "alerts[0].annotations.summary: not valid Unicode"),
    (with_alert(down_since="-Inf"), "alerts[0].annotations.down_since: outside"),
    (with_alert(down_since="-1e20"), "alerts[0].annotations.down_since: outside"),
    (with_alert(down_since="soon"), "alerts[0].annotations.down_since: expected Unix"),
    (with_alert(startsAt="0001-01-01T00:00:01+14:00"), "alerts[0].startsAt: outside"),
    (with_alert(startsAt="9999-12-31T23:59:59-14:00"), "alerts[0].startsAt: outside"),
    (with_alert(endsAt="1969-12-31T23:59:59Z"), "alerts[0].endsAt: outside"),
    (with_alert(fingerprint="x" * 65), "alerts[0].fingerprint: expected up to 64"),
    (with_alert(summary="s" * 70_000), "alerts[0].annotations.summary: longer than"),
    (with_alert(vessel="v" * 5000), "alerts[0].labels.vessel: longer than"),
]


class TestHostilePayloads:
    @pytest.mark.parametrize(("text", "message"), HOSTILE,
                             ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(HOSTILE)])
    async def test_refused_with_400_naming_the_field(self, receiver, text, message):
        client = await receiver()
        response = await post_text(client, text)
        assert response.status == 400
        assert (await response.json())["error"].startswith(message)
        assert await stored(client) == []

    async def test_a_decision_comment_that_is_a_huge_number_is_400(self, receiver):
        client = await receiver()
        response = await post_text(client, body(notification(alert())))
        [incident] = (await response.json())["incidents"]
        decided = await client.post(
            f"/api/v1/incidents/{incident}/approve", data='{"comment": ' + "7" * 5000 + "}",
            headers={**signed_in(), "Content-Type": "application/json"})
        assert decided.status == 400
        assert (await decided.json())["error"] == "comment: integer too long"
        deep = await client.post(
            f"/api/v1/incidents/{incident}/approve", data="[" * 100_000,
            headers={**signed_in(), "Content-Type": "application/json"})
        assert deep.status == 400
        [found] = await stored(client)
        assert found["approval"] == "pending"


async def until(condition) -> None:
    """Let the loop run until `condition()` holds; fails after many turns instead of hanging."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


class TestGroupCommit:
    async def test_a_bad_notification_never_fails_a_valid_neighbour(self, receiver):
        client = await receiver()
        app = client.server.app
        ingest = app[INGEST]
        async with app[DB].transaction():  # hold the writer: both queue up for one commit
            first = asyncio.ensure_future(post_text(client, body(notification(
                alert(vessel="v001")))))
            await until(lambda: ingest.taken == 1)  # its commit now waits for the lock
            bad = asyncio.ensure_future(post_text(client, body(
                {**notification(alert(vessel="v666")), "groupKey": "g\ud800"})))
            good = asyncio.ensure_future(post_text(client, body(notification(
                alert(vessel="v002")))))
            await until(lambda: ingest.waiting() == 2 or (bad.done() and ingest.waiting() == 1))
        assert (await first).status == 200
        assert (await good).status == 200
        assert (await bad).status == 400
        assert sorted(i["labels"]["vessel"] for i in await stored(client)) == ["v001", "v002"]

    async def test_ingest_isolates_a_notification_that_cannot_be_stored(self, tmp_path):
        from receiver.config import IncidentPolicy
        from receiver.db import Database
        from receiver.ingest import Ingest

        db = await Database.open(tmp_path / "receiver.db")

        def made(vessel: str, group_key: str) -> Notification:
            return Notification("r", "firing", group_key, {}, "", 0, (Alert(
                "firing", {"alertname": "A", "vessel": vessel, "component": "c"}, {},
                T0, None, "", f"fp{vessel}"),))

        ingest = Ingest(db, IncidentPolicy(), lambda: T0)
        try:
            # Both queue before the writer runs: one group commit.
            bad = asyncio.ensure_future(ingest.submit(made("v1", "g\ud800"), "{}"))
            good = asyncio.ensure_future(ingest.submit(made("v2", "g"), "{}"))
            await until(lambda: ingest.waiting() == 2)
            writer = asyncio.create_task(ingest.run())
            changes = await good
            assert [c.kind for c in changes] == ["opened"]
            with pytest.raises(UnicodeEncodeError):
                await bad
            writer.cancel()
            async with db.snapshot() as reader:
                assert [i.labels["vessel"] for i in await reader.incidents()] == ["v2"]
        finally:
            await db.close()


    async def test_a_commit_is_one_trip_to_the_database_thread_however_many_keys(
            self, tmp_path, monkeypatch):
        import aiosqlite

        from receiver.config import IncidentPolicy
        from receiver.db import Database
        from receiver.ingest import Ingest

        db = await Database.open(tmp_path / "receiver.db")

        def made(vessels: range) -> Notification:
            return Notification("r", "firing", "g", {}, "", 0, tuple(Alert(
                "firing", {"alertname": "A", "vessel": f"v{n}", "component": "c"}, {},
                T0, None, "", f"fp{n}") for n in vessels))

        trips = 0
        execute = aiosqlite.Connection._execute

        async def counted(self: aiosqlite.Connection, fn: Any, *args: Any,
                          **kwargs: Any) -> Any:
            nonlocal trips
            trips += 1
            return await execute(self, fn, *args, **kwargs)

        # Every statement aiosqlite runs goes through _execute, a hop to its thread.
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        ingest = Ingest(db, IncidentPolicy(), lambda: T0)
        writer = asyncio.create_task(ingest.run())
        try:
            await ingest.submit(made(range(25)), "{}")  # 25 incidents open
            trips = 0
            changes = await ingest.submit(made(range(50)), "{}")  # 25 repeats, 25 new
            assert sorted(c.kind for c in changes).count("opened") == 25
            assert trips == 1
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await db.close()


def device(name: str, status: str = "firing", starts: float = T0 - 3600,
           ends: float | None = None) -> dict:
    """One device's alert: the same dedupe key as its neighbours, its own fingerprint."""
    made = alert(status=status, starts=starts, ends=ends)
    made["labels"]["device"] = name
    made["fingerprint"] = f"fp-{name}"
    return made


async def send(client, *alerts: dict, group_key: str = "g") -> dict:
    response = await post_text(client, body(notification(*alerts, group_key=group_key)))
    assert response.status == 200
    return await response.json()


async def incident(client, incident_id: int) -> dict:
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=signed_in())
    assert response.status == 200
    return await response.json()


class TestResolve:
    async def test_an_incident_resolves_only_when_none_of_its_alerts_fires(self, receiver):
        client = await receiver(clock=lambda: T0)
        [opened] = (await send(client, device("a"), device("b")))["incidents"]
        approved = await client.post(f"/api/v1/incidents/{opened}/approve",
                                     json={"comment": "go"}, headers=signed_in())
        assert approved.status == 200
        # Alertmanager sends the group as it is: b still fires, a has recovered.
        await send(client, device("b"), device("a", "resolved", ends=T0 - 60))
        found = await incident(client, opened)
        assert found["state"] == "firing"
        assert "resolve" not in [w["kind"] for w in found["ticket_work"]]
        assert [e["kind"] for e in found["events"]][-1] != "resolved"
        await send(client, device("b", "resolved", ends=T0 - 30))
        found = await incident(client, opened)
        assert found["state"] == "resolved"
        assert found["resolved_at"] == pytest.approx(T0 - 30 + 0.123456)  # b's own endsAt
        assert [w["kind"] for w in found["ticket_work"]].count("resolve") == 1

    async def test_resolved_listed_before_firing_neither_resolves_nor_reopens(self, receiver):
        client = await receiver(clock=lambda: T0)
        [opened] = (await send(client, device("a")))["incidents"]
        await send(client, device("a", "resolved", ends=T0 - 60), device("b"))
        found = await incident(client, opened)
        assert found["state"] == "firing"
        assert [e["kind"] for e in found["events"]] == ["opened"]

    async def test_an_older_notification_never_refires_a_resolved_alert(self, receiver):
        client = await receiver(clock=lambda: T0)
        [opened] = (await send(client, device("a")))["incidents"]
        await send(client, device("a", "resolved", ends=T0 - 60))
        # The other Alertmanager of an HA pair, late: the same firing, already ended.
        assert (await send(client, device("a"), group_key="peer"))["incidents"] == []
        found = await incident(client, opened)
        assert found["state"] == "resolved"
        assert [e["kind"] for e in found["events"]] == ["opened", "resolved"]
        # A new firing starts after the end: that one reopens.
        await send(client, device("a", starts=T0 - 10))
        found = await incident(client, opened)
        assert found["state"] == "firing"
        assert [e["kind"] for e in found["events"]] == ["opened", "resolved", "reopened"]

    async def test_a_late_firing_does_not_keep_a_recovered_alert_open(self, receiver):
        client = await receiver(clock=lambda: T0)
        [opened] = (await send(client, device("a"), device("b")))["incidents"]
        await send(client, device("b"), device("a", "resolved", ends=T0 - 60))
        await send(client, device("a"), device("b"), group_key="peer")  # old news of a
        await send(client, device("b", "resolved", ends=T0 - 30))
        assert (await incident(client, opened))["state"] == "resolved"


class TestBoundedIncident:
    async def test_churning_alerts_keep_a_bounded_number_per_incident(self, receiver):
        client = await receiver(clock=lambda: T0)
        [opened] = (await send(client, device("steady")))["incidents"]
        for round_ in range(8):
            names = [f"r{round_}-{i}" for i in range(40)]
            await send(client, device("steady"), *(device(n) for n in names))
            await send(client, device("steady"),
                       *(device(n, "resolved", ends=T0 - 1) for n in names))
        found = await incident(client, opened)
        assert found["state"] == "firing"
        statuses = [a["status"] for a in found["details"].values()]
        assert statuses.count("firing") == 1
        assert statuses.count("resolved") == 50  # of 320 seen: the newest, bounded


class TestStoredRowsFromOlderVersions:
    async def test_one_unreadable_incident_breaks_neither_the_page_nor_the_outbox(
            self, receiver, tmp_path):
        import json
        import sqlite3

        client = await receiver(clock=lambda: T0)
        await send(client, device("warmup"))  # the schema exists
        details = {"fp1": {"labels": {"alertname": "X", "device": "d\ud800"},
                           "annotations": {"summary": "down \ud800", "down_since": "-Inf"},
                           "starts_at": -1e20, "generator_url": "", "status": "firing"},
                   "fp2": {"labels": {}, "annotations": {"down_since": "-1e20"},
                           "starts_at": float("-inf"), "status": "firing"},
                   "fp3": "not an alert"}
        connection = sqlite3.connect(tmp_path / "receiver.db")
        try:
            cursor = connection.execute(
                "INSERT INTO incidents (dedupe_key, labels, state, approval, opened_at,"
                " last_seen, notifications, details) VALUES"
                " ('bad', '{\"vessel\": \"v9\", \"component\": \"x\"}', 'firing', 'pending',"
                " ?, ?, 1, ?)", (float("-inf"), -1e20, json.dumps(details)))
            bad = cursor.lastrowid
            connection.execute("INSERT INTO outbox (incident_id, kind, next_attempt_at,"
                               " created_at) VALUES (?, 'create', ?, ?)", (bad, T0, T0))
            connection.commit()
        finally:
            connection.close()
        [good] = (await send(client, alert(vessel="v003")))["incidents"]
        approved = await client.post(f"/api/v1/incidents/{good}/approve",
                                     json={"comment": "go"}, headers=signed_in())
        assert approved.status == 200

        async def ticketed() -> dict[str, Any] | None:
            found = await incident(client, good)
            return found if found["ticket_key"] else None

        found = await receiver_until(ticketed, within=10.0)  # the outbox, in the background
        assert found["ticket_key"] == f"DRY-{good}"
        page = await client.get("/", headers=signed_in())
        assert page.status == 200
        text = await page.text()
        assert f"DRY-{good}" in text and "unreadable stored alert" in text
        assert (await client.get(f"/incidents/{bad}", headers=signed_in())).status == 200
        assert "opened_at" in (await incident(client, bad))["problem"]


def largest_alert(n: int) -> dict:
    """The biggest alert the shipped rules make: FleetComponentDownPersistent with every
    annotation, 64-character names and 24 devices down."""
    name, vessel = "M" * 64, "v" * 32
    made = device(f"{n:03d}-" + "d" * 56)
    made["labels"].update(vessel=vessel, component="access_point",
                          address="255.255.255.255")
    downtime = "4w 2d 23h 59m 59s"
    made["annotations"] = {
        "summary": f"access_point on {name} has been down for {downtime}",
        "description": f"At least one access_point device on {name} ({vessel}) has not "
                       f"replied for {downtime}, more than 3 days. A JIRA ticket is raised "
                       "once an approver agrees.",
        "vessel_name": name, "uptime_24h": "12.3456%", "down_since": "1799999999",
        "devices_down": ", ".join(f"{'d' * 64} (255.255.255.{i})" for i in range(24)),
        "runbook_url": "https://github.com/fleet-sla/fleet-sla/blob/main/docs/runbooks.md"
                       "#fleetcomponentdownpersistent",
        "dashboard_url": f"http://localhost:3000/d/fleet-vessel/fleet-vessel?var-vessel={vessel}",
    }
    made["generatorURL"] = "http://prometheus:9090/graph?g0.expr=" + "%28" * 120 + "&g0.tab=1"
    return made


class TestLargeNotifications:
    def test_the_shipped_limits_fit_each_other(self):
        import yaml

        from receiver.config import MAX_BODY_BYTES

        path = Path(__file__).parent.parent / "deploy/alertmanager/alertmanager.yml"
        hooks = [hook for receiver in yaml.safe_load(path.read_text())["receivers"]
                 for hook in receiver.get("webhook_configs", [])]
        assert hooks and all(hook.get("max_alerts") == 500 for hook in hooks)
        largest = len(body(notification(*(largest_alert(i) for i in range(500)))))
        assert largest * 2 <= MAX_BODY_BYTES  # twice over, for what we did not think of

    async def test_the_biggest_notification_alertmanager_sends_is_stored(self, receiver):
        client = await receiver(clock=lambda: T0)
        text = body(notification(*(largest_alert(i) for i in range(500))))
        assert len(text) > 1024 * 1024
        response = await post_text(client, text)
        assert response.status == 200
        [found] = await stored(client)
        assert len((await incident(client, found["id"]))["details"]) == 500
