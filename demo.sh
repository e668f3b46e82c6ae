#!/usr/bin/env bash
# The whole loop in one minute: builds the workspace, starts the example
# landmark_service, and shows health-probe's verdicts and exit codes through
# ok, degraded, weights, drain, a hung main loop, recovery, who is connected, and a dead service.
# Every exit code is checked; the script exits non-zero if any is wrong.
#
# Ports: DEMO_LISTEN (default 127.0.0.1:7000), DEMO_HEALTH (127.0.0.1:9100).
set -euo pipefail
cd "$(dirname "$0")"

LISTEN=${DEMO_LISTEN:-127.0.0.1:7000}
HEALTH=${DEMO_HEALTH:-127.0.0.1:9100}
bold=$'\e[1m'; dim=$'\e[2m'; off=$'\e[0m'
[ -t 1 ] || { bold=; dim=; off=; }

echo "${bold}Building (cargo build --release --workspace --bins --examples)...${off}"
cargo build --release --workspace --bins --examples --quiet
export PATH="$PWD/target/release:$PATH"

log=$(mktemp)
target/release/examples/landmark_service --listen "$LISTEN" --health "$HEALTH" --connections-period 200 2>"$log" &
svc=$!
cleanup() { kill "$svc" 2>/dev/null || true; wait "$svc" 2>/dev/null || true; exec 3>&- 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

# Wait (bounded) for the service to listen.
for _ in $(seq 100); do
  if (exec 4<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null; then break; fi
  kill -0 "$svc" 2>/dev/null || { echo "landmark_service failed to start:"; cat "$log"; exit 1; }
  sleep 0.05
done
exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}"

failures=0
step() { echo; echo "${bold}== $*${off}"; }
# Send one line of the service's own protocol and show its reply.
say() {
  printf '%s\n' "$1" >&3
  IFS= read -r -t 10 reply <&3
  echo "${dim}service <- $1   -> $reply${off}"
}
# Run health-probe, show it and its exit code, and check the code.
probe() {
  local want=$1; shift
  echo "\$ health-probe $*"
  set +e; health-probe "$@"; local got=$?; set -e
  if [ "$got" = "$want" ]; then
    echo "${dim}exit $got${off}"
  else
    echo "exit $got  <-- expected $want"; failures=$((failures + 1))
  fi
}

step "A healthy service: exit 0"
probe 0 "$HEALTH" --expect ok

step "The service reports degraded: exit 1, unless degraded is expected"
say "SET degraded replica lag 12s"
probe 1 "$HEALTH" --expect ok
probe 0 "$HEALTH" --expect ok,degraded

step "keepalived misc_dynamic: weight 80 exits 2+80"
say "SET ok serving"
say "WEIGHT 80"
probe 82 "$HEALTH" --dynamic

step "Draining before a restart: balancers stop sending new work"
say "SET drain restarting at 03:00"
probe 1 "$HEALTH"

step "The main loop hangs for 3 s (port still open!): the probe fails within the 500 ms answer deadline"
say "SET ok serving"
printf 'HANG 3000\n' >&3
sleep 0.2
start=$(date +%s%N)
probe 1 "$HEALTH" --expect ok
echo "${dim}verdict in $(( ($(date +%s%N) - start) / 1000000 )) ms${off}"
for port in "$LISTEN" "$HEALTH"; do
  if (exec 4<>"/dev/tcp/${port%:*}/${port##*:}") 2>/dev/null; then
    echo "${dim}meanwhile a plain TCP port check of $port still passes: the socket accepts${off}"
  fi
done
echo "${dim}with --timeout below the server's answer deadline, the probe still ends on time:${off}"
probe 1 "$HEALTH" --component db --timeout 300ms

step "The main loop recovers: back in the pool"
IFS= read -r -t 10 reply <&3; echo "${dim}service -> $reply${off}"
probe 0 "$HEALTH"
probe 0 "$HEALTH" --json

step "Who is connected to the service: two more clients, each connection's state, then counts by state"
exec 5<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}" 6<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}"
sleep 0.5
probe 0 connections "$HEALTH"
probe 0 connections "$HEALTH" --group-by state
exec 5>&- 6>&-

step "The service dies: connection refused"
exec 3>&-
kill "$svc"; wait "$svc" 2>/dev/null || true
probe 1 "$HEALTH"

echo
if [ "$failures" -eq 0 ]; then
  echo "${bold}Demo passed: every verdict and exit code was as expected.${off}"
else
  echo "${bold}Demo FAILED: $failures unexpected exit code(s).${off}"; exit 1
fi
