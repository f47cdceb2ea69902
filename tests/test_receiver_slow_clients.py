"""Slow clients: a connection that trickles its headers or body is cut off, on raw sockets."""

import asyncio
from pathlib import Path

from aiohttp import web

from receiver.config import load_config
from receiver.web import create_app, make_runner
from tests.receiver_helpers import TOKEN, write_receiver_config

LIMIT = 0.3  # injected: the shipped limits are 15 s and 30 s


async def serve(tmp_path: Path) -> tuple[web.AppRunner, int]:
    config = load_config(write_receiver_config(tmp_path / "receiver.yml"))
    runner = make_runner(create_app(config, body_timeout=LIMIT), header_timeout=LIMIT)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def trickle(port: int, data: bytes) -> tuple[float, bytes]:
    """Send `data` a byte every 20 ms; the seconds until the server closed, and its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = b""
    try:
        for byte in data:
            try:
                answer += await asyncio.wait_for(reader.read(65536), 0.02)
            except TimeoutError:
                pass  # nothing yet: the connection is still open
            else:
                if reader.at_eof():
                    return loop.time() - started, answer
            writer.write(bytes([byte]))
        raise AssertionError("the server kept the connection open")
    finally:
        writer.close()


class TestSlowClients:
    async def test_headers_sent_byte_by_byte_are_cut_off(self, tmp_path):
        runner, port = await serve(tmp_path)
        try:
            headers = (b"POST /api/v1/alerts HTTP/1.1\r\nHost: receiver\r\n"
                       + b"X-Slow: " + b"a" * 400)  # 8 s at this pace, never finished
            elapsed, answer = await trickle(port, headers)
        finally:
            await runner.cleanup()
        assert elapsed < 10 * LIMIT
        assert answer == b""

    async def test_a_body_sent_byte_by_byte_is_cut_off_with_408(self, tmp_path):
        runner, port = await serve(tmp_path)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /api/v1/alerts HTTP/1.1\r\nHost: receiver\r\n"
                         b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{")
            answer = b""
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(400):
                try:
                    answer += await asyncio.wait_for(reader.read(65536), 0.02)
                except TimeoutError:
                    writer.write(b" ")
                    continue
                if reader.at_eof():
                    break
            elapsed = loop.time() - started
            writer.close()
        finally:
            await runner.cleanup()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"body: not received in time" in answer
        assert elapsed < 10 * LIMIT
