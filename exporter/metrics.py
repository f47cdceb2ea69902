"""The metric families, as prometheus_client collectors over the fleet's state."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import exposition as _exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .config import Unknown, VesselConfig, Window
from .fleet import RUN_RESULTS, FleetSnapshot, VesselState
from .model import DeviceObservation, VesselStatus
from .sla import policy
from .sla.downtime import Outage
from .sla.hours import Span

CONTENT_TYPE = getattr(_exposition, "CONTENT_TYPE_PLAIN_0_0_4", _exposition.CONTENT_TYPE_LATEST)
DEVICE_LABELS = ("vessel", "component", "device", "address")
COMPONENT_LABELS = ("vessel", "component")
DEVICE_STATES = ("up", "down", "unknown")
DEVICE_AGE = "fleet_device_downtime_age_seconds"
COMPONENT_AGE = "fleet_component_downtime_age_seconds"


def _gauge(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


@dataclass(frozen=True, slots=True)
class _Member:
    """A configured device and what was last observed of it (None: never seen)."""

    labels: list[str]
    observation: DeviceObservation | None


def _components(state: VesselState) -> dict[str, list[_Member]]:
    observed = state.observation.devices if state.observation is not None else {}
    out: dict[str, list[_Member]] = {}
    for device in state.config.devices:
        labels = [state.config.id, device.component, device.name, device.address]
        out.setdefault(device.component, []).append(_Member(labels, observed.get(device.address)))
    return out


def _coverage(span: Span, window: Window) -> float:
    """Observed share of the window; time in maintenance is left out of both."""
    return policy.coverage(span, window.seconds)


def _uptime(spans: Sequence[Span], unknown: Unknown) -> float | None:
    return policy.uptime(spans, unknown)


def component_window(observed: Sequence[DeviceObservation], members: int, window: Window,
                     vessel: VesselConfig) -> tuple[float | None, float]:
    """A component's uptime (None: nothing observed, so unknown) and coverage over
    `window`, from its devices' ledger spans; the metrics and the console both use it."""
    spans = [sp for o in observed if (sp := o.spans.get(window.label))]
    share = sum(_coverage(sp, window) for sp in spans)
    return _uptime(spans, vessel.unknown), share / members


def _oldest_outage(members: list[_Member]) -> float | None:
    starts = [m.observation.down_since for m in members if m.observation is not None]
    known = [s for s in starts if s is not None]
    return min(known) if known else None


