package kv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"tally.local/tests/go/cluster"
)

func ctx(t *testing.T) context.Context { return cluster.Ctx(t, 20*time.Second) }

func keysOf(kvs []*mvccpb.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

func valuesOf(kvs []*mvccpb.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Value))
	}
	return out
}

func eq(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func put(t *testing.T, cli *clientv3.Client, k, v string, opts ...clientv3.OpOption) int64 {
	t.Helper()
	resp, err := cli.Put(ctx(t), k, v, opts...)
	cluster.NoErr(t, "put "+k, err)
	return resp.Header.Revision
}

func TestPutGetDelete(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "k"
	r1 := put(t, cli, k, "v1")
	if r1 <= 1 {
		t.Errorf("put revision %d, want > 1", r1)
	}
	resp, err := cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	if len(resp.Kvs) != 1 || resp.Count != 1 || resp.More {
		t.Fatalf("get: kvs %v count %d more %v, want one kv, count 1", keysOf(resp.Kvs), resp.Count, resp.More)
	}
	kv := resp.Kvs[0]
	if string(kv.Key) != k || string(kv.Value) != "v1" || kv.CreateRevision != r1 || kv.ModRevision != r1 || kv.Version != 1 || kv.Lease != 0 {
		t.Errorf("get: %+v, want key %s value v1 create=mod=%d version 1 lease 0", kv, k, r1)
	}
	if resp.Header.Revision < r1 {
		t.Errorf("get header revision %d < put revision %d", resp.Header.Revision, r1)
	}

	r2 := put(t, cli, k, "v2")
	if r2 <= r1 {
		t.Errorf("second put revision %d, want > %d", r2, r1)
	}
	resp, err = cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	kv = resp.Kvs[0]
	if string(kv.Value) != "v2" || kv.CreateRevision != r1 || kv.ModRevision != r2 || kv.Version != 2 {
		t.Errorf("get after update: %+v, want value v2 create %d mod %d version 2", kv, r1, r2)
	}

	del, err := cli.Delete(ctx(t), k)
	cluster.NoErr(t, "delete", err)
	if del.Deleted != 1 || del.Header.Revision != r2+1 {
		t.Errorf("delete: deleted %d at revision %d, want 1 at %d", del.Deleted, del.Header.Revision, r2+1)
	}
	resp, err = cli.Get(ctx(t), k)
	cluster.NoErr(t, "get after delete", err)
	if len(resp.Kvs) != 0 || resp.Count != 0 {
		t.Errorf("get after delete: %v count %d, want nothing", keysOf(resp.Kvs), resp.Count)
	}
	// Deleting a missing key is no error and does not advance the revision.
	before := del.Header.Revision
	del, err = cli.Delete(ctx(t), k)
	cluster.NoErr(t, "delete missing", err)
	if del.Deleted != 0 {
		t.Errorf("delete missing: deleted %d, want 0", del.Deleted)
	}
	if del.Header.Revision != before {
		t.Errorf("delete missing: header revision %d, want unchanged %d", del.Header.Revision, before)
	}
	// Recreating the key starts a new generation: version 1, new create revision.
	r3 := put(t, cli, k, "v3")
	resp, err = cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	kv = resp.Kvs[0]
	if kv.CreateRevision != r3 || kv.ModRevision != r3 || kv.Version != 1 {
		t.Errorf("recreated key: %+v, want create=mod=%d version 1", kv, r3)
	}
	// The empty key is refused.
	_, err = cli.Put(ctx(t), "", "x")
	cluster.WantErr(t, "put of the empty key", err, rpctypes.ErrEmptyKey)
}

func TestPrefixAndRange(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	for _, k := range []string{"a/1", "a/2", "a/3", "ab", "b"} {
		put(t, cli, p+k, "v-"+k)
	}
	resp, err := cli.Get(ctx(t), p+"a/", clientv3.WithPrefix())
	cluster.NoErr(t, "get prefix", err)
	if want := []string{p + "a/1", p + "a/2", p + "a/3"}; !eq(keysOf(resp.Kvs), want) || resp.Count != 3 {
		t.Errorf("get prefix a/: %v count %d, want %v", keysOf(resp.Kvs), resp.Count, want)
	}
	resp, err = cli.Get(ctx(t), p+"a", clientv3.WithPrefix())
	cluster.NoErr(t, "get prefix", err)
	if want := []string{p + "a/1", p + "a/2", p + "a/3", p + "ab"}; !eq(keysOf(resp.Kvs), want) {
		t.Errorf("get prefix a: %v, want %v", keysOf(resp.Kvs), want)
	}
	// [a/2, b): a/2, a/3, ab.
	resp, err = cli.Get(ctx(t), p+"a/2", clientv3.WithRange(p+"b"))
	cluster.NoErr(t, "get range", err)
	if want := []string{p + "a/2", p + "a/3", p + "ab"}; !eq(keysOf(resp.Kvs), want) || resp.Count != 3 {
		t.Errorf("get [a/2, b): %v count %d, want %v", keysOf(resp.Kvs), resp.Count, want)
	}
	// An empty interval (end <= key) returns nothing.
	resp, err = cli.Get(ctx(t), p+"b", clientv3.WithRange(p+"a"))
	cluster.NoErr(t, "get empty range", err)
	if len(resp.Kvs) != 0 || resp.Count != 0 {
		t.Errorf("get [b, a): %v count %d, want nothing", keysOf(resp.Kvs), resp.Count)
	}
	del, err := cli.Delete(ctx(t), p+"a/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	cluster.NoErr(t, "delete prefix", err)
	if del.Deleted != 3 || !eq(keysOf(del.PrevKvs), []string{p + "a/1", p + "a/2", p + "a/3"}) ||
		!eq(valuesOf(del.PrevKvs), []string{"v-a/1", "v-a/2", "v-a/3"}) {
		t.Errorf("delete prefix a/: deleted %d prev %v %v, want 3 with values", del.Deleted, keysOf(del.PrevKvs), valuesOf(del.PrevKvs))
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix())
	cluster.NoErr(t, "get prefix", err)
	if want := []string{p + "ab", p + "b"}; !eq(keysOf(resp.Kvs), want) {
		t.Errorf("after delete: %v, want %v", keysOf(resp.Kvs), want)
	}
}

// From-key ranges reach the end of the key space, so this test keeps its keys above every
// other test's ("~" sorts after "/").
func TestFromKey(t *testing.T) {
	cli := client(t)
	p := "~" + t.Name() + "/"
	for _, k := range []string{"a", "b", "c"} {
		put(t, cli, p+k, k)
	}
	resp, err := cli.Get(ctx(t), p+"b", clientv3.WithFromKey())
	cluster.NoErr(t, "get from key", err)
	if want := []string{p + "b", p + "c"}; !eq(keysOf(resp.Kvs), want) || resp.Count != 2 {
		t.Errorf("get from %sb: %v count %d, want %v", p, keysOf(resp.Kvs), resp.Count, want)
	}
	// From-key with the key "\x00" is the whole key space.
	resp, err = cli.Get(ctx(t), "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())
	cluster.NoErr(t, "count everything", err)
	if resp.Count < 3 {
		t.Errorf("count of the whole key space: %d, want >= 3", resp.Count)
	}
	del, err := cli.Delete(ctx(t), p+"b", clientv3.WithFromKey())
	cluster.NoErr(t, "delete from key", err)
	if del.Deleted != 2 {
		t.Errorf("delete from %sb: deleted %d, want 2", p, del.Deleted)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix())
	cluster.NoErr(t, "get", err)
	if want := []string{p + "a"}; !eq(keysOf(resp.Kvs), want) {
		t.Errorf("after delete from key: %v, want %v", keysOf(resp.Kvs), want)
	}
}

func TestLimitCountKeysOnly(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	for i := 0; i < 5; i++ {
		put(t, cli, fmt.Sprintf("%sk%d", p, i), fmt.Sprintf("value-%d", i))
	}
	resp, err := cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithLimit(2))
	cluster.NoErr(t, "get limit 2", err)
	// count is the number of keys in the range, whatever the limit.
	if want := []string{p + "k0", p + "k1"}; !eq(keysOf(resp.Kvs), want) || resp.Count != 5 || !resp.More {
		t.Errorf("limit 2: %v count %d more %v, want %v count 5 more true", keysOf(resp.Kvs), resp.Count, resp.More, want)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithLimit(5))
	cluster.NoErr(t, "get limit 5", err)
	if len(resp.Kvs) != 5 || resp.Count != 5 || resp.More {
		t.Errorf("limit 5: %d kvs count %d more %v, want 5, 5, false", len(resp.Kvs), resp.Count, resp.More)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithLimit(10))
	cluster.NoErr(t, "get limit 10", err)
	if len(resp.Kvs) != 5 || resp.Count != 5 || resp.More {
		t.Errorf("limit 10: %d kvs count %d more %v, want 5, 5, false", len(resp.Kvs), resp.Count, resp.More)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithCountOnly())
	cluster.NoErr(t, "count only", err)
	if len(resp.Kvs) != 0 || resp.Count != 5 {
		t.Errorf("count only: %d kvs count %d, want 0 kvs count 5", len(resp.Kvs), resp.Count)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithLimit(1))
	cluster.NoErr(t, "count only, limit 1", err)
	if len(resp.Kvs) != 0 || resp.Count != 5 {
		t.Errorf("count only + limit 1: %d kvs count %d, want 0 kvs count 5", len(resp.Kvs), resp.Count)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cluster.NoErr(t, "keys only", err)
	if len(resp.Kvs) != 5 || resp.Count != 5 {
		t.Fatalf("keys only: %d kvs count %d, want 5", len(resp.Kvs), resp.Count)
	}
	for _, kv := range resp.Kvs {
		if len(kv.Value) != 0 || kv.Version != 1 || kv.ModRevision == 0 || kv.CreateRevision == 0 {
			t.Errorf("keys only: %+v, want no value, but version and revisions", kv)
		}
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(3))
	cluster.NoErr(t, "keys only, limit 3", err)
	if len(resp.Kvs) != 3 || resp.Count != 5 || !resp.More {
		t.Errorf("keys only + limit 3: %d kvs count %d more %v, want 3, 5, true", len(resp.Kvs), resp.Count, resp.More)
	}
}

func TestSort(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	// Created in the order c, a, b; values in the reverse order of keys; b updated twice.
	put(t, cli, p+"c", "1")
	put(t, cli, p+"a", "3")
	put(t, cli, p+"b", "2")
	put(t, cli, p+"b", "2")
	put(t, cli, p+"b", "2")
	put(t, cli, p+"c", "1")
	cases := []struct {
		target clientv3.SortTarget
		order  clientv3.SortOrder
		want   []string
	}{
		{clientv3.SortByKey, clientv3.SortAscend, []string{"a", "b", "c"}},
		{clientv3.SortByKey, clientv3.SortDescend, []string{"c", "b", "a"}},
		{clientv3.SortByCreateRevision, clientv3.SortAscend, []string{"c", "a", "b"}},
		{clientv3.SortByCreateRevision, clientv3.SortDescend, []string{"b", "a", "c"}},
		{clientv3.SortByModRevision, clientv3.SortAscend, []string{"a", "b", "c"}},
		{clientv3.SortByModRevision, clientv3.SortDescend, []string{"c", "b", "a"}},
		{clientv3.SortByValue, clientv3.SortAscend, []string{"c", "b", "a"}},
		{clientv3.SortByValue, clientv3.SortDescend, []string{"a", "b", "c"}},
		{clientv3.SortByVersion, clientv3.SortDescend, []string{"b", "c", "a"}},
		{clientv3.SortByVersion, clientv3.SortAscend, []string{"a", "c", "b"}},
	}
	for _, c := range cases {
		var want []string
		for _, k := range c.want {
			want = append(want, p+k)
		}
		resp, err := cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithSort(c.target, c.order))
		cluster.NoErr(t, "sorted get", err)
		if !eq(keysOf(resp.Kvs), want) {
			t.Errorf("sort by %v %v: %v, want %v", c.target, c.order, keysOf(resp.Kvs), want)
		}
		// With a limit, the server sorts the whole range first, then truncates.
		resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithSort(c.target, c.order), clientv3.WithLimit(1))
		cluster.NoErr(t, "sorted get, limit 1", err)
		if !eq(keysOf(resp.Kvs), want[:1]) || resp.Count != 3 || !resp.More {
			t.Errorf("sort by %v %v limit 1: %v count %d more %v, want %v count 3 more true", c.target, c.order, keysOf(resp.Kvs), resp.Count, resp.More, want[:1])
		}
	}
	// The client's shorthands for sort + limit 1.
	tops := []struct {
		name string
		opts []clientv3.OpOption
		want string
	}{
		{"FirstKey", clientv3.WithFirstKey(), "a"},
		{"LastKey", clientv3.WithLastKey(), "c"},
		{"FirstCreate", clientv3.WithFirstCreate(), "c"},
		{"LastCreate", clientv3.WithLastCreate(), "b"},
		{"FirstRev", clientv3.WithFirstRev(), "a"},
		{"LastRev", clientv3.WithLastRev(), "c"},
	}
	for _, top := range tops {
		resp, err := cli.Get(ctx(t), p, top.opts...)
		cluster.NoErr(t, top.name, err)
		if !eq(keysOf(resp.Kvs), []string{p + top.want}) {
			t.Errorf("With%s: %v, want %s", top.name, keysOf(resp.Kvs), p+top.want)
		}
	}
}

func TestRevisionsAndHistoricReads(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "k"
	r1 := put(t, cli, k, "v1")
	r2 := put(t, cli, k, "v2")
	rOther := put(t, cli, p+"other", "o")
	r3 := put(t, cli, k, "v3")
	if !(r1 < r2 && r2 < rOther && rOther < r3) || r2 != r1+1 || r3 != rOther+1 {
		t.Errorf("revisions %d %d %d %d: want consecutive", r1, r2, rOther, r3)
	}
	del, err := cli.Delete(ctx(t), k)
	cluster.NoErr(t, "delete", err)
	rDel := del.Header.Revision
	if rDel != r3+1 {
		t.Errorf("delete revision %d, want %d", rDel, r3+1)
	}
	for _, c := range []struct {
		rev     int64
		value   string
		version int64
	}{{r1 - 1, "", 0}, {r1, "v1", 1}, {r2, "v2", 2}, {rOther, "v2", 2}, {r3, "v3", 3}, {rDel, "", 0}} {
		resp, err := cli.Get(ctx(t), k, clientv3.WithRev(c.rev))
		cluster.NoErr(t, fmt.Sprintf("get at %d", c.rev), err)
		if c.value == "" {
			if len(resp.Kvs) != 0 {
				t.Errorf("get at %d: %+v, want nothing", c.rev, resp.Kvs)
			}
			continue
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != c.value || resp.Kvs[0].Version != c.version || resp.Kvs[0].CreateRevision != r1 {
			t.Errorf("get at %d: %+v, want value %s version %d create %d", c.rev, resp.Kvs, c.value, c.version, r1)
		}
		// The header carries the current revision, not the one read.
		if resp.Header.Revision < rDel {
			t.Errorf("get at %d: header revision %d, want the current (>= %d)", c.rev, resp.Header.Revision, rDel)
		}
	}
	// A historic prefix read sees both keys as they were.
	resp, err := cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithRev(r3))
	cluster.NoErr(t, "prefix get at r3", err)
	if !eq(keysOf(resp.Kvs), []string{p + "k", p + "other"}) || !eq(valuesOf(resp.Kvs), []string{"v3", "o"}) {
		t.Errorf("prefix get at %d: %v %v", r3, keysOf(resp.Kvs), valuesOf(resp.Kvs))
	}
	// Revision filters.
	put(t, cli, k, "v4")
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithMinModRev(r3+1))
	cluster.NoErr(t, "min mod rev", err)
	if !eq(keysOf(resp.Kvs), []string{k}) {
		t.Errorf("min mod rev %d: %v, want [%s]", r3+1, keysOf(resp.Kvs), k)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithMaxModRev(r3))
	cluster.NoErr(t, "max mod rev", err)
	if !eq(keysOf(resp.Kvs), []string{p + "other"}) {
		t.Errorf("max mod rev %d: %v, want [%sother]", r3, keysOf(resp.Kvs), p)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithMinCreateRev(rDel))
	cluster.NoErr(t, "min create rev", err)
	if !eq(keysOf(resp.Kvs), []string{k}) {
		t.Errorf("min create rev %d: %v, want [%s]", rDel, keysOf(resp.Kvs), k)
	}
	resp, err = cli.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithMaxCreateRev(rOther))
	cluster.NoErr(t, "max create rev", err)
	if !eq(keysOf(resp.Kvs), []string{p + "other"}) {
		t.Errorf("max create rev %d: %v, want [%sother]", rOther, keysOf(resp.Kvs), p)
	}
	// A future revision is an error.
	_, err = cli.Get(ctx(t), k, clientv3.WithRev(resp.Header.Revision+1000))
	cluster.WantErr(t, "get at a future revision", err, rpctypes.ErrFutureRev)
}

