// zkload: a load generator for ZooKeeper's client protocol, through github.com/go-zookeeper/zk,
// for the ZooKeeper benchmark (bench/zk/compare): the same client drives Tally and ZooKeeper.
//
//	zkload -servers a:2181,b:2181,c:2181 -sessions 64 -inflight 4 -duration 3s [-pids 1,2,3] set
//	zkload ... create|set|get|mixed       # throughput and latency, JSON on stdout with -json
//	zkload ... -rounds 5 -leader-cmd CMD -pid-file 'DIR/pid-{index}' -restart-cmd CMD -ready-cmd CMD failover
//
// Sessions are spread over the servers: session i connects first to server i mod n (the list is
// not shuffled) and moves on to the next one in order when its connection breaks. Each session
// has -inflight goroutines issuing requests on it back to back, so up to that many requests are
// in flight per session (the client pipelines them on one connection; the server may or may not
// process them concurrently). Values are -value bytes (1 KiB by default). set, get and mixed
// use -keys znodes made beforehand; create makes new znodes (never deleted) under /zkbench/c.
//
// Counting starts after -warmup and lasts -duration: throughput is the requests completed in
// that window, latencies are those of the requests issued and completed in it, and the CPU per
// request is the CPU time the -pids (the servers) and this process used in the window, from
// /proc/PID/stat and getrusage, divided by the requests completed.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
)

var (
	servers        = flag.String("servers", "127.0.0.1:2181", "comma-separated host:port of every member")
	sessions       = flag.Int("sessions", 1, "ZooKeeper sessions (one TCP connection each)")
	inflight       = flag.Int("inflight", 1, "requests in flight per session")
	duration       = flag.Duration("duration", 3*time.Second, "measured time")
	warmup         = flag.Duration("warmup", 500*time.Millisecond, "load before measuring")
	valueSize      = flag.Int("value", 1024, "value size in bytes")
	keys           = flag.Int("keys", 1000, "znodes for set/get/mixed")
	readPct        = flag.Int("read-pct", 90, "mixed: percentage of gets (the rest are sets)")
	root           = flag.String("root", "/zkbench", "parent znode of everything this tool writes")
	sessionTimeout = flag.Duration("session-timeout", 4*time.Second, "session timeout asked for")
	backoff        = flag.Duration("retry-backoff", 10*time.Millisecond,
		"pause after trying every server without a session (go-zookeeper's own is 1s)")
	pidsFlag   = flag.String("pids", "", "comma-separated pids of the servers, for CPU per request")
	jsonOut    = flag.Bool("json", false, "print one JSON object instead of text")
	label      = flag.String("label", "", "copied into the JSON report")
	rounds     = flag.Int("rounds", 5, "failover: leader kills")
	writers    = flag.Int("writers", 4, "failover: sessions writing (one set in flight each)")
	leaderCmd  = flag.String("leader-cmd", "", "failover: shell command printing the leader's index (0-based)")
	pidFile    = flag.String("pid-file", "", "failover: the pid file of member {index}")
	restartCmd = flag.String("restart-cmd", "", "failover: shell command restarting member {index}")
	readyCmd   = flag.String("ready-cmd", "", "failover: shell command exiting 0 once every member is back and caught up")
	down       = flag.Duration("down", time.Second, "failover: how long the killed member stays down")
)

type quietLogger struct{ n atomic.Int64 }

func (l *quietLogger) Printf(string, ...interface{}) { l.n.Add(1) }

var zkLog = &quietLogger{}

// Sessions the servers ended (go-zookeeper then opens a new one by itself).
var expiredSessions atomic.Int64

// rotated is a HostProvider that starts at a given server and goes round the list in order,
// pausing -retry-backoff after a full turn without a session (instead of go-zookeeper's 1 s).
type rotated struct {
	mu      sync.Mutex
	servers []string
	next    int
	tried   int
}

func (r *rotated) Init([]string) error { return nil }
func (r *rotated) Len() int            { return len(r.servers) }
func (r *rotated) Connected() {
	r.mu.Lock()
	r.tried = 0
	r.mu.Unlock()
}
func (r *rotated) Next() (string, bool) {
	r.mu.Lock()
	if r.tried >= len(r.servers) {
		r.tried = 0
		r.mu.Unlock()
		time.Sleep(*backoff)
		r.mu.Lock()
	}
	s := r.servers[r.next%len(r.servers)]
	r.next++
	r.tried++
	r.mu.Unlock()
	return s, false
}

