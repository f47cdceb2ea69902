"""One collection run: every vessel concurrently, bounded, with retries and backoff."""

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from .backend import Backend
from .config import CollectionConfig, VesselConfig
from .model import CollectError, TransientError, VesselObservation, VesselStatus
from .redact import redactor_for
from .sla.ledger import Ledger, Taken

log = logging.getLogger(__name__)

Clock = Callable[[], float]
MAX_ERROR_CHARS = 400
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class VesselResult:
    vessel: str
    status: VesselStatus
    attempts: int
    duration: float
    finished_at: float
    response_bytes: int = 0
    error: str | None = None
    observation: VesselObservation | None = None  # set when the vessel answered
    clock_skew: float | None = None  # newest sample ahead of our clock; None: no sample


@dataclass(frozen=True, slots=True)
class RunResult:
    started_at: float
    finished_at: float
    duration: float
    vessels: tuple[VesselResult, ...]

    @property
    def ok(self) -> int:
        return sum(1 for v in self.vessels if v.status.collected)

    @property
    def failed(self) -> int:
        return len(self.vessels) - self.ok

    @property
    def result(self) -> str:
        if self.failed == 0:
            return "success"
        return "failed" if self.ok == 0 else "partial"


def with_ledger(observation: VesselObservation, taken: Taken) -> VesselObservation:
    """The observation with its window figures and oldest sample from the ledger."""
    return VesselObservation(devices={
        address: replace(d, spans=taken.spans.get(address, {}),
                         first_sample=taken.first.get(address))
        for address, d in observation.devices.items()})


def assess(
    observation: VesselObservation, now: float, config: CollectionConfig
) -> tuple[VesselStatus, VesselObservation]:
    """The vessel's data status, and its observation with freshness and skew applied."""
    skew = observation.clock_skew(now)
    if skew is None:
        return VesselStatus.NO_DATA, observation
    if skew > config.clock_skew_tolerance:
        # Its newest sample is the latest word whatever its stamp; its times are shifted
        # back by the skew so that outage ages stay true.
        return VesselStatus.CLOCK_SKEW, observation.with_offset(skew).aged(
            now, config.stale_after)
    observation = observation.aged(now, config.stale_after)
    newest = observation.newest_sample
    assert newest is not None
    stale = now - newest > config.stale_after
    return (VesselStatus.STALE if stale else VesselStatus.OK), observation


class Collector:
    def __init__(
        self,
        config: CollectionConfig,
        backend: Backend,
        ledger: Ledger,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._config = config
        self._backend = backend
        self._ledger = ledger
        self._clock = clock
        self._sleep = sleep

    async def collect_vessel(self, vessel: VesselConfig) -> VesselResult:
        cfg = self._config
        started = time.monotonic()
        error: CollectError = TransientError("not attempted")
        attempt = 0
        for attempt in range(1, cfg.attempts + 1):
            ask = self._ledger.ask(vessel, self._clock())
            try:
                async with asyncio.timeout(cfg.timeout):
                    answer = await self._backend.query(vessel, ask)
            except TimeoutError:
                error = TransientError(f"timed out after {cfg.timeout:g}s")
            except CollectError as exc:
                error = exc
            except Exception:
                # A bug must cost one vessel, not the whole run. The traceback may quote
                # an answer, so it is redacted like any error.
                log.error("vessel %s: internal error: %s", vessel.id,
                          redactor_for(vessel.influx)(traceback.format_exc()))
                error = CollectError("internal error in the exporter; its log has the details")
            else:
                now = self._clock()
                try:
                    taken = self._ledger.take(vessel, ask, answer.points, answer.edges, now)
                except ValueError:  # a reload moved the ledger on meanwhile: ask again
                    error = TransientError("ledger moved during the request")
                    continue
                newest = self._ledger.newest(vessel, ask, answer.observation, now, cfg.lookback)
                status, observation = assess(with_ledger(newest, taken), now, cfg)
                return VesselResult(
                    vessel=vessel.id,
                    status=status,
                    attempts=attempt,
                    duration=time.monotonic() - started,
                    finished_at=now,
                    response_bytes=answer.response_bytes,
                    observation=observation,
                    clock_skew=newest.clock_skew(now),
                )
            if not error.retryable or attempt == cfg.attempts:
                break
            await self._sleep(cfg.backoff * 2 ** (attempt - 1))
        text = str(error)
        if attempt > 1:
            text += f" ({attempt} attempts)"
        # Redacted before it is cut short, so no part of a secret survives the cut.
        message = redactor_for(vessel.influx)(text)[:MAX_ERROR_CHARS]
        # Status changes are logged by the service; each failure only at debug level.
        log.debug(
            "vessel %s: %s after %d attempt(s): %s", vessel.id, error.status, attempt, message
        )
        return VesselResult(
            vessel=vessel.id,
            status=error.status,
            attempts=attempt,
            duration=time.monotonic() - started,
            finished_at=self._clock(),
            error=message,
        )

    async def run(self, vessels: Sequence[VesselConfig],
                  on_result: Callable[[VesselResult], None] | None = None) -> RunResult:
        """`on_result` hears of each vessel as it finishes (for live progress)."""
        started_at, started = self._clock(), time.monotonic()
        gate = asyncio.Semaphore(self._config.concurrency)

        async def bounded(vessel: VesselConfig) -> VesselResult:
            async with gate:
                result = await self.collect_vessel(vessel)
            if on_result is not None:
                on_result(result)
            return result

        results = await asyncio.gather(*(bounded(v) for v in vessels))
        return RunResult(
            started_at=started_at,
            finished_at=self._clock(),
            duration=time.monotonic() - started,
            vessels=tuple(results),
        )
