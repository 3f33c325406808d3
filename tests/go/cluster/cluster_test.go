package cluster

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/coreos/go-semver/semver"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var clus *Cluster

func TestMain(m *testing.M) {
	Main(m, func(c *Cluster) { clus = c })
}

func ctx(t *testing.T) context.Context { return Ctx(t, 20*time.Second) }

func TestMemberList(t *testing.T) {
	cli := clus.Client(t)
	var clusterID uint64
	for _, m := range clus.Members {
		for _, opts := range [][]clientv3.OpOption{nil, {clientv3.WithSerializable()}} {
			resp, err := clus.Client(t, m.Endpoint()).MemberList(ctx(t), opts...)
			NoErr(t, "member list on "+m.Name, err)
			if resp.Header.ClusterId == 0 || clusterID != 0 && resp.Header.ClusterId != clusterID {
				t.Errorf("member list on %s: cluster id %x (others %x)", m.Name, resp.Header.ClusterId, clusterID)
			}
			clusterID = resp.Header.ClusterId
			if resp.Header.MemberId != m.ID {
				t.Errorf("member list on %s: header member id %x, want %x", m.Name, resp.Header.MemberId, m.ID)
			}
			if len(resp.Members) != 3 {
				t.Fatalf("member list on %s: %d members, want 3", m.Name, len(resp.Members))
			}
			byName := map[string]bool{}
			for _, x := range resp.Members {
				byName[x.Name] = true
				var want *Member
				for _, y := range clus.Members {
					if y.Name == x.Name {
						want = y
					}
				}
				if want == nil {
					t.Errorf("member list on %s: unknown member %+v", m.Name, x)
					continue
				}
				if x.ID != want.ID || x.IsLearner || fmt.Sprint(x.PeerURLs) != fmt.Sprint([]string{want.PeerURL()}) ||
					fmt.Sprint(x.ClientURLs) != fmt.Sprint([]string{want.ClientURL()}) {
					t.Errorf("member list on %s: %+v, want id %x peer %s client %s, not a learner", m.Name, x, want.ID, want.PeerURL(), want.ClientURL())
				}
			}
			if len(byName) != 3 {
				t.Errorf("member list on %s: names %v", m.Name, byName)
			}
		}
	}
	_ = cli
}

func TestStatus(t *testing.T) {
	cli := clus.Client(t)
	// Something to index.
	_, err := cli.Put(ctx(t), Prefix(t)+"k", "v")
	NoErr(t, "put", err)
	leader, err := clus.Leader(ctx(t))
	NoErr(t, "leader", err)
	for _, m := range clus.Members {
		st, err := cli.Status(ctx(t), m.Endpoint())
		NoErr(t, "status of "+m.Name, err)
		if st.Header.MemberId != m.ID {
			t.Errorf("status of %s: header member id %x, want %x", m.Name, st.Header.MemberId, m.ID)
		}
		v, verr := semver.NewVersion(st.Version)
		// Kubernetes' apiserver turns on watch progress requests (RequestWatchProgress, needed
		// by consistent reads from its watch cache) only for etcd >= 3.5.13 / 3.4.31.
		if verr != nil || v.LessThan(*semver.New("3.5.13")) {
			t.Errorf("status of %s: version %q (%v), want a semantic version >= 3.5.13", m.Name, st.Version, verr)
		}
		if st.Leader != clus.Members[leader].ID {
			t.Errorf("status of %s: leader %x, want %x (%s)", m.Name, st.Leader, clus.Members[leader].ID, clus.Members[leader].Name)
		}
		if st.RaftIndex == 0 || st.RaftTerm == 0 || st.RaftAppliedIndex == 0 || st.RaftAppliedIndex > st.RaftIndex {
			t.Errorf("status of %s: raft index %d, applied %d, term %d", m.Name, st.RaftIndex, st.RaftAppliedIndex, st.RaftTerm)
		}
		if st.DbSize <= 0 || st.DbSizeInUse <= 0 || st.DbSizeInUse > st.DbSize {
			t.Errorf("status of %s: db size %d, in use %d", m.Name, st.DbSize, st.DbSizeInUse)
		}
		if st.IsLearner || len(st.Errors) != 0 {
			t.Errorf("status of %s: learner %v, errors %v", m.Name, st.IsLearner, st.Errors)
		}
		t.Logf("%s: version %s leader %x raft index %d applied %d term %d db %d/%d", m.Name, st.Version, st.Leader, st.RaftIndex, st.RaftAppliedIndex, st.RaftTerm, st.DbSizeInUse, st.DbSize)
	}
}

// The harness itself: kill and restart a follower; the cluster keeps its leader and data.
func TestKillRestartFollower(t *testing.T) {
	cli := clus.Client(t)
	leader, err := clus.Leader(ctx(t))
	NoErr(t, "leader", err)
	f := (leader + 1) % 3
	NoErr(t, "kill", clus.Kill(f))
	put, err := cli.Put(ctx(t), Prefix(t)+"k", "v")
	NoErr(t, "put with a member down", err)
	NoErr(t, "restart", clus.Restart(f))
	one := clus.Client(t, clus.Members[f].Endpoint())
	resp, err := one.Get(ctx(t), Prefix(t)+"k")
	NoErr(t, "get on the restarted member", err)
	if len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != put.Header.Revision {
		t.Errorf("restarted member: %+v", resp.Kvs)
	}
}

// A member whose port another process took after it was found free: the cluster starts again
// on new ports.
func TestStartTriesNewPortsWhenAPortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	NoErr(t, "hold a port", err)
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	offered := 0
	pickPorts = func(n int) ([]int, error) {
		ports, err := freePorts(n)
		if offered == 0 && err == nil {
			ports[1] = taken // the first member's peer port
		}
		offered++
		return ports, err
	}
	defer func() { pickPorts = freePorts }()
	c, err := Start()
	NoErr(t, "start with a taken port", err)
	c.Stop()
	if offered != 2 {
		t.Fatalf("ports picked %d times, want 2 (the taken one, then new ones)", offered)
	}
}
