package recipes

import (
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.etcd.io/etcd/client/v3/ordering"

	"tally.local/tests/go/cluster"
)

func keys(kvs []*mvccpb.KeyValue) string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Key))
	}
	return fmt.Sprint(out)
}

func TestNamespaceKV(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	ns := p + "ns/"
	kv := namespace.NewKV(cli.KV, ns)
	put, err := kv.Put(ctx(t), "a", "1")
	cluster.NoErr(t, "put", err)
	_, err = kv.Put(ctx(t), "b", "2")
	cluster.NoErr(t, "put", err)
	_, err = cli.Put(ctx(t), p+"outside", "x")
	cluster.NoErr(t, "put", err)

	raw, err := cli.Get(ctx(t), ns+"a")
	cluster.NoErr(t, "raw get", err)
	if len(raw.Kvs) != 1 || string(raw.Kvs[0].Value) != "1" || raw.Kvs[0].ModRevision != put.Header.Revision {
		t.Errorf("raw key %sa: %+v", ns, raw.Kvs)
	}
	g, err := kv.Get(ctx(t), "a")
	cluster.NoErr(t, "get", err)
	if keys(g.Kvs) != "[a]" || string(g.Kvs[0].Value) != "1" {
		t.Errorf("namespaced get: %+v", g.Kvs)
	}
	// The empty key with a prefix, and from-key, stay inside the namespace.
	g, err = kv.Get(ctx(t), "", clientv3.WithPrefix())
	cluster.NoErr(t, "get prefix", err)
	if keys(g.Kvs) != "[a b]" || g.Count != 2 {
		t.Errorf("namespaced prefix get: %s count %d, want [a b]", keys(g.Kvs), g.Count)
	}
	g, err = kv.Get(ctx(t), "b", clientv3.WithFromKey())
	cluster.NoErr(t, "get from key", err)
	if keys(g.Kvs) != "[b]" {
		t.Errorf("namespaced from-key get: %s, want [b]", keys(g.Kvs))
	}
	// prev_kv comes back without the prefix.
	pr, err := kv.Put(ctx(t), "a", "1b", clientv3.WithPrevKV())
	cluster.NoErr(t, "put", err)
	if pr.PrevKv == nil || string(pr.PrevKv.Key) != "a" {
		t.Errorf("namespaced prev kv: %+v", pr.PrevKv)
	}
	// Txn: compares and ops in the namespace.
	tx, err := kv.Txn(ctx(t)).If(clientv3.Compare(clientv3.Value("a"), "=", "1b")).
		Then(clientv3.OpPut("c", "3"), clientv3.OpGet("", clientv3.WithPrefix())).Commit()
	cluster.NoErr(t, "txn", err)
	if !tx.Succeeded || keys(tx.Responses[1].GetResponseRange().Kvs) != "[a b c]" {
		t.Errorf("namespaced txn: %+v", tx)
	}
	d, err := kv.Delete(ctx(t), "", clientv3.WithPrefix(), clientv3.WithPrevKV())
	cluster.NoErr(t, "delete", err)
	if d.Deleted != 3 || keys(d.PrevKvs) != "[a b c]" {
		t.Errorf("namespaced delete: %d %s", d.Deleted, keys(d.PrevKvs))
	}
	g, err = cli.Get(ctx(t), p, clientv3.WithPrefix())
	cluster.NoErr(t, "raw get", err)
	if keys(g.Kvs) != fmt.Sprintf("[%soutside]", p) {
		t.Errorf("after the namespaced delete: %s", keys(g.Kvs))
	}
}

