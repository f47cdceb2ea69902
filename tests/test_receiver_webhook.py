"""The receiver's webhook: auth, strict validation, dedupe into incidents, durability."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import Metrics
from tests.receiver_helpers import (
    T0,
    alert,
    bearer,
    body,
    notification,
    signed_in,
    write_receiver_config,
)
from tests.servers import free_port


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def post(client, document, headers=None):
    return await client.post("/api/v1/alerts", data=body(document),
                             headers=headers if headers is not None else bearer())


async def incidents(client, state: str = "") -> list[dict]:
    query = f"?state={state}" if state else ""
    response = await client.get(f"/api/v1/incidents{query}", headers=signed_in())
    assert response.status == 200
    return (await response.json())["incidents"]


async def scrape(client) -> Metrics:
    return Metrics(await (await client.get("/metrics")).text())


class TestAuth:
    @pytest.mark.parametrize("headers", [
        {}, bearer("wrong"), bearer(""), {"Authorization": "Basic YWxpY2U6eA=="},
        {"Authorization": "webhook-token-0123456789"},
    ])
    async def test_without_the_token_nothing_is_stored(self, receiver, headers):
        client = await receiver()
        response = await post(client, notification(alert()), headers)
        assert response.status == 401
        assert await incidents(client) == []

    async def test_api_needs_a_signed_in_user(self, receiver):
        client = await receiver()
        assert (await client.get("/api/v1/incidents")).status == 401
        wrong = signed_in("alice", "not-her-password")
        assert (await client.get("/api/v1/incidents", headers=wrong)).status == 401
        assert (await client.get("/api/v1/incidents", headers=signed_in("bob"))).status == 200


def broken(**changes) -> dict:
    document = notification(alert())
    for path, value in changes.items():
        node = document
        *parents, last = path.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return document


class TestValidation:
    @pytest.mark.parametrize(("document", "message"), [
        ([1, 2], "body: expected a JSON object"),
        (broken(version="3"), "version: expected \"4\""),
        (broken(alerts=None), "alerts: missing"),
        (broken(alerts=[]), "alerts: expected a non-empty list"),
        (broken(status="weird"), "status: expected firing or resolved"),
        (broken(alerts__0__status="pending"), "alerts[0].status: expected firing or resolved"),
        (broken(alerts__0__labels={"vessel": 7}), "alerts[0].labels.vessel: expected a string"),
        (broken(alerts__0__startsAt="yesterday"), "alerts[0].startsAt: expected an RFC 3339"),
        (broken(alerts__0__fingerprint=None), "alerts[0].fingerprint: missing"),
        (broken(truncatedAlerts=-1), "truncatedAlerts: expected a non-negative integer"),
    ])
    async def test_bad_payload_gets_400_naming_the_field(self, receiver, document, message):
        client = await receiver()
        response = await post(client, document)
        assert response.status == 400
        assert message in (await response.json())["error"]
        assert await incidents(client) == []
        metrics = await scrape(client)
        assert metrics.get("fleet_receiver_webhook_requests_total", code="400") == 1
        assert metrics.series("fleet_receiver_alerts_received_total") == {}

    async def test_invalid_json(self, receiver):
        client = await receiver()
        response = await client.post("/api/v1/alerts", data='{"version": "4", ',
                                     headers=bearer())
        assert response.status == 400
        assert (await response.json())["error"].startswith("body: invalid JSON")

    async def test_body_that_is_not_utf8(self, receiver):
        client = await receiver()
        response = await client.post("/api/v1/alerts", data=b'{"version": "\xff"}',
                                     headers=bearer())
        assert response.status == 400
        assert (await response.json())["error"] == "body: not UTF-8"

    async def test_oversized_body(self, receiver):
        client = await receiver(max_body_bytes=4096)
        big = notification(*[alert(vessel=f"v{i:03d}") for i in range(40)])
        response = await post(client, big)
        assert response.status == 413
        assert await incidents(client) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _mutations() -> st.SearchStrategy[dict]:
    """Valid payloads with one field replaced by arbitrary JSON."""
    fields = ["version", "status", "alerts", "groupKey", "truncatedAlerts"]
    alert_fields = ["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"]

    def mutate(field: str, value: object, in_alert: bool) -> dict:
        document = notification(alert())
        (document["alerts"][0] if in_alert else document)[field] = value
        return document

    top = st.builds(mutate, st.sampled_from(fields), json_values, st.just(False))
    nested = st.builds(mutate, st.sampled_from(alert_fields), json_values, st.just(True))
    return top | nested


def _still_valid(document: dict) -> bool:
    from receiver.payload import PayloadError, parse_notification

    try:
        parse_notification(document)
    except PayloadError:
        return False
    return True


texts = st.text(max_size=20) | st.sampled_from(["v\ud800", "\udfff", "\x00", "9" * 5000])


def _generated_alerts() -> st.SearchStrategy[dict]:
    """Valid alerts with arbitrary label values, some resolved, some odd but valid."""
    def build(vessel: str, status: str, starts: float, summary: str, fp: str) -> dict:
        made = alert(vessel=vessel, status=status, starts=starts,
                     ends=starts + 60 if status == "resolved" else None)
        made["annotations"]["summary"] = summary
        made["fingerprint"] = fp
        return made

    return st.builds(build, texts, st.sampled_from(["firing", "resolved"]),
                     st.floats(-1e10, 2.5e11, allow_nan=False), texts,
                     st.from_regex(r"[a-f0-9]{1,16}", fullmatch=True))


def _documents() -> st.SearchStrategy[object]:
    valid = st.builds(lambda alerts, key: notification(*alerts, group_key=key),
                      st.lists(_generated_alerts(), min_size=1, max_size=4), texts)
    return valid | _mutations() | json_values


class TestGeneratedPayloads:
    def test_every_answer_is_200_400_or_413_and_exactly_the_acknowledged_are_stored(
            self, tmp_path):
        """Driven in-process on one app: 1,200 examples in seconds."""
        import sqlite3

        from aiohttp.test_utils import TestClient, TestServer

        from receiver.config import load_config
        from receiver.payload import parse_notification
        from receiver.web import create_app

        config = load_config(write_receiver_config(tmp_path / "receiver.yml",
                                                   max_body_bytes=4096))
        loop = asyncio.new_event_loop()
        client = TestClient(TestServer(create_app(config, clock=Clock())), loop=loop)
        loop.run_until_complete(client.start_server())
        acknowledged: list[str] = []

        @settings(max_examples=1200, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(document=_documents())
        def check(document: object) -> None:
            text = json.dumps(document)
            response = loop.run_until_complete(client.post(
                "/api/v1/alerts", data=text.encode(), headers=bearer()))
            loop.run_until_complete(response.read())
            assert response.status in (200, 400, 413), text
            if response.status == 200:
                acknowledged.append(text)

        try:
            check()
        finally:
            loop.run_until_complete(client.close())
            loop.close()
        with contextlib.closing(sqlite3.connect(tmp_path / "receiver.db")) as db:
            stored = [r[0] for r in db.execute("SELECT body FROM notifications ORDER BY id")]
        assert stored == acknowledged
        assert acknowledged  # the strategy makes valid notifications too
        for text in stored:
            document = json.loads(text)
            parse_notification(document)
            json.dumps(document, ensure_ascii=False).encode()  # no lone surrogates


class TestDedupe:
    async def test_repeats_and_a_second_alertmanager_make_one_incident(self, receiver):
        client = await receiver(clock=Clock(), sweep_every=0.02)
        first = await post(client, notification(alert()))
        assert first.status == 200
        for _ in range(50):
            assert (await post(client, notification(alert()))).status == 200
        # An HA peer sends the same alert in its own group.
        assert (await post(client, notification(alert(), group_key="peer"))).status == 200
        [incident] = await incidents(client)
        assert incident["approval"] == "pending" and incident["state"] == "firing"
        assert incident["notifications"] == 52
        assert [i["id"] for i in await incidents(client, "pending")] == [incident["id"]]
        async with asyncio.timeout(5):  # counts come from the periodic sweep
            while True:
                metrics = await scrape(client)
                if metrics.get("fleet_receiver_incidents", state="firing") == 1:
                    break
                await asyncio.sleep(0.02)
        assert metrics.get("fleet_receiver_approvals_pending") == 1
        assert metrics.get("fleet_receiver_alerts_received_total", status="firing") == 52
        assert metrics.get("fleet_receiver_webhook_requests_total", code="200") == 52

    async def test_other_alerts_are_recorded_without_approval(self, receiver):
        client = await receiver()
        breach = alert(alertname="FleetComponentSLABreach", ticket=False)
        assert (await post(client, notification(breach))).status == 200
        [incident] = await incidents(client)
        assert incident["approval"] == "none"
        assert await incidents(client, "pending") == []

    async def test_dedupe_labels_decide_what_is_the_same_problem(self, receiver):
        client = await receiver()
        await post(client, notification(alert(component="server"), alert(component="dashboard")))
        await post(client, notification(alert(vessel="v003")))
        keys = sorted(i["dedupe_key"] for i in await incidents(client))
        assert keys == [
            "alertname=FleetComponentDownPersistent,vessel=v002,component=dashboard",
            "alertname=FleetComponentDownPersistent,vessel=v002,component=server",
            "alertname=FleetComponentDownPersistent,vessel=v003,component=server",
        ]


class TestLifecycle:
    async def test_resolve_records_how_long_it_lasted(self, receiver):
        client = await receiver(clock=Clock())
        await post(client, notification(alert()))
        ended = T0 + 600
        await post(client, notification(alert(status="resolved", ends=ended)))
        [incident] = await incidents(client)
        assert incident["state"] == "resolved"
        assert incident["duration_seconds"] == pytest.approx(ended - (T0 - 4 * 86400), abs=1)
        detail = await (await client.get(f"/api/v1/incidents/{incident['id']}",
                                         headers=signed_in("bob"))).json()
        assert [e["kind"] for e in detail["events"]] == ["opened", "resolved"]

    async def test_refire_within_the_window_reopens_without_asking_again(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock)
        await post(client, notification(alert()))
        await post(client, notification(alert(status="resolved", ends=T0)))
        clock.now += 3 * 86400  # inside the default 7 d window
        await post(client, notification(alert(starts=clock.now)))
        [incident] = await incidents(client)
        assert incident["state"] == "firing" and incident["resolved_at"] is None
        detail = await (await client.get(f"/api/v1/incidents/{incident['id']}",
                                         headers=signed_in())).json()
        assert [e["kind"] for e in detail["events"]] == ["opened", "resolved", "reopened"]
        assert len(await incidents(client, "pending")) == 1  # the same request, not a new one

    async def test_refire_after_the_window_is_a_new_incident(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock, incidents={"reopen_window": "1d"})
        await post(client, notification(alert()))
        await post(client, notification(alert(status="resolved", ends=T0)))
        clock.now += 2 * 86400
        await post(client, notification(alert(starts=clock.now)))
        states = [(i["state"]) for i in await incidents(client)]
        assert states == ["firing", "resolved"]

    async def test_resolved_alert_without_incident_changes_nothing(self, receiver):
        client = await receiver()
        response = await post(client, notification(alert(status="resolved", ends=T0)))
        assert response.status == 200
        assert await incidents(client) == []


class TestDurability:
    """Once the receiver has answered 2xx, the notification survives a kill -9."""

    def test_acknowledged_notification_survives_kill_9(self, tmp_path: Path):
        port = free_port()
        config = write_receiver_config(tmp_path / "receiver.yml", listen=f"127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"

        def start() -> subprocess.Popen:
            proc = subprocess.Popen([sys.executable, "-m", "receiver", "--config", str(config)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(200):
                try:
                    with urllib.request.urlopen(f"{base}/readyz", timeout=1):
                        return proc
                except OSError:
                    if proc.poll() is not None:
                        raise AssertionError("the receiver exited") from None
                    asyncio.run(asyncio.sleep(0.05))
            proc.kill()
            raise AssertionError("the receiver did not start")

        def call(path: str, data: bytes | None = None, headers: dict | None = None) -> dict:
            request = urllib.request.Request(f"{base}{path}", data=data, headers=headers or {})
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
                return json.loads(response.read())

        proc = start()
        try:
            answer = call("/api/v1/alerts", body(notification(alert())).encode(),
                          {**bearer(), "Content-Type": "application/json"})
            assert answer["status"] == "stored"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc = start()
        try:
            stored = call("/api/v1/incidents", headers=signed_in())["incidents"]
        finally:
            proc.terminate()
            proc.wait()
        assert [i["id"] for i in stored] == answer["incidents"]
        assert stored[0]["approval"] == "pending"