func connect(list []string, first int) (*zk.Conn, error) {
	hp := &rotated{servers: list, next: first}
	c, events, err := zk.Connect(list, *sessionTimeout, zk.WithHostProvider(hp), zk.WithLogger(zkLog),
		zk.WithLogInfo(false))
	if err != nil {
		return nil, err
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				go func() {
					for ev := range events {
						if ev.State == zk.StateExpired {
							expiredSessions.Add(1)
						}
					}
				}()
				return c, nil
			}
		case <-deadline:
			c.Close()
			return nil, fmt.Errorf("no session with %v within 15s", list)
		}
	}
}

func connectAll(list []string, n int) []*zk.Conn {
	conns := make([]*zk.Conn, n)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := connect(list, i%len(list))
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		fatal(firstErr)
	}
	return conns
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "zkload:", err)
	os.Exit(1)
}

func ensure(c *zk.Conn, path string, data []byte) {
	_, err := c.Create(path, data, 0, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		fatal(fmt.Errorf("create %s: %w", path, err))
	}
}

func keyPath(i int) string { return fmt.Sprintf("%s/k/%06d", *root, i) }

// prepare makes the root, the parent of created znodes and the -keys znodes, pipelined.
func prepare(c *zk.Conn, value []byte, nkeys int) {
	ensure(c, *root, nil)
	ensure(c, *root+"/k", nil)
	ensure(c, *root+"/c", nil)
	if nkeys == 0 {
		return
	}
	if ok, _, err := c.Exists(keyPath(nkeys - 1)); err == nil && ok {
		return // made by an earlier run
	}
	var wg sync.WaitGroup
	ch := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				ensure(c, keyPath(i), value)
			}
		}()
	}
	for i := 0; i < nkeys; i++ {
		ch <- i
	}
	close(ch)
	wg.Wait()
}

func cpuTicks(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + st
	}
	return total, nil
}

const clockTicks = 100 // sysconf(_SC_CLK_TCK) on Linux

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func parsePids() []int {
	var pids []int
	for _, p := range strings.Split(*pidsFlag, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				fatal(err)
			}
			pids = append(pids, n)
		}
	}
	return pids
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

type latency struct {
	P50, P90, P99, P999, Max, Mean float64
}

func summarize(lat []time.Duration) latency {
	if len(lat) == 0 {
		return latency{}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i]) / 1e6
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return latency{q(0.5), q(0.9), q(0.99), q(0.999), float64(lat[len(lat)-1]) / 1e6,
		float64(sum) / float64(len(lat)) / 1e6}
}

