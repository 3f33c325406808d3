package kv

import (
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"tally.local/tests/go/cluster"
)

// txnCase runs If(cmp).Then(a linearizable get) and checks which branch ran. (A txn of compares
// alone counts as serializable in etcd — every one of its zero ranges is — and is answered from
// the local member's state, which may lag a write just acknowledged by another member.)
func txnCase(t *testing.T, cli *clientv3.Client, name string, cmp clientv3.Cmp, want bool) {
	t.Helper()
	resp, err := cli.Txn(ctx(t)).If(cmp).Then(clientv3.OpGet("/no-such-key")).Commit()
	cluster.NoErr(t, "txn "+name, err)
	if resp.Succeeded != want {
		t.Errorf("compare %s: succeeded %v, want %v", name, resp.Succeeded, want)
	}
}

func TestTxnCompares(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k, missing := p+"k", p+"missing"
	lease, err := cli.Grant(ctx(t), 600)
	cluster.NoErr(t, "grant", err)
	defer cli.Revoke(ctx(t), lease.ID)
	r1 := put(t, cli, k, "b")
	r2 := put(t, cli, k, "b", clientv3.WithLease(lease.ID))

	cases := []struct {
		name string
		cmp  clientv3.Cmp
		want bool
	}{
		{"value = b", clientv3.Compare(clientv3.Value(k), "=", "b"), true},
		{"value = a", clientv3.Compare(clientv3.Value(k), "=", "a"), false},
		{"value > a", clientv3.Compare(clientv3.Value(k), ">", "a"), true},
		{"value < a", clientv3.Compare(clientv3.Value(k), "<", "a"), false},
		{"value != a", clientv3.Compare(clientv3.Value(k), "!=", "a"), true},
		{"version = 2", clientv3.Compare(clientv3.Version(k), "=", 2), true},
		{"version > 1", clientv3.Compare(clientv3.Version(k), ">", 1), true},
		{"version < 2", clientv3.Compare(clientv3.Version(k), "<", 2), false},
		{"create = r1", clientv3.Compare(clientv3.CreateRevision(k), "=", r1), true},
		{"create != r1", clientv3.Compare(clientv3.CreateRevision(k), "!=", r1), false},
		{"mod = r2", clientv3.Compare(clientv3.ModRevision(k), "=", r2), true},
		{"mod = r1", clientv3.Compare(clientv3.ModRevision(k), "=", r1), false},
		{"mod < r2+1", clientv3.Compare(clientv3.ModRevision(k), "<", r2+1), true},
		{"lease = id", clientv3.Compare(clientv3.LeaseValue(k), "=", lease.ID), true},
		{"lease = 0", clientv3.Compare(clientv3.LeaseValue(k), "=", 0), false},
		{"lease > 0", clientv3.Compare(clientv3.LeaseValue(k), ">", 0), true},
		// A missing key has version, create and mod revision and lease 0; a compare of its value
		// always fails (there is no value to compare).
		{"missing version = 0", clientv3.Compare(clientv3.Version(missing), "=", 0), true},
		{"missing create = 0", clientv3.Compare(clientv3.CreateRevision(missing), "=", 0), true},
		{"missing mod = 0", clientv3.Compare(clientv3.ModRevision(missing), "=", 0), true},
		{"missing lease = 0", clientv3.Compare(clientv3.LeaseValue(missing), "=", 0), true},
		{"missing value = ''", clientv3.Compare(clientv3.Value(missing), "=", ""), false},
		{"missing value != x", clientv3.Compare(clientv3.Value(missing), "!=", "x"), false},
	}
	for _, c := range cases {
		txnCase(t, cli, c.name, c.cmp, c.want)
	}
	// Several compares: all must hold.
	resp, err := cli.Txn(ctx(t)).If(
		clientv3.Compare(clientv3.Value(k), "=", "b"),
		clientv3.Compare(clientv3.Version(k), "=", 1),
	).Then(clientv3.OpGet(k)).Commit()
	cluster.NoErr(t, "txn", err)
	if resp.Succeeded {
		t.Errorf("two compares, one false: succeeded")
	}
	// Compares over a range hold only if they hold for every key in it.
	put(t, cli, p+"r/1", "x")
	put(t, cli, p+"r/2", "x")
	txnCase(t, cli, "prefix value = x", clientv3.Compare(clientv3.Value(p+"r/"), "=", "x").WithPrefix(), true)
	put(t, cli, p+"r/3", "y")
	txnCase(t, cli, "prefix value = x (one is y)", clientv3.Compare(clientv3.Value(p+"r/"), "=", "x").WithPrefix(), false)
	txnCase(t, cli, "range [r/1, r/3) value = x", clientv3.Compare(clientv3.Value(p+"r/1"), "=", "x").WithRange(p+"r/3"), true)
	txnCase(t, cli, "prefix version = 1", clientv3.Compare(clientv3.Version(p+"r/"), "=", 1).WithPrefix(), true)
}

