"""Per-device aggregates, as every backend gets them from its server, into observations.

Each backend answers the same five questions per device: samples and samples with a reply
in each window, the newest sample (time, loss %, RTT ms), the newest reply and the oldest
sample. Rows are keyed by device address; times are epoch seconds.
"""

from collections.abc import Mapping, Sequence

from .config import VesselConfig, Window
from .model import DeviceObservation, QueryError, VesselObservation

Row = tuple[float | None, ...]


def observe(
    vessel: VesselConfig, windows: Sequence[Window], found: Mapping[str, Mapping[str, Row]]
) -> VesselObservation:
    """`found` maps "total:<window>", "up:<window>" -> (count,), "latest" -> (time, loss %,
    rtt ms), "last_reply" and "first" -> (time,), each by device address."""
    latest, last_reply, first = found["latest"], found["last_reply"], found["first"]
    counted = [(w.label, found[f"total:{w.label}"], found[f"up:{w.label}"]) for w in windows]
    devices: dict[str, DeviceObservation] = {}
    for device in vessel.devices:
        address = device.address
        counts: dict[str, tuple[int, int]] = {}
        for label, totals, ups in counted:
            total = int(totals[address][0] or 0) if address in totals else 0
            up = int(ups[address][0] or 0) if address in ups else 0
            if total < 0 or up < 0:
                raise QueryError(f"malformed answer: negative count for {address}")
            counts[label] = (total, min(up, total))
        last_sample = last_loss = last_rtt = None
        if address in latest:
            last_sample, pct, rtt_ms = latest[address]
            # A ping error carries no loss field: no reply was seen, so it counts as 100%.
            last_loss = 1.0 if pct is None else min(max(pct / 100.0, 0.0), 1.0)
            last_rtt = None if rtt_ms is None else rtt_ms / 1000.0
        devices[address] = DeviceObservation(
            counts=counts,
            last_sample=last_sample,
            last_loss=last_loss,
            last_rtt=last_rtt,
            last_reply=last_reply[address][0] if address in last_reply else None,
            first_sample=first[address][0] if address in first else None,
        )
    return VesselObservation(devices=devices)