func TestPrevKV(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "k"
	resp, err := cli.Put(ctx(t), k, "v1", clientv3.WithPrevKV())
	cluster.NoErr(t, "put", err)
	if resp.PrevKv != nil {
		t.Errorf("first put: prev kv %+v, want none", resp.PrevKv)
	}
	r1 := resp.Header.Revision
	resp, err = cli.Put(ctx(t), k, "v2", clientv3.WithPrevKV())
	cluster.NoErr(t, "put", err)
	if resp.PrevKv == nil || string(resp.PrevKv.Value) != "v1" || resp.PrevKv.ModRevision != r1 || resp.PrevKv.Version != 1 {
		t.Errorf("second put: prev kv %+v, want v1 at %d version 1", resp.PrevKv, r1)
	}
	resp, err = cli.Put(ctx(t), k, "v3")
	cluster.NoErr(t, "put", err)
	if resp.PrevKv != nil {
		t.Errorf("put without prev_kv: prev kv %+v, want none", resp.PrevKv)
	}
	del, err := cli.Delete(ctx(t), k, clientv3.WithPrevKV())
	cluster.NoErr(t, "delete", err)
	if del.Deleted != 1 || len(del.PrevKvs) != 1 || string(del.PrevKvs[0].Value) != "v3" || del.PrevKvs[0].Version != 3 {
		t.Errorf("delete: deleted %d prev %+v, want v3 version 3", del.Deleted, del.PrevKvs)
	}
	del, err = cli.Delete(ctx(t), k, clientv3.WithPrevKV())
	cluster.NoErr(t, "delete", err)
	if del.Deleted != 0 || len(del.PrevKvs) != 0 {
		t.Errorf("delete missing: deleted %d prev %+v, want nothing", del.Deleted, del.PrevKvs)
	}
}

