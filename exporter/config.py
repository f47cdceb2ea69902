"""Strict loading of the exporter's YAML config.

Every error names the key path at fault, e.g. ``vessels[2].influx.url: ...``.
Secret values are wrapped in :class:`Secret` so they never reach a log or a page.
"""

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .durations import parse_duration

DEFAULT_COMPONENTS = ("access_point", "dashboard", "server")
ALLOWED_WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
_ID = re.compile(r"^[a-z0-9_-]+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV = re.compile(r"\$\{([^}]*)\}")
_ADDRESS = re.compile(r"^[^\s\x00-\x1f\x7f]+$")  # a tag value on one line
MAX_LOOKBACK = 400 * 86400.0  # InfluxQL durations overflow far beyond this
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(Exception):
    """The config is invalid; the message starts with the key path at fault."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class Secret:
    """A credential that prints as *** everywhere except through reveal()."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    seconds: float


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    url: str
    database: str
    measurement: str = "ping"
    device_tag: str = "url"
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None

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


# --- small typed readers; each raises ConfigError naming its path -----------------


def _mapping(value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if key not in value:
            raise ConfigError(f"{path}.{key}" if path else key, "required key is missing")
    return value


def _str(value: Any, path: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, "expected a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise ConfigError(path, f"{value!r} does not match {pattern.pattern}")
    return value


def _int(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(path, f"must be at least {minimum}, got {value}")
    return value


def _duration(value: Any, path: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None


def _ratio(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"expected a ratio between 0 and 1, got {value!r}")
    if not 0 < value <= 1:
        raise ConfigError(path, f"must be a ratio in (0, 1], got {value}")
    return float(value)


def _list(value: Any, path: str) -> list:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list, got {type(value).__name__}")
    return value


def _expand_env(value: Any, path: str, env: Mapping[str, str]) -> Any:
    """Replace ${NAME} in every string; a missing variable is an error naming both."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _ENV_NAME.match(name):
            # Not echoed: this may be part of a password that happens to contain "${".
            raise ConfigError(path, "invalid environment variable reference (expected ${NAME})")
        if name not in env:
            raise ConfigError(path, f"environment variable {name} is not set")
        return env[name]

    return _ENV.sub(substitute, value)


# --- sections -----------------------------------------------------------------------

_INFLUX_KEYS = {"url", "database", "measurement", "device_tag", "username", "password", "token"}


def _influx_fields(raw: Any, path: str) -> dict[str, Any]:
    raw = _mapping(raw, path, _INFLUX_KEYS)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}"
        if key in ("password", "token"):
            if not isinstance(value, str) or not value:
                raise ConfigError(where, "expected a non-empty string")  # never echo secrets
            out[key] = Secret(value)
        elif key == "url":
            out[key] = _url(value, where)
        elif key in ("measurement", "device_tag"):
            out[key] = _str(value, where, _IDENT)
        else:
            out[key] = _str(value, where)
    return out


def _url(value: Any, path: str) -> str:
    # The URL is never echoed: a mistyped one may still carry a password.
    text = _str(value, path)
    parts = urlsplit(text)
    if parts.username or parts.password or "@" in parts.netloc:
        # Credentials in a URL end up in error messages; they belong in username/password.
        raise ConfigError(path, "must not contain credentials; use username/password or token")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, "expected an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ConfigError(path, "must not have a query string or fragment")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(path, "invalid port") from None
    return text.rstrip("/")


def _build_influx(merged: dict[str, Any], path: str) -> InfluxConfig:
    for key in ("url", "database"):
        if key not in merged:
            raise ConfigError(
                f"{path}.{key}", "required key is missing (set it here or in defaults)"
            )
    if "token" in merged and ("username" in merged or "password" in merged):
        raise ConfigError(f"{path}.token", "use either token or username/password, not both")
    if ("username" in merged) != ("password" in merged):
        missing = "password" if "username" in merged else "username"
        raise ConfigError(f"{path}.{missing}", "username and password must be set together")
    return InfluxConfig(**merged)


def _collection(raw: Any) -> CollectionConfig:
    path = "collection"
    raw = _mapping(
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
        },
    )
    base = CollectionConfig()
    windows = base.windows
    if "windows" in raw:
        labels: list[str] = []
        for i, item in enumerate(_list(raw["windows"], f"{path}.windows")):
            if item not in ALLOWED_WINDOWS:
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
        return _duration(raw[key], f"{path}.{key}") if key in raw else default

    config = CollectionConfig(
        interval=dur("interval", base.interval),
        concurrency=_int(raw.get("concurrency", base.concurrency), f"{path}.concurrency", 1),
        timeout=dur("timeout", base.timeout),
        attempts=_int(raw.get("attempts", base.attempts), f"{path}.attempts", 1),
        backoff=dur("backoff", base.backoff),
        windows=windows,
        stale_after=dur("stale_after", base.stale_after),
        lookback=dur("lookback", base.lookback),
    )
    if config.lookback > MAX_LOOKBACK:
        raise ConfigError(f"{path}.lookback", "must be at most 400d")
    longest = max(w.seconds for w in config.windows)
    if config.lookback < longest:
        raise ConfigError(f"{path}.lookback", "must be at least as long as the longest window")
    return config


def _listen(value: Any) -> tuple[str, int]:
    text = _str(value, "listen")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("listen", f"expected host:port, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.-]+$", host):
            raise ConfigError("listen", f"invalid host in {text!r}") from None
    return host, int(port)


def _device(raw: Any, path: str, components: tuple[str, ...]) -> DeviceConfig:
    raw = _mapping(raw, path, {"name", "address", "component"}, ("name", "address", "component"))
    component = _str(raw["component"], f"{path}.component")
    if component not in components:
        raise ConfigError(
            f"{path}.component", f"unknown component {component!r} (known: {', '.join(components)})"
        )
    return DeviceConfig(
        name=_str(raw["name"], f"{path}.name"),
        address=_str(raw["address"], f"{path}.address", _ADDRESS),
        component=component,
    )


def _vessel(
    raw: Any,
    path: str,
    defaults: dict[str, Any],
    components: tuple[str, ...],
    objectives: Mapping[str, float],
) -> VesselConfig:
    raw = _mapping(
        raw, path, {"id", "name", "sla", "influx", "devices", "sample_interval"}, ("id", "devices")
    )
    vessel_id = _str(raw["id"], f"{path}.id", _ID)
    merged = {**defaults["influx"], **_influx_fields(raw.get("influx", {}), f"{path}.influx")}
    devices: list[DeviceConfig] = []
    seen_names: set[str] = set()
    seen_addresses: set[str] = set()
    for i, item in enumerate(_list(raw["devices"], f"{path}.devices")):
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
    if "sla" in raw:
        sla = _mapping(raw["sla"], f"{path}.sla", {"objective"})
        if "objective" in sla:
            override = _ratio(sla["objective"], f"{path}.sla.objective")
            vessel_objectives = dict.fromkeys(components, override)
    return VesselConfig(
        id=vessel_id,
        name=_str(raw["name"], f"{path}.name") if "name" in raw else vessel_id,
        influx=_build_influx(merged, f"{path}.influx"),
        devices=tuple(devices),
        sample_interval=(
            _duration(raw["sample_interval"], f"{path}.sample_interval")
            if "sample_interval" in raw
            else defaults["sample_interval"]
        ),
        objectives=vessel_objectives,
    )


def parse_config(raw: Any, env: Mapping[str, str] | None = None) -> Config:
    """Validate a loaded YAML document and build the typed config."""
    if raw is None:
        raise ConfigError("", "the config file is empty")
    raw = _mapping(
        raw,
        "",
        {"listen", "collection", "sla", "components", "state", "defaults", "vessels"},
        ("vessels",),
    )
    raw = _expand_env(raw, "", os.environ if env is None else env)
    host, port = _listen(raw.get("listen", "0.0.0.0:9470"))

    components = DEFAULT_COMPONENTS
    if "components" in raw:
        items = _list(raw["components"], "components")
        components = tuple(_str(c, f"components[{i}]", _ID) for i, c in enumerate(items))
        if not components or len(set(components)) != len(components):
            raise ConfigError("components", "must be a non-empty list of distinct names")

    sla = _mapping(raw.get("sla", {}), "sla", {"objective", "components"})
    objective = _ratio(sla.get("objective", 0.95), "sla.objective")
    objectives = dict.fromkeys(components, objective)
    overrides = sla.get("components", {})
    _mapping(overrides, "sla.components", set(components))
    for name, value in overrides.items():
        objectives[name] = _ratio(value, f"sla.components.{name}")

    state = _mapping(raw.get("state", {}), "state", {"path", "run_retention"})
    defaults_raw = _mapping(raw.get("defaults", {}), "defaults", {"influx", "sample_interval"})
    defaults = {
        "influx": _influx_fields(defaults_raw.get("influx", {}), "defaults.influx"),
        "sample_interval": _duration(
            defaults_raw.get("sample_interval", "60s"), "defaults.sample_interval"
        ),
    }

    vessels: list[VesselConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(_list(raw["vessels"], "vessels")):
        vessel = _vessel(item, f"vessels[{i}]", defaults, components, objectives)
        if vessel.id in seen:
            raise ConfigError(f"vessels[{i}].id", f"duplicate vessel id {vessel.id!r}")
        seen.add(vessel.id)
        vessels.append(vessel)

    return Config(
        listen_host=host,
        listen_port=port,
        collection=_collection(raw.get("collection", {})),
        objective=objective,
        components=components,
        state_path=Path(_str(state.get("path", "exporter.db"), "state.path")),
        run_retention=_duration(state.get("run_retention", "30d"), "state.run_retention"),
        vessels=tuple(vessels),
    )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; every failure is a ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"{path} is not valid YAML{where}") from None
    return parse_config(raw, env)