func TestTxnThenElse(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "k"
	r1 := put(t, cli, k, "v1")
	put(t, cli, p+"other", "o")

	// Then: a put, a get, a delete, all at one new revision.
	resp, err := cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.Value(k), "=", "v1")).
		Then(clientv3.OpPut(k, "v2", clientv3.WithPrevKV()), clientv3.OpGet(k), clientv3.OpDelete(p+"other", clientv3.WithPrevKV()), clientv3.OpPut(p+"new", "n")).
		Else(clientv3.OpGet(k)).Commit()
	cluster.NoErr(t, "txn", err)
	if !resp.Succeeded || len(resp.Responses) != 4 {
		t.Fatalf("txn: succeeded %v with %d responses, want then branch with 4", resp.Succeeded, len(resp.Responses))
	}
	rev := resp.Header.Revision
	pr := resp.Responses[0].GetResponsePut()
	if pr == nil || pr.PrevKv == nil || string(pr.PrevKv.Value) != "v1" || pr.Header == nil || pr.Header.Revision != rev {
		t.Errorf("txn put response: %+v, want prev v1 and header revision %d", pr, rev)
	}
	gr := resp.Responses[1].GetResponseRange()
	if gr == nil || len(gr.Kvs) != 1 || string(gr.Kvs[0].Value) != "v2" || gr.Kvs[0].ModRevision != rev || gr.Kvs[0].Version != 2 || gr.Kvs[0].CreateRevision != r1 {
		t.Errorf("txn get after put: %+v, want v2 at mod %d version 2 (a txn sees its own writes)", gr, rev)
	}
	dr := resp.Responses[2].GetResponseDeleteRange()
	if dr == nil || dr.Deleted != 1 || len(dr.PrevKvs) != 1 || string(dr.PrevKvs[0].Value) != "o" {
		t.Errorf("txn delete response: %+v", dr)
	}
	g, err := cli.Get(ctx(t), p, clientv3.WithPrefix())
	cluster.NoErr(t, "get", err)
	if !eq(keysOf(g.Kvs), []string{k, p + "new"}) || g.Kvs[0].ModRevision != rev || g.Kvs[1].ModRevision != rev {
		t.Errorf("after txn: %+v, want k and new both at revision %d", g.Kvs, rev)
	}
	if g.Header.Revision != rev {
		t.Errorf("a txn is one revision: header %d, want %d", g.Header.Revision, rev)
	}

	// Else.
	resp, err = cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.Value(k), "=", "v1")).
		Then(clientv3.OpPut(k, "nope")).
		Else(clientv3.OpGet(k), clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
	cluster.NoErr(t, "txn", err)
	if resp.Succeeded || len(resp.Responses) != 2 {
		t.Fatalf("txn: succeeded %v with %d responses, want else with 2", resp.Succeeded, len(resp.Responses))
	}
	if gr := resp.Responses[0].GetResponseRange(); len(gr.Kvs) != 1 || string(gr.Kvs[0].Value) != "v2" {
		t.Errorf("else get: %+v", gr)
	}
	if gr := resp.Responses[1].GetResponseRange(); gr.Count != 2 || len(gr.Kvs) != 0 {
		t.Errorf("else count: %+v", gr)
	}
	// A txn that only reads does not advance the revision.
	if resp.Header.Revision != rev {
		t.Errorf("read-only txn: header revision %d, want %d", resp.Header.Revision, rev)
	}
	// An empty txn succeeds. (etcd serves it from the local member's state, like a
	// serializable read, so its header may lag.)
	resp, err = cli.Txn(ctx(t)).Commit()
	cluster.NoErr(t, "empty txn", err)
	if !resp.Succeeded || len(resp.Responses) != 0 || resp.Header.Revision > rev {
		t.Errorf("empty txn: %+v", resp)
	}
	// The same key in then and else is not a duplicate.
	resp, err = cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.Version(k), "=", 0)).
		Then(clientv3.OpPut(k, "t")).Else(clientv3.OpPut(k, "e")).Commit()
	cluster.NoErr(t, "txn with the key in both branches", err)
	if resp.Succeeded || resp.Header.Revision != rev+1 {
		t.Errorf("txn: succeeded %v revision %d, want else at %d", resp.Succeeded, resp.Header.Revision, rev+1)
	}
}