func TestIgnoreValueAndLease(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "k"
	lease, err := cli.Grant(ctx(t), 600)
	cluster.NoErr(t, "grant", err)
	defer cli.Revoke(context.Background(), lease.ID)
	put(t, cli, k, "v1", clientv3.WithLease(lease.ID))

	// ignore_value: the value stays, the lease is the one given (none here: detached).
	resp, err := cli.Put(ctx(t), k, "", clientv3.WithIgnoreValue(), clientv3.WithPrevKV())
	cluster.NoErr(t, "put ignore value", err)
	if resp.PrevKv == nil || string(resp.PrevKv.Value) != "v1" || resp.PrevKv.Lease != int64(lease.ID) {
		t.Errorf("put ignore value: prev %+v", resp.PrevKv)
	}
	g, err := cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	if string(g.Kvs[0].Value) != "v1" || g.Kvs[0].Lease != 0 || g.Kvs[0].Version != 2 {
		t.Errorf("after ignore value: %+v, want value v1, no lease, version 2", g.Kvs[0])
	}
	// ignore_lease: the lease stays, the value is the new one.
	put(t, cli, k, "v1", clientv3.WithLease(lease.ID))
	put(t, cli, k, "v2", clientv3.WithIgnoreLease())
	g, err = cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	if string(g.Kvs[0].Value) != "v2" || g.Kvs[0].Lease != int64(lease.ID) {
		t.Errorf("after ignore lease: %+v, want value v2 lease %x", g.Kvs[0], lease.ID)
	}
	// Both at once: only the revision and version move.
	put(t, cli, k, "", clientv3.WithIgnoreValue(), clientv3.WithIgnoreLease())
	g, err = cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	if string(g.Kvs[0].Value) != "v2" || g.Kvs[0].Lease != int64(lease.ID) || g.Kvs[0].Version != 5 {
		t.Errorf("after ignore both: %+v, want value v2 lease %x version 5", g.Kvs[0], lease.ID)
	}
	// Errors: a value given with ignore_value, a lease given with ignore_lease, a missing key.
	_, err = cli.Put(ctx(t), k, "x", clientv3.WithIgnoreValue())
	cluster.WantErr(t, "put a value with ignore_value", err, rpctypes.ErrValueProvided)
	_, err = cli.Put(ctx(t), k, "x", clientv3.WithIgnoreLease(), clientv3.WithLease(lease.ID))
	cluster.WantErr(t, "put a lease with ignore_lease", err, rpctypes.ErrLeaseProvided)
	_, err = cli.Put(ctx(t), p+"missing", "", clientv3.WithIgnoreValue())
	cluster.WantErr(t, "ignore_value on a missing key", err, rpctypes.ErrKeyNotFound)
	_, err = cli.Put(ctx(t), p+"missing", "x", clientv3.WithIgnoreLease())
	cluster.WantErr(t, "ignore_lease on a missing key", err, rpctypes.ErrKeyNotFound)
	// A put with an unknown lease.
	_, err = cli.Put(ctx(t), p+"x", "x", clientv3.WithLease(clientv3.LeaseID(0x7ead0000beef)))
	cluster.WantErr(t, "put with an unknown lease", err, rpctypes.ErrLeaseNotFound)
}

