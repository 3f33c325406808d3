// The client's recipes on top of KV, Watch and Lease: concurrency.Session, Mutex, Election and
// STM; the namespace and ordering wrappers. Against the cluster that TALLY_BIN or ETCD_BIN
// selects; one cluster for the package, each test under its own cluster.Prefix(t).
package recipes

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"tally.local/tests/go/cluster"
)

var clus *cluster.Cluster

func TestMain(m *testing.M) {
	cluster.Main(m, func(c *cluster.Cluster) { clus = c })
}

func ctx(t *testing.T) context.Context { return cluster.Ctx(t, 60*time.Second) }

func session(t *testing.T, cli *clientv3.Client, ttl int) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	cluster.NoErr(t, "new session", err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSession(t *testing.T) {
	cli := clus.Client(t)
	s := session(t, cli, 2)
	if s.Lease() == clientv3.NoLease {
		t.Fatalf("session without a lease")
	}
	ttl, err := cli.TimeToLive(ctx(t), s.Lease())
	cluster.NoErr(t, "time to live", err)
	if ttl.ID != s.Lease() || ttl.GrantedTTL != 2 || ttl.TTL < 0 {
		t.Errorf("session lease: id %x TTL %d granted %d, want granted 2, alive", ttl.ID, ttl.TTL, ttl.GrantedTTL)
	}
	// Kept alive beyond its TTL.
	time.Sleep(3 * time.Second)
	ttl, err = cli.TimeToLive(ctx(t), s.Lease())
	cluster.NoErr(t, "time to live", err)
	// (The remaining TTL is whole seconds, rounded down: 0 just before a keep-alive is alive.)
	if ttl.ID != s.Lease() || ttl.GrantedTTL != 2 || ttl.TTL < 0 {
		t.Errorf("session lease after 3 s: id %x TTL %d granted %d, want alive", ttl.ID, ttl.TTL, ttl.GrantedTTL)
	}
	select {
	case <-s.Done():
		t.Fatalf("session done while kept alive")
	default:
	}
	// Close revokes the lease.
	cluster.NoErr(t, "close", s.Close())
	ttl, err = cli.TimeToLive(ctx(t), s.Lease())
	cluster.NoErr(t, "time to live", err)
	if ttl.TTL != -1 {
		t.Errorf("closed session's lease: TTL %d granted %d, want TTL -1", ttl.TTL, ttl.GrantedTTL)
	}

	// A session whose lease is revoked from outside ends.
	s2 := session(t, cli, 5)
	_, err = cli.Revoke(ctx(t), s2.Lease())
	cluster.NoErr(t, "revoke", err)
	select {
	case <-s2.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("session not done 10 s after its lease was revoked")
	}
}

func TestMutex(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	pfx := p + "lock"
	s1, s2 := session(t, cli, 10), session(t, cli, 10)
	m1, m2 := concurrency.NewMutex(s1, pfx), concurrency.NewMutex(s2, pfx)
	cluster.NoErr(t, "m1 lock", m1.Lock(ctx(t)))
	firstRev := m1.Header().Revision
	// Lock again from the same session: it holds it already.
	cluster.NoErr(t, "m1 relock", m1.TryLock(ctx(t)))
	cluster.WantErr(t, "m2 try lock while m1 holds it", m2.TryLock(ctx(t)), concurrency.ErrLocked)
	// TryLock cleaned up: only m1's key under the prefix.
	g, err := cli.Get(ctx(t), pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cluster.NoErr(t, "get", err)
	if g.Count != 1 {
		t.Errorf("%d keys under the lock prefix after a failed TryLock, want 1", g.Count)
	}
	// A Lock that times out while the lock is held.
	short, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	err = m2.Lock(short)
	cancel()
	cluster.WantErr(t, "m2 lock with a 300 ms deadline", err, context.DeadlineExceeded)

	// The holder's key fences writes.
	resp, err := cli.Txn(ctx(t)).If(m1.IsOwner()).Then(clientv3.OpPut(p+"guarded", "m1")).Commit()
	cluster.NoErr(t, "guarded txn", err)
	if !resp.Succeeded {
		t.Errorf("m1 is not the owner")
	}

	locked := make(chan error, 1)
	go func() { locked <- m2.Lock(ctx(t)) }()
	select {
	case err := <-locked:
		t.Fatalf("m2 locked while m1 holds the lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cluster.NoErr(t, "m1 unlock", m1.Unlock(ctx(t)))
	select {
	case err := <-locked:
		cluster.NoErr(t, "m2 lock", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("m2 did not get the lock within 10 s of m1's unlock")
	}
	if m2.Header().Revision <= firstRev {
		t.Errorf("m2 got the lock at revision %d, not after m1's %d", m2.Header().Revision, firstRev)
	}
	resp, err = cli.Txn(ctx(t)).If(m1.IsOwner()).Then(clientv3.OpPut(p+"guarded", "m1")).Commit()
	cluster.NoErr(t, "guarded txn", err)
	if resp.Succeeded {
		t.Errorf("a guarded write by the former owner succeeded")
	}
	cluster.WantErr(t, "m1 unlock twice", m1.Unlock(ctx(t)), concurrency.ErrLockReleased)

	// The holder's session ends: the waiter gets the lock.
	go func() { locked <- m1.Lock(ctx(t)) }()
	time.Sleep(200 * time.Millisecond)
	cluster.NoErr(t, "close s2", s2.Close())
	select {
	case err := <-locked:
		cluster.NoErr(t, "m1 lock", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("m1 did not get the lock within 10 s of the holder's session closing")
	}
	cluster.NoErr(t, "m1 unlock", m1.Unlock(ctx(t)))
}

// sync.Locker from NewLocker: many goroutines, one critical section at a time.
func TestLocker(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	var inside, max, total int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		s := session(t, cli, 10)
		l := concurrency.NewLocker(s, p+"lock")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				l.Lock()
				mu.Lock()
				inside++
				if inside > max {
					max = inside
				}
				total++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				inside--
				mu.Unlock()
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	if max != 1 || total != 20 {
		t.Errorf("%d critical sections, at most %d at once; want 20, 1", total, max)
	}
}

func TestElection(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	pfx := p + "election"
	s1, s2, s3 := session(t, cli, 10), session(t, cli, 10), session(t, cli, 10)
	e1, e2 := concurrency.NewElection(s1, pfx), concurrency.NewElection(s2, pfx)
	observer := concurrency.NewElection(s3, pfx)

	_, err := observer.Leader(ctx(t))
	cluster.WantErr(t, "leader of an empty election", err, concurrency.ErrElectionNoLeader)
	cluster.WantErr(t, "proclaim without campaign", e2.Proclaim(ctx(t), "x"), concurrency.ErrElectionNotLeader)

	cluster.NoErr(t, "e1 campaign", e1.Campaign(ctx(t), "a"))
	leader := func(want string) {
		t.Helper()
		resp, err := observer.Leader(ctx(t))
		cluster.NoErr(t, "leader", err)
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want {
			t.Errorf("leader %+v, want value %q", resp.Kvs, want)
		}
	}
	leader("a")
	if e1.Key() == "" || e1.Rev() == 0 {
		t.Errorf("e1 key %q rev %d", e1.Key(), e1.Rev())
	}

	octx, stop := context.WithCancel(ctx(t))
	defer stop()
	obs := observer.Observe(octx)
	observed := func(want string) {
		t.Helper()
		select {
		case resp, ok := <-obs:
			if !ok {
				t.Fatalf("observe channel closed, want %q", want)
			}
			if string(resp.Kvs[0].Value) != want {
				t.Errorf("observed %q, want %q", resp.Kvs[0].Value, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing observed within 10 s, want %q", want)
		}
	}
	observed("a")

	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx(t), "b") }()
	select {
	case err := <-won:
		t.Fatalf("e2 won while e1 leads: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cluster.NoErr(t, "e1 proclaim", e1.Proclaim(ctx(t), "a2"))
	observed("a2")
	leader("a2")

	cluster.NoErr(t, "e1 resign", e1.Resign(ctx(t)))
	select {
	case err := <-won:
		cluster.NoErr(t, "e2 campaign", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("e2 not elected within 10 s of e1 resigning")
	}
	observed("b")
	leader("b")
	if e2.Rev() <= e1.Rev() {
		t.Errorf("e2's leader revision %d, not after e1's %d", e2.Rev(), e1.Rev())
	}
	cluster.WantErr(t, "proclaim after resign", e1.Proclaim(ctx(t), "x"), concurrency.ErrElectionNotLeader)

	// The leader's session ends: no leader.
	cluster.NoErr(t, "close s2", s2.Close())
	cluster.Eventually(t, 5*time.Second, "no leader after the leader's session closed", func() error {
		_, err := observer.Leader(ctx(t))
		if !errors.Is(err, concurrency.ErrElectionNoLeader) {
			return fmt.Errorf("leader: %v", err)
		}
		return nil
	})
	// Resume: a campaign with a new session, then a resumed election proclaims.
	cluster.NoErr(t, "e1 campaign again", e1.Campaign(ctx(t), "c"))
	observed("c")
	resumed := concurrency.ResumeElection(s1, pfx, e1.Key(), e1.Rev())
	cluster.NoErr(t, "resumed proclaim", resumed.Proclaim(ctx(t), "c2"))
	observed("c2")
	leader("c2")
}

func stmCounter(t *testing.T, name string, iso concurrency.Isolation) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	k := p + name
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		// Each worker on its own client, as separate processes would be.
		wcli := clus.Client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := concurrency.NewSTM(wcli, func(s concurrency.STM) error {
					v := s.Get(k)
					n := 0
					if v != "" {
						var err error
						if n, err = strconv.Atoi(v); err != nil {
							return err
						}
					}
					s.Put(k, strconv.Itoa(n+1))
					return nil
				}, concurrency.WithIsolation(iso), concurrency.WithAbortContext(ctx(t)))
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("stm: %v", err)
	}
	g, err := cli.Get(ctx(t), k)
	cluster.NoErr(t, "get", err)
	if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != strconv.Itoa(workers*each) || g.Kvs[0].Version != workers*each {
		t.Errorf("counter %+v, want %d after %d increments", g.Kvs, workers*each, workers*each)
	}
}

func TestSTMSerializable(t *testing.T) { stmCounter(t, "serializable", concurrency.Serializable) }
func TestSTMSerializableSnapshot(t *testing.T) {
	stmCounter(t, "snapshot", concurrency.SerializableSnapshot)
}
func TestSTMRepeatableReads(t *testing.T) { stmCounter(t, "repeatable", concurrency.RepeatableReads) }

// A transfer between two accounts keeps the sum; a read-only STM sees a consistent pair. (A
// serializable STM reads its later keys serializably at the revision of its first read, so each
// worker talks to one member: another member might not have that revision yet.)
func TestSTMTransfers(t *testing.T) {
	cli, p := clus.Client(t), cluster.Prefix(t)
	a, b := p+"a", p+"b"
	_, err := cli.Txn(ctx(t)).Then(clientv3.OpPut(a, "100"), clientv3.OpPut(b, "100")).Commit()
	cluster.NoErr(t, "init", err)
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wcli := clus.Client(t, clus.Members[w%3].Endpoint())
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				from, to := a, b
				if (w+i)%2 == 0 {
					from, to = b, a
				}
				_, err := concurrency.NewSTM(wcli, func(s concurrency.STM) error {
					x, y := atoi(s.Get(from)), atoi(s.Get(to))
					s.Put(from, strconv.Itoa(x-7))
					s.Put(to, strconv.Itoa(y+7))
					return nil
				}, concurrency.WithIsolation(concurrency.SerializableSnapshot))
				if err != nil {
					t.Errorf("transfer: %v", err)
				}
			}
		}(w)
	}
	sums := make(chan int, 1000)
	rcli := clus.Client(t, clus.Members[0].Endpoint())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			_, err := concurrency.NewSTM(rcli, func(s concurrency.STM) error {
				sums <- atoi(s.Get(a)) + atoi(s.Get(b))
				return nil
			}, concurrency.WithIsolation(concurrency.Serializable))
			if err != nil {
				t.Errorf("reader: %v", err)
			}
		}
	}()
	wg.Wait()
	close(sums)
	// Every attempt reads both keys at one revision.
	for s := range sums {
		if s != 200 {
			t.Errorf("a serializable STM read a sum of %d, want 200", s)
		}
	}
	g, err := cli.Get(ctx(t), p, clientv3.WithPrefix())
	cluster.NoErr(t, "get", err)
	if len(g.Kvs) != 2 || atoi(string(g.Kvs[0].Value))+atoi(string(g.Kvs[1].Value)) != 200 {
		t.Errorf("accounts %+v, want a sum of 200", g.Kvs)
	}
}