func runLoad(op string, list []string) {
	value := make([]byte, *valueSize)
	rand.Read(value)
	conns := connectAll(list, *sessions)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	nkeys := *keys
	if op == "create" {
		nkeys = 0
	}
	prepare(conns[0], value, nkeys)
	if op != "create" {
		// Every session's server has the keys before the run (reads are local).
		for _, c := range conns[:min(len(conns), len(list))] {
			if _, err := c.Sync(*root); err != nil {
				fatal(err)
			}
		}
	}
	run := time.Now().UnixNano() % 1e9
	pids := parsePids()

	var measuring, stop atomic.Bool
	var windowStart atomic.Int64
	type worker struct {
		lat    []time.Duration
		done   int64
		errs   int64
		errMsg string
	}
	workers := make([]*worker, *sessions**inflight)
	var wg sync.WaitGroup
	for s := 0; s < *sessions; s++ {
		for k := 0; k < *inflight; k++ {
			w := &worker{lat: make([]time.Duration, 0, 1<<14)}
			workers[s**inflight+k] = w
			wg.Add(1)
			go func(c *zk.Conn, s, k int, w *worker) {
				defer wg.Done()
				rng := rand.New(rand.NewSource(int64(s*1000 + k)))
				seq := 0
				for !stop.Load() {
					var err error
					start := time.Now()
					switch op {
					case "create":
						seq++
						_, err = c.Create(fmt.Sprintf("%s/c/%d-%d-%d-%d", *root, run, s, k, seq), value, 0,
							zk.WorldACL(zk.PermAll))
					case "set":
						_, err = c.Set(keyPath(rng.Intn(nkeys)), value, -1)
					case "get":
						_, _, err = c.Get(keyPath(rng.Intn(nkeys)))
					case "mixed":
						if rng.Intn(100) < *readPct {
							_, _, err = c.Get(keyPath(rng.Intn(nkeys)))
						} else {
							_, err = c.Set(keyPath(rng.Intn(nkeys)), value, -1)
						}
					}
					end := time.Now()
					if !measuring.Load() || start.UnixNano() < windowStart.Load() {
						continue
					}
					if err != nil {
						w.errs++
						w.errMsg = err.Error()
						time.Sleep(time.Millisecond)
						continue
					}
					w.done++
					w.lat = append(w.lat, end.Sub(start))
				}
			}(conns[s], s, k, w)
		}
	}
	time.Sleep(*warmup)
	load0 := loadAvg()
	cpu0, err := cpuTicks(pids)
	if err != nil {
		fatal(err)
	}
	self0 := selfCPU()
	t0 := time.Now()
	windowStart.Store(t0.UnixNano())
	measuring.Store(true)
	time.Sleep(*duration)
	measuring.Store(false)
	elapsed := time.Since(t0)
	cpu1, err := cpuTicks(pids)
	if err != nil {
		fatal(fmt.Errorf("a server exited during the run: %w", err))
	}
	self1 := selfCPU()
	stop.Store(true)
	wg.Wait()

	var all []time.Duration
	var done, errs int64
	lastErr := ""
	for _, w := range workers {
		all = append(all, w.lat...)
		done += w.done
		errs += w.errs
		if w.errMsg != "" {
			lastErr = w.errMsg
		}
	}
	lat := summarize(all)
	thr := float64(done) / elapsed.Seconds()
	serverUs := float64(cpu1-cpu0) / clockTicks * 1e6 / float64(max(done, 1))
	clientUs := float64(self1-self0) / 1e3 / float64(max(done, 1))
	rep := map[string]interface{}{
		"label": *label, "op": op, "sessions": *sessions, "inflight": *inflight, "value_bytes": *valueSize,
		"servers": list, "seconds": elapsed.Seconds(), "requests": done, "errors": errs, "last_error": lastErr,
		"throughput": thr,
		"latency_ms": map[string]float64{"p50": lat.P50, "p90": lat.P90, "p99": lat.P99, "p999": lat.P999,
			"max": lat.Max, "mean": lat.Mean},
		"server_cpu_us_per_req": serverUs, "client_cpu_us_per_req": clientUs,
		"server_cpu_s": float64(cpu1-cpu0) / clockTicks, "loadavg_before": load0, "loadavg_after": loadAvg(),
	}
	if *jsonOut {
		json.NewEncoder(os.Stdout).Encode(rep)
		return
	}
	fmt.Printf("%s %d sessions x %d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms, server CPU %.0f us/req, "+
		"client %.0f us/req, errors %d %s\n", op, *sessions, *inflight, thr, lat.P50, lat.P99, lat.Max, serverUs,
		clientUs, errs, lastErr)
}

func shell(cmd string, index int) (string, error) {
	cmd = strings.ReplaceAll(cmd, "{index}", strconv.Itoa(index))
	out, err := exec.Command("sh", "-c", cmd).Output()
	return strings.TrimSpace(string(out)), err
}

func waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := shell(*readyCmd, -1); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v (%s)", timeout, *readyCmd)
}

type foRound struct {
	Round      int     `json:"round"`
	Leader     int     `json:"leader"`
	FirstMs    float64 `json:"first_write_ms"`   // kill -> first write issued after the kill and acknowledged
	AllMs      float64 `json:"all_sessions_ms"`  // kill -> every writer session has had such a write
	MaxGapMs   float64 `json:"max_gap_ms"`       // longest gap between two acknowledged writes around the kill
	Failed     int64   `json:"failed_writes"`    // writes that returned an error during the round
	Expired    int64   `json:"sessions_expired"` // sessions ended by the server during the round
	NewLeader  int     `json:"new_leader"`       // as the leader command saw it once ready again
	LoadBefore string  `json:"loadavg_before"`
	KilledAt   string  `json:"killed_at"` // wall clock, to line up with the servers' logs
	// The killed leader's resident memory: the kernel unmaps it before it closes the dead
	// process's sockets, so the survivors see the connection reset that much later.
	LeaderRSSMB float64 `json:"leader_rss_mb"`
}