func TestSerializableGet(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "k"
	rev := put(t, cli, k, "v")
	for _, m := range clus.Members {
		one := clus.Client(t, m.Endpoint())
		// A serializable read is local: a member may not have applied the put yet, but does
		// within moments.
		cluster.Eventually(t, 5*time.Second, "serializable read on "+m.Name, func() error {
			resp, err := one.Get(ctx(t), k, clientv3.WithSerializable())
			if err != nil {
				return err
			}
			if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" || resp.Kvs[0].ModRevision != rev {
				return fmt.Errorf("got %+v", resp.Kvs)
			}
			if resp.Header.Revision < rev {
				return fmt.Errorf("header revision %d < %d", resp.Header.Revision, rev)
			}
			return nil
		})
		// A linearizable read on any member sees the latest write.
		resp, err := one.Get(ctx(t), k)
		cluster.NoErr(t, "linearizable get on "+m.Name, err)
		if len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != rev {
			t.Errorf("linearizable get on %s: %+v", m.Name, resp.Kvs)
		}
		resp, err = one.Get(ctx(t), p, clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
		cluster.NoErr(t, "serializable count", err)
		if resp.Count != 1 {
			t.Errorf("serializable count on %s: %d", m.Name, resp.Count)
		}
	}
}

func TestCompaction(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "k"
	r1 := put(t, cli, k, "v1")
	r2 := put(t, cli, k, "v2")
	r3 := put(t, cli, k, "v3")
	r4 := put(t, cli, k, "v4")

	_, err := cli.Compact(ctx(t), r2)
	cluster.NoErr(t, "compact", err)
	_, err = cli.Get(ctx(t), k, clientv3.WithRev(r1))
	cluster.WantErr(t, "get below the compacted revision", err, rpctypes.ErrCompacted)
	// The compacted revision itself still reads.
	resp, err := cli.Get(ctx(t), k, clientv3.WithRev(r2))
	cluster.NoErr(t, "get at the compacted revision", err)
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v2" {
		t.Errorf("get at compacted revision %d: %+v, want v2", r2, resp.Kvs)
	}
	// Compacting at or below the compacted revision, or beyond the current one, fails.
	_, err = cli.Compact(ctx(t), r2)
	cluster.WantErr(t, "compact at the compacted revision", err, rpctypes.ErrCompacted)
	_, err = cli.Compact(ctx(t), r1)
	cluster.WantErr(t, "compact below the compacted revision", err, rpctypes.ErrCompacted)
	_, err = cli.Compact(ctx(t), r4+1000)
	cluster.WantErr(t, "compact at a future revision", err, rpctypes.ErrFutureRev)

	// A physical compaction returns once the compaction is done.
	_, err = cli.Compact(ctx(t), r3, clientv3.WithCompactPhysical())
	cluster.NoErr(t, "physical compact", err)
	_, err = cli.Get(ctx(t), k, clientv3.WithRev(r2))
	cluster.WantErr(t, "get below the new compacted revision", err, rpctypes.ErrCompacted)
	resp, err = cli.Get(ctx(t), k, clientv3.WithRev(r3))
	cluster.NoErr(t, "get at the new compacted revision", err)
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v3" || resp.Kvs[0].Version != 3 || resp.Kvs[0].CreateRevision != r1 {
		t.Errorf("get at %d: %+v, want v3 version 3 create %d", r3, resp.Kvs, r1)
	}
	// Current reads keep the key's whole metadata.
	resp, err = cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	if resp.Kvs[0].Version != 4 || resp.Kvs[0].CreateRevision != r1 || resp.Kvs[0].ModRevision != r4 {
		t.Errorf("current after compaction: %+v", resp.Kvs[0])
	}
	// A compacted revision is an error in a txn's range too.
	_, err = cli.Txn(ctx(t)).Then(clientv3.OpGet(k, clientv3.WithRev(r1))).Commit()
	cluster.WantErr(t, "txn range below the compacted revision", err, rpctypes.ErrCompacted)
	// Every member compacted: a serializable read below it fails on each.
	for _, m := range clus.Members {
		one := clus.Client(t, m.Endpoint())
		cluster.Eventually(t, 5*time.Second, "compaction on "+m.Name, func() error {
			_, err := one.Get(ctx(t), k, clientv3.WithRev(r2), clientv3.WithSerializable())
			if err == nil {
				return fmt.Errorf("read at %d succeeded", r2)
			}
			if !errors.Is(err, rpctypes.ErrCompacted) {
				t.Errorf("serializable read below compaction on %s: %s", m.Name, cluster.Describe(err))
			}
			return nil
		})
	}
}
