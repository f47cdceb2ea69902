"""Fleet plans and the Telegraf `ping` samples each scenario produces.

Everything here is pure and deterministic: the same plan, anchor time and seed give the same
line-protocol lines, so tests can assert exact counts and ratios.
"""

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

SCENARIOS: tuple[str, ...] = (
    "healthy",
    "flapping",
    "down_4d",
    "breach",
    "gap",
    "stale",
    "no_data",
    "unreachable",
    "dry_dock",
    "interval_change",
    "unreachable_midnight",
)
COMPONENTS: tuple[str, ...] = ("access_point", "dashboard", "server")
# Scenarios whose vessel gets no samples at all.
EMPTY_SCENARIOS = frozenset({"no_data", "unreachable"})
# The flapping access point misses one sample in this many: its component (two access
# points) then sits at 96.9 %, midway between using half of a 95 % objective's budget
# (97.5 %, amber on the overview) and three quarters (96.25 %, FleetComponentSLAAtRisk
# while down): flapping, but within its SLA and never alerting.
FLAP_EVERY = 16

HOUR = 3600
DAY = 86400
# The interval_change vessel's Telegraf went from one sample per grid slot to one in this
# many this long before the anchor (60 s to 5 min by default): the 24 h window spans the
# change, and its 2 h outage sits in the sparse part, where counting samples would give
# 97.6 % instead of the 91.7 % it is by time.
SLOW_EVERY = 5
INTERVAL_CHANGE_AGE = 9 * HOUR
# The unreachable_midnight vessel's InfluxDB is out of reach from this long before each
# UTC midnight to this long after it (22:00 to 03:00); Telegraf aboard goes on writing.
LINK_CUT = (-2 * HOUR, 3 * HOUR)
# Samples sit this far before the anchor, so a query within 30 s of seeding sees
# exactly days*86400/interval samples in `time > now() - <days>`.
OFFSET = 30
# Packets per Telegraf ping run: losses of 25 % and 50 % are still "up".
PACKETS = 4
_TTL = 64
_POOL_SIZE = 64

_NAMES = (
    "MV Aurora",
    "MV Borealis",
    "MV Caledonia",
    "MV Dolphin",
    "MV Endeavour",
    "MV Fjord",
    "MV Galatea",
    "MV Horizon",
    "MV Isla",
    "MV Juniper",
    "MV Kestrel",
    "MV Lodestar",
)
# name prefix, third octet and first host octet of each component's addresses
_ADDRESSING = {
    "access_point": ("ap", 1, 5),
    "dashboard": ("dash", 2, 10),
    "server": ("srv", 3, 20),
}
# The first four devices are fixed because scenarios target them by name.
_BASE_COMPONENTS = ("access_point", "access_point", "dashboard", "server")


@dataclass(frozen=True)
class Expectation:
    """What a scenario shows in the demo; the README's table is kept equal to this."""

    writes: str  # what the simulator writes for its vessels
    below_objective: tuple[str, ...]  # components whose 24 h uptime is below objective
    alerts: tuple[str, ...]  # what the shipped rules raise for each of its vessels
    in_maintenance: bool = False  # its vessels are in the fleet config's dry-dock window


EXPECTATIONS: dict[str, Expectation] = {
    "healthy": Expectation("every device replies", (), ()),
    "flapping": Expectation(
        f"ap-2 fails one ping in {FLAP_EVERY}, all along", (), ()),
    "down_4d": Expectation(
        "srv-1 has not replied for 4 days", ("server",),
        ("FleetComponentSLABreach (server)", "FleetComponentDownPersistent (server)")),
    "breach": Expectation(
        "dash-1 was down for 2 h, 10 h to 8 h before the start", ("dashboard",),
        ("FleetComponentSLABreach (dashboard)",)),
    "gap": Expectation(
        "no samples from 12 h to 6 h before the start; all up otherwise", (), ()),
    "stale": Expectation(
        "no samples since 3 h before the start; all up before", (), ("FleetVesselDataStale",)),
    "no_data": Expectation(
        "an empty database", (), ("FleetVesselDataStale",)),
    "unreachable": Expectation(
        "nothing: its InfluxDB URL has no server", (), ("FleetVesselUnreachable",)),
    "dry_dock": Expectation(
        "srv-1 has not replied for 4 days, inside the vessel's dry-dock window", (), (),
        in_maintenance=True),
    "interval_change": Expectation(
        f"a sample a minute, then every {SLOW_EVERY} min for the last "
        f"{INTERVAL_CHANGE_AGE // HOUR} h; dash-1 was down for 2 h, 4 h to 2 h before the "
        "start", ("dashboard",), ("FleetComponentSLABreach (dashboard)",)),
    "unreachable_midnight": Expectation(
        "every device replies; in the tests its InfluxDB is out of reach from 22:00 to "
        "03:00 UTC", (), ()),
}
# The dry-dock window of the fleet config (fleet.yml `maintenance:`): from this long
# before the anchor to this long after it, so it covers the history and the demo.
DRY_DOCK_BEFORE = 5 * 86400
DRY_DOCK_AFTER = 7 * 86400


