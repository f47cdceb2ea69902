"""Slowing password guessing: per user name and per address, with lockouts that expire.

State lives in memory: a restart forgets it, which only gives a guesser a fresh start.
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Policy:
    free_failures: int  # failures allowed before any lockout
    first_lockout: float = 1.0  # seconds; doubles with each further failure
    max_lockout: float = 900.0
    forget_after: float = 24 * 3600.0  # a quiet key starts over
    max_keys: int = 10_000  # memory stays bounded whatever names a guesser tries


@dataclass(slots=True)
class _Record:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class Throttle:
    """Counts each attempt as a failure before it is checked, so that concurrent guesses
    cannot all slip through before the first one fails; a success clears the count."""

    def __init__(self, policy: Policy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def _record(self, key: str, now: float) -> _Record:
        record = self._records.pop(key, None)
        if record is None or now - record.last > self._policy.forget_after:
            record = _Record()
        self._records[key] = record  # most recent last: the oldest is evicted first
        while len(self._records) > self._policy.max_keys:
            self._records.popitem(last=False)
        return record

    def wait(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        record = self._records.get(key)
        return 0.0 if record is None else max(0.0, record.locked_until - self._clock())

    def attempt(self, key: str) -> None:
        now = self._clock()
        record = self._record(key, now)
        record.failures += 1
        record.last = now
        beyond = record.failures - self._policy.free_failures
        if beyond > 0:
            lockout = self._policy.first_lockout * 2.0 ** min(beyond - 1, 32)
            record.locked_until = now + min(self._policy.max_lockout, lockout)

    def succeeded(self, key: str) -> None:
        self._records.pop(key, None)
