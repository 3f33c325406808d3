// Package testserver replaces k8s.io/apiserver/pkg/storage/etcd3/testserver (through `go test
// -overlay`, see scripts/test-k8s) so that the apiserver's storage tests run against a cluster of
// external processes instead of an embedded etcd: Tally members (TALLY_BIN) or etcd members
// (ETCD_BIN). The exported API is that of the upstream file at k8s.io/apiserver v0.37.2:
// NewTestConfig and RunEtcd keep their signatures, and the fields the tests set on the
// *embed.Config (WatchProgressNotifyInterval, QuotaBackendBytes) become command-line flags.
//
// Every RunEtcd call starts a fresh cluster of K8S_MEMBERS members (default 3) on free loopback
// ports, in a new data directory under K8S_DATA_DIR (default /dev/shm when it exists), waits until
// it serves a linearizable read, and kills it (SIGKILL) and removes its data in t.Cleanup. A member
// that exits on its own while the test runs fails the test. Member logs go to
// $K8S_LOG_DIR/<test name>.<seq>/<member>.log when K8S_LOG_DIR is set (kept), else into the data
// directory (removed).
package testserver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
)

// getAvailablePorts returns count TCP ports on 127.0.0.1 that are free at the time of the call.
func getAvailablePorts(count int) ([]int, error) {
	ports := []int{}
	for i := 0; i < count; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("could not bind to a port: %v", err)
		}
		// It is possible but unlikely that someone else will bind this port before we get a chance to use it.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// NewTestConfig returns the configuration upstream's embedded server would use. Here only the
// fields a test may change matter (see RunEtcd); ports and directories are chosen by RunEtcd.
func NewTestConfig(t testing.TB) *embed.Config {
	cfg := embed.NewConfig()
	cfg.UnsafeNoFsync = true
	cfg.Dir = t.TempDir()
	return cfg
}

var autoPortLock sync.Mutex

type backend struct {
	kind string // "tally" or "etcd"
	bin  string
}

func selectBackend(t testing.TB) backend {
	if b := os.Getenv("TALLY_BIN"); b != "" {
		return backend{"tally", b}
	}
	if b := os.Getenv("ETCD_BIN"); b != "" {
		return backend{"etcd", b}
	}
	t.Fatal("testserver overlay: set TALLY_BIN or ETCD_BIN to the server binary to test against")
	return backend{}
}

