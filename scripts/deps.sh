#!/usr/bin/env bash
# Installs the system packages that the tests need, when they are missing.
# A new machine has none of them; CI runs this through `make test`.
set -euo pipefail

need=()
# command → Debian package. The list grows with the tests that need them.
declare -A pkgs=()
for cmd in "${!pkgs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${pkgs[$cmd]}")
done
if ((${#need[@]} == 0)); then
  exit 0
fi
echo "deps: installing ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