func TestTxnNested(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	a, b := p+"a", p+"b"
	put(t, cli, a, "1")
	// etcd decides every branch, nested ones included, against the state before the txn: the
	// inner compare sees a = 1 although the outer put (executed first) has made it 2. The inner
	// get, an op, does see the outer put.
	resp, err := cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.Value(a), "=", "1")).
		Then(
			clientv3.OpPut(a, "2"),
			clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.Value(a), "=", "1")},
				[]clientv3.Op{clientv3.OpPut(b, "inner-then"), clientv3.OpGet(a)},
				[]clientv3.Op{clientv3.OpPut(b, "inner-else")},
			),
		).Commit()
	cluster.NoErr(t, "nested txn", err)
	if !resp.Succeeded || len(resp.Responses) != 2 {
		t.Fatalf("nested txn: %+v", resp)
	}
	inner := resp.Responses[1].GetResponseTxn()
	if inner == nil || !inner.Succeeded || len(inner.Responses) != 2 {
		t.Fatalf("inner txn response: %+v, want succeeded (its compare sees the state before the txn) with 2 responses", inner)
	}
	if gr := inner.Responses[1].GetResponseRange(); len(gr.Kvs) != 1 || string(gr.Kvs[0].Value) != "2" {
		t.Errorf("inner get: %+v, want a = 2 (the outer put)", gr)
	}
	g, err := cli.Get(ctx(t), b)
	cluster.NoErr(t, "get", err)
	if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "inner-then" || g.Kvs[0].ModRevision != resp.Header.Revision {
		t.Errorf("after nested txn: %+v", g.Kvs)
	}
	// Inner else; and a nested txn whose branches put the same key is allowed.
	resp, err = cli.Txn(ctx(t)).Then(
		clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(a), "=", "1")},
			[]clientv3.Op{clientv3.OpPut(b, "t")},
			[]clientv3.Op{clientv3.OpPut(b, "e")}),
	).Commit()
	cluster.NoErr(t, "nested txn", err)
	if inner := resp.Responses[0].GetResponseTxn(); inner == nil || inner.Succeeded {
		t.Errorf("inner txn: %+v, want else", inner)
	}
	g, err = cli.Get(ctx(t), b)
	cluster.NoErr(t, "get", err)
	if string(g.Kvs[0].Value) != "e" {
		t.Errorf("after inner else: %s", g.Kvs[0].Value)
	}
	// A put in the outer txn and the same key in a nested one is a duplicate.
	_, err = cli.Txn(ctx(t)).Then(
		clientv3.OpPut(b, "x"),
		clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut(b, "y")}, nil),
	).Commit()
	cluster.WantErr(t, "outer and nested put of one key", err, rpctypes.ErrDuplicateKey)
}

// The shapes Kubernetes' storage layer (k8s.io/apiserver/pkg/storage/etcd3) sends.
func TestTxnKubernetesShapes(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "pods/default/web"

	// Create: If(ModRevision == 0).Then(Put).
	resp, err := cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.ModRevision(k), "=", 0)).Then(clientv3.OpPut(k, "obj1")).Commit()
	cluster.NoErr(t, "create", err)
	if !resp.Succeeded {
		t.Fatalf("create: not succeeded")
	}
	created := resp.Responses[0].GetResponsePut().Header.Revision
	if created != resp.Header.Revision {
		t.Errorf("create: put header revision %d, txn header revision %d", created, resp.Header.Revision)
	}
	resp, err = cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.ModRevision(k), "=", 0)).Then(clientv3.OpPut(k, "obj1")).Commit()
	cluster.NoErr(t, "create again", err)
	if resp.Succeeded || len(resp.Responses) != 0 {
		t.Errorf("create of an existing key: %+v, want not succeeded, no responses", resp)
	}

	// GuaranteedUpdate: If(ModRevision == r).Then(Put).Else(Get).
	update := func(rev int64, v string) *clientv3.TxnResponse {
		t.Helper()
		resp, err := cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
			Then(clientv3.OpPut(k, v)).Else(clientv3.OpGet(k)).Commit()
		cluster.NoErr(t, "update", err)
		return resp
	}
	resp = update(created, "obj2")
	if !resp.Succeeded {
		t.Fatalf("update at the current revision failed")
	}
	putResp := resp.Responses[0].GetResponsePut()
	if putResp == nil || putResp.Header == nil || putResp.Header.Revision != resp.Header.Revision || putResp.Header.Revision <= created {
		t.Fatalf("update: put response %+v, want header revision %d", putResp, resp.Header.Revision)
	}
	updated := putResp.Header.Revision
	// A stale revision: the else branch returns the current object.
	resp = update(created, "obj3")
	if resp.Succeeded {
		t.Fatalf("update at a stale revision succeeded")
	}
	getResp := (*clientv3.GetResponse)(resp.Responses[0].GetResponseRange())
	if len(getResp.Kvs) != 1 || string(getResp.Kvs[0].Value) != "obj2" || getResp.Kvs[0].ModRevision != updated || getResp.Kvs[0].CreateRevision != created {
		t.Errorf("stale update: else get %+v, want obj2 at %d", getResp.Kvs, updated)
	}
	if getResp.Header == nil || getResp.Header.Revision != resp.Header.Revision {
		t.Errorf("stale update: get header %+v, want revision %d", getResp.Header, resp.Header.Revision)
	}

	// Delete: If(ModRevision == r).Then(Delete).Else(Get).
	del := func(rev int64) *clientv3.TxnResponse {
		t.Helper()
		resp, err := cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
			Then(clientv3.OpDelete(k)).Else(clientv3.OpGet(k)).Commit()
		cluster.NoErr(t, "delete", err)
		return resp
	}
	resp = del(created)
	if resp.Succeeded {
		t.Fatalf("delete at a stale revision succeeded")
	}
	if g := resp.Responses[0].GetResponseRange(); len(g.Kvs) != 1 || g.Kvs[0].ModRevision != updated {
		t.Errorf("stale delete: else get %+v", g)
	}
	resp = del(updated)
	if !resp.Succeeded {
		t.Fatalf("delete at the current revision failed")
	}
	dr := resp.Responses[0].GetResponseDeleteRange()
	if dr == nil || dr.Header == nil || dr.Deleted != 1 || dr.Header.Revision != resp.Header.Revision {
		t.Errorf("delete: response %+v, want deleted 1 with header revision %d", dr, resp.Header.Revision)
	}
	// Delete of a missing key: ModRevision == 0 holds; deleted 0.
	resp = del(0)
	if !resp.Succeeded || resp.Responses[0].GetResponseDeleteRange().Deleted != 0 {
		t.Errorf("delete of a missing key at revision 0: %+v", resp)
	}
}

