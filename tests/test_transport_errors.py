"""Network failures read as sentences an engineer acts on, for both backends."""

import errno
import logging
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from exporter.transport_errors import host_port, sentence
from simulator.fleetconfig import unused_loopback_url
from tests.helpers import scrape, vessel, write_config
from tests.hostile import assert_plain

URL = "http://10.20.2.2:8086"
KEY = ConnectionKey("10.20.2.2", 8086, False, True, None, None, None)


def connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(KEY, os_error)


@pytest.mark.parametrize(("exc", "expected"), [
    (connector_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")),
     "connection refused by 10.20.2.2:8086"),
    (connector_error(OSError(errno.EHOSTUNREACH, "No route to host")),
     "no route to host 10.20.2.2:8086"),
    (connector_error(OSError(errno.ENETUNREACH, "Network is unreachable")),
     "network unreachable for 10.20.2.2:8086"),
    (connector_error(OSError(errno.EACCES, "Permission denied")),
     "cannot reach 10.20.2.2:8086: permission denied"),
    (aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(-2, "Name or service not known")),
     "DNS lookup failed for 10.20.2.2"),
    (aiohttp.ClientConnectorCertificateError(
        KEY, ssl.SSLCertVerificationError(1, "certificate verify failed")),
     "TLS certificate verify failed for 10.20.2.2:8086"),
    (aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(1, "wrong version number")),
     "TLS handshake with 10.20.2.2:8086 failed"),
    (aiohttp.ServerDisconnectedError(),
     "connection closed by 10.20.2.2:8086 before the answer was complete"),
    (aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
     "connection reset by 10.20.2.2:8086"),
    (aiohttp.ClientPayloadError("Response payload is not completed"),
     "answer from 10.20.2.2:8086 cut short or garbled in transfer"),
    (aiohttp.ConnectionTimeoutError("Connection timeout to host"),
     "connection to 10.20.2.2:8086 timed out"),
    (aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
     "10.20.2.2:8086 stopped answering (read timed out)"),
    (aiohttp.ClientError("something odd"), "request to 10.20.2.2:8086 failed"),
    (OSError("no errno at all"), "request to 10.20.2.2:8086 failed"),
])
def test_exceptions_become_sentences(exc: BaseException, expected: str):
    assert sentence(exc, URL) == expected
    assert_plain(expected)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://db.ship.example", ("db.ship.example", "db.ship.example:443")),
    ("http://db.ship.example", ("db.ship.example", "db.ship.example:80")),
    ("http://[fe80::1]:8086", ("fe80::1", "[fe80::1]:8086")),
])
def test_host_port(url: str, expected: tuple[str, str]):
    assert host_port(url) == expected


@pytest.mark.parametrize("api", ["influxql", "flux"])
async def test_a_closed_port_says_connection_refused(api: str, tmp_path: Path, exporter,
                                                     caplog):
    caplog.set_level(logging.DEBUG)
    url = unused_loopback_url()
    influx = ({"api": "flux", "org": "-", "bucket": "telegraf/autogen", "token": "t0k-Secret-1"}
              if api == "flux" else {"token": "t0k-Secret-1"})
    entry = vessel("aurora", url, influx=influx)
    if api == "flux":
        del entry["influx"]["database"]
    config = write_config(tmp_path / "fleet.yml", [entry],
                          collection={"interval": "1h", "timeout": "5s", "attempts": 3,
                                      "backoff": "10ms"})
    client = await exporter(config)
    runs = await (await client.get("/api/v1/runs?limit=1")).json()
    run = await (await client.get(f"/api/v1/runs/{runs['runs'][0]['id']}")).json()
    metrics = await scrape(client)

    expected = f"connection refused by {url.removeprefix('http://')} (3 attempts)"
    assert metrics.status("aurora") == "unreachable"
    assert run["vessels"][0]["error"] == expected
    assert expected in await (await client.get("/")).text()
    # The raw detail stays in the log, at debug level only.
    raw = [r for r in caplog.records if r.name == "exporter.transport_errors"]
    assert len(raw) == 3 and {r.levelno for r in raw} == {logging.DEBUG}
    assert all("Connect call failed" in r.getMessage() for r in raw)
    assert "t0k-Secret-1" not in caplog.text
