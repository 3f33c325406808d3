// TLS with etcd's flags, against the cluster that TALLY_BIN or ETCD_BIN selects: every link
// encrypted, client and peer certificates required (--client-cert-auth, --peer-client-cert-auth).
// A client with a certificate from the cluster's CA is served by every member, also for what a
// follower forwards to the leader; one without a certificate, or with one from another CA, is
// refused; the HTTP endpoints answer over https.
package tls

import (
	"testing"

	"tally.local/tests/go/cluster"
)

var clus *cluster.Cluster

func TestMain(m *testing.M) {
	cluster.MainTLS(m, func(c *cluster.Cluster) { clus = c })
}