func TestTxnErrors(t *testing.T) {
	cli, p := client(t), cluster.Prefix(t)
	k := p + "k"
	put(t, cli, k, "v")
	_, err := cli.Txn(ctx(t)).Then(clientv3.OpPut(k, "a"), clientv3.OpPut(k, "b")).Commit()
	cluster.WantErr(t, "two puts of one key", err, rpctypes.ErrDuplicateKey)
	_, err = cli.Txn(ctx(t)).Then(clientv3.OpPut(k, "a"), clientv3.OpDelete(k)).Commit()
	cluster.WantErr(t, "put and delete of one key", err, rpctypes.ErrDuplicateKey)
	_, err = cli.Txn(ctx(t)).Then(clientv3.OpDelete(p, clientv3.WithPrefix()), clientv3.OpPut(k, "a")).Commit()
	cluster.WantErr(t, "put inside a deleted range", err, rpctypes.ErrDuplicateKey)
	_, err = cli.Txn(ctx(t)).Else(clientv3.OpPut(k, "a"), clientv3.OpPut(k, "b")).Commit()
	cluster.WantErr(t, "two puts of one key in else", err, rpctypes.ErrDuplicateKey)
	// Two deletes of one key, and gets alongside a put, are fine.
	_, err = cli.Txn(ctx(t)).Then(clientv3.OpDelete(p+"x"), clientv3.OpDelete(p+"x")).Commit()
	cluster.NoErr(t, "two deletes of one key", err)
	_, err = cli.Txn(ctx(t)).Then(clientv3.OpGet(k), clientv3.OpPut(k, "a"), clientv3.OpGet(k)).Commit()
	cluster.NoErr(t, "get, put, get of one key", err)

	// etcd's default --max-txn-ops is 128.
	ops := func(n int) []clientv3.Op {
		var out []clientv3.Op
		for i := 0; i < n; i++ {
			out = append(out, clientv3.OpPut(fmt.Sprintf("%sops/%03d", p, i), "x"))
		}
		return out
	}
	_, err = cli.Txn(ctx(t)).Then(ops(128)...).Commit()
	cluster.NoErr(t, "txn of 128 puts", err)
	_, err = cli.Txn(ctx(t)).Then(ops(129)...).Commit()
	cluster.WantErr(t, "txn of 129 puts", err, rpctypes.ErrTooManyOps)
	_, err = cli.Txn(ctx(t)).Else(ops(129)...).Commit()
	cluster.WantErr(t, "txn of 129 puts in else", err, rpctypes.ErrTooManyOps)
	var cmps []clientv3.Cmp
	for i := 0; i < 129; i++ {
		cmps = append(cmps, clientv3.Compare(clientv3.Version(k), ">", 0))
	}
	_, err = cli.Txn(ctx(t)).If(cmps...).Commit()
	cluster.WantErr(t, "txn of 129 compares", err, rpctypes.ErrTooManyOps)
	// Nothing of the failed txns was applied.
	g, err := cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	if string(g.Kvs[0].Value) != "a" {
		t.Errorf("after failed txns: %s", g.Kvs[0].Value)
	}
}