class ObservedCollector:
    """Device and component families of some vessels: what their InfluxDB said."""

    def __init__(self, vessels: Sequence[VesselState], windows: Sequence[Window]):
        self._vessels = vessels
        self._windows = tuple(windows)

    def collect(self) -> Iterator[Metric]:
        yield from self._device_families()
        yield from self._component_families()

    def _device_families(self) -> Iterator[Metric]:
        win = [*DEVICE_LABELS, "window"]
        up = _gauge("fleet_device_up", "1 when the newest sample shows a reply.", DEVICE_LABELS)
        uptime = _gauge(
            "fleet_device_uptime_ratio", "Time up / time observed, per window.", win
        )
        coverage = _gauge(
            "fleet_device_coverage_ratio", "Share of the window that has samples.", win
        )
        since = _gauge(
            "fleet_device_down_since_timestamp_seconds",
            "Time of the last reply of a device that is down now.",
            DEVICE_LABELS,
        )
        rtt = _gauge("fleet_device_rtt_seconds", "Average RTT of the newest sample.", DEVICE_LABELS)
        loss = _gauge(
            "fleet_device_packet_loss_ratio", "Packet loss of the newest sample.", DEVICE_LABELS
        )
        last = _gauge(
            "fleet_device_last_sample_timestamp_seconds",
            "Time of the newest sample.",
            DEVICE_LABELS,
        )
        for state in self._vessels:
            for members in _components(state).values():
                for m in members:
                    obs = m.observation
                    if obs is None:
                        continue
                    # A clock running ahead shifts its windows: their figures are unknown.
                    for window in () if obs.offset else self._windows:
                        span = obs.spans.get(window.label)
                        if span is None:
                            continue
                        wl = [*m.labels, window.label]
                        coverage.add_metric(wl, _coverage(span, window))
                        ratio = _uptime([span], state.config.unknown)
                        if ratio is not None:  # nothing seen: unknown, not 1 and not 0
                            uptime.add_metric(wl, ratio)
                    if obs.up is not None:
                        up.add_metric(m.labels, 1.0 if obs.up else 0.0)
                    if obs.down_since is not None:
                        since.add_metric(m.labels, obs.down_since)
                    if obs.last_rtt is not None:
                        rtt.add_metric(m.labels, obs.last_rtt)
                    if obs.last_loss is not None:
                        loss.add_metric(m.labels, obs.last_loss)
                    if obs.last_sample is not None:
                        last.add_metric(m.labels, obs.last_sample)
        yield from (up, uptime, coverage, since, rtt, loss, last)

    def _component_families(self) -> Iterator[Metric]:
        win = [*COMPONENT_LABELS, "window"]
        up = _gauge(
            "fleet_component_up", "1 when every device of the component is up.", COMPONENT_LABELS
        )
        devices = _gauge(
            "fleet_component_devices",
            "Devices of the component by state.",
            [*COMPONENT_LABELS, "state"],
        )
        uptime = _gauge(
            "fleet_component_uptime_ratio",
            "Time up / time observed over all devices, per window.",
            win,
        )
        coverage = _gauge(
            "fleet_component_coverage_ratio",
            "Mean share of the window that has samples, over its devices.",
            win,
        )
        objective = _gauge(
            "fleet_component_sla_objective_ratio",
            "Uptime objective of the component.",
            COMPONENT_LABELS,
        )
        for state in self._vessels:
            for component, members in _components(state).items():
                labels = [state.config.id, component]
                objective.add_metric(labels, state.config.objectives[component])
                if state.observation is None:
                    continue
                counts = dict.fromkeys(DEVICE_STATES, 0)
                for m in members:
                    known = m.observation.up if m.observation is not None else None
                    counts["unknown" if known is None else "up" if known else "down"] += 1
                for name, count in counts.items():
                    devices.add_metric([*labels, name], count)
                # Unknown devices make the component neither up nor down: no series.
                if counts["down"]:
                    up.add_metric(labels, 0.0)
                elif counts["up"] == len(members):
                    up.add_metric(labels, 1.0)
                observed = [m.observation for m in members if m.observation is not None]
                for window in () if state.observation.skewed else self._windows:
                    ratio, share = component_window(observed, len(members), window,
                                                    state.config)
                    if ratio is not None:
                        uptime.add_metric([*labels, window.label], ratio)
                    coverage.add_metric([*labels, window.label], share)
        yield from (up, devices, uptime, coverage, objective)



class StatusCollector:
    """Vessel families: how the last collection of each vessel went."""

    def __init__(self, vessels: Sequence[VesselState]):
        self._vessels = vessels

    def collect(self) -> Iterator[Metric]:
        labels = ["vessel"]
        up = _gauge(
            "fleet_vessel_up", "1 when the last collection of the vessel succeeded.", labels
        )
        status = _gauge(
            "fleet_vessel_data_status",
            "Health of the vessel's data; exactly one status is 1.",
            ["vessel", "status"],
        )
        success = _gauge(
            "fleet_vessel_last_success_timestamp_seconds",
            "Time of the last successful collection.",
            labels,
        )
        newest = _gauge(
            "fleet_vessel_newest_sample_timestamp_seconds",
            "Time of the newest sample of any device.",
            labels,
        )
        duration = _gauge(
            "fleet_vessel_collect_duration_seconds",
            "Duration of the last collection, retries included.",
            labels,
        )
        attempts = _gauge(
            "fleet_vessel_collect_attempts", "Attempts used by the last collection.", labels
        )
        size = _gauge(
            "fleet_vessel_response_bytes", "Bytes on the wire of the last answer.", labels
        )
        skew = _gauge(
            "fleet_vessel_clock_skew_seconds",
            "How far the newest sample of the last answer is stamped ahead of the exporter's "
            "clock; 0 when it is not.",
            labels,
        )
        info = _gauge("fleet_vessel_info", "Vessel metadata.", ["vessel", "name"])
        for state in self._vessels:
            vid = state.config.id
            info.add_metric([vid, state.config.name], 1.0)
            if state.last_success is not None:
                success.add_metric([vid], state.last_success)
            if state.observation is not None and state.observation.newest_sample is not None:
                newest.add_metric([vid], state.observation.newest_sample)
            if state.clock_skew is not None:
                skew.add_metric([vid], state.clock_skew)
            if state.status is None:
                continue
            up.add_metric([vid], 1.0 if state.status.collected else 0.0)
            for value in VesselStatus:
                status.add_metric([vid, value.value], 1.0 if value is state.status else 0.0)
            duration.add_metric([vid], state.duration)
            attempts.add_metric([vid], state.attempts)
            size.add_metric([vid], state.response_bytes)
        yield from (up, status, success, newest, skew, duration, attempts, size, info)



