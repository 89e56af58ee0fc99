//go:build tools

// Package tools pins kubeadm, built from the same Kubernetes release as the test bed (tools/kube),
// so generated kubeadm configs are checked by the real `kubeadm config validate`.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubeadm"
)
