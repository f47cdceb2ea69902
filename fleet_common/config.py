"""Strict config reading shared by fleet-sla's services.

Every error names the key path at fault, e.g. ``vessels[2].influx.url: ...``. Secret
values are wrapped in :class:`Secret` so they never reach a log or a page.
"""

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from .durations import parse_duration

_ENV = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
T = TypeVar("T")


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


def mapping(
    value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()
) -> dict[str, Any]:
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


def string(value: Any, path: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, "expected a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise ConfigError(path, f"{value!r} does not match {pattern.pattern}")
    return value


def integer(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(path, f"must be at least {minimum}, got {value}")
    return value


def duration(value: Any, path: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None


def ratio(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"expected a ratio between 0 and 1, got {value!r}")
    if not 0 < value <= 1:
        raise ConfigError(path, f"must be a ratio in (0, 1], got {value}")
    return float(value)


def listing(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list, got {type(value).__name__}")
    return value


def expand_env(value: Any, path: str, env: Mapping[str, str]) -> Any:
    """Replace ${NAME} in every string; a missing variable is an error naming both."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
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


def http_url(value: Any, path: str) -> str:
    # The URL is never echoed: a mistyped one may still carry a password.
    text = string(value, path)
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


def listen_address(value: Any) -> tuple[str, int]:
    text = string(value, "listen")
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


def secret(value: Any, path: str) -> Secret:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, "expected a non-empty string")  # never echo a secret
    return Secret(value)


def load_yaml(
    path: str | Path,
    parse: Callable[[Any, Mapping[str, str]], T],
    env: Mapping[str, str] | None = None,
) -> T:
    """Read a YAML config file and hand it to `parse`; every failure is a ConfigError."""
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
    if raw is None:
        raise ConfigError("", "the config file is empty")
    return parse(raw, os.environ if env is None else env)
