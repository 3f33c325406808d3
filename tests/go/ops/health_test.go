package ops

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"tally.local/tests/go/cluster"
)

type health struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

func wantHealth(t *testing.T, url string, status int, want health) {
	t.Helper()
	code, body, _ := get(t, url)
	var got health
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("GET %s: %q is not etcd's health JSON: %v", url, body, err)
	}
	if code != status || got != want {
		t.Fatalf("GET %s: %d %+v, want %d %+v", url, code, got, status, want)
	}
}

func TestHealthyCluster(t *testing.T) {
	base := clus.Members[0].ClientURL()
	for _, q := range []string{"", "?serializable=true", "?serializable=false", "?exclude=NOSPACE"} {
		wantHealth(t, base+"/health"+q, 200, health{"true", ""})
	}
	for _, path := range []string{"/livez", "/readyz", "/livez/serializable_read", "/readyz/linearizable_read",
		"/readyz/non_learner", "/readyz/data_corruption", "/readyz/serializable_read"} {
		if code, body, _ := get(t, base+path); code != 200 || body != "ok\n" {
			t.Errorf("GET %s: %d %q, want 200 \"ok\\n\"", path, code, body)
		}
	}
	// Verbose: one line per check (etcd lists them in map order), then ok.
	code, body, _ := get(t, base+"/readyz?verbose")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if code != 200 || len(lines) != 5 || lines[4] != "ok" {
		t.Fatalf("GET /readyz?verbose: %d %q", code, body)
	}
	checks := lines[:4]
	sort.Strings(checks)
	want := []string{"[+]data_corruption ok", "[+]linearizable_read ok", "[+]non_learner ok", "[+]serializable_read ok"}
	if strings.Join(checks, ",") != strings.Join(want, ",") {
		t.Errorf("GET /readyz?verbose: checks %q, want %q", checks, want)
	}
	if code, body, _ := get(t, base+"/readyz?verbose&exclude=linearizable_read"); code != 200 || strings.Contains(body, "linearizable") {
		t.Errorf("GET /readyz?verbose&exclude=linearizable_read: %d %q", code, body)
	}
	if code, body, _ := get(t, base+"/livez?verbose"); code != 200 || body != "[+]serializable_read ok\nok\n" {
		t.Errorf("GET /livez?verbose: %d %q", code, body)
	}
}

func TestVersion(t *testing.T) {
	code, body, ctype := get(t, clus.Members[0].ClientURL()+"/version")
	var v map[string]string
	if err := json.Unmarshal([]byte(body), &v); err != nil || code != 200 || ctype != "application/json" {
		t.Fatalf("GET /version: %d %q %q (%v)", code, ctype, body, err)
	}
	if !strings.HasPrefix(v["etcdserver"], "3.5.") || v["etcdcluster"] != "3.5.0" || len(v) != 2 {
		t.Errorf("GET /version: %v, want etcdserver 3.5.x and etcdcluster 3.5.0", v)
	}
}

func TestUnknownPathIsNotFound(t *testing.T) {
	if code, body, _ := get(t, clus.Members[0].ClientURL()+"/no/such/path"); code != 404 || body != "404 page not found\n" {
		t.Errorf("GET /no/such/path: %d %q", code, body)
	}
}

// Without a quorum a member is alive but not ready, and its /health says why; a
// serializable check still passes. Runs last in the package: it stops two members and
// brings them back.
func TestZNoQuorum(t *testing.T) {
	for _, i := range []int{1, 2} {
		cluster.NoErr(t, "kill", clus.Kill(i))
	}
	defer func() {
		for _, i := range []int{1, 2} {
			cluster.NoErr(t, "restart", clus.Restart(i))
		}
		cluster.NoErr(t, "ready again", clus.WaitReady(cluster.ReadyTimeout))
	}()
	base := clus.Members[0].ClientURL()
	// The survivor notices the lost quorum once it steps down (check-quorum) or, as a
	// follower, once its election timeout passes.
	cluster.Eventually(t, 10*time.Second, "/health reports no leader", func() error {
		code, body, _ := get(t, base+"/health")
		if code != 503 || body != `{"health":"false","reason":"RAFT NO LEADER"}`+"\n" {
			return &unexpected{code, body}
		}
		return nil
	})
	wantHealth(t, base+"/health?serializable=true", 200, health{"true", ""})
	if code, body, _ := get(t, base+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("GET /livez without quorum: %d %q", code, body)
	}
	code, body, _ := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "[-]linearizable_read failed: ") || !strings.Contains(body, "[+]serializable_read ok\n") {
		t.Errorf("GET /readyz without quorum: %d %q", code, body)
	}
}

type unexpected struct {
	code int
	body string
}

func (u *unexpected) Error() string { return fmt.Sprintf("status %d, body %q", u.code, u.body) }
