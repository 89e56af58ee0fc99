//go:build tools

// Package tools pins the test bed's real node (kubelet, kube-proxy) and its scheduler, built from
// the same Kubernetes release as the control plane (tools/kube) and kubeadm (tools/kubeadm).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
