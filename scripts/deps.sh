#!/usr/bin/env bash
# Installs what the tests need, when it is missing. A new machine has none
# of it; CI runs this through `make test`.
#   - Debian packages, through apt-get (chromium for the browser tests in
#     web/browsertest; redis-server for the Redis engine and the cluster
#     tests, started by the tests themselves on a private socket;
#     prometheus for its promtool, which checks and unit-tests the alert
#     rules in deploy/prometheus, deploy/deploy_test.go);
#   - acorn, from npm, into the git-ignored .tools/ folder, for the ES5
#     check of the browser scripts (web/es5_test.go).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

need=()
# command → Debian package. The list grows with the tests that need them.
declare -A pkgs=([node]=nodejs [npm]=npm [redis-server]=redis-server [promtool]=prometheus)
for cmd in "${!pkgs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${pkgs[$cmd]}")
done
# The browser tests drive Debian's chromium at this exact path.
[ -x /usr/bin/chromium ] || need+=(chromium)
if ((${#need[@]} > 0)); then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
  # The prometheus package also starts a Prometheus server (on :9090) where
  # systemd runs. The tests need only its promtool: stop the server we
  # brought in.
  if [[ " ${need[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

# acorn parses the browser scripts as ES5. Pinned; kept out of git.
ACORN_VERSION=8.19.0
acorn_pkg=.tools/node_modules/acorn/package.json
if [ ! -f "$acorn_pkg" ] || ! grep -q "\"version\": \"$ACORN_VERSION\"" "$acorn_pkg"; then
  echo "deps: installing acorn@$ACORN_VERSION into .tools/"
  npm install --prefix .tools "acorn@$ACORN_VERSION" --no-audit --no-fund --silent
fi
