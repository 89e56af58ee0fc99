//go:build tools

// Package tools pins the Cluster API managers the test bed builds and runs against its
// kube-apiserver: core (the module's root main package), the kubeadm bootstrap provider (CABPK)
// and the kubeadm control-plane provider (KCP).
package tools

import (
	_ "sigs.k8s.io/cluster-api"
	_ "sigs.k8s.io/cluster-api/bootstrap/kubeadm"
	_ "sigs.k8s.io/cluster-api/controlplane/kubeadm"
)
