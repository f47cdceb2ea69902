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
from typing import Self

import pytest

# Debian package that ships each binary, for the install hint.
_PACKAGES = {
    "influxd": "influxdb",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "chromium": "chromium",
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


class Daemon:
    """A server binary on loopback ports in a temporary directory, stopped on exit.

    Subclasses say how to configure and start it and how to tell it is ready.
    """

    name = "daemon"
    ready_path = "/"
    ready_status = 200

    def __init__(self, binary: str, startup_timeout: float = 30.0) -> None:
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.port = 0
        self.url = ""
        self.root = Path()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Write what the server needs under self.root; return its command line."""
        raise NotImplementedError

    def after_start(self) -> None:
        """Set-up that needs the running server."""

    def log_tail(self, lines: int = 30) -> str:
        log = self.root / f"{self.name}.log"
        if not log.exists():
            return ""
        text = log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                if _http("GET", f"{self.url}{self.ready_path}", timeout=1)[0] == self.ready_status:
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} not ready within {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def workdir(self) -> Path:
        """Where the server keeps its files: a temporary directory, removed on stop."""
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{self.name}-")
        return Path(self._tmp.name)

    def start(self) -> Self:
        self.root = self.workdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            command = self.command()
            # Appended to: a kept working directory keeps the logs of earlier starts.
            with open(self.root / f"{self.name}.log", "ab") as log:
                self._proc = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.root,
                )
            self._wait_ready()
            self.after_start()
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class InfluxServer(Daemon):
    """influxd 1.x. With `auth=True` HTTP auth is on and an admin user is created."""

    name = "influxd"
    ready_path = "/ping"
    ready_status = 204

    def __init__(
        self,
        binary: str = "influxd",
        auth: bool = False,
        username: str = "admin",
        password: str = "admin-secret",
        startup_timeout: float = 20.0,
    ) -> None:
        super().__init__(binary, startup_timeout)
        self.auth = auth
        self.username = username
        self.password = password

    def command(self) -> list[str]:
        # The RPC bind-address is set too: its default 8088 would collide between instances.
        root = self.root
        config = f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"

[meta]
  dir = "{root / "meta"}"

[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false

[monitor]
  store-enabled = false
"""
        path = root / "influxdb.conf"
        path.write_text(config, encoding="utf-8")
        return [self.binary, "-config", str(path)]

    def after_start(self) -> None:
        if self.auth:
            # 1.x accepts this one unauthenticated statement while no user exists.
            status, body = _http("POST", f"{self.url}/query", {
                "q": f"CREATE USER {self.username} WITH PASSWORD "
                     f"'{self.password}' WITH ALL PRIVILEGES"
            })
            if status != 200 or b'"error"' in body:
                raise RuntimeError(f"creating the admin user failed: {status} {body!r}")

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


class PrometheusServer(Daemon):
    """Prometheus with a given config file (written to its directory as prometheus.yml)."""

    name = "prometheus"
    ready_path = "/-/ready"

    def __init__(self, binary: str, config: str, extra: tuple[str, ...] = ()) -> None:
        super().__init__(binary)
        self.config = config
        self.extra = extra

    def command(self) -> list[str]:
        (self.root / "prometheus.yml").write_text(self.config, encoding="utf-8")
        return [
            self.binary, "--config.file=prometheus.yml", f"--storage.tsdb.path={self.root}/data",
            f"--web.listen-address=127.0.0.1:{self.port}", *self.extra,
        ]


class AlertmanagerServer(Daemon):
    """Alertmanager with a given config, clustering off so it binds loopback only."""

    name = "alertmanager"
    ready_path = "/-/ready"

    def __init__(self, binary: str, config: str, files: dict[str, str] | None = None) -> None:
        super().__init__(binary)
        self.config = config
        self.files = files or {}

    def command(self) -> list[str]:
        for name, text in {**self.files, "alertmanager.yml": self.config}.items():
            (self.root / name).write_text(text, encoding="utf-8")
        return [
            self.binary, "--config.file=alertmanager.yml", f"--storage.path={self.root}/data",
            f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
        ]
