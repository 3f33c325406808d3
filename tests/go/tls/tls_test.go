package tls

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"tally.local/tests/go/cluster"
)

// client connects to endpoints with tlsConfig, failing fast.
func client(t *testing.T, tlsConfig *tls.Config, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		TLS:         tlsConfig,
	})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestEveryMemberServesAClientWithACertificate(t *testing.T) {
	key := cluster.Prefix(t) + "k"
	ctx := cluster.Ctx(t, 10*time.Second)
	if _, err := client(t, clus.TLS, clus.Members[0].Endpoint()).Put(ctx, key, "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	for _, m := range clus.Members {
		resp, err := client(t, clus.TLS, m.Endpoint()).Get(ctx, key)
		if err != nil {
			t.Fatalf("get from %s: %v", m.Name, err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
			t.Fatalf("get from %s: %v", m.Name, resp.Kvs)
		}
	}
}

// A lease kept alive through a follower: the follower forwards to the leader (etcd over its
// peer link, Tally over the leader's client URL), with its own certificate.
func TestLeaseKeepAliveThroughAFollower(t *testing.T) {
	ctx := cluster.Ctx(t, 10*time.Second)
	leader, err := clus.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	follower := clus.Members[(leader+1)%len(clus.Members)]
	cli := client(t, clus.TLS, follower.Endpoint())
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	resp, err := cli.KeepAliveOnce(ctx, lease.ID)
	if err != nil || resp.TTL <= 0 {
		t.Fatalf("keep-alive through %s: %v, %v", follower.Name, resp, err)
	}
}

func TestClientsWithoutAValidCertificateAreRefused(t *testing.T) {
	stranger, err := cluster.NewPKI(clus.Dir, "stranger")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := stranger.Issue("stranger-client", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	fromStranger, err := stranger.ClientConfig(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	fromStranger.RootCAs = clus.TLS.RootCAs
	noCert, err := clus.PKI.ClientConfig("", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{"no certificate": noCert, "another CA": fromStranger} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := client(t, cfg, clus.Members[0].Endpoint()).Get(ctx, "k")
		cancel()
		if err == nil {
			t.Errorf("a client with %s was served", name)
		}
	}
	// The member goes on serving the others.
	ctx := cluster.Ctx(t, 10*time.Second)
	if _, err := client(t, clus.TLS, clus.Members[0].Endpoint()).Get(ctx, "k"); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
}

func TestHealthOverHTTPS(t *testing.T) {
	httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: clus.TLS}}
	resp, err := httpClient.Get(clus.Members[1].ClientURL() + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != `{"health":"true","reason":""}` {
		t.Fatalf("GET /health: %d %s", resp.StatusCode, body)
	}
}
