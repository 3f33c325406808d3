// Watch through the official etcd Go client, against the cluster that TALLY_BIN or ETCD_BIN
// selects. One cluster serves the package (TestWatchRequireLeader starts its own, as it kills
// members); each test keeps to keys under cluster.Prefix(t).
package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"tally.local/tests/go/cluster"
)

var clus *cluster.Cluster

func TestMain(m *testing.M) {
	cluster.Main(m, func(c *cluster.Cluster) { clus = c })
}

// oneMember is a client of the first member only: the progress tests compare the revision of a
// write acknowledged by a member with the revision that member's watch stream reports, and
// another member may not have applied that write yet.
func oneMember(t *testing.T) *clientv3.Client { return clus.Client(t, clus.Members[0].Endpoint()) }

func ctx(t *testing.T) context.Context { return cluster.Ctx(t, 30*time.Second) }

func put(t *testing.T, cli *clientv3.Client, k, v string) int64 {
	t.Helper()
	resp, err := cli.Put(ctx(t), k, v)
	cluster.NoErr(t, "put "+k, err)
	return resp.Header.Revision
}

// recv waits up to d for the next response.
func recv(t *testing.T, wch clientv3.WatchChan, d time.Duration, what string) clientv3.WatchResponse {
	t.Helper()
	select {
	case resp, ok := <-wch:
		if !ok {
			t.Fatalf("%s: the watch channel closed", what)
		}
		return resp
	case <-time.After(d):
		t.Fatalf("%s: no watch response within %v", what, d)
	}
	panic("unreachable")
}

// created waits for the created notification of a watch opened WithCreatedNotify.
func created(t *testing.T, wch clientv3.WatchChan) {
	t.Helper()
	resp := recv(t, wch, 10*time.Second, "created notification")
	if !resp.Created || resp.Canceled || len(resp.Events) != 0 || resp.Err() != nil {
		t.Fatalf("first response: %+v, want created", resp)
	}
}

// events collects n events (failing on errors, cancellation and progress notifications).
func events(t *testing.T, wch clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var out []*clientv3.Event
	for _, resp := range responses(t, wch, n) {
		out = append(out, resp.Events...)
	}
	return out
}

// responses collects the responses that carry the next n events.
func responses(t *testing.T, wch clientv3.WatchChan, n int) []clientv3.WatchResponse {
	t.Helper()
	var out []clientv3.WatchResponse
	got := 0
	for got < n {
		resp := recv(t, wch, 10*time.Second, fmt.Sprintf("event %d of %d", len(out)+1, n))
		if resp.Err() != nil || resp.Canceled {
			t.Fatalf("watch response %+v: %v", resp, resp.Err())
		}
		if len(resp.Events) == 0 {
			if resp.IsProgressNotify() {
				continue
			}
			t.Fatalf("watch response without events: %+v", resp)
		}
		out = append(out, resp)
		got += len(resp.Events)
	}
	if got != n {
		t.Fatalf("%d events, want %d", got, n)
	}
	return out
}

// quiet fails if an event arrives within d.
func quiet(t *testing.T, wch clientv3.WatchChan, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case resp, ok := <-wch:
			if !ok {
				t.Fatalf("the watch channel closed")
			}
			if len(resp.Events) != 0 || resp.Canceled {
				t.Fatalf("unexpected watch response: %+v", resp)
			}
		case <-deadline:
			return
		}
	}
}

type ev struct {
	typ   mvccpb.Event_EventType
	key   string
	value string
	mod   int64
}

func check(t *testing.T, got []*clientv3.Event, want []ev) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.typ || string(g.Kv.Key) != w.key || string(g.Kv.Value) != w.value || (w.mod != 0 && g.Kv.ModRevision != w.mod) {
			t.Errorf("event %d: %s %q=%q at %d, want %s %q=%q at %d", i, g.Type, g.Kv.Key, g.Kv.Value, g.Kv.ModRevision, w.typ, w.key, w.value, w.mod)
		}
	}
}

