"""Reading fleet.yml's ``maintenance:`` list, strictly: every error names its key path."""

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fleet_common.config import ConfigError, duration, kind, listing, mapping, string

from .maintenance import (
    ALL,
    WEEK,
    Fixed,
    MaintenanceSchedule,
    MaintenanceWindow,
    Scope,
    Weekday,
    Weekly,
)

# vessel id -> component -> device names, as configured
Fleet = Mapping[str, Mapping[str, frozenset[str]]]

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")  # one line, shown on pages and dashboards
_ZONE = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")  # no path tricks for zoneinfo
_AT = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_ZERO = re.compile(r"^(0+(ms|s|m|h|d|w))+$")
_KEYS = {"id", "vessels", "components", "devices", "start", "end", "weekly", "reason",
         "reference"}


def parse_maintenance(raw: Any, path: str, fleet: Fleet,
                      components: tuple[str, ...]) -> MaintenanceSchedule:
    windows: list[MaintenanceWindow] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(listing(raw, path)):
        where = f"{path}[{i}]"
        window = _window(item, where, fleet, components)
        if window.id in seen:
            raise ConfigError(f"{where}.id", f"duplicate window id {window.id!r} "
                              f"(also {path}[{seen[window.id]}])")
        seen[window.id] = i
        windows.append(window)
    return MaintenanceSchedule(tuple(windows))


def _window(raw: Any, path: str, fleet: Fleet,
            components: tuple[str, ...]) -> MaintenanceWindow:
    raw = mapping(raw, path, _KEYS, ("id", "vessels", "reason"))
    window_id = string(raw["id"], f"{path}.id", _ID)
    scope = _scope(raw, path, fleet, components)
    timed = [key for key in ("start", "end") if key in raw]
    if timed and "weekly" in raw:
        raise ConfigError(f"{path}.weekly", "use either start/end or weekly, not both")
    timing: Fixed | Weekly
    if "weekly" in raw:
        timing = _weekly(raw["weekly"], f"{path}.weekly")
    elif not timed:
        raise ConfigError(path, "needs start and end, or weekly")
    else:
        for key in ("start", "end"):
            if key not in raw:
                raise ConfigError(f"{path}.{key}", "required key is missing (with "
                                  f"{'end' if key == 'start' else 'start'})")
        start = _time(raw["start"], f"{path}.start")
        end = _time(raw["end"], f"{path}.end")
        if end <= start:
            raise ConfigError(f"{path}.end", f"must be after start ({raw['start']})")
        timing = Fixed(start, end)
    return MaintenanceWindow(
        id=window_id,
        scope=scope,
        timing=timing,
        reason=string(raw["reason"], f"{path}.reason", _TEXT),
        reference=string(raw["reference"], f"{path}.reference", _TEXT)
        if "reference" in raw else None,
    )


def _names(raw: Any, path: str) -> tuple[str, ...]:
    items = listing(raw, path)
    if not items:
        raise ConfigError(path, "must not be empty (omit the key to mean all)")
    names = tuple(string(item, f"{path}[{k}]") for k, item in enumerate(items))
    for k, name in enumerate(names):
        if name in names[:k]:
            raise ConfigError(f"{path}[{k}]", f"duplicate {name!r}")
    return names


def _scope(raw: dict[str, Any], path: str, fleet: Fleet,
           components: tuple[str, ...]) -> Scope:
    vessels = _names(raw["vessels"], f"{path}.vessels")
    if ALL in vessels and len(vessels) > 1:
        raise ConfigError(f"{path}.vessels", '"*" means every vessel; list it alone')
    for k, vessel in enumerate(vessels):
        if vessel != ALL and vessel not in fleet:
            raise ConfigError(f"{path}.vessels[{k}]", f"unknown vessel {vessel!r}")
    chosen = list(fleet) if vessels == (ALL,) else list(vessels)
    wanted: tuple[str, ...] | None = None
    if "components" in raw:
        wanted = _names(raw["components"], f"{path}.components")
        for k, component in enumerate(wanted):
            if component not in components:
                raise ConfigError(f"{path}.components[{k}]", f"unknown component "
                                  f"{component!r} (known: {', '.join(components)})")
    devices: tuple[str, ...] | None = None
    if "devices" in raw:
        devices = _names(raw["devices"], f"{path}.devices")
        known = {name for v in chosen for c, names in fleet[v].items()
                 if wanted is None or c in wanted for name in names}
        for k, device in enumerate(devices):
            if device not in known:
                raise ConfigError(f"{path}.devices[{k}]", f"unknown device {device!r}: no "
                                  "vessel of the window has it in the window's components")
    return Scope(vessels, wanted, devices)


def _time(value: Any, path: str) -> float:
    example = "like 2027-03-01T00:00:00Z"
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a time {example}, got {kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(path, f"expected a time {example}, got {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise ConfigError(path, f"needs a UTC offset or Z, {example}, got {value[:40]!r}")
    if moment.microsecond:
        raise ConfigError(path, "must be to the second")
    return moment.timestamp()


def _weekly(raw: Any, path: str) -> Weekly:
    raw = mapping(raw, path, {"day", "at", "duration", "timezone"},
                  ("day", "at", "duration", "timezone"))
    days = [d.value for d in Weekday]
    if raw["day"] not in days:
        raise ConfigError(f"{path}.day", f"expected one of {', '.join(days)}, "
                          f"got {str(raw['day'])[:40]!r}")
    at = raw["at"]
    match = _AT.match(at) if isinstance(at, str) else None
    if match is None:
        hint = ' (quote it: at: "02:00")' if isinstance(at, int) else ""
        raise ConfigError(f"{path}.at", f"expected a time of day like \"02:00\", "
                          f"got {str(at)[:40]!r}{hint}")
    length = raw["duration"]
    if isinstance(length, str) and _ZERO.match(length):
        raise ConfigError(f"{path}.duration", "must be longer than zero")
    seconds = duration(length, f"{path}.duration", 60.0, WEEK)
    return Weekly(Weekday(raw["day"]), int(match.group(1)), int(match.group(2)), seconds,
                  parse_zone(raw["timezone"], f"{path}.timezone"))


def parse_zone(value: Any, path: str) -> str:
    """An IANA time zone name that zoneinfo knows."""
    name = string(value, path)
    if len(name) > 64 or not _ZONE.match(name):
        raise ConfigError(path, f"unknown time zone {name[:64]!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(path, f"unknown time zone {name!r} (an IANA name like "
                          "Europe/Oslo)") from None
    return name
