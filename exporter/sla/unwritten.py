"""The device-days changed in memory and not yet stored, indexed by vessel.

A set of (vessel, address, day) keys to its users; held by vessel and day so that a
vessel's rows can be packed as soon as its answer is folded, without a scan of the whole
fleet's keys (5,000 vessels x 20 devices is 100,000 of them a run).
"""

from collections.abc import Iterable, Iterator, KeysView, Mapping, MutableSet

# (vessel, address, day number): a device-day changed in memory, for the state DB.
DayKey = tuple[str, str, int]

_NONE: Mapping[int, set[str]] = {}


class Unwritten(MutableSet[DayKey]):
    def __init__(self, keys: Iterable[DayKey] = ()) -> None:
        self._vessels: dict[str, dict[int, set[str]]] = {}
        self._count = 0
        self.update(keys)

    def add(self, value: DayKey) -> None:
        vessel, address, day = value
        days = self._vessels.get(vessel)
        if days is None:
            days = self._vessels[vessel] = {}
        addresses = days.get(day)
        if addresses is None:
            addresses = days[day] = set()
        if address not in addresses:
            addresses.add(address)
            self._count += 1

    def update(self, keys: Iterable[DayKey]) -> None:
        for key in keys:
            self.add(key)

    def discard(self, value: DayKey) -> None:
        vessel, address, day = value
        days = self._vessels.get(vessel)
        addresses = days.get(day) if days is not None else None
        if addresses is None or address not in addresses:
            return
        addresses.remove(address)
        self._count -= 1
        if not addresses:
            del days[day]  # type: ignore[union-attr]
            if not days:
                del self._vessels[vessel]

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, tuple) or len(value) != 3:
            return False
        vessel, address, day = value
        days = self._vessels.get(vessel)
        addresses = days.get(day) if days is not None else None
        return addresses is not None and address in addresses

    def __iter__(self) -> Iterator[DayKey]:
        for vessel, days in self._vessels.items():
            for day, addresses in days.items():
                for address in addresses:
                    yield vessel, address, day

    def __len__(self) -> int:
        return self._count

    def clear(self) -> None:
        self._vessels.clear()
        self._count = 0

    def vessels(self) -> KeysView[str]:
        return self._vessels.keys()

    def days(self, vessel: str) -> Mapping[int, set[str]]:
        """The vessel's changed days, each with its changed devices (do not modify)."""
        return self._vessels.get(vessel, _NONE)
