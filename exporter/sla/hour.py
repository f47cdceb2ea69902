"""One device's UTC hour, and a device's day of them packed: the form the ledger keeps its
frozen hours in, in memory (`hours.Hours`) and in the state DB (`ledger_db`).

Packed by hand: two masks (hours held, hours estimated: a bit an hour) and 24 hours of 16
bytes, 392 bytes a device-day. As objects a device-day took about 4 KB, and a week of 5,000
vessels was 17 M objects that Python's garbage collector walked in each full collection,
holding the event loop for seconds. A bytearray is one object the collector never tracks.
"""

import struct
from collections.abc import Mapping
from dataclasses import dataclass

HOUR = 3600

# up, down, maintenance (s), up and down samples, outages started, longest outage (s).
# Seconds of one hour are clamped to 65535: only a sample_interval over 18 h exceeds it.
FORM = struct.Struct("<HHHHHHI")
MASKS = struct.Struct("<II")  # hours held, hours estimated (bit i: hour i of the day)
ALL_HOURS = (1 << 24) - 1
SECTION = MASKS.size + 24 * FORM.size
EMPTY = bytes(SECTION)
_NO_HOUR = bytes(FORM.size)
_U16, _U32 = 0xFFFF, 0xFFFFFFFF


@dataclass(slots=True)
class Hour:
    """One device's UTC hour, in seconds (and samples, to weigh a part of the hour)."""

    up: int = 0
    down: int = 0
    maintenance: int = 0
    up_samples: int = 0
    down_samples: int = 0
    outages: int = 0  # down stretches that start in this hour
    longest: int = 0  # longest down stretch ending in this hour, seconds
    # Re-split by a window declared later, without the points to count it exactly.
    estimated: bool = False

    def add(self, other: "Hour") -> "Hour":
        return Hour(self.up + other.up, self.down + other.down,
                    self.maintenance + other.maintenance, self.up_samples + other.up_samples,
                    self.down_samples + other.down_samples, self.outages + other.outages,
                    max(self.longest, other.longest), self.estimated or other.estimated)

    def unobserved(self, span: int = HOUR) -> int:
        return max(0, span - self.up - self.down - self.maintenance)


def _figures(h: Hour) -> tuple[int, ...]:
    figures = (h.up, h.down, h.maintenance, h.up_samples, h.down_samples, h.outages,
               h.longest)
    if max(figures) <= _U16 and min(figures) >= 0:
        return figures
    # Out of range: clamped, as only absurd settings get there.
    return tuple(max(0, min(v, _U32 if n == 6 else _U16)) for n, v in enumerate(figures))


def put(section: bytearray, i: int, hour: Hour | None) -> None:
    """Set hour `i` of a packed day (None: not held)."""
    held, estimated = MASKS.unpack_from(section)
    bit = 1 << i
    if hour is None:
        section[MASKS.size + i * FORM.size:MASKS.size + (i + 1) * FORM.size] = _NO_HOUR
        MASKS.pack_into(section, 0, held & ~bit, estimated & ~bit)
        return
    FORM.pack_into(section, MASKS.size + i * FORM.size, *_figures(hour))
    MASKS.pack_into(section, 0, held | bit,
                    estimated | bit if hour.estimated else estimated & ~bit)


def figures(section: bytes | bytearray | memoryview, i: int) -> tuple[int, ...] | None:
    """Hour `i` of a packed day as packed (up, down, maintenance, up and down samples,
    outages, longest), or None when it is not held."""
    if not held(section) >> i & 1:
        return None
    return FORM.unpack_from(section, MASKS.size + i * FORM.size)


def get(section: bytes | bytearray | memoryview, i: int) -> Hour | None:
    """Hour `i` of a packed day, or None when it is not held."""
    found = figures(section, i)
    if found is None:
        return None
    up, down, kept, up_n, down_n, outages, longest = found
    estimated = MASKS.unpack_from(section)[1] >> i & 1
    return Hour(up, down, kept, up_n, down_n, outages, longest, bool(estimated))


def held(section: bytes | bytearray | memoryview) -> int:
    """The mask of hours held: bit i for hour i of the day."""
    return int(MASKS.unpack_from(section)[0])


def pack(hours: Mapping[int, Hour], day: int) -> bytes:
    """A device's day packed: its 24 hours (by hour number), absent ones as zeros."""
    section = bytearray(SECTION)
    for i in range(24):
        if (h := hours.get(day * 24 + i)) is not None:
            put(section, i, h)
    return bytes(section)


def unpack(section: bytes | bytearray | memoryview, day: int) -> dict[int, Hour]:
    """The hours a packed device-day holds, by hour number."""
    held, estimated = MASKS.unpack_from(section)
    found = {}
    figures = FORM.iter_unpack(memoryview(section)[MASKS.size:SECTION])
    for i, (up, down, kept, up_n, down_n, outages, longest) in enumerate(figures):
        if held >> i & 1:
            found[day * 24 + i] = Hour(up, down, kept, up_n, down_n, outages, longest,
                                       estimated=bool(estimated >> i & 1))
    return found
