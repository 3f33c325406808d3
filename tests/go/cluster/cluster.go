// Package cluster starts a 3-member cluster of real server processes on free loopback ports,
// of either system, chosen by the environment:
//
//	TALLY_BIN=/path/to/tally   a Tally cluster (`tally server` with etcd's flags)
//	ETCD_BIN=/path/to/etcd     an etcd cluster (the reference)
//
// Both run with --heartbeat-interval 30 --election-timeout 150 and a 1 s watch progress
// notification interval (etcd 3.5's --experimental-watch-progress-notify-interval; Tally gets
// the flag only if its `server --help` lists it). Data lives in a temporary directory that is
// removed on Stop. Members can be killed with SIGKILL and restarted on the same data.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ProgressNotifyInterval is the interval passed to the servers' progress notification flag.
const ProgressNotifyInterval = time.Second

// ReadyTimeout is how long a fresh or restarted cluster may take to elect a leader.
const ReadyTimeout = 30 * time.Second

// Member is one server process.
type Member struct {
	Name       string
	ClientPort int
	PeerPort   int
	DataDir    string
	LogPath    string
	// ID is the member id the member reports in its response headers (set once it is ready).
	ID uint64

	cmd    *exec.Cmd
	done   chan struct{}
	killed bool
	// "https" in a TLS cluster, else "" (http).
	scheme string
}

// ClientURL is the member's client URL, http://127.0.0.1:port (https in a TLS cluster).
func (m *Member) ClientURL() string {
	return fmt.Sprintf("%s://127.0.0.1:%d", m.urlScheme(), m.ClientPort)
}

// PeerURL is the member's peer URL.
func (m *Member) PeerURL() string { return fmt.Sprintf("%s://127.0.0.1:%d", m.urlScheme(), m.PeerPort) }

func (m *Member) urlScheme() string {
	if m.scheme == "" {
		return "http"
	}
	return m.scheme
}

// Endpoint is host:port, the form clientv3 takes.
func (m *Member) Endpoint() string { return fmt.Sprintf("127.0.0.1:%d", m.ClientPort) }

// Running reports whether the member's process is alive (started and not killed or exited).
func (m *Member) Running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Cluster is a running 3-member cluster.
type Cluster struct {
	// Kind is "etcd" or "tally".
	Kind    string
	Bin     string
	Dir     string
	Members []*Member
	// ProgressNotify reports whether the servers were given the progress notification
	// interval flag (always for etcd; for Tally only if it lists the flag).
	ProgressNotify bool

	// TLS is how clients reach a TLS cluster's members (nil: plaintext).
	TLS *tls.Config
	// PKI made the TLS cluster's certificates.
	PKI *PKI

	extraArgs []string
	token     string
	mu        sync.Mutex
}

// Kind reports which system the environment selects ("etcd" or "tally") and its binary.
func Kind() (kind, bin string, err error) {
	tally, etcd := os.Getenv("TALLY_BIN"), os.Getenv("ETCD_BIN")
	switch {
	case tally != "" && etcd != "":
		return "", "", errors.New("set only one of TALLY_BIN and ETCD_BIN")
	case tally != "":
		kind, bin = "tally", tally
	case etcd != "":
		kind, bin = "etcd", etcd
	default:
		return "", "", errors.New("set TALLY_BIN=/path/to/tally or ETCD_BIN=/path/to/etcd (see tests/go/run.sh)")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return "", "", fmt.Errorf("%s: not a file (%v)", bin, err)
	}
	return kind, bin, nil
}

// IsTally reports whether the environment selects Tally.
func IsTally() bool { k, _, _ := Kind(); return k == "tally" }

// Start starts a 3-member cluster of the system the environment selects and waits until every
// member reports a leader.
func Start() (*Cluster, error) {
	return start(false)
}

// StartTLS is Start with TLS on every link and certificates required from clients and peers,
// with etcd's flags: --cert-file, --key-file, --trusted-ca-file, --client-cert-auth and their
// --peer- twins. Its clients present a certificate naming "root".
func StartTLS() (*Cluster, error) {
	return start(true)
}

// startAttempts bounds the fresh starts on new ports when a member found its port taken: other
// tests' clusters (go test runs packages at once) pick ports too, and one may bind a port
// between our finding it free and our member binding it.
const startAttempts = 3

// errPortTaken: a member could not bind a port found free a moment before.
var errPortTaken = errors.New("a member's port was taken meanwhile")

func start(withTLS bool) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := startOnce(withTLS)
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			return c, err
		}
	}
}