func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func runFailover(list []string) {
	if *leaderCmd == "" || *pidFile == "" || *restartCmd == "" || *readyCmd == "" {
		fatal(errors.New("failover needs -leader-cmd, -pid-file, -restart-cmd and -ready-cmd"))
	}
	value := make([]byte, *valueSize)
	rand.Read(value)
	if err := waitReady(60 * time.Second); err != nil {
		fatal(err)
	}
	conns := connectAll(list, *writers)
	prepare(conns[0], value, *writers)

	// Each writer sets its own znode back to back and records when every acknowledged write was
	// issued and acknowledged.
	type ack struct {
		issued, acked int64
	}
	var mu sync.Mutex
	var acks []ack
	lastAck := make([]atomic.Int64, *writers)
	var failed atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *zk.Conn) {
			defer wg.Done()
			for !stop.Load() {
				issued := time.Now().UnixNano()
				_, err := c.Set(keyPath(i), value, -1)
				acked := time.Now().UnixNano()
				if err != nil {
					failed.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				lastAck[i].Store(acked)
				mu.Lock()
				acks = append(acks, ack{issued, acked})
				mu.Unlock()
			}
		}(i, c)
	}
	steady := func() bool {
		now := time.Now().UnixNano()
		for i := range lastAck {
			if now-lastAck[i].Load() > int64(200*time.Millisecond) {
				return false
			}
		}
		return true
	}

	var results []foRound
	for r := 1; r <= *rounds; r++ {
		if err := waitReady(60 * time.Second); err != nil {
			fatal(err)
		}
		for t := time.Now(); !steady(); time.Sleep(10 * time.Millisecond) {
			if time.Since(t) > 30*time.Second {
				fatal(errors.New("writers not all acknowledged within 30s before a kill"))
			}
		}
		time.Sleep(300 * time.Millisecond)
		out, err := shell(*leaderCmd, -1)
		if err != nil {
			fatal(fmt.Errorf("leader command: %v (%s)", err, out))
		}
		leader, err := strconv.Atoi(out)
		if err != nil {
			fatal(fmt.Errorf("leader command printed %q", out))
		}
		pidText, err := os.ReadFile(strings.ReplaceAll(*pidFile, "{index}", strconv.Itoa(leader)))
		if err != nil {
			fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
		load := loadAvg()
		rss := rssMB(pid)
		failed0 := failed.Load()
		expired0 := expiredSessions.Load()
		mu.Lock()
		acks = acks[:0]
		mu.Unlock()
		kill := time.Now().UnixNano()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			fatal(fmt.Errorf("kill %d: %w", pid, err))
		}
		// Wait for every writer to have a write issued after the kill acknowledged.
		first, all := int64(0), int64(0)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, a := range acks {
				if a.issued > kill && (first == 0 || a.acked < first) {
					first = a.acked
				}
			}
			mu.Unlock()
			resumed := 0
			for i := range lastAck {
				if lastAck[i].Load() > kill {
					resumed++
				}
			}
			if resumed == len(lastAck) && first != 0 {
				all = time.Now().UnixNano()
				break
			}
			time.Sleep(time.Millisecond)
		}
		// The largest gap between consecutive acknowledgements from just before the kill on.
		mu.Lock()
		ts := []int64{kill}
		for _, a := range acks {
			ts = append(ts, a.acked)
		}
		mu.Unlock()
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		var gap int64
		for i := 1; i < len(ts); i++ {
			if ts[i-1] >= kill && ts[i]-ts[i-1] > gap {
				gap = ts[i] - ts[i-1]
			}
		}
		res := foRound{Round: r, Leader: leader, LoadBefore: load, MaxGapMs: float64(gap) / 1e6,
			KilledAt: time.Unix(0, kill).UTC().Format("15:04:05.000000"), LeaderRSSMB: rss}
		if first != 0 {
			res.FirstMs = float64(first-kill) / 1e6
		}
		if all != 0 {
			res.AllMs = float64(all-kill) / 1e6
		}
		time.Sleep(*down)
		if out, err := shell(*restartCmd, leader); err != nil {
			fatal(fmt.Errorf("restart: %v (%s)", err, out))
		}
		if err := waitReady(60 * time.Second); err != nil {
			fatal(err)
		}
		res.Failed = failed.Load() - failed0
		res.Expired = expiredSessions.Load() - expired0
		if out, err := shell(*leaderCmd, -1); err == nil {
			res.NewLeader, _ = strconv.Atoi(out)
		}
		results = append(results, res)
		fmt.Fprintf(os.Stderr, "round %d: leader %d killed; first write after %.1f ms, all %d writers after %.1f ms; "+
			"failed writes %d, expired sessions %d (leader RSS %.0f MB, killed at %s UTC, load %s)\n", r, leader,
			res.FirstMs, *writers, res.AllMs, res.Failed, res.Expired, rss, res.KilledAt, load)
	}
	stop.Store(true)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"label": *label, "writers": *writers, "session_timeout_ms": sessionTimeout.Milliseconds(),
		"retry_backoff_ms": backoff.Milliseconds(), "rounds": results,
	})
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: zkload [flags] create|set|get|mixed|failover")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	list := strings.Split(*servers, ",")
	switch op := flag.Arg(0); op {
	case "create", "set", "get", "mixed":
		runLoad(op, list)
	case "failover":
		runFailover(list)
	default:
		flag.Usage()
		os.Exit(2)
	}
}
