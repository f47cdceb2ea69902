"""Drive the outbox with an injected clock: one pass at a time, through the API."""

from typing import Any

from receiver.appkeys import WORKER
from tests.helpers import Clock
from tests.receiver_helpers import signed_in, until


async def detail(client: Any, incident: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/incidents/{incident}", headers=signed_in())
    assert response.status == 200
    found: dict[str, Any] = await response.json()
    return found


def task(found: dict[str, Any], kind: str) -> dict[str, Any]:
    [item] = [w for w in found["ticket_work"] if w["kind"] == kind]
    return item


async def attempted(client: Any, incident: int, kind: str, attempts: int = 1
                    ) -> dict[str, Any]:
    """The incident once its `kind` work was tried `attempts` times (or finished)."""

    async def tried() -> dict[str, Any] | None:
        found = await detail(client, incident)
        items = [w for w in found["ticket_work"] if w["kind"] == kind]
        done = items and (items[0]["attempts"] >= attempts or items[0]["state"] != "pending")
        return found if done else None

    found: dict[str, Any] = await until(tried, within=10.0)
    return found


async def next_pass(client: Any, clock: Clock, incident: int, kind: str) -> dict[str, Any]:
    """Move the clock to when the `kind` work is due, and wait for the worker to try it."""
    found = await detail(client, incident)
    item = task(found, kind)
    if item["state"] != "pending":  # the worker, woken by something else, got there first
        return found
    clock.now = max(clock.now, item["next_attempt_at"])
    client.app[WORKER].wake()
    return await attempted(client, incident, kind, item["attempts"] + 1)
