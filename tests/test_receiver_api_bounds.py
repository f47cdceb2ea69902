"""The JSON API's work is bounded: the list is built and encoded beside the event loop,
and an incident's events come a page at a time."""

import threading
from typing import Any

from receiver import db, handlers, incidents
from tests.helpers import Clock
from tests.receiver_helpers import T0, alert, bearer, body, fire, notification, signed_in


async def get(client: Any, url: str, status: int = 200) -> Any:
    response = await client.get(url, headers=signed_in("bob"))
    assert response.status == status, await response.text()
    return await response.json()


async def test_the_list_is_built_and_encoded_beside_the_loop(receiver, monkeypatch):
    threads: dict[str, set[str]] = {"built": set(), "encoded": set()}
    build, encode = db.Incident.from_row.__func__, handlers.encode  # type: ignore[attr-defined]

    def built(cls, *args, **kwargs):
        threads["built"].add(threading.current_thread().name)
        return build(cls, *args, **kwargs)

    def encoded(document):
        threads["encoded"].add(threading.current_thread().name)
        return encode(document)

    monkeypatch.setattr(db.Incident, "from_row", classmethod(built))
    monkeypatch.setattr(handlers, "encode", encoded)
    client = await receiver(clock=Clock())
    # Informational: no approval or ticket work reads it in the background.
    await fire(client, alert(ticket=False))
    found = await get(client, "/api/v1/incidents")
    assert [i["state"] for i in found["incidents"]] == ["firing"]
    loop_thread = threading.current_thread().name
    assert threads["built"] and threads["encoded"]
    assert loop_thread not in threads["built"] | threads["encoded"]


async def test_events_come_newest_first_a_page_at_a_time(receiver):
    clock = Clock()
    client = await receiver(clock=clock)
    at = T0
    incident = await fire(client, alert(starts=at))
    for _ in range(110):  # it flaps within the reopen window: 2 events a round
        await client.post("/api/v1/alerts", headers=bearer(), data=body(notification(
            alert(status="resolved", starts=at, ends=at + 10))))
        at += 20
        assert await fire(client, alert(starts=at)) == incident
    url = f"/api/v1/incidents/{incident}"
    first = await get(client, url)
    events = first["events"]
    assert len(events) == incidents.EVENTS_PAGE == 200
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)  # oldest first
    assert events[-1]["kind"] == "reopened"  # the newest is on the first page
    assert first["events_next"] == f"{url}?events_before={events[0]['id']}"

    second = await get(client, first["events_next"])
    older = second["events"]
    assert len(older) == 1 + 2 * 110 - 200
    assert older[0]["kind"] == "opened" and older[-1]["id"] < events[0]["id"]
    assert second["events_next"] is None
    assert second["id"] == incident and second["state"] == "firing"

    for bad in ("0", "x", "-1"):
        failed = await get(client, f"{url}?events_before={bad}", status=400)
        assert "events_before" in failed["error"]
