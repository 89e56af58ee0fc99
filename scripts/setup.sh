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

echo "setup: building the test bed (kube-apiserver, kube-controller-manager, kubectl, etcd, kubelet, kube-proxy, kube-scheduler, kubeadm, Cluster API managers from Go modules; helm)"
node_modules/.bin/tsx libs/testing/src/cli.ts build >/dev/null
echo "setup: done; run 'npm test'"
