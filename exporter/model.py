"""What a backend observes about a vessel, and how a collection can fail."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .sla.hours import EdgeCount, Span


class VesselStatus(StrEnum):
    OK = "ok"
    STALE = "stale"
    NO_DATA = "no_data"
    CLOCK_SKEW = "clock_skew"
    UNREACHABLE = "unreachable"
    AUTH_ERROR = "auth_error"
    QUERY_ERROR = "query_error"

    @property
    def collected(self) -> bool:
        """The vessel answered: its data may be old or absent, but the query worked."""
        return self in (VesselStatus.OK, VesselStatus.STALE, VesselStatus.NO_DATA,
                        VesselStatus.CLOCK_SKEW)


class CollectError(Exception):
    """A vessel could not be collected; `status` says why."""

    status = VesselStatus.QUERY_ERROR
    retryable = False


class TransientError(CollectError):
    """Network error, timeout or 5xx: worth another attempt."""

    status = VesselStatus.UNREACHABLE
    retryable = True


class AuthError(CollectError):
    status = VesselStatus.AUTH_ERROR


class QueryError(CollectError):
    """The backend rejected the query or answered something we cannot use."""


@dataclass(frozen=True, slots=True)
class DeviceObservation:
    """What is known of one device; None means no such sample in the lookback."""

    spans: Mapping[str, Span]  # window label -> its time by state, from the ledger
    last_sample: float | None = None  # time of the newest sample
    last_loss: float | None = None  # packet loss ratio of the newest sample
    last_rtt: float | None = None  # average RTT of the newest sample, seconds
    last_reply: float | None = None  # time of the newest sample that had a reply
    first_sample: float | None = None  # time of the oldest sample in the ledger
    fresh: bool = True  # the newest sample is recent at the last assessment
    # How far the vessel's clock ran ahead, beyond tolerance, when this was collected: its
    # times are that much later than the real ones.
    offset: float = 0.0

    @property
    def up(self) -> bool | None:
        """None when unknown: no sample, or only an old one that showed a reply.

        A device that stops reporting is never taken for up; one whose last word was
        "down" stays down.
        """
        if self.last_sample is None or self.last_loss is None:
            return None
        if self.last_loss >= 1.0:
            return False
        return True if self.fresh else None

    @property
    def down_since(self) -> float | None:
        """Time of the last reply; with none in the lookback, the oldest sample."""
        if self.up is not False:
            return None
        for candidate in (self.last_reply, self.first_sample, self.last_sample):
            if candidate is not None:
                return candidate - self.offset
        return None


@dataclass(frozen=True, slots=True)
class VesselObservation:
    devices: Mapping[str, DeviceObservation]  # by device address

    @property
    def newest_sample(self) -> float | None:
        times = [d.last_sample for d in self.devices.values() if d.last_sample is not None]
        return max(times) if times else None

    @property
    def skewed(self) -> bool:
        """Collected while the vessel's clock ran ahead: its windows are misaligned."""
        return any(d.offset for d in self.devices.values())

    def clock_skew(self, now: float) -> float | None:
        """How far the newest sample is stamped ahead of `now`; 0 when it is not."""
        newest = self.newest_sample
        return None if newest is None else max(0.0, newest - now)

    def with_offset(self, offset: float) -> "VesselObservation":
        return VesselObservation(
            devices={a: replace(d, offset=offset) for a, d in self.devices.items()})

    def aged(self, now: float, stale_after: float) -> "VesselObservation":
        """Mark devices whose newest sample is older than `stale_after` at `now`.

        Returns self when nothing changed, so an unchanged vessel is not rendered again.
        """
        changed: dict[str, DeviceObservation] = {}
        for address, d in self.devices.items():
            fresh = (d.last_sample is not None
                     and now - (d.last_sample - d.offset) <= stale_after)
            if fresh != d.fresh:  # usually none: replace() is slow enough to matter here
                changed[address] = replace(d, fresh=fresh)
        if not changed:
            return self
        return VesselObservation(devices={**self.devices, **changed})


@dataclass(frozen=True, slots=True)
class Answer:
    observation: VesselObservation
    response_bytes: int  # bytes on the wire, after compression
    # Raw (timestamp, up) samples per device address for the ledger, time-ordered.
    points: Mapping[str, Sequence[tuple[int, bool]]] = field(default_factory=dict)
    edges: Mapping[str, EdgeCount] = field(default_factory=dict)