func TestNamespaceWatcherAndLease(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	ns := p + "ns/"
	kv, w, l := namespace.NewKV(cli.KV, ns), namespace.NewWatcher(cli.Watcher, ns), namespace.NewLease(cli.Lease, ns)
	defer w.Close()
	wch := w.Watch(ctx(t), "", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	if resp := <-wch; !resp.Created {
		t.Fatalf("first response %+v, want created", resp)
	}
	one := w.Watch(ctx(t), "k", clientv3.WithCreatedNotify())
	<-one
	_, err := cli.Put(ctx(t), p+"outside", "x")
	cluster.NoErr(t, "put", err)
	lease, err := l.Grant(ctx(t), 60)
	cluster.NoErr(t, "grant", err)
	_, err = kv.Put(ctx(t), "k", "v1", clientv3.WithLease(lease.ID))
	cluster.NoErr(t, "put", err)
	_, err = kv.Put(ctx(t), "k", "v2", clientv3.WithLease(lease.ID))
	cluster.NoErr(t, "put", err)
	_, err = kv.Put(ctx(t), "j", "w", clientv3.WithLease(lease.ID))
	cluster.NoErr(t, "put", err)

	var got []string
	for len(got) < 3 {
		select {
		case resp := <-wch:
			for _, ev := range resp.Events {
				s := fmt.Sprintf("%s %s=%s", ev.Type, ev.Kv.Key, ev.Kv.Value)
				if ev.PrevKv != nil {
					s += fmt.Sprintf(" prev %s=%s", ev.PrevKv.Key, ev.PrevKv.Value)
				}
				got = append(got, s)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("namespaced watch: %v after 10 s", got)
		}
	}
	if want := "[PUT k=v1 PUT k=v2 prev k=v1 PUT j=w]"; fmt.Sprint(got) != want {
		t.Errorf("namespaced prefix watch: %v, want %s", got, want)
	}
	select {
	case resp := <-one:
		if len(resp.Events) != 1 || string(resp.Events[0].Kv.Key) != "k" {
			t.Errorf("namespaced key watch: %+v", resp)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("namespaced key watch: nothing in 10 s")
	}

	ttl, err := l.TimeToLive(ctx(t), lease.ID, clientv3.WithAttachedKeys())
	cluster.NoErr(t, "time to live", err)
	var ks []string
	for _, k := range ttl.Keys {
		ks = append(ks, string(k))
	}
	sort.Strings(ks)
	if fmt.Sprint(ks) != "[j k]" {
		t.Errorf("namespaced lease keys: %v, want [j k]", ks)
	}
	_, err = l.Revoke(ctx(t), lease.ID)
	cluster.NoErr(t, "revoke", err)
	g, err := kv.Get(ctx(t), "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cluster.NoErr(t, "get", err)
	if g.Count != 0 {
		t.Errorf("%d keys left in the namespace after revoking their lease", g.Count)
	}
}

// The ordering wrapper: Gets through it never return a revision lower than one it returned
// before. Serializable gets, spread over the members by the client's round-robin, may hit a
// member that lags; the wrapper retries those (NewOrderViolationSwitchEndpointClosure).
func TestOrderingKV(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	var violations int32
	switchEndpoint := ordering.NewOrderViolationSwitchEndpointClosure(cli)
	kv := ordering.NewKV(cli.KV, func(op clientv3.Op, resp clientv3.OpResponse, prevRev int64) error {
		atomic.AddInt32(&violations, 1)
		return switchEndpoint(op, resp, prevRev)
	})
	var last int64
	for i := 0; i < 100; i++ {
		_, err := kv.Put(ctx(t), fmt.Sprintf("%sk%d", p, i%5), fmt.Sprint(i))
		cluster.NoErr(t, "put", err)
		g, err := kv.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithSerializable())
		cluster.NoErr(t, "ordered serializable get", err)
		if g.Header.Revision < last {
			t.Fatalf("ordered get %d: revision %d after %d", i, g.Header.Revision, last)
		}
		last = g.Header.Revision
	}
	t.Logf("%d order violations retried", atomic.LoadInt32(&violations))

	// Linearizable gets and txns never go back: the violation function is not called.
	strict := ordering.NewKV(cli.KV, func(op clientv3.Op, resp clientv3.OpResponse, prevRev int64) error {
		return fmt.Errorf("order violation: revision %d after %d", resp.Get().Header.Revision, prevRev)
	})
	for i := 0; i < 50; i++ {
		put, err := cli.Put(ctx(t), p+"k", fmt.Sprint(i))
		cluster.NoErr(t, "put", err)
		g, err := strict.Get(ctx(t), p+"k")
		cluster.NoErr(t, "ordered get", err)
		if g.Header.Revision < put.Header.Revision || string(g.Kvs[0].Value) != fmt.Sprint(i) {
			t.Fatalf("linearizable get after a put at %d: %+v", put.Header.Revision, g)
		}
		tx, err := strict.Txn(ctx(t)).If(clientv3.Compare(clientv3.Value(p+"k"), "=", fmt.Sprint(i))).
			Then(clientv3.OpGet(p + "k")).Commit()
		cluster.NoErr(t, "ordered txn", err)
		if !tx.Succeeded || tx.Header.Revision < put.Header.Revision {
			t.Fatalf("ordered txn after a put at %d: %+v", put.Header.Revision, tx)
		}
	}
}
