"""Per-device selectors, as every backend gets them from its server, into observations.

Each backend answers the same questions per device: the newest sample (time, loss %, RTT
ms), the newest reply, and, when the ledger asks, the counts of the 24 h window's oldest
partial hour. Rows are keyed by device address; times are epoch seconds. Window figures
come from the ledger.
"""

from collections.abc import Mapping

from .config import VesselConfig
from .model import DeviceObservation, QueryError, VesselObservation
from .sla.hours import EdgeCount

Row = tuple[float | None, ...]


def edge_counts(totals: Mapping[str, Row], ups: Mapping[str, Row]) -> dict[str, EdgeCount]:
    edges: dict[str, EdgeCount] = {}
    for address, (count, *_) in totals.items():
        total = int(count or 0)
        up = int(ups[address][0] or 0) if address in ups else 0
        if total < 0 or up < 0:
            raise QueryError(f"malformed answer: negative count for {address}")
        edges[address] = EdgeCount(samples=total, up=min(up, total))
    return edges


def observe(vessel: VesselConfig, found: Mapping[str, Mapping[str, Row]]) -> VesselObservation:
    """`found` maps "latest" -> (time, loss %, rtt ms) and "last_reply" -> (time,), each by
    device address."""
    latest, last_reply = found["latest"], found["last_reply"]
    devices: dict[str, DeviceObservation] = {}
    for device in vessel.devices:
        address = device.address
        last_sample = last_loss = last_rtt = None
        if address in latest:
            last_sample, pct, rtt_ms = latest[address]
            # A ping error carries no loss field: no reply was seen, so it counts as 100%.
            last_loss = 1.0 if pct is None else min(max(pct / 100.0, 0.0), 1.0)
            last_rtt = None if rtt_ms is None else rtt_ms / 1000.0
        devices[address] = DeviceObservation(
            spans={},
            last_sample=last_sample,
            last_loss=last_loss,
            last_rtt=last_rtt,
            last_reply=last_reply[address][0] if address in last_reply else None,
        )
    return VesselObservation(devices=devices)
