#!/usr/bin/env bash
# Checks that dependencies point inward: core's own code imports no HTTP
# and no adapter; adapters do not import each other; degrade never imports
# transports; featureflags and web import nothing of the project.
set -euo pipefail
mod=$(go list -m)
fail=0
# deny PATTERN REGEXP [direct]: no package in PATTERN may depend on REGEXP
# (with "direct", only its own imports count, not those of libraries).
deny() {
  for pkg in $(go list "$1" 2>/dev/null); do
    if [ "${3:-}" = direct ]; then
      imports=$(go list -f '{{join .Imports "\n"}}' "$pkg" 2>/dev/null || true)
    else
      imports=$(go list -deps "$pkg" 2>/dev/null | grep -vx "$pkg" || true)
    fi
    bad=$(echo "$imports" | grep -E "$2" || true)
    if [ -n "$bad" ]; then
      echo "layers: $pkg must not import: $(echo $bad)"; fail=1
    fi
  done
}
deny "./core/..." "^(net/http|github.com/go-chi/)" direct
deny "./core/..." "^$mod/(transports|degrade|featureflags|web|cmd)"
deny "./transports/ws/..." "^$mod/transports/(sse|poll)$"
deny "./transports/sse/..." "^$mod/transports/(ws|poll)$"
deny "./transports/poll/..." "^$mod/transports/(ws|sse)$"
deny "./degrade/..." "^$mod/(transports|cmd)"
deny "./featureflags/..." "^$mod/(core|transports|degrade|web|cmd|deploy)"
deny "./web/..." "^$mod/"
deny "./deploy/..." "^$mod/"
exit $fail
