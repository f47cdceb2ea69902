"""What approvers see on the page: every firing problem, who decided what, and undoing it."""

import asyncio
import re

from tests.helpers import Clock
from tests.receiver_helpers import (
    T0,
    alert,
    annotated,
    bearer,
    body,
    fire,
    notification,
    rfc3339,
    signed_in,
)
from tests.test_receiver_pages import csrf, page, submit


def section(html: str, name: str) -> str:
    """The HTML of one <section id=...> of the list."""
    match = re.search(rf'<section id="{name}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"no section {name!r} on the page"
    return match.group(1)


def text(html: str) -> str:
    """What a reader sees: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def informational(alertname: str, vessel: str = "v002", component: str = "server",
                  **annotations: str):
    made = alert(vessel=vessel, component=component, alertname=alertname, ticket=False)
    made["annotations"].update(annotations)
    return made


async def resolve(client, made, at: float = T0):
    resolved = dict(made, status="resolved", endsAt=rfc3339(at))
    response = await client.post("/api/v1/alerts", data=body(notification(resolved)),
                                 headers=bearer())
    assert response.status == 200


class TestInformational:
    async def test_firing_informational_incidents_are_listed_by_vessel(self, receiver):
        client = await receiver(clock=Clock())
        await fire(client, annotated(vessel="v002", vessel_name="MV Aurora"))
        await fire(client, informational("FleetComponentSLABreach", uptime_24h="91.0%",
                                         vessel_name="MV Aurora"))
        await fire(client, informational("FleetVesselDataStale", component="",
                                         vessel_name="MV Aurora"))
        await fire(client, informational("FleetVesselUnreachable", vessel="v003",
                                         component="", vessel_name="MV Borealis"))
        html = await page(client)
        info = section(html, "informational")
        assert "Informational, no ticket (3)" in text(info)
        groups = re.findall(r"<h3[^>]*>(.*?)</h3>(.*?)(?=<h3|$)", info, re.S)
        by_vessel = {text(title): text(rest) for title, rest in groups}
        assert set(by_vessel) == {"MV Aurora v002", "MV Borealis v003"}
        assert "SLA breach" in by_vessel["MV Aurora v002"]
        assert "stale data" in by_vessel["MV Aurora v002"]
        assert "unreachable" in by_vessel["MV Borealis v003"]
        # The approver deciding on MV Aurora sees what else is wrong on that ship.
        assert "2 informational on this vessel" in text(section(html, "pending"))

    async def test_resolved_informational_incidents_leave_the_section(self, receiver):
        client = await receiver(clock=Clock())
        breach = informational("FleetComponentSLABreach")
        await fire(client, breach)
        await resolve(client, breach)
        assert "Nothing informational fires." in text(section(await page(client),
                                                              "informational"))


class TestRejectedAndSnoozed:
    async def test_a_rejected_incident_stays_listed_while_it_fires(self, receiver):
        client = await receiver(clock=Clock())
        incident = await fire(client, annotated())
        response = await submit(client, incident, "reject", csrf(await page(client)),
                                "known outage, crew on it")
        assert response.status == 303
        decided = text(section(await page(client), "decided"))
        assert "MV Aurora · server" in decided
        assert "rejected by alice on 2027-01-15 08:00 UTC: known outage, crew on it" in decided
        assert "Ask again" in decided

    async def test_a_snoozed_incident_names_the_rejection_that_snoozed_it(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock, incidents={"reopen_window": "1m"})
        made = alert()
        first = await fire(client, made)
        await submit(client, first, "reject", csrf(await page(client)), "planned refit")
        await resolve(client, made)
        clock.now += 3600
        second = await fire(client, alert(starts=T0 + 3000))  # the same problem, again
        assert second != first
        decided = text(section(await page(client), "decided"))
        assert "snoozed" in decided and "Un-snooze" in decided
        assert f"rejected by alice on 2027-01-15 08:00 UTC (incident #{first}): planned refit" \
            in decided

    async def test_ask_again_puts_a_rejected_incident_back_to_approvers(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock)
        incident = await fire(client, alert())
        token = csrf(await page(client))
        await submit(client, incident, "reject", token, "not ours")
        clock.now += 600
        response = await submit(client, incident, "ask-again", token, "it is ours after all")
        assert response.status == 303
        html = await page(client)
        assert f'href="/incidents/{incident}"' in section(html, "pending")
        assert "Nothing rejected or snoozed fires." in text(section(html, "decided"))
        assert "asked 0m ago" in text(section(html, "pending"))  # not overdue at once
        audit = text(await page(client, "/audit", user="bob"))
        assert "alice ask again" in audit and "it is ours after all" in audit
        history = text(await page(client, f"/incidents/{incident}"))
        assert "asked-again by alice: it is ours after all" in history

    async def test_un_snooze_lifts_the_snooze_for_the_next_incidents(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock, incidents={"reopen_window": "1m"})
        made = alert()
        first = await fire(client, made)
        token = csrf(await page(client))
        await submit(client, first, "reject", token, "planned refit")
        await resolve(client, made)
        clock.now += 3600
        again = alert(starts=T0 + 3000)  # each new firing starts after the last one ended
        second = await fire(client, again)
        assert (await submit(client, second, "ask-again", token)).status == 303
        assert f'href="/incidents/{second}"' in section(await page(client), "pending")
        await resolve(client, again, at=T0 + 3600)
        clock.now += 3600
        third = await fire(client, alert(starts=T0 + 6600))
        assert f'href="/incidents/{third}"' in section(await page(client), "pending")

    async def test_only_approvers_with_a_token_ask_again(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        token = csrf(await page(client))
        await submit(client, incident, "reject", token, "no")
        assert (await submit(client, incident, "ask-again", None)).status == 403
        assert (await submit(client, incident, "ask-again", token, user="bob")).status == 403
        assert "Ask again" not in await page(client, user="bob")
        assert f'href="/incidents/{incident}"' in section(await page(client), "decided")

    async def test_a_resolved_incident_is_not_asked_again(self, receiver):
        client = await receiver()
        made = alert()
        incident = await fire(client, made)
        token = csrf(await page(client))
        await submit(client, incident, "reject", token, "no")
        await resolve(client, made)
        response = await submit(client, incident, "ask-again", token)
        assert response.status == 409
        assert "is resolved" in await response.text()


class TestSmallFaults:
    async def test_the_vessel_has_one_name_everywhere(self, receiver):
        client = await receiver(clock=Clock())
        pending = await fire(client, annotated(vessel="v002", vessel_name="MV Aurora"))
        ticketed = await fire(client, alert(vessel="v002", component="access_point"))
        stream = await client.get("/events", headers=signed_in())
        await next_event(stream)
        await submit(client, ticketed, "approve", csrf(await page(client)))
        await ticket_made(client, stream, ticketed)
        resolved_alert = alert(vessel="v002", component="firewall")
        await fire(client, resolved_alert)
        await resolve(client, resolved_alert)
        html = await page(client)
        assert "MV Aurora · server" in text(section(html, "pending"))
        assert "MV Aurora · access_point v002" in text(section(html, "ticketed"))
        assert "MV Aurora · firewall v002" in text(section(html, "resolved"))
        assert pending

    async def test_no_stray_separator_and_no_jargon(self, receiver):
        client = await receiver(clock=Clock())
        incident = await fire(client, informational("FleetComponentSLABreach",
                                                    uptime_24h="91.0%"))
        html = await page(client, f"/incidents/{incident}")
        assert not re.search(r"(^|>)\s*·", html), "a line starts with a separator"
        assert "approval none" not in text(html)
        assert "informational, no ticket" in text(html)

    async def test_a_resolved_incident_lists_no_devices_down(self, receiver):
        client = await receiver(clock=Clock())
        made = annotated()
        incident = await fire(client, made)
        assert "Devices down" in await page(client, f"/incidents/{incident}")
        await resolve(client, made)
        html = await page(client, f"/incidents/{incident}")
        assert "Devices down" not in html
        assert "resolved" in text(html)



async def next_event(stream) -> str:
    """The next server-sent event, comments skipped."""
    while True:
        event = (await stream.content.readuntil(b"\n\n")).decode()
        if not event.startswith(":"):
            return event


async def ticket_made(client, stream, incident: int) -> None:
    """Wait, event by event, until the outbox has given the incident its ticket."""
    async with asyncio.timeout(10):
        while True:
            detail = await (await client.get(f"/api/v1/incidents/{incident}",
                                             headers=signed_in())).json()
            if detail["ticket_key"]:
                stream.close()
                return
            await next_event(stream)


class TestKeepingUp:
    async def test_deciding_goes_back_to_the_list_it_came_from(self, receiver):
        client = await receiver()
        first = await fire(client, alert(component="server"))
        second = await fire(client, alert(component="firewall"))
        html = await page(client)
        # The list's forms say where they are.
        assert '<input type="hidden" name="back" value="/#pending">' in html
        token = csrf(html)
        for incident, kind, back, location in (
                (first, "reject", "/#pending", "/#pending"),
                (first, "ask-again", "/#decided", "/#decided"),
                (second, "approve", "https://evil.example/", "/"),
                (first, "approve", "/#pending\r\nX: y", "/")):
            response = await client.post(
                f"/incidents/{incident}/{kind}", headers=signed_in(), allow_redirects=False,
                data={"csrf": token, "comment": "because", "back": back})
            assert response.status == 303, kind
            assert response.headers["Location"] == location, back

    async def test_the_event_stream_tells_pages_of_a_change(self, receiver):
        client = await receiver()
        incident = await fire(client, alert())
        token = csrf(await page(client))
        stream = await client.get("/events", headers=signed_in("bob"))
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        hello = await next_event(stream)
        assert "event: hello" in hello
        await submit(client, incident, "approve", token)
        async with asyncio.timeout(10):  # a hang would be the defect, not a slow machine
            changed = await next_event(stream)
        assert "event: incidents" in changed
        assert changed.split("data: ")[1] != hello.split("data: ")[1]
        stream.close()

    async def test_the_event_stream_needs_sign_in(self, receiver):
        client = await receiver()
        assert (await client.get("/events")).status == 401

    async def test_open_streams_end_when_the_receiver_shuts_down(self, receiver):
        client = await receiver()
        stream = await client.get("/events", headers=signed_in())
        assert "event: hello" in await next_event(stream)
        async with asyncio.timeout(10):  # aiohttp would wait 60 s for the handler
            await client.server.close()
            assert await stream.content.read() == b""
        stream.close()

    async def test_the_pages_load_their_style_and_script_from_the_receiver(self, receiver):
        client = await receiver()
        html = await page(client)
        assert '<link rel="stylesheet" href="/static/style.css">' in html
        assert '<script src="/static/live.js" defer></script>' in html
        for path, kind in (("/static/style.css", "text/css"),
                           ("/static/live.js", "javascript")):
            response = await client.get(path)
            assert response.status == 200 and kind in response.headers["Content-Type"]
        assert "http" not in (await (await client.get("/static/style.css")).text())


class TestResolvedAsksNothing:
    async def test_a_resolved_incident_page_offers_no_decision(self, receiver):
        clock = Clock()
        client = await receiver(clock=clock)
        made = alert()
        incident = await fire(client, made)
        await resolve(client, made)
        html = await (await client.get(f"/incidents/{incident}", headers=signed_in())).text()
        assert "Approve ticket" not in html and "Reject" not in html
        assert "resolved: there is nothing to decide" in text(html)


class TestPagesLeaveTheLoopFree:
    async def test_the_list_is_built_and_rendered_beside_the_loop(self, receiver,
                                                                   monkeypatch):
        import threading

        from receiver import pages, render

        threads: dict[str, str] = {}
        build, original = pages._index_context, render.TEMPLATES.get_template

        def built(*args):
            threads["views"] = threading.current_thread().name
            return build(*args)

        def template(name, *args, **kwargs):
            found = original(name, *args, **kwargs)
            if name != "index.html":
                return found  # e.g. its base template, read by jinja2 itself

            class Recorded:
                def render(self, **context):
                    threads["html"] = threading.current_thread().name
                    return found.render(**context)

            return Recorded()

        monkeypatch.setattr(pages, "_index_context", built)
        monkeypatch.setattr(render.TEMPLATES, "get_template", template)
        client = await receiver(clock=Clock())
        await fire(client, alert())
        await page(client)  # asserts 200
        loop_thread = threading.current_thread().name
        assert threads.keys() == {"views", "html"}
        assert loop_thread not in threads.values()
