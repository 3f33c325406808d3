// KV, Txn and Compact through the official etcd Go client (clientv3), against the cluster
// that TALLY_BIN or ETCD_BIN selects. One cluster serves every test of the package; each test
// keeps to keys under cluster.Prefix(t).
package kv

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"tally.local/tests/go/cluster"
)

var clus *cluster.Cluster

func TestMain(m *testing.M) {
	cluster.Main(m, func(c *cluster.Cluster) { clus = c })
}

func client(t *testing.T) *clientv3.Client {
	t.Helper()
	return clus.Client(t)
}
