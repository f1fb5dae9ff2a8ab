#!/usr/bin/env bash
# Builds another revision's functions for `make bench BASE=<rev>`, so one bench run compares this
# build with that one, and prints the folder of its release binaries (nothing without a revision).
#   The revision is checked out as a git worktree under .tools/baseline/<commit> and built with its
#   own target folder (.tools/baseline/target), so the workspace's target/ is never overwritten.
#   That folder starts as a copy of target/ (the dependencies' builds do not depend on where the
#   workspace is), and the whole workspace is built as `make bench` builds it (the same features of
#   every dependency), so only the workspace's own crates are compiled again, not the AWS SDK.
set -euo pipefail
rev=${1:-}
[ -n "$rev" ] || exit 0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
commit=$(git -C "$root" rev-parse --verify "$rev^{commit}")
base="$root/.tools/baseline"
tree="$base/$commit"
if [ ! -d "$tree" ]; then
  git -C "$root" worktree add --detach "$tree" "$commit" >&2
fi
if [ ! -d "$base/target" ] && [ -d "$root/target/release" ]; then
  echo "bench: seeding $base/target from target/" >&2
  mkdir -p "$base/target"
  cp -a "$root/target/release" "$base/target/release"
fi
echo "bench: building ${rev} (${commit:0:12}) for comparison" >&2
CARGO_TARGET_DIR="$base/target" cargo build --manifest-path "$tree/Cargo.toml" --locked --release --workspace >&2
echo "$base/target/release"
