#!/usr/bin/env bash
# Builds the workspace in release and runs every benchmark against its peer,
# printing the Markdown tables docs/BENCHMARKS.md records.
#
#   bench/run.sh            # probe cost, server load, an isolated check, watch at scale, streaming against polling, watch config at the maximum, /probe against blackbox_exporter, connection snapshot, under attack, codec, a 3-minute soak
#   SOAK_MINUTES=0 bench/run.sh   # skip the soak
#
# Peers come from Debian's packages: netcat-openbsd (nc -z) and
# monitoring-plugins-basic (check_tcp), iproute2 (ss), python3 (tomllib),
# prometheus-blackbox-exporter, strace (syscalls per isolated check);
# tonic-health and axum are built from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v nc >/dev/null || need+=(netcat-openbsd)
[ -x /usr/lib/nagios/plugins/check_tcp ] || need+=(monitoring-plugins-basic)
command -v ss >/dev/null || need+=(iproute2)
command -v strace >/dev/null || need+=(strace)
command -v python3 >/dev/null || need+=(python3)
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
cargo build --release --workspace --bins --examples
# The probe as `cargo install --path health-probe` builds it: alone, so no
# dev-dependency of another crate (proptest turns on regex's Unicode tables)
# is unified into it; a workspace build with --examples would be larger.
cargo build --release -p health-probe --bins
# The static probe too, measured beside the dynamic one (probe_cost).
packaging/static.sh >/dev/null
echo "## Machine"
echo
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(rustc --version)"
echo
echo "## Probe cost"
echo
target/release/probe_cost --runs "${PROBE_RUNS:-500}"
echo
echo "## Server load"
echo
target/release/load --clients "${LOAD_CLIENTS:-32}" --seconds "${LOAD_SECONDS:-5}" --rounds "${LOAD_ROUNDS:-3}"
echo
echo "## An isolated check"
echo
target/release/isolated --checks "${ISOLATED_CHECKS:-1000}" --rounds "${ISOLATED_ROUNDS:-15}" --strace-checks "${ISOLATED_STRACE_CHECKS:-2000}"
echo
echo "## Watch at scale"
echo
target/release/watch_scale --targets "${WATCH_TARGETS:-10000}" --seconds "${WATCH_SECONDS:-20}"
echo
echo "## Streaming against polling"
echo
target/release/watch_stream --targets "${WATCH_TARGETS:-10000}" --endpoints 10 --seconds "${WATCH_SECONDS:-20}" --hangs "${STREAM_HANGS:-20}"
echo
echo "## Watch config at the maximum"
echo
target/release/watch_config --targets "${WATCH_CONFIG_TARGETS:-100000}" --runs "${WATCH_CONFIG_RUNS:-3}"
echo
echo "## /probe against blackbox_exporter"
echo
target/release/probe_exporters --clients "${PROBE_CLIENTS:-8}" --seconds "${PROBE_SECONDS:-5}" --rounds "${PROBE_ROUNDS:-3}"
echo
echo "## Connection snapshot"
echo
target/release/connections_scale --connections "${CONNECTIONS:-100000}" --runs "${CONNECTIONS_RUNS:-15}"
echo
echo "## Under attack"
echo
target/release/under_attack --seconds "${ATTACK_SECONDS:-20}"
echo
echo "## Codec"
echo
cargo bench -p health-bench --bench codec -- --noplot 2>/dev/null | grep -E '^[a-z_/0-9]+ +time:|^[a-z_/0-9]+$|^ +time:' | grep -v '%'
if [ "${SOAK_MINUTES:-3}" != 0 ]; then
  echo
  echo "## Soak"
  echo
  target/release/soak --minutes "${SOAK_MINUTES:-3}"
fi