@dataclass(frozen=True, slots=True)
class ReloadState:
    successful: bool
    last_success: float  # when the config in force was loaded


class ExporterCollector:
    """The exporter's own families."""

    def __init__(self, snapshot: FleetSnapshot, interval: float, reload: ReloadState):
        self._snapshot = snapshot
        self._interval = interval
        self._reload = reload

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        runs = CounterMetricFamily(
            "fleet_collection_runs", "Collection runs by result.", labels=["result"]
        )
        for result in RUN_RESULTS:
            runs.add_metric([result], snap.runs_total.get(result, 0))
        yield runs
        yield GaugeMetricFamily(
            "fleet_collection_interval_seconds",
            "Configured collection interval.",
            value=self._interval,
        )
        yield GaugeMetricFamily(
            "fleet_config_last_reload_successful",
            "1 when the last config reload succeeded (or none was tried).",
            value=1.0 if self._reload.successful else 0.0,
        )
        yield GaugeMetricFamily(
            "fleet_config_last_reload_success_timestamp_seconds",
            "When the config in force was loaded.",
            value=self._reload.last_success,
        )
        if snap.last_run is not None:
            yield GaugeMetricFamily(
                "fleet_collection_duration_seconds",
                "Duration of the last collection run.",
                value=snap.last_run.duration,
            )
            yield GaugeMetricFamily(
                "fleet_collection_last_run_timestamp_seconds",
                "End time of the last collection run.",
                value=snap.last_run.finished_at,
            )
        if snap.last_good_run_at is not None:
            yield GaugeMetricFamily(
                "fleet_collection_last_success_timestamp_seconds",
                "End time of the last run in which any vessel answered.",
                value=snap.last_good_run_at,
            )


class AgeCollector:
    """Downtime ages, emitted with the outage start as value (0: not down).

    The exposition turns them into ages per scrape from `rows()`, leaving maintenance out.
    """

    def __init__(self, vessels: Sequence[VesselState]):
        self._vessels = vessels

    def rows(self) -> Iterator[tuple[str, list[str], tuple[Outage, ...]]]:
        """(family, labels, ongoing outages) in the order collect() emits them."""
        for state in self._vessels:
            for name, members in _components(state).items():
                known = [
                    m for m in members if m.observation is not None and m.observation.up is not None
                ]
                outages: list[Outage] = []
                for m in known:
                    assert m.observation is not None  # for the type checker: filtered above
                    since = m.observation.down_since
                    own = () if since is None else (Outage(state.config.id, name, m.labels[2],
                                                           since),)
                    outages.extend(own)
                    yield DEVICE_AGE, m.labels, own
                if known:
                    yield COMPONENT_AGE, [state.config.id, name], tuple(outages)

    def collect(self) -> Iterator[Metric]:
        families = {
            DEVICE_AGE: _gauge(
                DEVICE_AGE,
                "Seconds since the last reply of a device that is down, or since the end of "
                "the maintenance window that interrupted the outage; 0 while up or in "
                "maintenance.",
                DEVICE_LABELS,
            ),
            COMPONENT_AGE: _gauge(
                COMPONENT_AGE,
                "Age of the oldest ongoing device outage, outside maintenance; 0 when none "
                "is down.",
                COMPONENT_LABELS,
            ),
        }
        for family, labels, outages in self.rows():
            families[family].add_metric(labels, min((o.since for o in outages), default=0.0))
        yield from families.values()
