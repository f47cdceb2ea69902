"""Alerts Alertmanager stops sending without a resolve (inhibited, silenced, cut by
max_alerts, forgotten in a restart) count as gone after incidents.alert_expiry; and an
incident keeps a bounded number of firing alerts."""

import hashlib
from typing import Any

from receiver.appkeys import SWEEPER
from receiver.incidents import MAX_FIRING
from tests import test_receiver_jira
from tests.helpers import Clock
from tests.outbox_helpers import detail
from tests.receiver_helpers import alert, fire
from tests.test_receiver_jira import approve, work

jira_chain = test_receiver_jira.jira_chain  # the fixture, shared
HOUR = 3600.0
EXPIRY = 72 * HOUR  # the default: three times the longest shipped repeat_interval


def device_alert(device: str, **kwargs: Any) -> dict[str, Any]:
    """One alert of the incident's group, told apart by its device."""
    made = alert(**kwargs)
    made["labels"]["device"] = device
    made["fingerprint"] = hashlib.sha256(device.encode()).hexdigest()[:16]
    return made


async def sweep(client: Any) -> None:
    await client.app[SWEEPER].expire_unseen()


def statuses(found: dict[str, Any]) -> dict[str, str]:
    return {fp: a["status"] for fp, a in found["details"].items()}


def events(found: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in found["events"] if e["kind"] == kind]


class TestExpiry:
    async def test_an_alert_no_longer_sent_counts_as_gone_and_the_incident_resolves(
            self, receiver):
        clock = Clock()
        start = clock.now
        client = await receiver(clock=clock)
        a, b = device_alert("srv-1"), device_alert("srv-2")
        incident = await fire(client, a, b)
        clock.now += 48 * HOUR
        await fire(client, a)  # b is inhibited now: no resolved is ever sent for it
        clock.now = start + EXPIRY  # b unseen for exactly alert_expiry: not yet gone
        await sweep(client)
        assert statuses(await detail(client, incident)) == {
            a["fingerprint"]: "firing", b["fingerprint"]: "firing"}

        clock.now += 1
        await sweep(client)
        found = await detail(client, incident)
        assert found["state"] == "firing"  # a is still sent
        assert statuses(found) == {a["fingerprint"]: "firing", b["fingerprint"]: "resolved"}
        [gone] = events(found, "alerts-expired")
        assert "srv-2" in gone["detail"] and b["fingerprint"] in gone["detail"]
        assert "srv-1" not in gone["detail"]
        assert "not sent by Alertmanager for 3d 0h" in gone["detail"]
        assert "alert_expiry" in gone["detail"]

        clock.now = start + 48 * HOUR + EXPIRY + 1
        await sweep(client)
        found = await detail(client, incident)
        assert found["state"] == "resolved"
        assert found["resolved_at"] == start + 48 * HOUR  # when it was last seen firing
        assert [e["kind"] for e in found["events"]][-2:] == ["alerts-expired", "resolved"]
        assert statuses(found) == {a["fingerprint"]: "resolved", b["fingerprint"]: "resolved"}

        await sweep(client)  # nothing left to expire: nothing more happens
        assert (await detail(client, incident))["events"] == found["events"]

    async def test_sent_again_after_it_expired_reopens_the_incident(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock)
        a = device_alert("srv-1")
        incident = await fire(client, a)
        clock.now += EXPIRY + 1
        await sweep(client)
        assert (await detail(client, incident))["state"] == "resolved"
        clock.now += HOUR
        # The same firing (same startsAt), e.g. once its inhibition ended: news, not old.
        assert await fire(client, a) == incident
        found = await detail(client, incident)
        assert found["state"] == "firing"
        assert statuses(found) == {a["fingerprint"]: "firing"}
        assert [e["kind"] for e in found["events"]][-1] == "reopened"

    async def test_the_expiry_is_configurable(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock, incidents={"alert_expiry": "12h"})
        incident = await fire(client, device_alert("srv-1"))
        clock.now += 12 * HOUR + 1
        await sweep(client)
        found = await detail(client, incident)
        assert found["state"] == "resolved"
        assert "not sent by Alertmanager for 12h 0m" in events(found, "alerts-expired")[0][
            "detail"]

    async def test_an_approved_incident_gets_the_recovered_comment(self, jira_chain):
        fake, receiver = await jira_chain()
        clock = Clock()
        client = await receiver(clock)
        incident = await fire(client, alert())
        await approve(client, incident)
        await work(client, incident, "create")
        clock.now += EXPIRY + 1
        await sweep(client)
        found = await work(client, incident, "resolve")
        assert found["state"] == "resolved"
        issue = fake.issues["OPS-1"]
        [comment] = issue["comments"]
        assert comment.startswith("Recovered at ")
        assert "no longer sent by Alertmanager" in comment
        assert issue["status"] == "Done"


class TestBound:
    async def test_firing_alerts_per_incident_are_bounded(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock)
        first = [device_alert(f"a{n:05}") for n in range(MAX_FIRING - 500)]
        incident = await fire(client, *first)
        clock.now += 60
        second = [device_alert(f"b{n:05}") for n in range(600)]
        assert await fire(client, *second) == incident
        found = await detail(client, incident)
        firing = {fp for fp, status in statuses(found).items() if status == "firing"}
        assert len(firing) == MAX_FIRING
        assert {a["fingerprint"] for a in second} <= firing  # the newest seen are kept
        [dropped] = events(found, "alerts-dropped")
        assert dropped["detail"].startswith(f"100 firing alerts dropped, at most {MAX_FIRING}")
        assert found["state"] == "firing"
