#!/usr/bin/env bash
# The fresh-machine path, for real: `.ci/run` (= `npm run setup && npm test`) in a new clone of
# this repository's HEAD with every cache empty — Go's build and module caches, npm's cache and the
# test bed — so no warm cache can hide a broken install step. Prints the wall time, the test
# totals and how much disk each cache took. Takes as long as a first set-up (see the README).
#
#   bash scripts/cold-check.sh [--keep] [--dir DIR]
#     --keep     keep the clone and caches afterwards (default: remove them)
#     --dir DIR  work in DIR (default: a new directory under ${TMPDIR:-/tmp}); must not exist
#
# Only committed work is checked (it is a clone). System packages are not removed: set-up checks
# them and installs what is missing, as on a fresh machine.
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
keep=false
work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=true ;;
    --dir)
      [ $# -ge 2 ] || { echo "cold-check: --dir needs a directory" >&2; exit 2; }
      work="$2"
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "cold-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$work" ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/knet-cold.XXXXXX")"
elif [ -e "$work" ]; then
  echo "cold-check: $work exists; give a new directory" >&2
  exit 2
else
  mkdir -p "$work"
fi

cleanup() {
  if [ "$keep" = true ]; then
    echo "cold-check: kept $work"
  else
    # The Go module cache is read-only by design.
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

export GOCACHE="$work/go-build" GOMODCACHE="$work/go-mod" npm_config_cache="$work/npm-cache"
export KNET_TESTBED_DIR="$work/testbed"
mkdir -p "$GOCACHE" "$GOMODCACHE" "$npm_config_cache"

echo "cold-check: cloning $(git -C "$repo" rev-parse --short HEAD) into $work/knet"
git clone --quiet --no-local "$repo" "$work/knet"
echo "cold-check: empty caches: GOCACHE=$GOCACHE GOMODCACHE=$GOMODCACHE npm_config_cache=$npm_config_cache KNET_TESTBED_DIR=$KNET_TESTBED_DIR"

started=$(date +%s)
status=0
(cd "$work/knet" && bash .ci/run) 2>&1 | tee "$work/ci.log" || status=$?
wall=$(($(date +%s) - started))

totals=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$work/ci.log" | tail -1 || true)
size() { du -sh "$1" 2>/dev/null | cut -f1; }
echo
echo "cold-check: commit        $(git -C "$work/knet" rev-parse --short HEAD)"
echo "cold-check: wall time     $((wall / 60)) min $((wall % 60)) s (set-up and tests)"
grep -E '^::: npm (run setup|test) finished in ' "$work/ci.log" | sed 's/^::: /cold-check:   /' || true
grep -E '^testbed: built ' "$work/ci.log" | sed 's/^/cold-check:   /' || true
echo "cold-check: totals        ${totals:-none printed}"
echo "cold-check: disk          clone $(size "$work/knet") (node_modules $(size "$work/knet/node_modules")), Go modules $(size "$GOMODCACHE"), Go build cache $(size "$GOCACHE"), npm cache $(size "$npm_config_cache"), test bed $(size "$KNET_TESTBED_DIR")"
echo "cold-check: exit          $status"
exit "$status"
