"""Strict loading of the receiver's YAML config; errors name the key at fault."""

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_common.config import (
    DAY,
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
    secret,
    string,
)

from .passwords import is_password_hash

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["ConfigError", "ReceiverConfig", "load_config", "parse_config"]

ROLES = ("approver", "viewer")
ON_TIMEOUT = ("remind", "approve", "reject")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]+$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
MIN_TOKEN_LENGTH = 16  # a short bearer token can be guessed
ANY_PROXY = "trust_any_proxy_i_know_this_lets_anyone_sign_in"
# (minimum, maximum): far outside any real use, but they stop typos and absurd values.
DURATION_RANGES: dict[str, tuple[float, float]] = {
    "incidents.approval_timeout": (60.0, 90 * DAY),
    "incidents.reopen_window": (60.0, 400 * DAY),
    "incidents.reject_snooze": (60.0, 400 * DAY),
    "incidents.alert_expiry": (3600.0, 90 * DAY),
}
MAX_BODY_RANGE = (1024, 64 * 1024 * 1024)


# 500 alerts (Alertmanager's max_alerts) of about 4 KiB, twice over: see docs/receiver.md.
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_hash: Secret
    role: str

    @property
    def can_decide(self) -> bool:
        return self.role == "approver"


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    dedupe_labels: tuple[str, ...] = ("alertname", "vessel", "component")
    approval_match: Mapping[str, str] = field(default_factory=lambda: {"ticket": "jira"})
    approval_timeout: float = 86400.0
    on_timeout: str = "remind"
    reopen_window: float = 7 * 86400.0
    reject_snooze: float = 7 * 86400.0
    # Alertmanager re-sends every firing alert of a group at least every repeat_interval
    # (4h and 24h shipped): one not sent for three times the longest is gone.
    alert_expiry: float = 3 * 86400.0

    def needs_approval(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.approval_match.items())


@dataclass(frozen=True, slots=True)
class JiraConfig:
    url: str
    project: str
    issue_type: str = "Task"
    username: str | None = None
    api_token: Secret | None = None
    personal_access_token: Secret | None = None
    labels: tuple[str, ...] = ()
    resolve_transition: str | None = None
    reopen_transition: str | None = None
    webhook_secret: Secret | None = None


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    listen_host: str
    listen_port: int
    database: Path
    bearer_token: Secret
    users: tuple[User, ...]
    incidents: IncidentPolicy
    trusted_header: str | None = None
    # Only requests from these addresses may sign in through trusted_header.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    notify_url: str | None = None
    jira: JiraConfig | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = MAX_BODY_BYTES

    def user(self, name: str) -> User | None:
        return next((u for u in self.users if u.name == name), None)


def _proxies(raw: dict[str, Any], trusted_header: bool) -> tuple[IPNetwork, ...]:
    """Whoever reaches the receiver can set any header: only the proxy's is believed."""
    any_proxy = raw.get(ANY_PROXY, False)
    if not isinstance(any_proxy, bool):
        raise ConfigError(ANY_PROXY, "expected true or false")
    if "trusted_proxies" not in raw:
        if trusted_header:
            raise ConfigError("trusted_proxies", "required with trusted_header: the "
                              "addresses your auth proxy connects from, e.g. [127.0.0.1]")
        return ()
    if not trusted_header:
        raise ConfigError("trusted_proxies", "only used with trusted_header")
    networks = []
    for i, item in enumerate(listing(raw["trusted_proxies"], "trusted_proxies")):
        try:
            networks.append(ipaddress.ip_network(string(item, f"trusted_proxies[{i}]"),
                                                 strict=False))
        except ValueError:
            raise ConfigError(f"trusted_proxies[{i}]",
                              f"expected an IP address or network, got {item!r}") from None
    if not networks:
        raise ConfigError("trusted_proxies", "must name at least one address")
    everyone = [i for i, n in enumerate(networks) if n.prefixlen == 0]
    if everyone and not any_proxy:
        raise ConfigError(f"trusted_proxies[{everyone[0]}]",
                          f"{networks[everyone[0]]} is every address, so anyone could sign in"
                          f" as anyone; name your auth proxy's addresses (or set {ANY_PROXY}:"
                          " true)")
    if any_proxy and not everyone:
        raise ConfigError(ANY_PROXY, "only used when trusted_proxies holds 0.0.0.0/0 or ::/0")
    return tuple(networks)


