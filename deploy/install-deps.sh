#!/usr/bin/env bash
# Install the servers the tests run for real: InfluxDB 1.x, Prometheus (+ promtool) and
# Alertmanager (+ amtool), Chromium for the approval page's browser test, and poppler's
# pdftotext, which reads the PDF reports back in their tests, from
# Debian's packages. Safe to run again: does nothing when all
# binaries are present.
set -euo pipefail

binaries=(influxd prometheus promtool prometheus-alertmanager amtool chromium pdftotext)
packages=(influxdb prometheus prometheus-alertmanager chromium poppler-utils)

missing=()
for bin in "${binaries[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
# `python3 -m venv` needs ensurepip, which Debian ships separately.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
    packages+=(python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all present (${binaries[*]})"
    exit 0
fi

echo "install-deps: missing: ${missing[*]}"
install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: not root; run as root:" >&2
    echo "  sudo sh -c '$install_cmd'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: no apt-get; install these by hand: ${packages[*]}" >&2
    exit 1
fi

# The packages' postinst scripts start their daemons on the default ports (8086, 9090,
# 9093). Tests start their own instances, so forbid service starts while installing, via
# Debian's policy-rc.d hook (honoured by invoke-rc.d and deb-systemd-invoke), unless the
# admin already has a policy in place.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

services=(influxdb prometheus prometheus-alertmanager)
declare -A pidfiles=(
    [influxdb]=/run/influxdb/influxd.pid
    [prometheus]=/run/prometheus/prometheus.pid
    [prometheus-alertmanager]=/run/prometheus/prometheus-alertmanager.pid
)
running() {
    if [ -d /run/systemd/system ]; then
        systemctl is-active --quiet "$1" 2>/dev/null
    else
        [ -f "${pidfiles[$1]}" ] && kill -0 "$(cat "${pidfiles[$1]}")" 2>/dev/null
    fi
}
declare -A before=()
for service in "${services[@]}"; do
    if running "$service"; then before[$service]=1; fi
done

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"

# If an existing policy let a daemon start anyway, stop what this install started, and
# nothing that was running before.
for service in "${services[@]}"; do
    if [ -z "${before[$service]:-}" ] && running "$service"; then
        echo "install-deps: stopping $service, started by its package"
        if [ -d /run/systemd/system ]; then
            systemctl stop "$service" || true
        else
            kill "$(cat "${pidfiles[$service]}")" || true
        fi
    fi
done

still_missing=()
for bin in "${binaries[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || still_missing+=("$bin")
done
if [ ${#still_missing[@]} -ne 0 ]; then
    echo "install-deps: still missing after install: ${still_missing[*]}" >&2
    exit 1
fi
echo "install-deps: installed ${packages[*]}"
