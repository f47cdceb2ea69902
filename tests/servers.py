"""Real servers for tests: free ports, binary lookup, and a throwaway InfluxDB 1.x."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType

import pytest

# Debian package that ships each binary, for the install hint.
_PACKAGES = {
    "influxd": "influxdb",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound so the ports are distinct.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    return _free_ports(1)[0]


def require_binary(name: str, *candidates: str) -> str:
    """Path of `name` (on PATH, else the first existing candidate); skip or fail when absent.

    Missing binaries fail under CI, where `make deps` should have installed them.
    """
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    package = _PACKAGES.get(name, name)
    message = f"{name} not found; install it with `apt-get install {package}` (or `make deps`)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _http(
    method: str, url: str, data: dict[str, str] | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


class InfluxServer:
    """influxd 1.x on loopback ports in a temporary directory.

    With `auth=True` HTTP auth is enabled and an admin user (`username`/`password`) is created.
    Use as a context manager or call start()/stop().
    """

    def __init__(
        self,
        binary: str = "influxd",
        auth: bool = False,
        username: str = "admin",
        password: str = "admin-secret",
        startup_timeout: float = 20.0,
    ) -> None:
        self.binary = binary
        self.auth = auth
        self.username = username
        self.password = password
        self.startup_timeout = startup_timeout
        self.port = 0
        self.url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    def _write_config(self, root: Path, http_port: int, rpc_port: int) -> Path:
        # The RPC bind-address is set too: its default 8088 would collide between instances.
        config = f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root / "meta"}"

[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false

[monitor]
  store-enabled = false
"""
        path = root / "influxdb.conf"
        path.write_text(config, encoding="utf-8")
        return path

    def log_tail(self, lines: int = 30) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"influxd exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                if _http("GET", f"{self.url}/ping", timeout=1)[0] == 204:
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"influxd not ready within {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def query(self, q: str, database: str | None = None) -> bytes:
        """POST an InfluxQL query, as the admin when auth is enabled; raise on any error."""
        data = {"q": q}
        if database:
            data["db"] = database
        url = f"{self.url}/query"
        if self.auth:
            # influxd 1.x reads u and p from the URL, not from a form body.
            url += "?" + urllib.parse.urlencode({"u": self.username, "p": self.password})
        status, body = _http("POST", url, data)
        if status != 200 or b'"error"' in body:
            raise RuntimeError(f"query {q!r} failed: {status} {body!r}")
        return body

    def write(self, database: str, lines: list[str]) -> None:
        """Write line protocol (seconds precision) into a new database."""
        self.query(f'CREATE DATABASE "{database}"')
        url = f"{self.url}/write?" + urllib.parse.urlencode({"db": database, "precision": "s"})
        request = urllib.request.Request(url, data="\n".join(lines).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            if resp.status != 204:
                raise RuntimeError(f"write failed: {resp.status}")

    def start(self) -> "InfluxServer":
        self._tmp = tempfile.TemporaryDirectory(prefix="influxd-")
        root = Path(self._tmp.name)
        http_port, rpc_port = _free_ports(2)
        self.port = http_port
        self.url = f"http://127.0.0.1:{http_port}"
        config = self._write_config(root, http_port, rpc_port)
        self._log_path = root / "influxd.log"
        try:
            with open(self._log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    [self.binary, "-config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self._wait_ready()
            if self.auth:
                # 1.x accepts this one unauthenticated statement while no user exists.
                status, body = _http(
                    "POST",
                    f"{self.url}/query",
                    {
                        "q": f"CREATE USER {self.username} WITH PASSWORD "
                        f"'{self.password}' WITH ALL PRIVILEGES"
                    },
                )
                if status != 200 or b'"error"' in body:
                    raise RuntimeError(f"creating the admin user failed: {status} {body!r}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "InfluxServer":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