func TestWatchKey(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	k := p + "k"
	wch := cli.Watch(ctx(t), k, clientv3.WithCreatedNotify())
	created(t, wch)
	r1 := put(t, cli, k, "v1")
	put(t, cli, p+"kk", "other key")
	r2 := put(t, cli, k, "v2")
	del, err := cli.Delete(ctx(t), k)
	cluster.NoErr(t, "delete", err)
	r3 := del.Header.Revision
	got := events(t, wch, 3)
	check(t, got, []ev{{mvccpb.PUT, k, "v1", r1}, {mvccpb.PUT, k, "v2", r2}, {mvccpb.DELETE, k, "", r3}})
	if !got[0].IsCreate() || got[0].Kv.Version != 1 || got[0].Kv.CreateRevision != r1 {
		t.Errorf("first event: %+v, want a create", got[0].Kv)
	}
	if !got[1].IsModify() || got[1].Kv.Version != 2 || got[1].Kv.CreateRevision != r1 {
		t.Errorf("second event: %+v, want a modify, version 2", got[1].Kv)
	}
	if got[2].Kv.Version != 0 || got[2].Kv.CreateRevision != 0 || got[2].PrevKv != nil {
		t.Errorf("delete event: %+v prev %v, want version 0, no create revision, no prev kv", got[2].Kv, got[2].PrevKv)
	}
	quiet(t, wch, 300*time.Millisecond)
}

