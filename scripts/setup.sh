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

bash scripts/npm-ci.sh

# The control plane every system test needs. The node's binaries (kubelet, kube-proxy,
# kube-scheduler), Cluster API's managers and kubeadm are built by `npm test` beside its first
# tests (and on first use by anything else, or now with `npm run testbed -- build`): on 2 cores
# that overlaps ~8 min of Go builds with tests that mostly wait.
echo "setup: building the test bed's control plane (etcd, kube-apiserver, kube-controller-manager, kubectl from Go modules; helm)"
node_modules/.bin/tsx libs/testing/src/cli.ts build control-plane >/dev/null
echo "setup: done; run 'npm test'"
