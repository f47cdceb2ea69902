"""The Flux backend: InfluxDB 2.x (and 1.8 with Flux on) through influxdb-client.

One InfluxDBClientAsync per vessel, made when collection starts and kept until shutdown.
The client sends the query (auth, org, dialect, Accept-Encoding: gzip); the answer is read
here, as the InfluxQL backend reads its own: capped, gunzipped with a check for a cut-off
stream, counted on the wire. Errors are classified as the InfluxQL backend's.
"""

import ssl
from collections.abc import Sequence
from dataclasses import replace

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.query_api_async import QueryApiAsync
from influxdb_client.domain.query import Query
from influxdb_client.service.query_service import QueryService

from .backend import (
    NO_MESSAGE,
    AnswerCap,
    ParseTurns,
    decode_body,
    error_text,
    points_per_device,
    read_capped,
)
from .config import VesselConfig
from .flux import build_script, bytes_per_point, parse_answer
from .model import Answer, AuthError, QueryError
from .sla.ledger import Ask
from .transport_errors import http_status_error, transport_error

# The collector's own timeout should fire first: it says "timed out after ...".
_CLIENT_GRACE_SECONDS = 5.0
# InfluxDB 1.8 answers a query with Flux switched off like this, with 403.
_FLUX_DISABLED = b"Flux query service disabled"


class FluxBackend:
    def __init__(
        self, vessels: Sequence[VesselConfig], lookback: float, catchup: float,
        timeout: float,
    ) -> None:
        self._lookback = lookback
        self._catchup = catchup
        self._turns = ParseTurns()
        # One TLS context for all: each client would otherwise load the CA store itself,
        # about 0.8 MB a vessel.
        tls = ssl.create_default_context()
        self._clients: dict[str, InfluxDBClientAsync] = {}
        self._services: dict[str, QueryService] = {}
        for vessel in vessels:
            influx = vessel.influx
            token = influx.token.reveal() if influx.token is not None else None
            # influxdb-client annotates `token: str = None`: None, its own default, is no token.
            client = InfluxDBClientAsync(
                url=influx.url, token=token, org=influx.org, enable_gzip=True, ssl_context=tls,  # type: ignore[arg-type]
                timeout=int((timeout + _CLIENT_GRACE_SECONDS) * 1000),
                # The raw body: our own gunzip notices a stream cut short and counts bytes.
                client_session_kwargs={"auto_decompress": False})
            self._clients[vessel.id] = client
            self._services[vessel.id] = QueryService(client.api_client)

    async def query(self, vessel: VesselConfig, ask: Ask) -> Answer:
        service = self._services[vessel.id]
        query = Query(query=build_script(vessel, ask, self._lookback), type="flux",
                      dialect=QueryApiAsync.default_dialect)
        cap = AnswerCap.of(vessel, self._catchup, bytes_per_point(vessel))
        try:
            response = await service.post_query_async(
                org=vessel.influx.org, query=query, async_req=False, _preload_content=False,
                _return_http_data_only=True)
            try:
                raw = await read_capped(response, cap)
                status = response.status
                encoding = response.headers.get("Content-Encoding", "").lower()
            finally:
                response.release()
        except (aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, vessel) from None

        if status == 403 and _FLUX_DISABLED in raw:
            raise QueryError("HTTP 403: Flux is disabled on this InfluxDB 1.8; set "
                             "[http] flux-enabled = true, or use api: influxql")
        if status in (401, 403):
            raise AuthError(f"HTTP {status}: {error_text(decode_body(raw, encoding, cap))}")
        if status >= 500 or status == 429:
            # InfluxDB 1.8 answers a Flux compile error with 500 too: keep its reason.
            try:
                reason = error_text(decode_body(raw, encoding, cap))
            except QueryError:
                reason = NO_MESSAGE
            raise http_status_error(status, vessel, "" if reason == NO_MESSAGE else reason)
        if status != 200:
            raise QueryError(f"HTTP {status}: {error_text(decode_body(raw, encoding, cap))}")
        async with self._turns.turn():
            try:
                text = decode_body(raw, encoding, cap).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise QueryError(f"answer is not UTF-8 (byte {exc.start})") from None
            answer = parse_answer(text, vessel, points_per_device(vessel, self._catchup),
                                  ask.newest)
        return replace(answer, response_bytes=len(raw))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
