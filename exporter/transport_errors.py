"""Network failures as sentences an engineer acts on, for every backend.

The raw exception text goes to the log at debug level, redacted; the sentence names what
failed and where, e.g. "connection refused by 10.20.2.2:8086".
"""

import asyncio
import errno
import logging
import socket
import ssl
from urllib.parse import urlsplit

import aiohttp

from .config import VesselConfig
from .model import TransientError
from .redact import redactor_for

log = logging.getLogger(__name__)

# errno -> how a connect or a read failed, in words
_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused by {where}",
    errno.ECONNRESET: "connection reset by {where}",
    errno.ECONNABORTED: "connection to {where} aborted",
    errno.EPIPE: "connection to {where} broken",
    errno.ETIMEDOUT: "connection to {where} timed out",
    errno.EHOSTUNREACH: "no route to host {where}",
    errno.ENETUNREACH: "network unreachable for {where}",
    errno.EHOSTDOWN: "host {where} is down",
    errno.EADDRNOTAVAIL: "cannot connect to {where}: address not available",
}


def host_port(url: str) -> tuple[str, str]:
    """The host, and host:port with the scheme's default port filled in."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    return host, f"{shown}:{port}"


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError at the bottom of an aiohttp connection error, if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "os_error", None)
        if isinstance(inner, OSError):
            return inner
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def sentence(exc: BaseException, url: str) -> str:
    """What failed and where, for the exceptions a request over aiohttp can raise."""
    host, where = host_port(url)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed for {where}"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return f"TLS handshake with {where} failed"
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return f"DNS lookup failed for {host}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"connection to {where} timed out"
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return f"{where} stopped answering (read timed out)"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"connection closed by {where} before the answer was complete"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"answer from {where} cut short or garbled in transfer"
    if isinstance(exc, aiohttp.TooManyRedirects | aiohttp.RedirectClientError):
        return f"too many or invalid redirects from {where}"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL for {where}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"invalid HTTP answer from {where}"
    os_error = _os_error(exc)
    if os_error is not None and os_error.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[os_error.errno].format(where=where)
    if os_error is not None and os_error.strerror:
        return f"cannot reach {where}: {os_error.strerror.lower()}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {where}"
    return f"request to {where} failed"


def transport_error(exc: BaseException, vessel: VesselConfig) -> TransientError:
    """The error to raise for a failed request; the raw detail is logged at debug level."""
    if log.isEnabledFor(logging.DEBUG):
        raw = f"{type(exc).__name__}: {exc}"
        log.debug("vessel %s: %s", vessel.id, redactor_for(vessel.influx)(raw))
    return TransientError(sentence(exc, vessel.influx.url))


def http_status_error(status: int, vessel: VesselConfig, reason: str = "") -> TransientError:
    """A 5xx or 429: the server was reached but could not answer; worth another attempt."""
    _, where = host_port(vessel.influx.url)
    return TransientError(f"HTTP {status} from {where}" + (f": {reason}" if reason else ""))