func TestWatchPrefixAndRange(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	dir := p + "dir/"
	pch := cli.Watch(ctx(t), dir, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	created(t, pch)
	rch := cli.Watch(ctx(t), dir+"b", clientv3.WithRange(dir+"d"), clientv3.WithCreatedNotify())
	created(t, rch)
	ra := put(t, cli, dir+"a", "1")
	put(t, cli, p+"dir", "not under dir/")
	put(t, cli, p+"dis", "not under dir/")
	rb := put(t, cli, dir+"b", "2")
	rd := put(t, cli, dir+"d", "4")
	// One txn: both events share a revision and come in one response.
	tx, err := cli.Txn(ctx(t)).Then(clientv3.OpPut(dir+"c", "3"), clientv3.OpDelete(dir+"a")).Commit()
	cluster.NoErr(t, "txn", err)
	rt := tx.Header.Revision
	resps := responses(t, pch, 5)
	var all []*clientv3.Event
	for _, resp := range resps {
		all = append(all, resp.Events...)
	}
	check(t, all, []ev{{mvccpb.PUT, dir + "a", "1", ra}, {mvccpb.PUT, dir + "b", "2", rb}, {mvccpb.PUT, dir + "d", "4", rd},
		{mvccpb.PUT, dir + "c", "3", rt}, {mvccpb.DELETE, dir + "a", "", rt}})
	if last := resps[len(resps)-1]; len(last.Events) < 2 || last.Events[len(last.Events)-2].Kv.ModRevision != rt {
		t.Errorf("the txn's two events came in different responses")
	}
	check(t, events(t, rch, 2), []ev{{mvccpb.PUT, dir + "b", "2", rb}, {mvccpb.PUT, dir + "c", "3", rt}})
	quiet(t, rch, 200*time.Millisecond)
}

func TestWatchFromRevision(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	k := p + "k"
	r1 := put(t, cli, k, "v1")
	r2 := put(t, cli, k, "v2")
	put(t, cli, p+"other", "x")
	r3 := put(t, cli, k, "v3")

	// Replay from the first revision, then live events.
	wch := cli.Watch(ctx(t), k, clientv3.WithRev(r1))
	check(t, events(t, wch, 3), []ev{{mvccpb.PUT, k, "v1", r1}, {mvccpb.PUT, k, "v2", r2}, {mvccpb.PUT, k, "v3", r3}})
	r4 := put(t, cli, k, "v4")
	check(t, events(t, wch, 1), []ev{{mvccpb.PUT, k, "v4", r4}})

	// From a middle revision; a prefix from a past revision.
	wch = cli.Watch(ctx(t), k, clientv3.WithRev(r2+1))
	check(t, events(t, wch, 2), []ev{{mvccpb.PUT, k, "v3", r3}, {mvccpb.PUT, k, "v4", r4}})
	wch = cli.Watch(ctx(t), p, clientv3.WithPrefix(), clientv3.WithRev(r2))
	check(t, events(t, wch, 4), []ev{{mvccpb.PUT, k, "v2", r2}, {mvccpb.PUT, p + "other", "x", r2 + 1}, {mvccpb.PUT, k, "v3", r3}, {mvccpb.PUT, k, "v4", r4}})

	// A start revision in the future: nothing until then.
	wch = cli.Watch(ctx(t), k, clientv3.WithRev(r4+3))
	put(t, cli, k, "v5") // r4+1
	put(t, cli, k, "v6") // r4+2
	put(t, cli, k, "v7") // r4+3
	check(t, events(t, wch, 1), []ev{{mvccpb.PUT, k, "v7", r4 + 3}})
}

func TestWatchPrevKV(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	k := p + "k"
	wch := cli.Watch(ctx(t), k, clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	created(t, wch)
	r1 := put(t, cli, k, "v1")
	put(t, cli, k, "v2")
	_, err := cli.Delete(ctx(t), k)
	cluster.NoErr(t, "delete", err)
	got := events(t, wch, 3)
	if got[0].PrevKv != nil {
		t.Errorf("create event: prev kv %+v, want none", got[0].PrevKv)
	}
	if pk := got[1].PrevKv; pk == nil || string(pk.Value) != "v1" || pk.ModRevision != r1 || pk.Version != 1 {
		t.Errorf("update event: prev kv %+v, want v1 at %d", pk, r1)
	}
	if pk := got[2].PrevKv; pk == nil || string(pk.Value) != "v2" || pk.Version != 2 {
		t.Errorf("delete event: prev kv %+v, want v2 version 2", pk)
	}
	// prev_kv on a historic replay too.
	wch = cli.Watch(ctx(t), k, clientv3.WithPrevKV(), clientv3.WithRev(r1+1))
	got = events(t, wch, 2)
	if pk := got[0].PrevKv; pk == nil || string(pk.Value) != "v1" {
		t.Errorf("replayed update: prev kv %+v, want v1", pk)
	}
	if pk := got[1].PrevKv; pk == nil || string(pk.Value) != "v2" {
		t.Errorf("replayed delete: prev kv %+v, want v2", pk)
	}
}

func TestWatchFilters(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	k := p + "k"
	noPut := cli.Watch(ctx(t), k, clientv3.WithFilterPut(), clientv3.WithCreatedNotify())
	created(t, noPut)
	noDel := cli.Watch(ctx(t), k, clientv3.WithFilterDelete(), clientv3.WithCreatedNotify())
	created(t, noDel)
	r1 := put(t, cli, k, "v1")
	d1, err := cli.Delete(ctx(t), k)
	cluster.NoErr(t, "delete", err)
	r2 := put(t, cli, k, "v2")
	d2, err := cli.Delete(ctx(t), k)
	cluster.NoErr(t, "delete", err)
	check(t, events(t, noPut, 2), []ev{{mvccpb.DELETE, k, "", d1.Header.Revision}, {mvccpb.DELETE, k, "", d2.Header.Revision}})
	check(t, events(t, noDel, 2), []ev{{mvccpb.PUT, k, "v1", r1}, {mvccpb.PUT, k, "v2", r2}})
	quiet(t, noPut, 200*time.Millisecond)
	quiet(t, noDel, 100*time.Millisecond)
}

// With --experimental-watch-progress-notify-interval=1s, a watch opened WithProgressNotify on a
// quiet key gets empty responses carrying the current revision about every second.
func TestWatchProgressNotify(t *testing.T) {
	cli, p := oneMember(t), cluster.Prefix(t)
	if !clus.ProgressNotify {
		t.Errorf("%s %s does not list --experimental-watch-progress-notify-interval (or --watch-progress-notify-interval); waiting for its default interval", clus.Kind, clus.Bin)
	}
	k := p + "k"
	rev := put(t, cli, p+"other", "x")
	wch := cli.Watch(ctx(t), k, clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	created(t, wch)
	for i := 0; i < 2; i++ {
		resp := recv(t, wch, 5*time.Second, fmt.Sprintf("progress notification %d", i+1))
		if !resp.IsProgressNotify() || resp.Header.Revision != rev {
			t.Fatalf("response %+v: want a progress notification at revision %d", resp, rev)
		}
	}
	// After an event, notifications carry the new revision.
	r2 := put(t, cli, k, "v")
	check(t, events(t, wch, 1), []ev{{mvccpb.PUT, k, "v", r2}})
	resp := recv(t, wch, 5*time.Second, "progress notification after an event")
	if !resp.IsProgressNotify() || resp.Header.Revision != r2 {
		t.Fatalf("response %+v: want a progress notification at revision %d", resp, r2)
	}
}

// A watch without WithProgressNotify gets no timer notifications.
func TestWatchNoProgressNotifyUnlessAsked(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	wch := cli.Watch(ctx(t), p+"k", clientv3.WithCreatedNotify())
	created(t, wch)
	select {
	case resp := <-wch:
		t.Fatalf("unexpected response: %+v", resp)
	case <-time.After(1500 * time.Millisecond):
	}
}

// client.RequestProgress: every watch on the stream gets a progress notification at the
// current revision.
func TestWatchRequestProgress(t *testing.T) {
	cli, p := oneMember(t), cluster.Prefix(t)
	wctx := ctx(t)
	a := cli.Watch(wctx, p+"a", clientv3.WithCreatedNotify())
	created(t, a)
	b := cli.Watch(wctx, p+"b", clientv3.WithCreatedNotify())
	created(t, b)
	rev := put(t, cli, p+"other", "x")
	cluster.NoErr(t, "RequestProgress", cli.RequestProgress(wctx))
	for name, wch := range map[string]clientv3.WatchChan{"a": a, "b": b} {
		resp := recv(t, wch, 5*time.Second, "progress response on watch "+name)
		if !resp.IsProgressNotify() || resp.Header.Revision != rev {
			t.Errorf("watch %s: %+v, want a progress notification at revision %d", name, resp, rev)
		}
	}
	// Events, then another request.
	r2 := put(t, cli, p+"a", "1")
	check(t, events(t, a, 1), []ev{{mvccpb.PUT, p + "a", "1", r2}})
	cluster.NoErr(t, "RequestProgress", cli.RequestProgress(wctx))
	for name, wch := range map[string]clientv3.WatchChan{"a": a, "b": b} {
		resp := recv(t, wch, 5*time.Second, "second progress response on watch "+name)
		if !resp.IsProgressNotify() || resp.Header.Revision != r2 {
			t.Errorf("watch %s: %+v, want a progress notification at revision %d", name, resp, r2)
		}
	}
	quiet(t, a, 300*time.Millisecond)
	quiet(t, b, 10*time.Millisecond)
}

// The wire form of a progress request's answer (etcd 3.5.8+): one response for the whole stream,
// watch_id -1 (clientv3.InvalidWatchID), which the client broadcasts to every watch.
func TestWatchRequestProgressWire(t *testing.T) {
	cli, p := oneMember(t), cluster.Prefix(t)
	stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx(t))
	cluster.NoErr(t, "open watch stream", err)
	respc := make(chan *pb.WatchResponse, 16)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				close(respc)
				return
			}
			respc <- resp
		}
	}()
	next := func(what string) *pb.WatchResponse {
		t.Helper()
		select {
		case r, ok := <-respc:
			if !ok {
				t.Fatalf("%s: stream closed", what)
			}
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing within 5 s", what)
		}
		panic("unreachable")
	}
	var ids []int64
	for _, k := range []string{"a", "b"} {
		err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte(p + k)}}})
		cluster.NoErr(t, "create watch", err)
		r := next("created")
		if !r.Created || r.WatchId < 0 {
			t.Fatalf("create response: %+v", r)
		}
		ids = append(ids, r.WatchId)
	}
	rev := put(t, cli, p+"other", "x")
	cluster.NoErr(t, "progress request", stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}))
	r := next("progress response")
	if r.WatchId != clientv3.InvalidWatchID || r.Header.Revision != rev || len(r.Events) != 0 || r.Created || r.Canceled {
		t.Errorf("progress response: watch_id %d revision %d (%+v), want one response with watch_id -1 at revision %d", r.WatchId, r.Header.Revision, r, rev)
	}
	select {
	case extra := <-respc:
		t.Errorf("a second response to one progress request: %+v (watches %v)", extra, ids)
	case <-time.After(500 * time.Millisecond):
	}
	// Cancel one watch: the answer names it.
	cluster.NoErr(t, "cancel", stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: ids[0]}}}))
	r = next("cancel response")
	if !r.Canceled || r.WatchId != ids[0] {
		t.Errorf("cancel response: %+v, want canceled, watch_id %d", r, ids[0])
	}
	stream.CloseSend()
}

