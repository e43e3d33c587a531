#!/usr/bin/env bash
# Installs the system packages the tests (or, with "bench", the benchmark)
# need, when missing and when we are root. Prints what it does.
set -euo pipefail
want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
if [ "${1:-}" = bench ]; then
  need nginx nginx-light
  need haproxy haproxy
  need wrk wrk
fi
if [ ${#want[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${want[*]} (install them, or run as root)" >&2
  exit 1
fi
echo "installing ${want[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
