package kube

// Runs after every other test (go test runs files in name order): it kills cluster members.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// members runs the script's member control ($KUBE_TEST_MEMBERS start|kill NAME, leader, kill-leader).
func members(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(os.Getenv("KUBE_TEST_MEMBERS"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("members %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestMemberFailure: the leader is killed (SIGKILL) while a watch, an informer and writes go on
// through the apiserver; it is restarted, then the new leader (or another member) is killed, so
// that the restarted member must have caught up for the cluster to have a quorum; then it is
// restarted too. After each step every write is seen exactly once, in order, by the watch, the
// informer and a consistent list, and /readyz passes again.
func TestMemberFailure(t *testing.T) {
	if os.Getenv("KUBE_TEST_MEMBERS") == "" {
		t.Skip("KUBE_TEST_MEMBERS is not set")
	}
	ns := namespace(t)
	c, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cms := client.CoreV1().ConfigMaps(ns)
	list, err := cms.List(c, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(c, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	informer := factory.Core().V1().ConfigMaps().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, informer.HasSynced) {
		t.Fatal("informer did not sync")
	}

	var written []string
	lastRV := rv(t, list.ResourceVersion)
	// write creates n ConfigMaps, retrying what the apiserver could not do while etcd elected a
	// leader (a retried create that had in fact succeeded answers AlreadyExists).
	write := func(round string, n int) {
		t.Helper()
		start := time.Now()
		retries := 0
		for i := range n {
			name := fmt.Sprintf("%s-%02d", round, i)
			err := wait.PollUntilContextTimeout(c, 100*time.Millisecond, 60*time.Second, true, func(c context.Context) (bool, error) {
				_, err := cms.Create(c, configMap(name, nil, map[string]string{"round": round}), metav1.CreateOptions{})
				if err == nil || apierrors.IsAlreadyExists(err) {
					return true, nil
				}
				retries++
				t.Logf("create %s: %v (retrying)", name, err)
				return false, nil
			})
			if err != nil {
				t.Fatalf("create %s: no success within 60s", name)
			}
			written = append(written, name)
		}
		t.Logf("%s: %d creates in %v, %d retries", round, n, time.Since(start).Round(time.Millisecond), retries)
	}
	// check: the watch delivers the round's ADDED events in order, once; a consistent list and
	// the informer hold everything written.
	check := func(round string, n int) {
		t.Helper()
		for _, name := range written[len(written)-n:] {
			o := expect(t, w, watch.Added, name)
			r := rv(t, o.GetResourceVersion())
			if r <= lastRV {
				t.Fatalf("%s: ADDED %s at rv %d, not after %d", round, name, r, lastRV)
			}
			lastRV = r
		}
		l, err := cms.List(c, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("%s: list: %v", round, err)
		}
		var names []string
		for _, cm := range l.Items {
			names = append(names, cm.Name)
		}
		want := slices.Sorted(slices.Values(written))
		if !slices.Equal(names, want) {
			t.Fatalf("%s: list has %v, want %v", round, names, want)
		}
		err = wait.PollUntilContextTimeout(c, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return len(informer.GetStore().List()) == len(written), nil
		})
		if err != nil {
			t.Fatalf("%s: informer has %d objects, want %d", round, len(informer.GetStore().List()), len(written))
		}
		err = wait.PollUntilContextTimeout(c, 200*time.Millisecond, 60*time.Second, true, func(c context.Context) (bool, error) {
			body, err := client.RESTClient().Get().AbsPath("/readyz").DoRaw(c)
			return err == nil && string(body) == "ok", nil
		})
		if err != nil {
			body, _ := client.RESTClient().Get().AbsPath("/readyz").Param("verbose", "true").DoRaw(c)
			t.Fatalf("%s: /readyz does not pass:\n%s", round, body)
		}
	}

	write("healthy", 5)
	check("healthy", 5)

	first := members(t, "kill-leader")
	t.Logf("killed the leader %s", first)
	write("without-"+first, 10)
	check("without-"+first, 10)

	members(t, "start", first)
	second := members(t, "leader")
	if second == first {
		second = map[string]string{"m1": "m2", "m2": "m3", "m3": "m1"}[first]
	}
	// Give the restarted member a moment to catch up; the quorum needs it once second is gone.
	write("rejoined-"+first, 5)
	check("rejoined-"+first, 5)
	members(t, "kill", second)
	t.Logf("restarted %s, killed %s", first, second)
	write("without-"+second, 10)
	check("without-"+second, 10)

	members(t, "start", second)
	write("all-back", 5)
	check("all-back", 5)
	quiet(t, w, time.Second)
}
