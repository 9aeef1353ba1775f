#!/usr/bin/env bash
# Runs a chatload scenario against a fresh chatd: the server pinned to core
# 0, the load to core 1, a new data directory, a shared JWT secret. Reports
# go to $OUT (loadtest-out/<scenario> by default). It reports figures and
# never fails on them; it fails only if the tool finds a lost or duplicated
# message or cannot run.
#
#   scripts/loadtest.sh [seed|broadcast-5000|broadcast-1000|idle-10k|storm-10k|degrade] [extra chatload flags]
#
# degrade runs the chat workload at $USERS (default 10000) twice on fresh
# servers: pinned at level 0, then in auto mode, into $OUT/pinned and
# $OUT/auto.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-seed}
shift || true
OUT=${OUT:-loadtest-out/$scenario}
PORT=${PORT:-18080}
URL="http://127.0.0.1:$PORT"
SECRET=${SECRET:-loadtest-secret}
data=$(mktemp -d)
mkdir -p "$OUT"
pin() { if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }
server=(bin/chatd --addr "127.0.0.1:$PORT" --data "$data" --jwt-secret "$SECRET" --log-level warn)
load=(bin/chatload --url "$URL" --jwt-secret "$SECRET" --out "$OUT")

pid=""
cleanup() {
  local rc=$?
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$data"
  exit "$rc"
}
trap cleanup EXIT
start_server() {
  # Not through pin: a backgrounded function is a subshell, and killing it
  # would orphan the server. taskset execs, so $! is the server itself.
  if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    taskset -c 0 "${server[@]}" "$@" >"$OUT/server.log" 2>&1 &
  else
    "${server[@]}" "$@" >"$OUT/server.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { echo "loadtest: the server exited; see $OUT/server.log" >&2; exit 1; }
    curl -sf "$URL/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "loadtest: server did not become ready; see $OUT/server.log" >&2; exit 1
}

echo "loadtest: $scenario on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(go version | cut -d' ' -f3); reports in $OUT"
case "$scenario" in
  seed)
    start_server
    pin 1 "${load[@]}" --workload chat --users 500,1000,5000 --tiers ws=70,sse=20,poll=10 --duration 60s "$@" ;;
  broadcast-5000)
    start_server
    pin 1 "${load[@]}" --workload broadcast --users 5000 --senders 10 --total-rate 10 --duration 60s "$@" ;;
  broadcast-1000)
    start_server
    pin 1 "${load[@]}" --workload broadcast --users 1000 --senders 200 --total-rate 1000 --duration 30s "$@" ;;
  idle-10k)
    start_server
    pin 1 "${load[@]}" --workload idle --users 10000 --duration 30s "$@" ;;
  storm-10k)
    # chatload starts, kills (SIGKILL) and restarts the server itself.
    pin 1 "${load[@]}" --workload storm --users 10000 --storm-after 10s \
      --server-cmd "$(command -v taskset >/dev/null && echo 'taskset -c 0 ')${server[*]}" "$@" ;;
  degrade)
    for mode in pinned auto; do
      level=0; [ "$mode" = auto ] && level=auto
      start_server
      pin 1 "${load[@]}" --out "$OUT/$mode" --workload chat --users "${USERS:-10000}" --tiers ws=70,sse=20,poll=10 \
        --duration "${DURATION:-60s}" --level "$level" "$@" || true
      kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
      rm -rf "$data"; data=$(mktemp -d); server[4]="$data"
    done ;;
  *)
    echo "loadtest: unknown scenario $scenario" >&2; exit 2 ;;
esac