def _users(raw: Any) -> tuple[User, ...]:
    users: list[User] = []
    for i, item in enumerate(listing(raw, "users")):
        path = f"users[{i}]"
        item = mapping(item, path, {"name", "password_hash", "role"}, ("name", "role"))
        name = string(item["name"], f"{path}.name", _NAME)
        if any(u.name == name for u in users):
            raise ConfigError(f"{path}.name", f"duplicate user {name!r}")
        role = string(item["role"], f"{path}.role")
        if role not in ROLES:
            raise ConfigError(f"{path}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        hashed = item.get("password_hash")
        if hashed is not None and not is_password_hash(hashed):
            raise ConfigError(f"{path}.password_hash",
                              "not a hash from `fleet-receiver hash-password`")
        users.append(User(name, Secret(hashed or ""), role))
    return tuple(users)


def _incidents(raw: Any) -> IncidentPolicy:
    path = "incidents"
    raw = mapping(raw, path, {"dedupe_labels", "approval_match", "approval_timeout",
                              "on_timeout", "reopen_window", "reject_snooze",
                              "alert_expiry"})
    base = IncidentPolicy()
    labels = base.dedupe_labels
    if "dedupe_labels" in raw:
        items = listing(raw["dedupe_labels"], f"{path}.dedupe_labels")
        labels = tuple(string(v, f"{path}.dedupe_labels[{i}]", _LABEL) for i, v in enumerate(items))
        if not labels:
            raise ConfigError(f"{path}.dedupe_labels", "needs at least one label")
    match = base.approval_match
    if "approval_match" in raw:
        given = raw["approval_match"]
        if not isinstance(given, dict):
            raise ConfigError(f"{path}.approval_match", "expected a mapping of label: value")
        match = {string(k, f"{path}.approval_match", _LABEL):
                 string(v, f"{path}.approval_match.{k}") for k, v in given.items()}
    on_timeout = raw.get("on_timeout", base.on_timeout)
    if on_timeout not in ON_TIMEOUT:
        raise ConfigError(f"{path}.on_timeout",
                          f"expected one of {', '.join(ON_TIMEOUT)}, got {on_timeout!r}")

    def dur(key: str, default: float) -> float:
        where = f"{path}.{key}"
        return duration(raw[key], where, *DURATION_RANGES.get(where, ())) if key in raw \
            else default

    return IncidentPolicy(
        dedupe_labels=labels,
        approval_match=match,
        approval_timeout=dur("approval_timeout", base.approval_timeout),
        on_timeout=on_timeout,
        reopen_window=dur("reopen_window", base.reopen_window),
        reject_snooze=dur("reject_snooze", base.reject_snooze),
        alert_expiry=dur("alert_expiry", base.alert_expiry),
    )


def _jira(raw: Any) -> JiraConfig:
    path = "jira"
    raw = mapping(raw, path, {"url", "username", "api_token", "personal_access_token",
                              "project", "issue_type", "labels", "resolve_transition",
                              "reopen_transition", "webhook_secret"}, ("url", "project"))
    has_basic = "username" in raw or "api_token" in raw
    if has_basic and "personal_access_token" in raw:
        raise ConfigError(f"{path}.personal_access_token",
                          "use either username + api_token or personal_access_token")
    if has_basic and not ("username" in raw and "api_token" in raw):
        missing = "api_token" if "username" in raw else "username"
        raise ConfigError(f"{path}.{missing}", "username and api_token must be set together")
    if not has_basic and "personal_access_token" not in raw:
        raise ConfigError(path, "set username + api_token (Cloud) or personal_access_token")

    def optional(key: str) -> str | None:
        return string(raw[key], f"{path}.{key}") if key in raw else None

    def optional_secret(key: str) -> Secret | None:
        return secret(raw[key], f"{path}.{key}") if key in raw else None

    return JiraConfig(
        url=http_url(raw["url"], f"{path}.url"),
        project=string(raw["project"], f"{path}.project"),
        issue_type=string(raw.get("issue_type", "Task"), f"{path}.issue_type"),
        username=optional("username"),
        api_token=optional_secret("api_token"),
        personal_access_token=optional_secret("personal_access_token"),
        labels=tuple(string(v, f"{path}.labels[{i}]")
                     for i, v in enumerate(listing(raw.get("labels", []), f"{path}.labels"))),
        resolve_transition=optional("resolve_transition"),
        reopen_transition=optional("reopen_transition"),
        webhook_secret=optional_secret("webhook_secret"),
    )


def parse_config(raw: Any, env: Mapping[str, str]) -> ReceiverConfig:
    raw = mapping(raw, "", {"listen", "database", "webhook", "users", "trusted_header",
                            "trusted_proxies", ANY_PROXY,
                            "incidents", "notify_url", "jira", "links", "max_body_bytes"},
                  ("webhook",))
    raw = expand_env(raw, "", env)
    host, port = listen_address(raw.get("listen", "0.0.0.0:9471"))
    webhook = mapping(raw["webhook"], "webhook", {"bearer_token"}, ("bearer_token",))
    links = mapping(raw.get("links", {}), "links", {"grafana", "console"})
    trusted = raw.get("trusted_header")
    max_body = integer(raw.get("max_body_bytes", MAX_BODY_BYTES), "max_body_bytes",
                       *MAX_BODY_RANGE)
    users = _users(raw.get("users", []))
    if trusted is None:
        for i, user in enumerate(users):
            if not user.password_hash.reveal():
                raise ConfigError(f"users[{i}].password_hash",
                                  "required unless trusted_header names an auth proxy header")
    if not any(user.can_decide for user in users):
        raise ConfigError("users", "needs at least one approver, or nobody could approve")
    bearer_token = secret(webhook["bearer_token"], "webhook.bearer_token")
    if len(bearer_token.reveal()) < MIN_TOKEN_LENGTH:
        raise ConfigError("webhook.bearer_token",
                          f"too short ({len(bearer_token.reveal())} characters);"
                          f" use at least {MIN_TOKEN_LENGTH}")
    return ReceiverConfig(
        listen_host=host,
        listen_port=port,
        database=Path(string(raw.get("database", "receiver.db"), "database")),
        bearer_token=bearer_token,
        users=users,
        incidents=_incidents(raw.get("incidents", {})),
        trusted_header=string(trusted, "trusted_header", _HEADER) if trusted is not None else None,
        trusted_proxies=_proxies(raw, trusted is not None),
        notify_url=http_url(raw["notify_url"], "notify_url") if "notify_url" in raw else None,
        jira=_jira(raw["jira"]) if "jira" in raw else None,
        links={k: string(v, f"links.{k}") for k, v in links.items()},
        max_body_bytes=max_body,
    )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> ReceiverConfig:
    return load_yaml(path, parse_config, env)
