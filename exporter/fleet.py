"""The fleet's last known state, updated by each run and read by the renderer."""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from .collector import RunResult, VesselResult
from .config import VesselConfig
from .model import VesselObservation, VesselStatus

RUN_RESULTS = ("success", "partial", "failed")


@dataclass(frozen=True, slots=True)
class VesselState:
    config: VesselConfig
    status: VesselStatus | None = None  # None until the first collection
    observation: VesselObservation | None = None  # last answer; kept while the vessel fails
    last_success: float | None = None
    error: str | None = None
    attempts: int = 0
    duration: float = 0.0
    response_bytes: int = 0
    clock_skew: float | None = None  # of the last answer with a sample


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """An immutable view, safe to render in another thread."""

    vessels: tuple[VesselState, ...]
    runs_total: dict[str, int] = field(default_factory=dict)
    last_run: RunResult | None = None
    last_good_run_at: float | None = None  # a run where at least one vessel answered


class Fleet:
    def __init__(self, vessels: Sequence[VesselConfig], stale_after: float) -> None:
        self._stale_after = stale_after
        self._states = {v.id: VesselState(config=v) for v in vessels}
        self.next_expiry: float | None = None  # when the first fresh sample goes stale
        self._runs_total = dict.fromkeys(RUN_RESULTS, 0)
        self._last_run: RunResult | None = None
        self._last_good_run_at: float | None = None

    @property
    def configs(self) -> list[VesselConfig]:
        return [s.config for s in self._states.values()]

    def reconfigure(self, vessels: Sequence[VesselConfig], stale_after: float) -> None:
        """Take a reloaded config: kept vessels keep their state, new ones start empty."""
        self._stale_after = stale_after
        self._states = {
            v.id: dataclasses.replace(self._states[v.id], config=v) if v.id in self._states
            else VesselState(config=v)
            for v in vessels
        }

    def restore(self, vessel: str, observation: VesselObservation, last_success: float) -> None:
        """Seed the last known state saved by a previous process."""
        state = self._states.get(vessel)
        if state is not None:
            self._states[vessel] = dataclasses.replace(
                state, observation=observation, last_success=last_success
            )

    def restore_outcome(self, vessel: str, status: VesselStatus, error: str | None,
                        attempts: int, duration: float, response_bytes: int) -> None:
        """Seed how the vessel's last collection went, so a restart keeps saying it."""
        state = self._states.get(vessel)
        if state is not None:
            self._states[vessel] = dataclasses.replace(
                state, status=status, error=error, attempts=attempts, duration=duration,
                response_bytes=response_bytes,
            )

    def restore_good_run(self, finished_at: float | None) -> None:
        self._last_good_run_at = finished_at

    def reassess(self, now: float) -> None:
        """Age every kept observation to `now`, answered this run or not: a reply seen
        longer than stale_after ago says nothing about now."""
        expiry: float | None = None
        for vid, state in self._states.items():
            if state.observation is None:
                continue
            aged = state.observation.aged(now, self._stale_after)
            if aged is not state.observation:
                self._states[vid] = dataclasses.replace(state, observation=aged)
            for d in aged.devices.values():
                if d.fresh and d.last_sample is not None:
                    ends = d.last_sample - d.offset + self._stale_after
                    expiry = ends if expiry is None else min(expiry, ends)
        self.next_expiry = expiry

    def due(self, now: float) -> bool:
        """Some device's newest sample has grown older than stale_after since reassess()."""
        return self.next_expiry is not None and now > self.next_expiry

    def apply(self, run: RunResult) -> None:
        for result in run.vessels:
            state = self._states.get(result.vessel)
            if state is None:
                continue  # removed by a reload after the run began
            answered = result.observation is not None
            self._states[result.vessel] = dataclasses.replace(
                state,
                status=result.status,
                observation=result.observation if answered else state.observation,
                last_success=result.finished_at if answered else state.last_success,
                clock_skew=result.clock_skew if answered else state.clock_skew,
                error=result.error,
                attempts=result.attempts,
                duration=result.duration,
                response_bytes=result.response_bytes,
            )
        self.reassess(run.finished_at)
        self._runs_total[run.result] += 1
        self._last_run = run
        if run.result != "failed":
            self._last_good_run_at = run.finished_at

    def settle(self, run: RunResult) -> RunResult:
        """The run as it is to be recorded and applied, given what the fleet knew."""
        results = []
        for result in run.vessels:
            state = self._states.get(result.vessel)
            if state is not None and result.status is VesselStatus.CLOCK_SKEW:
                result = self._keep_offset(state, result)
            results.append(result)
        return dataclasses.replace(run, vessels=tuple(results))

    def _keep_offset(self, state: VesselState, result: VesselResult) -> VesselResult:
        """A skewed vessel with nothing newer keeps the offset measured when it last wrote.

        Measured afresh, the skew shrinks as time passes, and the newest sample, shifted
        back by it, would always look current: a stopped Telegraf would stay up.
        """
        before, now = state.observation, result.observation
        if before is None or not before.skewed or now is None:
            return result
        newest, previous = now.newest_sample, before.newest_sample
        if newest is None or previous is None or newest > previous:
            return result  # new samples: the new measure holds
        offset = max(d.offset for d in before.devices.values())
        kept = now.with_offset(offset).aged(result.finished_at, self._stale_after)
        return dataclasses.replace(result, observation=kept)

    def snapshot(self) -> FleetSnapshot:
        return FleetSnapshot(
            vessels=tuple(self._states.values()),
            runs_total=dict(self._runs_total),
            last_run=self._last_run,
            last_good_run_at=self._last_good_run_at,
        )
