//go:build tools

// Package apiservertests pins the Kubernetes release whose storage tests scripts/test-k8s runs
// against Tally (see README.md). It has no code of its own.
package apiservertests

import (
	_ "k8s.io/apiserver/pkg/storage/cacher"
	_ "k8s.io/apiserver/pkg/storage/etcd3"
	_ "k8s.io/apiserver/pkg/storage/etcd3/testserver"
)