func members() int {
	if s := os.Getenv("K8S_MEMBERS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 3
}

var (
	helpOnce sync.Once
	helpText string
)

// supports reports whether `bin server --help` lists flag, so that flags Tally learns later are
// passed to it without changing this file.
func supports(bin, flag string) bool {
	helpOnce.Do(func() {
		out, _ := exec.Command(bin, "server", "--help").CombinedOutput()
		helpText = string(out)
	})
	return strings.Contains(helpText, flag)
}

type member struct {
	name      string
	clientURL string
	peerURL   string
	dataDir   string
	logPath   string
	cmd       *exec.Cmd
	exited    chan struct{}
	exitErr   error
	logFile   *os.File
}

var (
	unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.=-]+`)
	clusterSeq atomic.Int64
)

// RunEtcd starts a fresh cluster (Tally or etcd, see the package comment) and returns a client
// connected to all its members. The cluster is killed and its data removed when the test ends.
func RunEtcd(t testing.TB, cfg *embed.Config) *kubernetes.Client {
	t.Helper()
	if cfg == nil {
		cfg = embed.NewConfig()
	}
	be := selectBackend(t)
	n := members()

	base := os.Getenv("K8S_DATA_DIR")
	if base == "" {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			base = "/dev/shm"
		}
	}
	root, err := os.MkdirTemp(base, "k8s-"+be.kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	logDir := root
	if d := os.Getenv("K8S_LOG_DIR"); d != "" {
		logDir = filepath.Join(d, fmt.Sprintf("%s.%d", unsafeName.ReplaceAllString(t.Name(), "_"), clusterSeq.Add(1)))
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Hold the lock from choosing ports until the members listen on them.
	autoPortLock.Lock()
	ports, err := getAvailablePorts(2 * n)
	if err != nil {
		autoPortLock.Unlock()
		t.Fatal(err)
	}
	ms := make([]*member, n)
	var initial []string
	for i := range ms {
		m := &member{
			name:      fmt.Sprintf("n%d", i+1),
			clientURL: (&url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2*i]))}).String(),
			peerURL:   (&url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2*i+1]))}).String(),
			exited:    make(chan struct{}),
		}
		m.dataDir = filepath.Join(root, m.name)
		m.logPath = filepath.Join(logDir, m.name+".log")
		initial = append(initial, m.name+"="+m.peerURL)
		ms[i] = m
	}

	var stopping sync.Mutex
	stopped := false
	var wg sync.WaitGroup
	t.Cleanup(func() {
		stopping.Lock()
		stopped = true
		stopping.Unlock()
		for _, m := range ms {
			if m.cmd != nil && m.cmd.Process != nil {
				_ = m.cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		wg.Wait()
		for _, m := range ms {
			if m.logFile != nil {
				m.logFile.Close()
			}
		}
		os.RemoveAll(root)
	})

	var notes []string
	for _, m := range ms {
		args := []string{
			"--name", m.name,
			"--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
		}
		progressFlag := "--experimental-watch-progress-notify-interval"
		switch be.kind {
		case "tally":
			args = append([]string{"server"}, args...)
			if cfg.WatchProgressNotifyInterval > 0 {
				if supports(be.bin, progressFlag) {
					args = append(args, progressFlag, cfg.WatchProgressNotifyInterval.String())
				} else if supports(be.bin, " --watch-progress-notify-interval") {
					args = append(args, "--watch-progress-notify-interval", cfg.WatchProgressNotifyInterval.String())
				} else if m == ms[0] {
					notes = append(notes, fmt.Sprintf("tally has no flag for WatchProgressNotifyInterval=%v; not set", cfg.WatchProgressNotifyInterval))
				}
			}
		case "etcd":
			args = append(args, "--unsafe-no-fsync", "--log-level", "warn")
			if cfg.WatchProgressNotifyInterval > 0 {
				args = append(args, progressFlag, cfg.WatchProgressNotifyInterval.String())
			}
			if cfg.QuotaBackendBytes > 0 {
				args = append(args, "--quota-backend-bytes", strconv.FormatInt(cfg.QuotaBackendBytes, 10))
			}
		}
		lf, err := os.Create(m.logPath)
		if err != nil {
			autoPortLock.Unlock()
			t.Fatal(err)
		}
		m.logFile = lf
		fmt.Fprintf(lf, "# %s %s\n", be.bin, strings.Join(args, " "))
		m.cmd = exec.Command(be.bin, args...)
		m.cmd.Stdout = lf
		m.cmd.Stderr = lf
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := m.cmd.Start(); err != nil {
			autoPortLock.Unlock()
			t.Fatalf("starting %s member %s: %v", be.kind, m.name, err)
		}
		wg.Add(1)
		go func(m *member) {
			defer wg.Done()
			m.exitErr = m.cmd.Wait()
			close(m.exited)
			stopping.Lock()
			defer stopping.Unlock()
			if !stopped {
				t.Errorf("%s member %s exited while the test ran: %v (log: %s)", be.kind, m.name, m.exitErr, m.logPath)
			}
		}(m)
	}
	for _, note := range notes {
		t.Log("testserver overlay: " + note)
	}

	endpoints := make([]string, n)
	for i, m := range ms {
		endpoints[i] = m.clientURL
	}
	// Wait until every member listens (so the ports are ours), then release the port lock.
	deadline := time.Now().Add(60 * time.Second)
	for _, m := range ms {
		host := strings.TrimPrefix(m.clientURL, "http://")
		for {
			c, err := net.DialTimeout("tcp", host, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-m.exited:
				autoPortLock.Unlock()
				t.Fatalf("%s member %s exited at start: %v (log: %s)", be.kind, m.name, m.exitErr, m.logPath)
			default:
			}
			if time.Now().After(deadline) {
				autoPortLock.Unlock()
				t.Fatalf("%s member %s did not listen on %s within 60s (log: %s)", be.kind, m.name, host, m.logPath)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	autoPortLock.Unlock()

	client, err := kubernetes.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })

	// Ready: every member answers a linearizable read (so a leader exists and each member has
	// applied the cluster's start), as upstream waits for ReadyNotify. The reads do not change
	// the revision.
	for _, ep := range endpoints {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 10 * time.Second,
			Logger: zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-ready")})
		if err != nil {
			t.Fatal(err)
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = c.Get(ctx, "/testserver-overlay-ready")
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("%s cluster not ready within 60s: %s: %v (logs: %s)", be.kind, ep, err, logDir)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
	}
	t.Logf("testserver overlay: %s cluster of %d ready at %s", be.kind, n, strings.Join(endpoints, ","))

	kubernetesRecorder := storagetesting.NewKubernetesRecorder(client.Kubernetes)
	client.KV = storagetesting.NewKVRecorder(client.KV, kubernetesRecorder)
	client.Kubernetes = kubernetesRecorder
	return client
}