func startOnce(withTLS bool) (*Cluster, error) {
	kind, bin, err := Kind()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tally-go-"+kind+"-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Kind: kind, Bin: bin, Dir: dir, token: filepath.Base(dir)}
	scheme := ""
	if withTLS {
		scheme = "https"
		if err := c.setUpTLS(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	flag, ok := progressFlag(kind, bin)
	if ok {
		c.ProgressNotify = true
		c.extraArgs = append(c.extraArgs, flag+"="+ProgressNotifyInterval.String())
	}
	ports, err := pickPorts(6)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("n%d", i+1)
		c.Members = append(c.Members, &Member{
			Name:       name,
			ClientPort: ports[2*i],
			PeerPort:   ports[2*i+1],
			DataDir:    filepath.Join(dir, name),
			LogPath:    filepath.Join(dir, name+".log"),
			scheme:     scheme,
		})
	}
	for i := range c.Members {
		if err := c.spawn(i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitReady(ReadyTimeout); err != nil {
		if c.portTaken() {
			err = fmt.Errorf("%w: %v", errPortTaken, err)
		} else {
			c.DumpLogs(os.Stderr)
		}
		c.Stop()
		return nil, err
	}
	return c, nil
}

// exited lists the members that stopped without being killed.
func (c *Cluster) exited() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if !m.killed && !m.Running() {
			out = append(out, m)
		}
	}
	return out
}

// portTaken reports whether a member stopped because its port was in use.
func (c *Cluster) portTaken() bool {
	for _, m := range c.exited() {
		data, _ := os.ReadFile(m.LogPath)
		if strings.Contains(string(data), "ddress already in use") {
			return true
		}
	}
	return false
}

// StartT starts a cluster for one test and stops it when the test ends (printing the members'
// logs if the test failed).
func StartT(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start()
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.DumpLogs(os.Stderr)
		}
		c.Stop()
	})
	return c
}

// progressFlag finds the name of the progress notification interval flag the binary accepts.
func progressFlag(kind, bin string) (string, bool) {
	if kind == "etcd" {
		return "--experimental-watch-progress-notify-interval", true
	}
	out, _ := exec.Command(bin, "server", "--help").CombinedOutput()
	for _, f := range []string{"--experimental-watch-progress-notify-interval", "--watch-progress-notify-interval"} {
		if strings.Contains(string(out), f) {
			return f, true
		}
	}
	return "", false
}

// pickPorts is freePorts, or what a test puts in its place.
var pickPorts = freePorts

// freePorts finds n loopback ports free now, below the kernel's ephemeral range (32768 and
// up): a port from there (what binding port 0 gives) can be taken by an outgoing connection,
// a member's to its peers say, before its member binds it.
func freePorts(n int) ([]int, error) {
	const first, count = 20000, 12000
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	start := rand.IntN(count)
	for i := 0; i < count && len(ports) < n; i++ {
		port := first + (start+i)%count
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("only %d free loopback ports in %d..%d", len(ports), first, first+count)
	}
	return ports, nil
}

func (c *Cluster) initialCluster() string {
	var parts []string
	for _, m := range c.Members {
		parts = append(parts, m.Name+"="+m.PeerURL())
	}
	return strings.Join(parts, ",")
}

func (c *Cluster) args(m *Member) []string {
	var args []string
	if c.Kind == "tally" {
		args = append(args, "server")
	}
	args = append(args,
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL(),
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.PeerURL(),
		"--initial-advertise-peer-urls", m.PeerURL(),
		"--initial-cluster", c.initialCluster(),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", c.token,
		"--heartbeat-interval", "30",
		"--election-timeout", "150",
	)
	if c.Kind == "etcd" {
		args = append(args, "--log-level", "warn")
	}
	return append(args, c.extraArgs...)
}

func (c *Cluster) spawn(i int) error {
	m := c.Members[i]
	if m.Running() {
		return fmt.Errorf("member %s is already running", m.Name)
	}
	log, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	fmt.Fprintf(log, "==== %s %s\n", c.Bin, strings.Join(c.args(m), " "))
	cmd := exec.Command(c.Bin, c.args(m)...)
	cmd.Stdout, cmd.Stderr = log, log
	// etcd warns about every ETCD_* variable it does not know (ETCD_BIN among them).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "RUST_LOG=warn", "NO_COLOR=1")
	// Its own process group: a Ctrl-C of `go test` does not reach it twice, and Stop kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	m.cmd = cmd
	m.killed = false
	m.done = make(chan struct{})
	done := m.done
	go func() {
		cmd.Wait()
		close(done)
	}()
	return nil
}

// Endpoints are the client endpoints of all members (host:port).
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Endpoint())
	}
	return eps
}

// NewClient connects a client to the given endpoints (all members if none are given).
func (c *Cluster) NewClient(endpoints ...string) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		TLS:                  c.TLS,
	})
}

