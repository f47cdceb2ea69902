"""Strict loading of the exporter's YAML config.

Every error names the key path at fault, e.g. ``vessels[2].influx.url: ...``.
Secret values are wrapped in :class:`Secret` so they never reach a log or a page.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from fleet_common.config import (
    DAY,
    MIN_SECRET_LENGTH,
    ConfigError,
    Secret,
    duration,
    expand_env,
    http_url,
    integer,
    listen_address,
    listing,
    load_yaml,
    mapping,
    ratio,
    secret,
    string,
)

from .sla.maintenance import MaintenanceSchedule
from .sla.maintenance_config import parse_maintenance, parse_zone

__all__ = ["Config", "ConfigError", "LedgerConfig", "ReportsConfig", "Secret", "Unknown",
           "load_config", "parse_config"]

DEFAULT_COMPONENTS = ("access_point", "dashboard", "server")
ALLOWED_WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
_ID = re.compile(r"^[a-z0-9_-]+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"^[^\s\x00-\x1f\x7f]+$")  # a tag value on one line
# (minimum, maximum) of each number: far outside any real fleet, but they stop typos and
# absurd values at --check-config. InfluxQL durations overflow far beyond 400d of lookback.
DURATION_RANGES: dict[str, tuple[float, float]] = {
    "collection.interval": (0.01, DAY),
    "collection.timeout": (0.01, 3600.0),
    "collection.backoff": (0.001, 600.0),
    "collection.stale_after": (1.0, 30 * DAY),
    "collection.lookback": (DAY, 400 * DAY),
    "collection.clock_skew_tolerance": (1.0, DAY),
    "state.run_retention": (3600.0, 3650 * DAY),
    "sample_interval": (0.1, DAY),
    # One request carries at most max_catchup of raw points: bounded by the answer cap.
    "ledger.max_catchup": (600.0, 7 * DAY),
    "ledger.backfill": (3600.0, 400 * DAY),
    "ledger.retention": (DAY, 3650 * DAY),
    "ledger.settle": (1.0, 3600.0),
    # How long after a month closes its reports wait for vessels still catching up.
    "reports.grace": (60.0, 31 * DAY),
}
# The formats the report core renders (exporter.reports.formats.ReportFormat).
REPORT_FORMATS = ("html", "csv", "xlsx", "pdf", "json")
COUNT_RANGES: dict[str, tuple[int, int]] = {
    "collection.concurrency": (1, 1024),
    "collection.attempts": (1, 10),  # backoff doubles per retry
}


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    seconds: float


class Unknown(StrEnum):
    """How unobserved time counts in uptime."""

    EXCLUDE = "exclude"  # neither up nor down: uptime is up / (up + down)
    DOWN = "down"  # counted as down


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    max_catchup: float = 6 * 3600.0  # raw points per request, as a duration
    backfill: float = 30 * DAY  # how far back a new vessel's ledger starts
    retention: float = 400 * DAY
    settle: float = 120.0  # points newer than this are read again next cycle


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    url: str
    database: str = ""  # InfluxQL
    measurement: str = "ping"
    device_tag: str = "url"
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    api: str = "influxql"  # or "flux"
    org: str = ""  # Flux
    bucket: str = ""  # Flux

    def secrets(self) -> tuple[str, ...]:
        return tuple(s.reveal() for s in (self.password, self.token) if s is not None)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    name: str
    address: str
    component: str


@dataclass(frozen=True, slots=True)
class VesselConfig:
    id: str
    name: str
    influx: InfluxConfig
    devices: tuple[DeviceConfig, ...]
    sample_interval: float
    objectives: Mapping[str, float]  # component -> resolved SLA objective
    unknown: Unknown = Unknown.EXCLUDE


@dataclass(frozen=True, slots=True)
class CollectionConfig:
    interval: float = 300.0
    concurrency: int = 32
    timeout: float = 30.0
    attempts: int = 3
    backoff: float = 1.0
    windows: tuple[Window, ...] = (Window("24h", 86400.0),)
    stale_after: float = 900.0
    lookback: float = 30 * 86400.0
    # Newest samples stamped further ahead of our clock than this make status clock_skew.
    clock_skew_tolerance: float = 300.0


@dataclass(frozen=True, slots=True)
class ReportsConfig:
    """Reports' timezone (periods are taken in it), and the monthly schedule: with `dir`,
    after a month closes and `grace` more, its reports in each of `formats` are written
    into `dir`. Without `dir`, no schedule."""

    timezone: str = "UTC"  # an IANA name
    dir: Path | None = None
    formats: tuple[str, ...] = ("pdf", "csv")
    grace: float = 3 * DAY


@dataclass(frozen=True, slots=True)
class Config:
    listen_host: str
    listen_port: int
    collection: CollectionConfig
    objective: float
    components: tuple[str, ...]
    state_path: Path
    run_retention: float
    vessels: tuple[VesselConfig, ...] = field(default_factory=tuple)
    maintenance: MaintenanceSchedule = field(default_factory=MaintenanceSchedule)
    # The console's links out: "receiver" and "grafana", "{vessel}" standing for the id.
    links: Mapping[str, str] = field(default_factory=dict)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    # Reports' timezone, and the monthly schedule when `dir` is set.
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    unknown: Unknown = Unknown.EXCLUDE  # sla.unknown; a vessel may say otherwise


# --- sections -----------------------------------------------------------------------

_INFLUX_KEYS = {"url", "database", "measurement", "device_tag", "username", "password", "token",
                "api", "org", "bucket"}
APIS = ("influxql", "flux")
# Keys that only one API reads: a stray one is a mistake worth naming.
_ONLY = {"database": "influxql", "username": "influxql", "password": "influxql",
         "org": "flux", "bucket": "flux"}


def _influx_fields(raw: Any, path: str) -> dict[str, Any]:
    raw = mapping(raw, path, _INFLUX_KEYS)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}"
        if key in ("password", "token"):
            out[key] = secret(value, where, MIN_SECRET_LENGTH)
        elif key == "url":
            out[key] = http_url(value, where)
        elif key in ("measurement", "device_tag"):
            out[key] = string(value, where, _IDENT)
        elif key == "api":
            if value not in APIS:
                raise ConfigError(where, f"expected one of {', '.join(APIS)}, got {value!r}")
            out[key] = value
        else:
            out[key] = string(value, where)
    return out


def _build_influx(merged: dict[str, Any], path: str, own: dict[str, Any]) -> InfluxConfig:
    api = merged.get("api", "influxql")
    # Flux needs a token: for InfluxDB 1.8, "user:password".
    required = ("url", "database") if api == "influxql" else ("url", "org", "bucket", "token")
    for key in required:
        if key not in merged:
            raise ConfigError(
                f"{path}.{key}", f"required key is missing for api {api} "
                "(set it here or in defaults)"
            )
    # A key set on the vessel that its API ignores is named; one inherited from defaults
    # may be meant for the other vessels.
    for key in own:
        if _ONLY.get(key, api) != api:
            raise ConfigError(f"{path}.{key}", f"not used with api {api}; "
                              f"it is for api {_ONLY[key]}")
    if api == "flux":
        merged = {k: v for k, v in merged.items() if _ONLY.get(k, api) == api}
    if "token" in merged and ("username" in merged or "password" in merged):
        raise ConfigError(f"{path}.token", "use either token or username/password, not both")
    if ("username" in merged) != ("password" in merged):
        missing = "password" if "username" in merged else "username"
        raise ConfigError(f"{path}.{missing}", "username and password must be set together")
    return InfluxConfig(**merged)


def _collection(raw: Any) -> CollectionConfig:
    path = "collection"
    raw = mapping(
        raw,
        path,
        {
            "interval",
            "concurrency",
            "timeout",
            "attempts",
            "backoff",
            "windows",
            "stale_after",
            "lookback",
            "clock_skew_tolerance",
        },
    )
    base = CollectionConfig()
    windows = base.windows
    if "windows" in raw:
        labels: list[str] = []
        for i, item in enumerate(listing(raw["windows"], f"{path}.windows")):
            if not isinstance(item, str) or item not in ALLOWED_WINDOWS:
                raise ConfigError(
                    f"{path}.windows[{i}]", f"expected one of 24h, 7d, 30d, got {item!r}"
                )
            if item in labels:
                raise ConfigError(f"{path}.windows[{i}]", f"duplicate window {item!r}")
            labels.append(item)
        if "24h" not in labels:
            raise ConfigError(f"{path}.windows", "must include 24h, the SLA window")
        windows = tuple(Window(label, ALLOWED_WINDOWS[label]) for label in labels)

    def dur(key: str, default: float) -> float:
        where = f"{path}.{key}"
        return duration(raw[key], where, *DURATION_RANGES.get(where, ())) if key in raw \
            else default

    def count(key: str, default: int) -> int:
        where = f"{path}.{key}"
        return integer(raw.get(key, default), where, *COUNT_RANGES[where])

    config = CollectionConfig(
        interval=dur("interval", base.interval),
        concurrency=count("concurrency", base.concurrency),
        timeout=dur("timeout", base.timeout),
        attempts=count("attempts", base.attempts),
        backoff=dur("backoff", base.backoff),
        windows=windows,
        stale_after=dur("stale_after", base.stale_after),
        lookback=dur("lookback", base.lookback),
        clock_skew_tolerance=dur("clock_skew_tolerance", base.clock_skew_tolerance),
    )
    longest = max(w.seconds for w in config.windows)
    if config.lookback < longest:
        raise ConfigError(f"{path}.lookback", "must be at least as long as the longest window")
    return config


def _device(raw: Any, path: str, components: tuple[str, ...]) -> DeviceConfig:
    raw = mapping(raw, path, {"name", "address", "component"}, ("name", "address", "component"))
    component = string(raw["component"], f"{path}.component")
    if component not in components:
        raise ConfigError(
            f"{path}.component", f"unknown component {component!r} (known: {', '.join(components)})"
        )
    return DeviceConfig(
        name=string(raw["name"], f"{path}.name"),
        address=string(raw["address"], f"{path}.address", _ADDRESS),
        component=component,
    )


def _vessel(
    raw: Any,
    path: str,
    defaults: dict[str, Any],
    components: tuple[str, ...],
    objectives: Mapping[str, float],
) -> VesselConfig:
    raw = mapping(
        raw, path, {"id", "name", "sla", "influx", "devices", "sample_interval"}, ("id", "devices")
    )
    vessel_id = string(raw["id"], f"{path}.id", _ID)
    own = _influx_fields(raw.get("influx", {}), f"{path}.influx")
    merged = {**defaults["influx"], **own}
    devices: list[DeviceConfig] = []
    seen_names: set[str] = set()
    seen_addresses: set[str] = set()
    for i, item in enumerate(listing(raw["devices"], f"{path}.devices")):
        device = _device(item, f"{path}.devices[{i}]", components)
        if device.name in seen_names:
            raise ConfigError(f"{path}.devices[{i}].name", f"duplicate device name {device.name!r}")
        if device.address in seen_addresses:
            raise ConfigError(
                f"{path}.devices[{i}].address", f"duplicate address {device.address!r}"
            )
        seen_names.add(device.name)
        seen_addresses.add(device.address)
        devices.append(device)
    if not devices:
        raise ConfigError(f"{path}.devices", "a vessel needs at least one device")
    vessel_objectives = dict(objectives)
    unknown = defaults["unknown"]
    if "sla" in raw:
        sla = mapping(raw["sla"], f"{path}.sla", {"objective", "unknown"})
        if "objective" in sla:
            override = ratio(sla["objective"], f"{path}.sla.objective")
            vessel_objectives = dict.fromkeys(components, override)
        if "unknown" in sla:
            unknown = _unknown(sla["unknown"], f"{path}.sla.unknown")
    return VesselConfig(
        id=vessel_id,
        name=string(raw["name"], f"{path}.name") if "name" in raw else vessel_id,
        influx=_build_influx(merged, f"{path}.influx", own),
        devices=tuple(devices),
        sample_interval=(
            duration(raw["sample_interval"], f"{path}.sample_interval",
                     *DURATION_RANGES["sample_interval"])
            if "sample_interval" in raw
            else defaults["sample_interval"]
        ),
        objectives=vessel_objectives,
        unknown=unknown,
    )


def _unknown(value: Any, path: str) -> Unknown:
    if value not in tuple(Unknown):
        raise ConfigError(path, f"expected one of {', '.join(Unknown)}, got {str(value)[:40]!r}")
    return Unknown(value)


def _ledger(raw: Any) -> LedgerConfig:
    raw = mapping(raw, "ledger", {"max_catchup", "backfill", "retention", "settle"})
    base = LedgerConfig()

    def dur(key: str, default: float) -> float:
        where = f"ledger.{key}"
        return duration(raw[key], where, *DURATION_RANGES[where]) if key in raw else default

    return LedgerConfig(
        max_catchup=dur("max_catchup", base.max_catchup),
        backfill=dur("backfill", base.backfill),
        retention=dur("retention", base.retention),
        settle=dur("settle", base.settle),
    )


def _reports(raw: Any) -> ReportsConfig:
    raw = mapping(raw, "reports", {"dir", "formats", "timezone", "grace"})
    base = ReportsConfig()
    timezone = (parse_zone(raw["timezone"], "reports.timezone") if "timezone" in raw
                else base.timezone)
    if "dir" not in raw:
        for key in ("formats", "grace"):
            if key in raw:
                raise ConfigError(f"reports.{key}", "belongs to the schedule, which needs "
                                  "reports.dir (the directory reports are written into)")
        return ReportsConfig(timezone=timezone)
    directory = string(raw["dir"], "reports.dir")
    if not directory.strip():
        raise ConfigError("reports.dir", "must name a directory")
    formats = base.formats
    if "formats" in raw:
        chosen: list[str] = []
        for i, item in enumerate(listing(raw["formats"], "reports.formats")):
            where = f"reports.formats[{i}]"
            if not isinstance(item, str) or item not in REPORT_FORMATS:
                raise ConfigError(where, f"expected one of {', '.join(REPORT_FORMATS)}, "
                                  f"got {str(item)[:40]!r}")
            if item in chosen:
                raise ConfigError(where, f"duplicate format {item!r}")
            chosen.append(item)
        if not chosen:
            raise ConfigError("reports.formats", "name at least one format")
        formats = tuple(chosen)
    return ReportsConfig(
        timezone=timezone,
        dir=Path(directory),
        formats=formats,
        grace=(duration(raw["grace"], "reports.grace", *DURATION_RANGES["reports.grace"])
               if "grace" in raw else base.grace),
    )


LINKS = ("receiver", "grafana")


def _links(raw: Any) -> dict[str, str]:
    out = {}
    for key, value in mapping(raw, "links", set(LINKS)).items():
        text = string(value, f"links.{key}")
        netloc = text.split("/")[2] if text.count("/") >= 2 else ""
        # Only http(s) reaches an href; credentials would reach every page.
        if not text.startswith(("http://", "https://")) or not netloc or "@" in netloc:
            raise ConfigError(f"links.{key}",
                              "expected an http:// or https:// URL with a host, no credentials")
        out[key] = text
    return out


def parse_config(raw: Any, env: Mapping[str, str] | None = None) -> Config:
    """Validate a loaded YAML document and build the typed config."""
    if raw is None:
        raise ConfigError("", "the config file is empty")
    raw = mapping(
        raw,
        "",
        {"listen", "collection", "sla", "components", "state", "defaults", "vessels",
         "maintenance", "links", "ledger", "reports"},
        ("vessels",),
    )
    raw = expand_env(raw, "", os.environ if env is None else env)
    host, port = listen_address(raw.get("listen", "0.0.0.0:9470"))

    components: tuple[str, ...] = DEFAULT_COMPONENTS
    if "components" in raw:
        items = listing(raw["components"], "components")
        components = tuple(string(c, f"components[{i}]", _ID) for i, c in enumerate(items))
        if not components or len(set(components)) != len(components):
            raise ConfigError("components", "must be a non-empty list of distinct names")

    sla = mapping(raw.get("sla", {}), "sla", {"objective", "components", "unknown"})
    unknown = _unknown(sla["unknown"], "sla.unknown") if "unknown" in sla else Unknown.EXCLUDE
    objective = ratio(sla.get("objective", 0.95), "sla.objective")
    objectives = dict.fromkeys(components, objective)
    overrides = sla.get("components", {})
    mapping(overrides, "sla.components", set(components))
    for name, value in overrides.items():
        objectives[name] = ratio(value, f"sla.components.{name}")

    state = mapping(raw.get("state", {}), "state", {"path", "run_retention"})
    defaults_raw = mapping(raw.get("defaults", {}), "defaults", {"influx", "sample_interval"})
    defaults = {
        "influx": _influx_fields(defaults_raw.get("influx", {}), "defaults.influx"),
        "sample_interval": duration(
            defaults_raw.get("sample_interval", "60s"), "defaults.sample_interval",
            *DURATION_RANGES["sample_interval"],
        ),
        "unknown": unknown,
    }

    vessels: list[VesselConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(listing(raw["vessels"], "vessels")):
        vessel = _vessel(item, f"vessels[{i}]", defaults, components, objectives)
        if vessel.id in seen:
            raise ConfigError(f"vessels[{i}].id", f"duplicate vessel id {vessel.id!r}")
        seen.add(vessel.id)
        vessels.append(vessel)
    if not vessels:
        raise ConfigError("vessels", "needs at least one vessel")
    fleet = {v.id: {c: frozenset(d.name for d in v.devices if d.component == c)
                    for c in components} for v in vessels}
    maintenance = parse_maintenance(raw.get("maintenance", []), "maintenance", fleet,
                                    components)
    collection = _collection(raw.get("collection", {}))
    ledger = _ledger(raw.get("ledger", {}))
    if ledger.retention < max(w.seconds for w in collection.windows):
        raise ConfigError("ledger.retention", "must be at least as long as the longest window")

    return Config(
        listen_host=host,
        listen_port=port,
        collection=collection,
        objective=objective,
        components=components,
        state_path=Path(string(state.get("path", "exporter.db"), "state.path")),
        run_retention=duration(state.get("run_retention", "30d"), "state.run_retention",
                               *DURATION_RANGES["state.run_retention"]),
        vessels=tuple(vessels),
        maintenance=maintenance,
        links=_links(raw.get("links", {})),
        ledger=ledger,
        reports=_reports(raw.get("reports", {})),
        unknown=unknown,
    )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; every failure is a ConfigError."""
    return load_yaml(path, parse_config, env)