func TestWatchCancel(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	k := p + "k"
	wctx, cancel := context.WithCancel(ctx(t))
	wch := cli.Watch(wctx, k, clientv3.WithCreatedNotify())
	created(t, wch)
	keep := cli.Watch(ctx(t), k, clientv3.WithCreatedNotify())
	created(t, keep)
	cancel()
	deadline := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case resp, ok := <-wch:
			if ok && len(resp.Events) != 0 {
				t.Fatalf("event after cancel: %+v", resp)
			}
			open = ok
		case <-deadline:
			t.Fatalf("the canceled watch's channel is still open after 5 s")
		}
	}
	// The other watch on the same client goes on.
	r := put(t, cli, k, "v")
	check(t, events(t, keep, 1), []ev{{mvccpb.PUT, k, "v", r}})
	// Closing the watcher closes every channel.
	w := clientv3.NewWatcher(cli)
	wch = w.Watch(ctx(t), k, clientv3.WithCreatedNotify())
	created(t, wch)
	cluster.NoErr(t, "close watcher", w.Close())
	select {
	case _, ok := <-wch:
		for ok {
			_, ok = <-wch
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("channel open after Close")
	}
}

// Compaction: a watch from a compacted revision is canceled with the compact revision; a
// watch from the compacted revision itself replays.
func TestWatchCompacted(t *testing.T) {
	// One member for the compaction and the watch: a member answers Compact once it applied
	// it, but another may not have yet, and serves the old revisions meanwhile (as etcd does).
	cli, p := clus.Client(t, clus.Members[0].Endpoint()), cluster.Prefix(t)
	k := p + "k"
	r1 := put(t, cli, k, "v1")
	put(t, cli, k, "v2")
	r3 := put(t, cli, k, "v3")
	_, err := cli.Compact(ctx(t), r3)
	cluster.NoErr(t, "compact", err)

	wch := cli.Watch(ctx(t), k, clientv3.WithRev(r1))
	resp := recv(t, wch, 10*time.Second, "watch from a compacted revision")
	if resp.CompactRevision != r3 || !resp.Canceled || len(resp.Events) != 0 {
		t.Errorf("watch from %d after compacting at %d: %+v, want canceled with compact_revision %d", r1, r3, resp, r3)
	}
	cluster.WantErr(t, "watch response error", resp.Err(), rpctypes.ErrCompacted)
	select {
	case extra, ok := <-wch:
		if ok {
			t.Errorf("response after the compaction cancel: %+v", extra)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the channel stays open after the compaction cancel")
	}

	wch = cli.Watch(ctx(t), k, clientv3.WithRev(r3))
	check(t, events(t, wch, 1), []ev{{mvccpb.PUT, k, "v3", r3}})
}

// WithRequireLeader: when the member loses its leader, its require-leader watches are canceled
// with "etcdserver: no leader" (etcd checks every election timeout and cancels after three
// without a leader), plain watches stay, and new require-leader watches and requests are
// refused at once. Kubernetes' apiserver puts WithRequireLeader on its requests. Its own
// cluster: the test kills two members.
func TestWatchRequireLeader(t *testing.T) {
	c := cluster.StartT(t)
	cli := c.Client(t, c.Members[0].Endpoint())
	k := cluster.Prefix(t) + "k"
	rl := cli.Watch(clientv3.WithRequireLeader(ctx(t)), k, clientv3.WithCreatedNotify())
	created(t, rl)
	plain := cli.Watch(ctx(t), k, clientv3.WithCreatedNotify())
	created(t, plain)
	r := put(t, cli, k, "v")
	check(t, events(t, rl, 1), []ev{{mvccpb.PUT, k, "v", r}})
	check(t, events(t, plain, 1), []ev{{mvccpb.PUT, k, "v", r}})

	cluster.NoErr(t, "kill n2", c.Kill(1))
	cluster.NoErr(t, "kill n3", c.Kill(2))
	start := time.Now()
	select {
	case resp, ok := <-rl:
		switch {
		case !ok:
			t.Errorf("require-leader watch: channel closed without a canceled response")
		case !resp.Canceled:
			t.Errorf("require-leader watch: %+v, want canceled", resp)
		default:
			cluster.WantErr(t, "require-leader watch", resp.Err(), rpctypes.ErrNoLeader)
			t.Logf("require-leader watch canceled %v after the kills", time.Since(start).Round(time.Millisecond))
			select {
			case extra, ok := <-rl:
				if ok {
					t.Errorf("response after the cancel: %+v", extra)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("the require-leader watch's channel stays open after the cancel")
			}
		}
	case <-time.After(5 * time.Second):
		t.Errorf("require-leader watch: not canceled within 5 s of the member losing its leader")
	}
	// The plain watch is not canceled.
	select {
	case resp, ok := <-plain:
		t.Errorf("plain watch: %+v (open %v), want nothing", resp, ok)
	case <-time.After(300 * time.Millisecond):
	}
	// A new require-leader watch is refused at once.
	wch := cli.Watch(clientv3.WithRequireLeader(ctx(t)), k+"2", clientv3.WithCreatedNotify())
	select {
	case resp, ok := <-wch:
		if !ok || !resp.Canceled {
			t.Errorf("new require-leader watch without a leader: %+v (open %v), want canceled", resp, ok)
		} else {
			cluster.WantErr(t, "new require-leader watch", resp.Err(), rpctypes.ErrNoLeader)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("new require-leader watch without a leader: nothing within 5 s, want canceled")
	}
	// So is a require-leader write.
	pctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx(t)), 3*time.Second)
	defer cancel()
	start = time.Now()
	_, err := cli.Put(pctx, k, "v2")
	cluster.WantErr(t, "require-leader put without a leader", err, rpctypes.ErrNoLeader)
	if d := time.Since(start); d > time.Second {
		t.Errorf("require-leader put without a leader: answered after %v, want at once", d.Round(time.Millisecond))
	}
}
