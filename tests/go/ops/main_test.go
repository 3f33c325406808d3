// etcd's HTTP endpoints (/health, /livez, /readyz, /version, /metrics) on the client URLs,
// against the cluster that TALLY_BIN or ETCD_BIN selects: the same requests get the same
// answers from both, and /metrics parses as Prometheus text with etcd's metric names.
package ops

import (
	"io"
	"net/http"
	"testing"
	"time"

	"tally.local/tests/go/cluster"
)

var clus *cluster.Cluster

func TestMain(m *testing.M) {
	cluster.Main(m, func(c *cluster.Cluster) { clus = c })
}

// get fetches url over plain HTTP/1.1 and returns the status, the body and the content type.
func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	c := http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	cluster.NoErr(t, "GET "+url, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	cluster.NoErr(t, "reading "+url, err)
	return resp.StatusCode, string(body), resp.Header.Get("Content-Type")
}
