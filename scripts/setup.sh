#!/usr/bin/env bash
# One command for a fresh machine (Linux, root): system packages, npm dependencies, test bed.
#   npm run setup      (or: bash scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh

if ! command -v go >/dev/null 2>&1; then
  echo "setup: the Go toolchain (>= 1.24) is needed to build the Kubernetes test bed; install it and re-run" >&2
  exit 1
fi

# `npm install` from the committed lockfile rather than `npm ci`: the registry this project
# installs from serves only this platform's optional binaries (@swc/core-linux-x64-gnu, …), so the
# lockfile cannot list the other platforms' and `npm ci` refuses it as out of sync.
echo "setup: npm install (from package-lock.json)"
npm install --no-audit --no-fund
if [ "${CI:-}" = "true" ] && command -v git >/dev/null && ! git diff --quiet -- package-lock.json; then
  echo "setup: package-lock.json is out of date with package.json; run 'npm install' and commit the lockfile" >&2
  git --no-pager diff --stat -- package-lock.json >&2
  exit 1
fi

echo "setup: building the test bed (kube-apiserver, kube-controller-manager, kubectl, etcd from Go modules; helm)"
node_modules/.bin/tsx libs/testing/src/cli.ts build >/dev/null
echo "setup: done; run 'npm test'"
