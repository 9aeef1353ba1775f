#!/usr/bin/env bash
# Runs a local cluster: one redis-server (AOF with appendfsync always, so
# an ack is durable) and three chatd nodes sharing it, with one JWT secret.
# It prints the nodes' URLs and tokens, then waits; Ctrl-C stops the nodes
# (each drains), then Redis. Redis keeps its data under $DATA/redis, so the
# next run finds the history, the level and the flags again.
#
#   make cluster          builds bin/chatd, then runs this
#   scripts/cluster.sh    with an existing bin/chatd
#
# Environment: REDIS_PORT (6390), PORTS ("8081 8082 8083"), SECRET (a dev
# secret shared by the nodes), DATA (./data/cluster), LOG_LEVEL (info).
# Logs go to $DATA/logs.
set -euo pipefail
cd "$(dirname "$0")/.."
REDIS_PORT=${REDIS_PORT:-6390}
PORTS=${PORTS:-"8081 8082 8083"}
SECRET=${SECRET:-chatd-local-cluster-dev-secret}
DATA=${DATA:-data/cluster}
LOG_LEVEL=${LOG_LEVEL:-info}
BIN=bin/chatd
[ -x "$BIN" ] || { echo "cluster: $BIN is missing; run make cluster" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "cluster: redis-server not found; make deps installs it" >&2; exit 1; }
mkdir -p "$DATA/redis" "$DATA/logs"
data=$(cd "$DATA" && pwd)

redis_pid=""
node_pids=()
stop() {
  trap - EXIT INT TERM
  echo
  echo "cluster: stopping the nodes, then Redis"
  for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$redis_pid" ]; then kill -TERM "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
}
trap stop EXIT
trap 'exit 0' INT TERM # Ctrl-C is how the cluster is stopped

# until_up NAME CMD...: retries CMD for up to 10 s.
until_up() {
  local name=$1; shift
  for _ in $(seq 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "cluster: $name did not come up; see $data/logs" >&2
  exit 1
}

# Redis runs in a session of its own, so that Ctrl-C reaches it only
# through stop, after the nodes have drained.
setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$data/redis" \
  --appendonly yes --appendfsync always --save "" --daemonize no \
  --logfile "$data/logs/redis.log" &
redis_pid=$!
until_up "redis-server on port $REDIS_PORT" redis-cli -p "$REDIS_PORT" ping

for port in $PORTS; do
  "$BIN" --addr "127.0.0.1:$port" --redis "redis://127.0.0.1:$REDIS_PORT/0" \
    --jwt-secret "$SECRET" --node-id "node-$port" --log-level "$LOG_LEVEL" \
    >"$data/logs/node-$port.log" 2>&1 &
  node_pids+=($!)
done
for port in $PORTS; do
  until_up "the node on port $port" curl -fsS "http://127.0.0.1:$port/readyz"
done

# token NAME [admin]: an HS256 JWT for NAME, valid for a day.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
token() {
  local h p s
  h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
  p=$(printf '{"sub":"%s","name":"%s","exp":%d%s}' "$1" "$1" $(( $(date +%s) + 86400 )) "${2:+,\"admin\":true}" | b64url)
  s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)
  printf '%s.%s.%s' "$h" "$p" "$s"
}

echo "cluster: redis-server on 127.0.0.1:$REDIS_PORT (data in $data/redis), logs in $data/logs"
for port in $PORTS; do
  echo "  node-$port  http://127.0.0.1:$port/   ops page http://127.0.0.1:$port/ops.html"
done
if command -v openssl >/dev/null; then
  echo "tokens (sign in with one on the chat or ops page; JWT secret: $SECRET):"
  echo "  alice  $(token alice)"
  echo "  bob    $(token bob)"
  echo "  ops    $(token ops admin)"
fi
echo "Ctrl-C stops the cluster."
wait -n "${node_pids[@]}" "$redis_pid" || true
echo "cluster: a process exited; see $data/logs" >&2
exit 1
