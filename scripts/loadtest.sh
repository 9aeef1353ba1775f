#!/usr/bin/env bash
# Runs a chatload scenario against a fresh chatd: the server pinned to core
# 0, the load to core 1, a new data directory, a shared JWT secret. Reports
# go to $OUT (loadtest-out/<scenario> by default). It reports figures and
# never fails on them; it fails only if the tool finds a lost or duplicated
# message or cannot run.
#
#   scripts/loadtest.sh [seed|broadcast-5000|broadcast-1000|idle-10k|storm-10k|degrade|cluster] [extra chatload flags]
#
# degrade runs the chat workload at $USERS (default 10000) twice on fresh
# servers: pinned at level 0, then in auto mode, into $OUT/pinned and
# $OUT/auto; after the load each waits up to 90 s for the level to be 0
# again (--recover), which shows the step back up.
#
# $CHATD and $CHATLOAD name the binaries (bin/chatd and bin/chatload).
# TLS=1 serves HTTPS (HTTP/2 for SSE and polls) with a throwaway
# self-signed certificate.
#
# cluster compares three nodes on one Redis with one node on bbolt, on
# two workloads, each run on fresh servers and data:
#   throughput  durable sends, no reads or typing: $TP_USERS (500) users
#               in rooms of $TP_ROOM (10), each sending $TP_RATE (5) msg/s;
#   broadcast   $BC_USERS (1000) users in one room, $BC_SENDERS (10)
#               senders, $BC_RATE (50) msg/s in all.
# Each is measured for $DURATION (30s), into $OUT/<engine>-<workload>;
# $ENGINES ("redis bolt") and $WORKLOADS ("throughput broadcast") pick
# some, $NODES (3) sets the nodes. Redis is Debian's redis-server with
# AOF and appendfsync always, its data in a temporary directory, on a
# free port, stopped at the end; the nodes are bin/chatd --redis on free
# ports with one JWT secret, and the tool deals the users over them
# (--servers). Every server process, the nodes and Redis too, is pinned
# to core 0, as the one bbolt node is: one core for the server side
# whatever the engine. The tool is on core 1. Core 0's busy share
# (/proc/stat), Redis's CPU (INFO cpu) and the data disk's writes
# (/proc/diskstats) over each run go to host.txt beside the report,
# Redis's command counts to redis-info.txt, and $OUT/summary.md has the
# table (with jq).
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
CHATD=${CHATD:-bin/chatd}
CHATLOAD=${CHATLOAD:-bin/chatload}
# TLS=1 serves HTTPS, and so HTTP/2 to the SSE and poll clients as to a
# browser, with a self-signed certificate made here (openssl) that the
# tool trusts (--ca). Not for cluster.
tlsdir=""
tls_server=()
tls_load=()
curl_ca=()
if [ "${TLS:-0}" = 1 ]; then
  command -v openssl >/dev/null || { echo "loadtest: TLS=1 needs openssl" >&2; exit 1; }
  tlsdir=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$tlsdir/key.pem" -out "$tlsdir/cert.pem" 2>/dev/null
  URL="https://127.0.0.1:$PORT"
  tls_server=(--tls-cert "$tlsdir/cert.pem" --tls-key "$tlsdir/key.pem")
  tls_load=(--ca "$tlsdir/cert.pem")
  curl_ca=(--cacert "$tlsdir/cert.pem")
fi
server=("$CHATD" --addr "127.0.0.1:$PORT" --data "$data" --jwt-secret "$SECRET" --log-level warn "${tls_server[@]}")
load=("$CHATLOAD" --url "$URL" --jwt-secret "$SECRET" --out "$OUT" "${tls_load[@]}")

pid=""
redis_pid=""
node_pids=()
cleanup() {
  local rc=$?
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  stop_cluster
  wait 2>/dev/null || true
  rm -rf "$data"
  if [ -n "$tlsdir" ]; then rm -rf "$tlsdir"; fi
  exit "$rc"
}
trap cleanup EXIT
# on_core0 LOG CMD...: starts CMD in the background on core 0, its output
# to LOG. Not through pin: a backgrounded function is a subshell, and
# killing it would orphan the server. taskset execs, so $! is CMD itself.
on_core0() {
  local log=$1; shift
  if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    taskset -c 0 "$@" >"$log" 2>&1 &
  else
    "$@" >"$log" 2>&1 &
  fi
}
# await_ready URL PID LOG: waits up to 10 s for a chatd's /readyz.
await_ready() {
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { echo "loadtest: the server exited; see $3" >&2; exit 1; }
    curl -sf "${curl_ca[@]}" "$1/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "loadtest: server did not become ready; see $3" >&2; exit 1
}
start_server() {
  on_core0 "$OUT/server.log" "${server[@]}" "$@"
  pid=$!
  await_ready "$URL" "$pid" "$OUT/server.log"
}

