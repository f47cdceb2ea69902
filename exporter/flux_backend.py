"""The Flux backend: InfluxDB 2.x (and 1.8 with Flux on) through influxdb-client.

One InfluxDBClientAsync per vessel, made when collection starts and kept until shutdown.
Errors are classified as the InfluxQL backend's: 401/403 auth, other 4xx the query, network
errors, 429 and 5xx worth another attempt.
"""

import json
import ssl
from collections.abc import Sequence
from typing import Any

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.query_api_async import QueryApiAsync
from influxdb_client.rest import ApiException

from .config import VesselConfig, Window
from .flux import build_script, parse_answer
from .model import Answer, AuthError, QueryError, TransientError


def _error_text(body: Any) -> str:
    """InfluxDB 2 says why in {"message": ...}, 1.8 in {"error": ...}; others are summarised."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError):
        return "no JSON error message"
    if isinstance(document, dict):
        for key in ("message", "error"):
            if isinstance(document.get(key), str):
                return document[key][:300]
    return "no JSON error message"


class FluxBackend:
    def __init__(
        self, vessels: Sequence[VesselConfig], windows: Sequence[Window], lookback: float,
        timeout: float,
    ) -> None:
        self._windows = tuple(windows)
        # One TLS context for all: each client would otherwise load the CA store itself,
        # about 0.8 MB a vessel.
        tls = ssl.create_default_context()
        self._clients: dict[str, InfluxDBClientAsync] = {}
        self._queries: dict[str, tuple[QueryApiAsync, str]] = {}
        for vessel in vessels:
            influx = vessel.influx
            token = influx.token.reveal() if influx.token is not None else None
            client = InfluxDBClientAsync(url=influx.url, token=token, org=influx.org,
                                         timeout=int(timeout * 1000), enable_gzip=True,
                                         ssl_context=tls)
            self._clients[vessel.id] = client
            # The script depends on the config only: build it once.
            self._queries[vessel.id] = (client.query_api(),
                                        build_script(vessel, windows, lookback))

    async def query(self, vessel: VesselConfig) -> Answer:
        api, script = self._queries[vessel.id]
        try:
            text = await api.query_raw(script, org=vessel.influx.org)
        except ApiException as exc:
            status = exc.status or 0
            if status in (401, 403):
                raise AuthError(f"HTTP {status}: {_error_text(exc.body)}") from None
            if status >= 500 or status == 429:
                raise TransientError(f"HTTP {status}") from None
            raise QueryError(f"HTTP {status}: {_error_text(exc.body)}") from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise TransientError(f"{type(exc).__name__}: {reason}") from None
        except UnicodeDecodeError:
            raise QueryError("answer is not UTF-8") from None
        observation = parse_answer(text, vessel, self._windows)
        # The client library decodes gzip itself: this is the decoded size.
        return Answer(observation=observation, response_bytes=len(text.encode()))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