// Client is NewClient for a test: it fails the test on error and closes the client at its end.
func (c *Cluster) Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := c.NewClient(endpoints...)
	if err != nil {
		t.Fatalf("client for %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// memberStatus asks one member for its Status.
// setUpTLS makes the cluster's certificates and the flags that use them.
func (c *Cluster) setUpTLS() error {
	pki, err := NewPKI(c.Dir, "cluster")
	if err != nil {
		return err
	}
	cert, key, err := pki.Issue("member", "member")
	if err != nil {
		return err
	}
	clientCert, clientKey, err := pki.Issue("client-root", "root")
	if err != nil {
		return err
	}
	if c.TLS, err = pki.ClientConfig(clientCert, clientKey); err != nil {
		return err
	}
	c.PKI = pki
	c.extraArgs = append(c.extraArgs,
		"--cert-file", cert, "--key-file", key, "--trusted-ca-file", pki.CAFile, "--client-cert-auth",
		"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", pki.CAFile,
		"--peer-client-cert-auth")
	return nil
}

func memberStatus(ctx context.Context, m *Member, tlsConfig *tls.Config) (*clientv3.StatusResponse, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Endpoint())
	if err != nil {
		return nil, err
	}
	conn.Close()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.Endpoint()},
		DialTimeout: time.Second,
		Logger:      zap.NewNop(),
		TLS:         tlsConfig,
	})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cli.Status(sctx, m.Endpoint())
}

// WaitReady waits until every running member answers Status with a leader that is a running
// member, and records the members' ids.
func (c *Cluster) WaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := c.checkReady(ctx)
		if err == nil {
			return nil
		}
		if len(c.exited()) > 0 {
			// It will not come back by itself: no use waiting out the timeout.
			return fmt.Errorf("%s cluster not ready: %w", c.Kind, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s cluster not ready within %v: %w", c.Kind, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) checkReady(ctx context.Context) error {
	var leader uint64
	for _, m := range c.Members {
		if m.killed {
			continue
		}
		if !m.Running() {
			return fmt.Errorf("member %s is not running (see %s)", m.Name, m.LogPath)
		}
		st, err := memberStatus(ctx, m, c.TLS)
		if err != nil {
			return fmt.Errorf("member %s: %w", m.Name, err)
		}
		if st.Leader == 0 {
			return fmt.Errorf("member %s has no leader", m.Name)
		}
		if leader != 0 && st.Leader != leader {
			return fmt.Errorf("members disagree on the leader (%x, %x)", leader, st.Leader)
		}
		leader = st.Leader
		m.ID = st.Header.MemberId
	}
	for _, m := range c.Members {
		if m.ID == leader && m.Running() {
			return nil
		}
	}
	return fmt.Errorf("leader %x is not a running member", leader)
}

// Leader returns the index of the current leader, as the running members report it.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	var last error
	for ctx.Err() == nil {
		if err := c.checkReady(ctx); err != nil {
			last = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			st, err := memberStatus(ctx, m, c.TLS)
			if err != nil {
				last = err
				break
			}
			for i, x := range c.Members {
				if x.ID == st.Leader && x.Running() {
					return i, nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1, fmt.Errorf("no leader: %v (%v)", ctx.Err(), last)
}

// Kill sends member i SIGKILL and waits until it is gone.
func (c *Cluster) Kill(i int) error {
	m := c.Members[i]
	if !m.Running() {
		return fmt.Errorf("member %s is not running", m.Name)
	}
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-m.done
	m.killed = true
	return nil
}

// Restart starts a killed member again on its data directory and waits until the cluster is
// ready.
func (c *Cluster) Restart(i int) error {
	if err := c.spawn(i); err != nil {
		return err
	}
	return c.WaitReady(ReadyTimeout)
}

// Stop kills every member and removes the data directory.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		if m.Running() {
			m.cmd.Process.Signal(syscall.SIGKILL)
			<-m.done
		}
	}
	os.RemoveAll(c.Dir)
}

// DumpLogs writes the tail of every member's log.
func (c *Cluster) DumpLogs(w io.Writer) {
	for _, m := range c.Members {
		data, err := os.ReadFile(m.LogPath)
		if err != nil {
			continue
		}
		if len(data) > 6000 {
			data = data[len(data)-6000:]
		}
		fmt.Fprintf(w, "----- %s %s (tail) -----\n%s\n", c.Kind, m.LogPath, data)
	}
}

// Main is the body of a package's TestMain: it starts one cluster for the package's tests,
// hands it to set, runs the tests and stops the cluster.
func Main(m *testing.M, set func(*Cluster)) {
	run(m, set, Start)
}

// MainTLS is Main with a cluster from StartTLS.
func MainTLS(m *testing.M, set func(*Cluster)) {
	run(m, set, StartTLS)
}

func run(m *testing.M, set func(*Cluster), start func() (*Cluster, error)) {
	c, err := start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start cluster: %v\n", err)
		os.Exit(1)
	}
	set(c)
	code := m.Run()
	if code != 0 {
		c.DumpLogs(os.Stderr)
	}
	c.Stop()
	os.Exit(code)
}

// Prefix is a key prefix of the test's own, so tests sharing a cluster never see each other's
// keys: "/<TestName>/".
func Prefix(t testing.TB) string {
	return "/" + t.Name() + "/"
}

// Ctx is a context for one test step, canceled when the test ends or after d.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
