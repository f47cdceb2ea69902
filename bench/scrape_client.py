"""Scrape a /metrics URL like Prometheus does and print the timings as one JSON line.

It runs in its own process so the client's work does not slow the exporter it measures.

Run: ``python bench/scrape_client.py http://127.0.0.1:PORT/metrics 20``
"""

import gzip
import http.client
import json
import sys
import time
from urllib.parse import urlsplit

HEADERS = {
    "Accept": "text/plain;version=0.0.4;q=0.9,*/*;q=0.1",
    "Accept-Encoding": "gzip",  # Prometheus asks for gzip
}


def scrape(conn: http.client.HTTPConnection, path: str) -> tuple[float, bytes, str]:
    """One GET on a kept-alive connection: seconds to the last body byte, body, encoding."""
    started = time.perf_counter()
    conn.request("GET", path, headers=HEADERS)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status}")
    return elapsed, body, response.getheader("Content-Encoding", "identity")


def main(argv: list[str]) -> int:
    url, count = urlsplit(argv[1]), int(argv[2])
    if url.hostname != "127.0.0.1" or url.port is None:
        raise SystemExit("only http://127.0.0.1:PORT/... is allowed")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        scrape(conn, url.path)  # warm-up: connection setup is not what is measured
        times, body, encoding = [], b"", "identity"
        for _ in range(count):
            elapsed, body, encoding = scrape(conn, url.path)
            times.append(elapsed)
    finally:
        conn.close()
    text = gzip.decompress(body) if encoding == "gzip" else body
    samples = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    result = {
        "seconds": times,
        "wire_bytes": len(body),
        "body_bytes": len(text),
        "encoding": encoding,
        "samples": samples,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
