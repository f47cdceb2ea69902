"""A small HTML status page: vessels, the last run, and what is failing."""

from collections.abc import Callable
from html import escape

from .fleet import FleetSnapshot, VesselState

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:2rem}
th,td{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
"""
_CLASS = {"ok": "ok", "stale": "warn", "no_data": "warn", None: "warn"}


def _age(now: float, ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _down_devices(state: VesselState) -> int:
    if state.observation is None:
        return 0
    return sum(1 for d in state.observation.devices.values() if d.up is False)


def render_status_page(
    snap: FleetSnapshot, now: float, iso: Callable[[float | None], str | None]
) -> str:
    run = snap.last_run
    if run is None:
        summary = "<p>No collection has finished yet.</p>"
    else:
        summary = (
            f"<p>Last run: <b>{escape(run.result)}</b>, "
            f"finished {escape(iso(run.finished_at) or '')}"
            f" ({_age(now, run.finished_at)}) in {run.duration:.2f}s: "
            f"{run.ok} vessels answered, {run.failed} failed.</p>"
        )
    rows = []
    failing = []
    for state in snap.vessels:
        status = state.status.value if state.status else None
        css = _CLASS.get(status, "bad")
        newest = state.observation.newest_sample if state.observation else None
        rows.append(
            f"<tr><td>{escape(state.config.id)}</td><td>{escape(state.config.name)}</td>"
            f"<td class={css}>{escape(status or 'pending')}</td>"
            f"<td>{_down_devices(state)} / {len(state.config.devices)}</td>"
            f"<td>{_age(now, newest)}</td><td>{_age(now, state.last_success)}</td></tr>"
        )
        if state.error:
            failing.append(
                f"<tr><td>{escape(state.config.id)}</td><td class=bad>{escape(status or '')}</td>"
                f"<td>{state.attempts}</td><td>{escape(state.error)}</td></tr>"
            )
    failing_html = (
        "<h2>Failing vessels</h2><table><tr><th>vessel</th><th>status</th><th>attempts</th>"
        f"<th>error</th></tr>{''.join(failing)}</table>"
        if failing
        else "<h2>Failing vessels</h2><p>None.</p>"
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>fleet-exporter</title>"
        f"<style>{STYLE}</style></head><body><h1>fleet-exporter</h1>{summary}"
        f"{failing_html}<h2>Vessels</h2><table><tr><th>id</th><th>name</th><th>data</th>"
        "<th>devices down</th><th>newest sample</th><th>last success</th></tr>"
        f"{''.join(rows)}</table>"
        '<p><a href="/metrics">metrics</a> · <a href="/api/v1/runs">runs</a></p>'
        "</body></html>"
    )
