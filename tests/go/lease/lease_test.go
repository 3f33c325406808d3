// Leases through the official etcd Go client, against the cluster that TALLY_BIN or ETCD_BIN
// selects. One cluster serves the package; TestKeepAliveThroughLeaderKill starts its own.
package lease

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"tally.local/tests/go/cluster"
)

var clus *cluster.Cluster

func TestMain(m *testing.M) {
	cluster.Main(m, func(c *cluster.Cluster) { clus = c })
}

func ctx(t *testing.T) context.Context { return cluster.Ctx(t, 60*time.Second) }

func grant(t *testing.T, cli *clientv3.Client, ttl int64) clientv3.LeaseID {
	t.Helper()
	resp, err := cli.Grant(ctx(t), ttl)
	cluster.NoErr(t, "grant", err)
	if resp.ID == clientv3.NoLease || resp.TTL != ttl || resp.Error != "" {
		t.Fatalf("grant %d: id %x TTL %d error %q", ttl, resp.ID, resp.TTL, resp.Error)
	}
	return resp.ID
}

func exists(t *testing.T, cli *clientv3.Client, k string) bool {
	t.Helper()
	resp, err := cli.Get(ctx(t), k)
	cluster.NoErr(t, "get "+k, err)
	return len(resp.Kvs) == 1
}

