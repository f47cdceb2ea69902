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

from .durations import format_duration, parse_duration
from .yaml_reader import YamlProblem, read_yaml

_ENV = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_MAX_MESSAGE = 400  # a message echoes values; a huge one would flood the terminal
DAY = 86400.0
# Bounds for a duration key with no range of its own.
MIN_DURATION = 0.001
MAX_DURATION = 3650 * DAY
MAX_INTEGER = 2**31 - 1
T = TypeVar("T")


class ConfigError(Exception):
    """The config is invalid; the message starts with the key path at fault."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        text = f"{path}: {message}" if path else message
        text = " ".join(text.splitlines())
        if len(text) > _MAX_MESSAGE:
            text = text[: _MAX_MESSAGE - 3] + "..."
        super().__init__(text)


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


def kind(value: Any) -> str:
    """What a YAML value is, in the words of a config's author."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "an unsupported value"


def key_path(path: str, key: Any) -> str:
    """`path.key`, with a key that is not a plain name quoted so it stays on one line."""
    shown = key if isinstance(key, str) and _PLAIN_KEY.match(key) else repr(key)[:66]
    return f"{path}.{shown}" if path else shown


def mapping(
    value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping, got {kind(value)}")
    for key in value:
        if key not in allowed:
            raise ConfigError(key_path(path, key),
                              f"unknown key (allowed: {', '.join(sorted(allowed))})")
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


def integer(value: Any, path: str, minimum: int, maximum: int = MAX_INTEGER) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected an integer, got {_shown(value)}")
    if not minimum <= value <= maximum:
        shown = value if abs(value) < 10**30 else "far more"
        raise ConfigError(path, f"must be between {minimum} and {maximum}, got {shown}")
    return value


def duration(
    value: Any, path: str, minimum: float = MIN_DURATION, maximum: float = MAX_DURATION
) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None
    if not minimum <= seconds <= maximum:
        raise ConfigError(path, f"must be between {format_duration(minimum)} and "
                          f"{format_duration(maximum)}, got {value}")
    return seconds


def _shown(value: Any) -> str:
    """A bad value as it may be echoed: short, and only numbers and text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return kind(value)
    if isinstance(value, int) and abs(value) >= 10**30:
        return "a far larger number"
    return repr(value)[:40]


def ratio(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"expected a ratio between 0 and 1, got {_shown(value)}")
    if not 0 < value <= 1:
        raise ConfigError(path, f"must be a ratio in (0, 1], got {_shown(value)}")
    return float(value)


def listing(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list, got {kind(value)}")
    return value


def expand_env(value: Any, path: str, env: Mapping[str, str]) -> Any:
    """Replace ${NAME} in every string; a missing variable is an error naming both."""
    if isinstance(value, dict):
        return {k: expand_env(v, key_path(path, k), env) for k, v in value.items()}
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
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        raise ConfigError(path, "expected an http:// or https:// URL with a host") from None
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
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise ConfigError("listen", f"expected host:port, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.-]+$", host):
            raise ConfigError("listen", f"invalid host in {text!r}") from None
    return host, int(port)


# Shorter secrets could be ordinary words or parts of them: they cannot be taken out of an
# error text without damaging it or showing where they stand.
MIN_SECRET_LENGTH = 8


def secret(value: Any, path: str, min_length: int = 1) -> Secret:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, "expected a non-empty string")  # never echo a secret
    if len(value) < min_length:
        raise ConfigError(path, f"too short ({len(value)} characters): a secret under "
                          f"{min_length} characters cannot be told apart from ordinary words "
                          "in an error text, so it could not be hidden from logs and pages")
    return Secret(value)


def load_yaml(
    path: str | Path,
    parse: Callable[[Any, Mapping[str, str]], T],
    env: Mapping[str, str] | None = None,
) -> T:
    """Read a YAML config file and hand it to `parse`; every failure is a ConfigError."""
    try:
        raw = read_yaml(path)
    except YamlProblem as exc:
        raise ConfigError(exc.path, exc.message) from None
    if raw is None:
        raise ConfigError("", "the config file is empty")
    return parse(raw, os.environ if env is None else env)
