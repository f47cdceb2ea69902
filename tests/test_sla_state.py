"""The console's states against the rules they mirror: pure functions, no server."""

import pytest

from exporter.config import DeviceConfig, InfluxConfig, VesselConfig, Window
from exporter.console.render import duration, pct
from exporter.fleet import VesselState
from exporter.model import DeviceObservation, VesselObservation, VesselStatus
from exporter.sla.hours import Span
from exporter.sla.maintenance import MaintenanceSchedule
from exporter.sla.maintenance_config import parse_maintenance
from exporter.sla_state import (
    ComponentState,
    DeviceState,
    at_risk,
    budget_left,
    component_state,
    components,
    down_persistent,
    in_breach,
    in_maintenance,
)

NOW = 1_800_000_000.0
WINDOWS = (Window("24h", 86400.0),)
VESSEL = VesselConfig(
    id="v1", name="MV One", influx=InfluxConfig(url="http://x", database="d"),
    devices=(DeviceConfig("srv-1", "10.0.0.1", "server"),
             DeviceConfig("srv-2", "10.0.0.2", "server")),
    sample_interval=60.0, objectives={"server": 0.95})


def device(replied: int, total: int = 1440, down_for: float | None = None) -> DeviceObservation:
    """`replied` of `total` minutes of the 24 h window up, the rest of them down."""
    span = Span(up=60.0 * replied, down=60.0 * (total - replied),
                unobserved=86400.0 - 60.0 * total)
    return DeviceObservation(
        spans={"24h": span}, last_sample=NOW - 30,
        last_loss=1.0 if down_for is not None else 0.0,
        last_reply=NOW - down_for if down_for is not None else NOW - 30,
        first_sample=NOW - 30 * 86400)


def state(*devices: DeviceObservation | None,
          status: VesselStatus | None = VesselStatus.OK) -> VesselState:
    observed = {d.address: o for d, o in zip(VESSEL.devices, devices, strict=True)
                if o is not None}
    return VesselState(config=VESSEL, status=status,
                       observation=VesselObservation(observed) if status else None)


def server(vessel: VesselState):
    [figures] = components(vessel, WINDOWS)
    return figures


class TestRules:
    def test_breach_is_24h_uptime_below_the_objective(self):
        # 2,700 of 2,880 samples replied: 93.75 %, below 95 %.
        figures = server(state(device(1440), device(1260)))
        assert figures.uptime() == pytest.approx(0.9375)
        assert in_breach(figures) and not at_risk(figures)
        assert component_state(figures, True, False) is ComponentState.BREACH
        assert budget_left(figures) == pytest.approx(0.05 * 86400 - 0.0625 * 86400)

    def test_at_risk_is_down_now_with_under_a_quarter_of_the_budget(self):
        # 96 % uptime leaves 1 % of 5 %: a fifth of the budget, and a device is down.
        figures = server(state(device(1440), device(1325, down_for=600)))
        assert figures.up is False and not in_breach(figures)
        assert at_risk(figures)
        assert component_state(figures, True, False) is ComponentState.AT_RISK

    def test_the_same_budget_while_up_is_ok(self):
        figures = server(state(device(1440), device(1325)))
        assert not at_risk(figures)
        assert component_state(figures, True, False) is ComponentState.OK

    def test_down_over_three_days(self):
        figures = server(state(device(1440), device(1430, down_for=3 * 86400 + 1)))
        assert down_persistent(figures, NOW)
        assert not down_persistent(server(state(device(1440), device(1430, down_for=3 * 86400))),
                                   NOW)

    def test_no_samples_is_no_data_never_ok_nor_down(self):
        figures = server(state(None, None, status=VesselStatus.NO_DATA))
        assert figures.uptime() is None and figures.up is None
        assert not in_breach(figures) and not at_risk(figures)
        assert component_state(figures, True, False) is ComponentState.NO_DATA
        assert (figures.devices_up, figures.devices_down, figures.devices_unknown) == (0, 0, 2)

    def test_an_ok_from_an_old_answer_is_only_unknown(self):
        figures = server(state(device(1440), device(1440), status=VesselStatus.UNREACHABLE))
        assert component_state(figures, False, False) is ComponentState.UNKNOWN
        assert (figures.devices_up, figures.devices_unknown) == (0, 2)

    def test_a_breach_stands_while_the_vessel_does_not_answer(self):
        figures = server(state(device(1440), device(1000, down_for=60),
                               status=VesselStatus.UNREACHABLE))
        assert component_state(figures, False, False) is ComponentState.BREACH
        assert figures.devices_down == 1

    def test_maintenance_comes_first(self):
        figures = server(state(device(1440), device(1000, down_for=60)))
        assert component_state(figures, True, True) is ComponentState.MAINTENANCE

    def test_never_collected(self):
        figures = server(state(None, None, status=None))
        assert figures.up is None and figures.uptime() is None
        assert figures.devices_unknown == 2 and DeviceState.UNKNOWN == "unknown"


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (0, "0s"), (59, "59s"), (61, "1m 1s"), (3600, "1h"), (90061, "1d 1h"),
    (-22080, "-6h 8m"),
])
def test_durations(seconds: float | None, text: str):
    assert duration(seconds) == text


def test_percent_never_shows_unknown_as_a_number():
    assert pct(None) == "—" and pct(0.69444) == "69.44 %" and pct(1.0) == "100.00 %"


def test_maintenance_needs_one_window_over_every_device():
    """As fleet_component_maintenance: two devices each in a window of its own do not put
    the component in maintenance, one window over both does."""
    fleet = {"v1": {"server": frozenset({"srv-1", "srv-2"})}}

    def schedule(*windows: dict) -> MaintenanceSchedule:
        return parse_maintenance(list(windows), "maintenance", fleet, ("server",))

    def window(window_id: str, devices: list[str]) -> dict:
        return {"id": window_id, "vessels": ["v1"], "devices": devices, "reason": "work",
                "start": "2027-01-15T00:00:00Z", "end": "2027-01-16T00:00:00Z"}

    apart = schedule(window("a", ["srv-1"]), window("b", ["srv-2"]))
    assert in_maintenance([VESSEL], apart, NOW) == {}
    together = schedule(window("a", ["srv-1", "srv-2"]))
    assert in_maintenance([VESSEL], together, NOW) == {"v1": frozenset({"server"})}
