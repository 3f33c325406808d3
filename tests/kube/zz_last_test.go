package kube

// These run last (go test runs files in name order): they look at what the earlier tests did.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// TestCompaction: the apiserver's compactor (--etcd-compaction-interval, given to the test as
// KUBE_TEST_COMPACTION_INTERVAL) compacts the store; a list at a compacted resourceVersion then
// fails with 410 Gone, and everything else goes on working.
func TestCompaction(t *testing.T) {
	interval, err := time.ParseDuration(os.Getenv("KUBE_TEST_COMPACTION_INTERVAL"))
	if err != nil || interval <= 0 || interval > time.Minute {
		t.Skipf("KUBE_TEST_COMPACTION_INTERVAL=%q: no short compaction interval", os.Getenv("KUBE_TEST_COMPACTION_INTERVAL"))
	}
	c, ns := ctx(t), namespace(t)
	cms := client.CoreV1().ConfigMaps(ns)
	old, err := cms.Create(c, configMap("old", nil, map[string]string{"v": "0"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := cms.Patch(c, "old", types.MergePatchType, fmt.Appendf(nil, `{"data":{"v":"%d"}}`, i), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The compactor compacts, at each tick, to the revision it saw at the tick before; the watch
	// cache drops its snapshots within 15 s of that. So within 2 intervals + 15 s + slack.
	deadline := time.Now().Add(2*interval + 60*time.Second)
	start := time.Now()
	for {
		l, err := cms.List(c, metav1.ListOptions{ResourceVersion: old.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			t.Logf("list at rv %s: 410 after %v: %v", old.ResourceVersion, time.Since(start).Round(time.Second), err)
			break
		}
		if err != nil {
			t.Fatalf("list at exact rv %s: %v, want success or 410", old.ResourceVersion, err)
		}
		if len(l.Items) != 1 || l.Items[0].Data["v"] != "0" {
			t.Fatalf("list at exact rv %s before compaction: %v", old.ResourceVersion, l.Items)
		}
		if time.Now().After(deadline) {
			t.Fatalf("rv %s still readable %v later: the apiserver did not compact", old.ResourceVersion, time.Since(start).Round(time.Second))
		}
		time.Sleep(time.Second)
	}
	// The current state is intact and still watchable.
	got, err := cms.Get(c, "old", metav1.GetOptions{})
	if err != nil || got.Data["v"] != "3" {
		t.Fatalf("get after compaction: %v %v", got, err)
	}
	w, err := cms.Watch(c, metav1.ListOptions{ResourceVersion: got.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := cms.Create(c, configMap("new", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Added, "new")
	l, err := cms.List(c, metav1.ListOptions{Limit: 1})
	if err != nil || len(l.Items) != 1 || l.Continue == "" {
		t.Fatalf("paged list after compaction: %v %v", l, err)
	}
}

// TestStorageMetrics reads the apiserver's /metrics: consistent reads must have been served from
// the watch cache (which kube-apiserver enables only if every etcd endpoint reports >= 3.5.13 and so
// supports progress requests), without fallback or failure; the rest is logged for the report.
func TestStorageMetrics(t *testing.T) {
	body, err := client.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var served, bad float64
	report := map[string][]string{}
	names := []string{
		"apiserver_watch_cache_consistent_read_total",
		"apiserver_storage_consistency_checks_total",
		"etcd_request_errors_total",
		"etcd_bookmark_total",
		"apiserver_storage_list_duration_seconds_count",
		"apiserver_watch_cache_initializations_total",
		"apiserver_watch_cache_initialization_errors_total",
		"apiserver_storage_decode_errors_total",
	}
	scanner := bufio.NewScanner(bytes.NewReader(body))
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, name := range names {
			if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
				continue
			}
			report[name] = append(report[name], line)
			if name != "apiserver_watch_cache_consistent_read_total" {
				continue
			}
			v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			if strings.Contains(line, `success="true"`) && strings.Contains(line, `fallback="false"`) {
				served += v
			} else {
				bad += v
			}
		}
	}
	for _, name := range names {
		for _, line := range report[name] {
			switch name {
			case "etcd_bookmark_total", "apiserver_storage_list_duration_seconds_count":
				if !strings.Contains(line, `resource="configmaps"`) {
					continue
				}
			case "apiserver_watch_cache_initializations_total":
				// Once per cacher (serviceaccounts has two); more would mean a re-list, which
				// the apiserver also logs ("unexpected ListAndWatch error ... reinitializing").
				if strings.HasSuffix(line, " 1") || strings.Contains(line, `resource="serviceaccounts"} 2`) {
					continue
				}
			}
			t.Log(line)
		}
	}
	if served == 0 {
		t.Errorf("no consistent read was served from the watch cache")
	}
	if bad > 0 {
		t.Errorf("%v consistent reads from the watch cache fell back to etcd or failed", bad)
	}
	for _, line := range report["apiserver_watch_cache_initialization_errors_total"] {
		if !strings.HasSuffix(line, " 0") {
			t.Errorf("watch cache initialization errors: %s", line)
		}
	}
	for _, line := range report["apiserver_storage_consistency_checks_total"] {
		if strings.Contains(line, `status="failure"`) && !strings.HasSuffix(line, " 0") {
			t.Errorf("watch cache inconsistent with the store: %s", line)
		}
	}
}
