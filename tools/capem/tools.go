//go:build tools

// Package tools pins the peer of `npm run bench -- capi`: CAPEM, the upstream Cluster API provider
// for Equinix Metal (sigs.k8s.io/cluster-api-provider-packet), whose manager is the module's root
// main package. Built unmodified by bench/capi with @knet/testing's ensureGoTool.
package tools

import (
	_ "sigs.k8s.io/cluster-api-provider-packet"
)