func TestGrantTimeToLiveRevoke(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	id := grant(t, cli, 60)
	ttl, err := cli.TimeToLive(ctx(t), id)
	cluster.NoErr(t, "time to live", err)
	if ttl.ID != id || ttl.GrantedTTL != 60 || ttl.TTL < 58 || ttl.TTL > 60 || len(ttl.Keys) != 0 {
		t.Errorf("time to live: id %x TTL %d granted %d keys %q, want granted 60, remaining 58..60, no keys", ttl.ID, ttl.TTL, ttl.GrantedTTL, ttl.Keys)
	}
	for _, k := range []string{"a", "b", "c"} {
		resp, err := cli.Put(ctx(t), p+k, k, clientv3.WithLease(id))
		cluster.NoErr(t, "put with lease", err)
		_ = resp
	}
	g, err := cli.Get(ctx(t), p+"a")
	cluster.NoErr(t, "get", err)
	if g.Kvs[0].Lease != int64(id) {
		t.Errorf("key's lease %x, want %x", g.Kvs[0].Lease, id)
	}
	// Deleting a key, or putting it without the lease, detaches it.
	_, err = cli.Delete(ctx(t), p+"c")
	cluster.NoErr(t, "delete", err)
	_, err = cli.Put(ctx(t), p+"d", "d", clientv3.WithLease(id))
	cluster.NoErr(t, "put", err)
	_, err = cli.Put(ctx(t), p+"d", "d2")
	cluster.NoErr(t, "put without lease", err)
	ttl, err = cli.TimeToLive(ctx(t), id, clientv3.WithAttachedKeys())
	cluster.NoErr(t, "time to live with keys", err)
	var keys []string
	for _, k := range ttl.Keys {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	if fmt.Sprint(keys) != fmt.Sprint([]string{p + "a", p + "b"}) {
		t.Errorf("attached keys %v, want [%sa %sb]", keys, p, p)
	}
	ttl, err = cli.TimeToLive(ctx(t), id)
	cluster.NoErr(t, "time to live", err)
	if len(ttl.Keys) != 0 {
		t.Errorf("time to live without WithAttachedKeys lists keys %q", ttl.Keys)
	}

	rev, err := cli.Revoke(ctx(t), id)
	cluster.NoErr(t, "revoke", err)
	if rev.Header == nil || rev.Header.Revision <= g.Header.Revision {
		t.Errorf("revoke header %+v: want a new revision (the keys' deletion)", rev.Header)
	}
	resp, err := cli.Get(ctx(t), p, clientv3.WithPrefix())
	cluster.NoErr(t, "get", err)
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != p+"d" {
		t.Errorf("after revoke: %d keys, want only %sd (detached)", len(resp.Kvs), p)
	}
	// A revoked lease: TimeToLive answers TTL -1, the rest fail.
	ttl, err = cli.TimeToLive(ctx(t), id)
	cluster.NoErr(t, "time to live of a revoked lease", err)
	if ttl.TTL != -1 || ttl.ID != id || ttl.GrantedTTL != 0 {
		t.Errorf("time to live of a revoked lease: id %x TTL %d granted %d, want id %x TTL -1, granted 0", ttl.ID, ttl.TTL, ttl.GrantedTTL, id)
	}
	_, err = cli.Revoke(ctx(t), id)
	cluster.WantErr(t, "revoke twice", err, rpctypes.ErrLeaseNotFound)
	_, err = cli.KeepAliveOnce(ctx(t), id)
	cluster.WantErr(t, "keep alive of a revoked lease", err, rpctypes.ErrLeaseNotFound)
	_, err = cli.Put(ctx(t), p+"x", "x", clientv3.WithLease(id))
	cluster.WantErr(t, "put with a revoked lease", err, rpctypes.ErrLeaseNotFound)
	ttl, err = cli.TimeToLive(ctx(t), clientv3.LeaseID(0x1234abcd))
	cluster.NoErr(t, "time to live of an unknown lease", err)
	if ttl.TTL != -1 {
		t.Errorf("time to live of an unknown lease: TTL %d granted %d, want TTL -1", ttl.TTL, ttl.GrantedTTL)
	}
	_, err = cli.Grant(ctx(t), 9000000001)
	cluster.WantErr(t, "grant above the maximum TTL", err, rpctypes.ErrLeaseTTLTooLarge)
}

// Leases() lists the answering member's own leases (etcd does not wait for it to catch up), so
// the test talks to one member: its grants and revokes are applied there when acknowledged.
func TestLeases(t *testing.T) {
	cli := clus.Client(t, clus.Members[0].Endpoint())
	ids := []clientv3.LeaseID{grant(t, cli, 60), grant(t, cli, 120)}
	resp, err := cli.Leases(ctx(t))
	cluster.NoErr(t, "leases", err)
	have := map[clientv3.LeaseID]bool{}
	for _, l := range resp.Leases {
		have[l.ID] = true
	}
	for _, id := range ids {
		if !have[id] {
			t.Errorf("Leases() %v lacks %x", resp.Leases, id)
		}
	}
	_, err = cli.Revoke(ctx(t), ids[0])
	cluster.NoErr(t, "revoke", err)
	resp, err = cli.Leases(ctx(t))
	cluster.NoErr(t, "leases", err)
	for _, l := range resp.Leases {
		if l.ID == ids[0] {
			t.Errorf("Leases() lists revoked lease %x", ids[0])
		}
	}
}

func TestExpiry(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	id := grant(t, cli, 2)
	k := p + "k"
	put, err := cli.Put(ctx(t), k, "v", clientv3.WithLease(id))
	cluster.NoErr(t, "put", err)
	wch := cli.Watch(ctx(t), k, clientv3.WithRev(put.Header.Revision+1))
	granted := time.Now()
	cluster.Eventually(t, 10*time.Second, "the lease's key to be deleted", func() error {
		if exists(t, cli, k) {
			return fmt.Errorf("%s still exists", k)
		}
		return nil
	})
	if since := time.Since(granted); since < 1500*time.Millisecond {
		t.Errorf("a 2 s lease expired after %v", since)
	}
	select {
	case resp := <-wch:
		if len(resp.Events) != 1 || resp.Events[0].Type != clientv3.EventTypeDelete {
			t.Errorf("watch on the lease's key: %+v, want its delete", resp)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("no delete event for the expired lease's key")
	}
	ttl, err := cli.TimeToLive(ctx(t), id)
	cluster.NoErr(t, "time to live", err)
	if ttl.TTL != -1 {
		t.Errorf("time to live of an expired lease: TTL %d granted %d, want -1", ttl.TTL, ttl.GrantedTTL)
	}
}

func TestKeepAliveOnce(t *testing.T) {
	cli := clus.Client(t)
	id := grant(t, cli, 10)
	time.Sleep(1100 * time.Millisecond)
	ttl, err := cli.TimeToLive(ctx(t), id)
	cluster.NoErr(t, "time to live", err)
	if ttl.TTL > 9 {
		t.Errorf("remaining TTL after 1.1 s: %d, want <= 9", ttl.TTL)
	}
	ka, err := cli.KeepAliveOnce(ctx(t), id)
	cluster.NoErr(t, "keep alive once", err)
	if ka.ID != id || ka.TTL != 10 {
		t.Errorf("keep alive once: id %x TTL %d, want %x TTL 10", ka.ID, ka.TTL, id)
	}
	ttl, err = cli.TimeToLive(ctx(t), id)
	cluster.NoErr(t, "time to live", err)
	if ttl.TTL < 9 {
		t.Errorf("remaining TTL after keep-alive: %d, want 9..10", ttl.TTL)
	}
	cli.Revoke(ctx(t), id)
}

func TestKeepAlive(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	id := grant(t, cli, 2)
	k := p + "k"
	_, err := cli.Put(ctx(t), k, "v", clientv3.WithLease(id))
	cluster.NoErr(t, "put", err)
	kctx, stop := context.WithCancel(ctx(t))
	ch, err := cli.KeepAlive(kctx, id)
	cluster.NoErr(t, "keep alive", err)
	n := 0
	deadline := time.After(3 * time.Second)
	for done := false; !done; {
		select {
		case resp, ok := <-ch:
			if !ok {
				t.Fatalf("keep-alive channel closed after %d responses", n)
			}
			if resp.ID != id || resp.TTL != 2 {
				t.Errorf("keep-alive response id %x TTL %d, want TTL 2", resp.ID, resp.TTL)
			}
			n++
		case <-deadline:
			done = true
		}
	}
	if n < 2 {
		t.Errorf("%d keep-alive responses in 3 s for a 2 s lease, want several", n)
	}
	if !exists(t, cli, k) {
		t.Fatalf("the key of a kept-alive 2 s lease is gone after 3 s")
	}
	// Stop: the lease runs out.
	stop()
	cluster.Eventually(t, 10*time.Second, "expiry once keep-alives stop", func() error {
		if exists(t, cli, k) {
			return fmt.Errorf("%s still exists", k)
		}
		return nil
	})
	// Keep-alive of an unknown lease: the channel closes.
	ch, err = cli.KeepAlive(ctx(t), id)
	cluster.NoErr(t, "keep alive", err)
	select {
	case resp, ok := <-ch:
		if ok {
			t.Errorf("keep-alive of an expired lease: id %x TTL %d, want the channel closed", resp.ID, resp.TTL)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("keep-alive channel of an expired lease still open after 10 s")
	}
}

// A lease kept alive survives kill -9 of the leader: the client's keep-alive stream moves to
// another member, the new leader takes the lease over, and the key outlives the TTL many times.
func TestKeepAliveThroughLeaderKill(t *testing.T) {
	c := cluster.StartT(t)
	leader, err := c.Leader(ctx(t))
	cluster.NoErr(t, "find the leader", err)
	// The keep-alive stream starts on the leader; then the client learns every endpoint, as a
	// client configured with all of them would have.
	cli := c.Client(t, c.Members[leader].Endpoint())
	k := cluster.Prefix(t) + "k"
	const ttl = 5
	id := grant(t, cli, ttl)
	_, err = cli.Put(ctx(t), k, "v", clientv3.WithLease(id))
	cluster.NoErr(t, "put", err)
	ch, err := cli.KeepAlive(ctx(t), id)
	cluster.NoErr(t, "keep alive", err)
	cli.SetEndpoints(c.Endpoints()...)
	var mu sync.Mutex
	var last time.Time
	closed := make(chan struct{})
	go func() {
		for resp := range ch {
			if resp.ID == id && resp.TTL > 0 {
				mu.Lock()
				last = time.Now()
				mu.Unlock()
			}
		}
		close(closed)
	}()
	time.Sleep(time.Second)
	if now, err := c.Leader(ctx(t)); err != nil || now != leader {
		t.Fatalf("the leader moved from %d to %d (%v)", leader, now, err)
	}
	killed := time.Now()
	cluster.NoErr(t, "kill the leader", c.Kill(leader))
	t.Logf("killed the leader %s", c.Members[leader].Name)
	newLeader, err := c.Leader(ctx(t))
	cluster.NoErr(t, "a new leader", err)
	t.Logf("new leader %s after %v", c.Members[newLeader].Name, time.Since(killed).Round(time.Millisecond))

	// Past the TTL (a new leader gives every lease its full TTL plus an election timeout, so
	// without keep-alives the lease would be gone by now): the key is there, the lease alive,
	// keep-alives still answered.
	time.Sleep(ttl*time.Second*3/2 - time.Since(killed))
	select {
	case <-closed:
		t.Fatalf("the keep-alive channel closed")
	default:
	}
	mu.Lock()
	lastOK := last
	mu.Unlock()
	if lastOK.Before(killed) || time.Since(lastOK) > ttl*time.Second {
		t.Errorf("last keep-alive response %v ago (the kill was %v ago)", time.Since(lastOK).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	}
	if !exists(t, cli, k) {
		t.Fatalf("the key of the kept-alive lease is gone %v after the leader kill", time.Since(killed).Round(time.Millisecond))
	}
	left, err := cli.TimeToLive(ctx(t), id)
	cluster.NoErr(t, "time to live", err)
	if left.TTL <= 0 || left.GrantedTTL != ttl {
		t.Errorf("time to live after the kill: TTL %d granted %d", left.TTL, left.GrantedTTL)
	}

	// The killed member comes back and has the key too.
	cluster.NoErr(t, "restart", c.Restart(leader))
	back := c.Client(t, c.Members[leader].Endpoint())
	cluster.Eventually(t, 10*time.Second, "the restarted member to have the key", func() error {
		resp, err := back.Get(ctx(t), k, clientv3.WithSerializable())
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(id) {
			return fmt.Errorf("got %+v", resp.Kvs)
		}
		return nil
	})
}