# free_port prints a loopback port nobody listens on, below the ephemeral
# range (where outgoing connections may hold a port).
free_port() {
  local p lo
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % (lo > 21000 ? lo - 20000 : 1000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "loadtest: no free port" >&2; exit 1
}
# start_cluster DIR: redis-server (AOF, appendfsync always, data in
# $data/redis) and $NODES chatd nodes on it, all on core 0, each on a free
# port, their logs in DIR. Sets redis_port, node_pids and servers.
start_cluster() {
  local dir=$1 port
  mkdir -p "$data/redis"
  redis_port=$(free_port)
  on_core0 "$dir/redis.log" redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$data/redis" \
    --appendonly yes --appendfsync always --save "" --daemonize no
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    kill -0 "$redis_pid" 2>/dev/null || { echo "loadtest: redis-server exited; see $dir/redis.log" >&2; exit 1; }
    sleep 0.1
  done
  servers=""
  for i in $(seq "$NODES"); do
    port=$(free_port) # one at a time: the last one is bound before the next is picked
    on_core0 "$dir/node-$i.log" "$CHATD" --addr "127.0.0.1:$port" --redis "redis://127.0.0.1:$redis_port/0" \
      --jwt-secret "$SECRET" --node-id "node-$i" --log-level warn
    node_pids+=($!)
    await_ready "http://127.0.0.1:$port" "$!" "$dir/node-$i.log"
    servers+="${servers:+,}http://127.0.0.1:$port"
  done
}
# stop_cluster: the nodes drain (SIGTERM), then Redis stops.
stop_cluster() {
  local p
  for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  node_pids=()
  if [ -n "$redis_pid" ]; then kill -TERM "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  redis_pid=""
}
# cpu0 prints core 0's busy and total jiffies.
cpu0() { awk '/^cpu0 /{t=0; for (i=2; i<=9; i++) t+=$i; print t-$5-$6, t}' /proc/stat; }
# disk prints the data disk's sectors written and milliseconds spent on
# I/O (/proc/diskstats; 0 0 when the device is not found).
disk() {
  local dev
  dev=$(df --output=source "$data" 2>/dev/null | tail -1); dev=${dev#/dev/}
  awk -v d="$dev" '$3 == d {print $10, $13; f=1} END{if (!f) print 0, 0}' /proc/diskstats
}
# redis_cpu prints Redis's CPU seconds so far (0 without Redis).
redis_cpu() {
  if [ -z "$redis_pid" ]; then echo 0; return; fi
  redis-cli -p "$redis_port" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/{s+=$2} END{printf "%.2f\n", s}'
}
# measure DIR CHATLOAD-ARGS...: runs the tool on core 1 into DIR, then
# writes host.txt, over the tool's whole run (connect and drain
# included): core 0's busy share, Redis's CPU, and the data disk's
# megabytes written and busy share (the whole machine's, like core 0's).
# Returns the tool's status.
measure() {
  local dir=$1 rc=0 b0 t0 b1 t1 r0 r1 w0 w1 s0 s1 m0 m1; shift
  read -r b0 t0 < <(cpu0); read -r s0 m0 < <(disk); r0=$(redis_cpu); w0=$(date +%s.%N)
  pin 1 "$CHATLOAD" --jwt-secret "$SECRET" --out "$dir" "$@" || rc=$?
  read -r b1 t1 < <(cpu0); read -r s1 m1 < <(disk); r1=$(redis_cpu); w1=$(date +%s.%N)
  if [ -n "$redis_pid" ]; then
    redis-cli -p "$redis_port" info all | tr -d '\r' | grep -E '^(cmdstat_|used_cpu|aof_|instantaneous_ops|total_commands)' >"$dir/redis-info.txt" || true
  fi
  awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v r0="$r0" -v r1="$r1" -v w0="$w0" -v w1="$w1" \
    -v s="$((s1 - s0))" -v m="$((m1 - m0))" 'BEGIN{
    w = w1 - w0
    printf "wall_s %.1f\ncore0_busy %.3f\nredis_cpu_s %.2f\nredis_cores %.3f\n", w, (t ? b/t : 0), r1 - r0, (r1 - r0)/w
    printf "disk_written_mb %.0f\ndisk_busy %.3f\n", s * 512 / 1e6, m / 1000 / w
  }' >"$dir/host.txt"
  return "$rc"
}
# host DIR KEY prints a figure of DIR/host.txt.
host() { awk -v k="$2" '$1 == k {print $2}' "$1/host.txt" 2>/dev/null; }
# summary DIR...: writes $OUT/summary.md from the runs' reports (needs jq).
summary() {
  command -v jq >/dev/null || { echo "loadtest: no jq; the figures are in $OUT/*/report.md"; return; }
  {
    echo "| run | nodes | sends/s | ack p50 | ack p99 | deliveries/s | delivery p50 | delivery p99 | lost | duplicated | errors | chatd CPU | Redis CPU | core 0 busy | disk MB written | disk busy |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for d in "$@"; do
      [ -f "$d/report.json" ] || continue
      jq -r --arg run "$(basename "$d")" --arg rcpu "$(host "$d" redis_cores)" --arg busy "$(host "$d" core0_busy)" \
        --arg mb "$(host "$d" disk_written_mb)" --arg disk "$(host "$d" disk_busy)" '
        .settings.nodes as $n | .runs[0] |
        "| \($run) | \($n) | \(.traffic.sends_per_sec | floor) | \(.ack.p50_ms * 10 | round / 10) ms | \(.ack.p99_ms * 10 | round / 10) ms | \(.traffic.deliveries_per_sec | floor) | \(.latency.p50_ms * 10 | round / 10) ms | \(.latency.p99_ms * 10 | round / 10) ms | \(.check.lost) | \(.check.duplicated + .check.client_duplicates) | \(.error_rate * 100 * 100 | round / 100) % | \(.server.cpu_mean * 100 | round / 100) | \($rcpu) | \($busy) | \($mb) | \($disk) |"' "$d/report.json"
    done
  } >"$OUT/summary.md"
  cat "$OUT/summary.md"
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
  cluster)
    command -v redis-server >/dev/null || { echo "loadtest: redis-server not found; make deps installs it" >&2; exit 1; }
    NODES=${NODES:-3}
    DURATION=${DURATION:-30s}
    throughput=(--workload chat --users "${TP_USERS:-500}" --room-size "${TP_ROOM:-10}" --rate "${TP_RATE:-5}"
      --no-reads --typing 0 --duration "$DURATION")
    broadcast=(--workload broadcast --users "${BC_USERS:-1000}" --senders "${BC_SENDERS:-10}"
      --total-rate "${BC_RATE:-50}" --duration "$DURATION")
    status=0
    ran=()
    # Engines alternate within a workload, so that the two runs compared
    # are next to each other in time.
    for workload in ${WORKLOADS:-throughput broadcast}; do
      for engine in ${ENGINES:-redis bolt}; do
        case "$engine/$workload" in
          redis/throughput | redis/broadcast | bolt/throughput | bolt/broadcast) ;;
          *) echo "loadtest: unknown engine $engine or workload $workload" >&2; exit 2 ;;
        esac
        dir="$OUT/$engine-$workload"
        ran+=("$dir")
        mkdir -p "$dir"
        rm -rf "$data"; data=$(mktemp -d)
        if [ "$engine" = redis ]; then
          start_cluster "$dir"
          targets=(--servers "$servers")
        else
          port=$(free_port)
          on_core0 "$dir/server.log" "$CHATD" --addr "127.0.0.1:$port" --data "$data" --jwt-secret "$SECRET" --log-level warn
          pid=$!
          await_ready "http://127.0.0.1:$port" "$pid" "$dir/server.log"
          targets=(--url "http://127.0.0.1:$port")
        fi
        echo "loadtest: $engine, $workload: ${targets[*]}"
        if [ "$workload" = throughput ]; then
          measure "$dir" "${targets[@]}" "${throughput[@]}" "$@" || status=$?
        else
          measure "$dir" "${targets[@]}" "${broadcast[@]}" "$@" || status=$?
        fi
        stop_cluster
        if [ -n "$pid" ]; then kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; fi
      done
    done
    summary "${ran[@]}"
    exit "$status" ;;
  degrade)
    for mode in pinned auto; do
      level=0; [ "$mode" = auto ] && level=auto
      start_server
      pin 1 "${load[@]}" --out "$OUT/$mode" --workload chat --users "${USERS:-10000}" --tiers ws=70,sse=20,poll=10 \
        --duration "${DURATION:-60s}" --level "$level" --recover 90s "$@" || true
      kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
      rm -rf "$data"; data=$(mktemp -d); server[4]="$data"
    done ;;
  *)
    echo "loadtest: unknown scenario $scenario" >&2; exit 2 ;;
esac
