#!/usr/bin/env bash
# `npm ci` for set-up: installs exactly the tree in package-lock.json (which lists every platform's
# optional binaries), or nothing. When package.json and the lockfile disagree, npm buries the
# reason in its usage text; this prints the reason and what to do, in one place, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

# ssh2's crypto binding is built by node-gyp (the one install script package.json's allowScripts
# approves); it needs this node's headers, which it would otherwise download from nodejs.org.
# Node installs ship them next to the binary (<prefix>/include/node).
node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node.h" ]; then
  export npm_config_nodedir="$node_prefix"
fi

echo "setup: npm ci (installs exactly the tree in package-lock.json)"
npm_log=$(mktemp)
trap 'rm -f "$npm_log"' EXIT
if ! npm ci --no-audit --no-fund "$@" >"$npm_log" 2>&1; then
  if grep -q 'can only install packages when your package.json and package-lock.json' "$npm_log"; then
    grep -E '^npm error (Invalid|Missing): ' "$npm_log" | sed 's/^npm error /setup:   /' >&2 || true
    echo "setup: package-lock.json does not match package.json (see above); run 'npm install' to update the lockfile, then commit package-lock.json" >&2
  else
    cat "$npm_log" >&2
    echo "setup: npm ci failed (npm's output is above)" >&2
  fi
  exit 1
fi
grep -v '^\s*$' "$npm_log" || true
