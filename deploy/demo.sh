#!/usr/bin/env bash
# Local demo: a throwaway InfluxDB seeded with a simulated fleet (every scenario), and the
# exporter in front of it on http://127.0.0.1:9470. Ctrl-C stops both.
# VESSELS (default 66) and INFLUX_PORT (default 18086; 18088 is used too) change them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo="$root/.demo"
venv="$root/.venv/bin"
vessels=${VESSELS:-66}
influx_port=${INFLUX_PORT:-18086}
influx_url="http://127.0.0.1:$influx_port"

"$venv/python" - "$influx_port" "$((influx_port + 2))" <<'PY'
import socket, sys
for port in map(int, sys.argv[1:]):
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            sys.exit(f"demo: port {port} is taken; set INFLUX_PORT to another port")
PY
rm -rf "$demo" && mkdir -p "$demo"
cat >"$demo/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((influx_port + 2))"
[meta]
  dir = "$demo/influx/meta"
[data]
  dir = "$demo/influx/data"
  wal-dir = "$demo/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$influx_port"
  log-enabled = false
[monitor]
  store-enabled = false
CONF

influxd -config "$demo/influxdb.conf" >"$demo/influxd.log" 2>&1 &
influx_pid=$!
trap 'kill "$influx_pid" 2>/dev/null || true; wait "$influx_pid" 2>/dev/null || true' EXIT

"$venv/python" - "$influx_url" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        if urllib.request.urlopen(sys.argv[1] + "/ping", timeout=1).status == 204:
            sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit("influxd did not start; see .demo/influxd.log")
PY

echo "demo: seeding $vessels vessels into $influx_url"
"$venv/fleet-simulator" --influx-url "$influx_url" --vessels "$vessels" \
    --config-out "$demo/fleet.yml"
echo "demo: exporter on http://127.0.0.1:9470/ (metrics at /metrics, runs at /api/v1/runs)"
cd "$demo"
"$venv/fleet-exporter" --config fleet.yml