@dataclass(frozen=True)
class Device:
    name: str
    address: str
    component: str


@dataclass(frozen=True)
class Vessel:
    id: str
    name: str
    scenario: str
    devices: tuple[Device, ...]


def _device(vessel_index: int, component: str, number: int) -> Device:
    prefix, subnet, first_host = _ADDRESSING[component]
    # Past 200 devices of one component, move on to the next /24 instead of overflowing.
    block, offset = divmod(number - 1, 200)
    address = f"10.{vessel_index % 256}.{subnet + 10 * block}.{first_host + offset}"
    return Device(name=f"{prefix}-{number}", address=address, component=component)


def _devices(vessel_index: int, count: int) -> tuple[Device, ...]:
    numbers = dict.fromkeys(COMPONENTS, 0)
    devices = []
    for i in range(count):
        component = _BASE_COMPONENTS[i] if i < len(_BASE_COMPONENTS) else COMPONENTS[(i - 4) % 3]
        numbers[component] += 1
        devices.append(_device(vessel_index, component, numbers[component]))
    return tuple(devices)


def plan_fleet(
    count: int,
    scenarios: Sequence[str] | None = None,
    devices_per_vessel: int = 4,
    id_prefix: str = "v",
) -> list[Vessel]:
    """`count` vessels `<id_prefix>000`, ... with `scenarios` assigned round-robin."""
    order = tuple(scenarios) if scenarios is not None else SCENARIOS
    if count < 0:
        raise ValueError(f"vessel count must not be negative, got {count}")
    if not order:
        raise ValueError("at least one scenario is needed")
    unknown = sorted(set(order) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if devices_per_vessel < len(_BASE_COMPONENTS):
        raise ValueError(f"devices_per_vessel must be at least 4, got {devices_per_vessel}")
    return [
        Vessel(
            id=f"{id_prefix}{i:03d}",
            name=f"{_NAMES[i % len(_NAMES)]} {i}",
            scenario=order[i % len(order)],
            devices=_devices(i, devices_per_vessel),
        )
        for i in range(count)
    ]


# A rule answers, for one device's sample of age `age` seconds and index k (0 = newest):
# True = up, False = down, None = no sample written.
Rule = Callable[[int, int], bool | None]


def _always_up(age: int, k: int) -> bool | None:
    return True


def link_up(vessel: Vessel, at: int) -> bool:
    """Whether the exporter can reach the vessel's InfluxDB at epoch second `at`."""
    if vessel.scenario == "unreachable":
        return False
    if vessel.scenario == "unreachable_midnight":
        start, end = LINK_CUT
        of_day = at % DAY
        return not (of_day >= DAY + start or of_day < end)
    return True


def _interval_change(up: Rule) -> Rule:
    # Sample index k counts grid slots back from the newest (negative when live): in the
    # recent part only every SLOW_EVERY-th slot holds a sample.
    return lambda age, k: None if age < INTERVAL_CHANGE_AGE and k % SLOW_EVERY else up(age, k)


def _rule(scenario: str, device: Device) -> Rule:
    if scenario == "flapping" and device.name == "ap-2":
        return lambda age, k: k % FLAP_EVERY != 3
    if scenario in ("down_4d", "dry_dock") and device.name == "srv-1":
        return lambda age, k: age >= 4 * DAY
    if scenario == "breach" and device.name == "dash-1":
        return lambda age, k: not 8 * HOUR <= age < 10 * HOUR
    if scenario == "gap":
        return lambda age, k: None if 6 * HOUR <= age < 12 * HOUR else True
    if scenario == "stale":
        return lambda age, k: None if age < 3 * HOUR else True
    if scenario == "interval_change":
        if device.name == "dash-1":
            return _interval_change(lambda age, k: not 2 * HOUR <= age < 4 * HOUR)
        return _interval_change(_always_up)
    return _always_up


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


_LOST = f"packets_received=0i,packets_transmitted={PACKETS}i,percent_packet_loss=100"
# Telegraf's three ways of reporting a dead device, rotated by sample index:
# no reply (no RTT fields), ping itself failed (nothing but the code), and ping exiting
# fine although every packet was lost.
_DOWN_FIELDS = (f"{_LOST},result_code=1i", "result_code=2i", f"{_LOST},result_code=0i")


def _up_fields(rng: random.Random, base_rtt: float) -> str:
    roll = rng.random()
    received = PACKETS - (2 if roll < 0.01 else 1 if roll < 0.03 else 0)
    loss = 100 * (PACKETS - received) / PACKETS
    avg = min(80.0, max(20.0, rng.gauss(base_rtt, 4.0)))
    low = max(1.0, avg - rng.uniform(0.2, 5.0))
    high = avg + rng.uniform(0.2, 12.0)
    stddev = (high - low) / 4
    return (
        f"average_response_ms={avg:.3f},maximum_response_ms={high:.3f},"
        f"minimum_response_ms={low:.3f},packets_received={received}i,"
        f"packets_transmitted={PACKETS}i,percent_packet_loss={loss:g},result_code=0i,"
        f"standard_deviation_ms={stddev:.3f},ttl={_TTL}i"
    )


def _up_pool(rng: random.Random) -> list[str]:
    # Formatting every sample is the seeding bottleneck: draw from a per-device pool instead.
    base_rtt = rng.uniform(25.0, 60.0)
    return [_up_fields(rng, base_rtt) for _ in range(_POOL_SIZE)]


def sample_count(days: float, interval: int) -> int:
    """Samples per device over `days` (before any gaps)."""
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    return int(days * DAY // interval)


def samples(
    vessel: Vessel, now: int, days: float = 5, interval: int = 60, seed: int = 0
) -> Iterator[str]:
    """Line-protocol `ping` points (precision s) for every device of `vessel`, oldest first."""
    if vessel.scenario in EMPTY_SCENARIOS:
        return
    total = sample_count(days, interval)
    host = _escape_tag(vessel.id)
    for device in vessel.devices:
        rule = _rule(vessel.scenario, device)
        # String seeds hash stably (unlike hash()), so runs are reproducible.
        rng = random.Random(f"{seed}:{vessel.id}:{device.name}")
        up = rng.choices(_up_pool(rng), k=total)
        prefix = f"ping,host={host},url={_escape_tag(device.address)} "
        for k in range(total - 1, -1, -1):
            age = OFFSET + k * interval
            state = rule(age, k)
            if state is None:
                continue
            fields = up[k] if state else _DOWN_FIELDS[k % 3]
            yield f"{prefix}{fields} {now - age}"


def live_samples(vessel: Vessel, now: int, tick: int, interval: int = 60,
                 seed: int = 0) -> list[str]:
    """The `tick`-th (1, 2, ...) point per device after a history seeded at anchor `now`.

    It sits on the history's grid, so every window holds as many samples as before, and
    each device keeps its scenario's state at the anchor: the 4-day outage goes on, the
    stale vessel stays silent, the flapping device keeps its rhythm.
    """
    at = now - OFFSET + tick * interval
    if vessel.scenario in EMPTY_SCENARIOS:
        return []
    host = _escape_tag(vessel.id)
    lines = []
    for device in vessel.devices:
        state = _rule(vessel.scenario, device)(0, -tick)  # sample index k = -tick
        if state is None:
            continue
        if state:
            # Same per-device RTT baseline as the seeded history (_up_pool's first draw).
            base_rtt = random.Random(f"{seed}:{vessel.id}:{device.name}").uniform(25.0, 60.0)
            fields = _up_fields(random.Random(f"{seed}:{vessel.id}:{device.name}:{tick}"), base_rtt)
        else:
            fields = _DOWN_FIELDS[tick % 3]
        lines.append(f"ping,host={host},url={_escape_tag(device.address)} {fields} {at}")
    return lines
