// Package kube drives a real kube-apiserver, itself backed by a Tally (or etcd) cluster, with
// client-go: objects are created, listed (with pagination), watched (from a resourceVersion and
// as a watch-list stream), updated (with conflicts), deleted and checked at each step.
//
// The apiserver is started by scripts/test-kube-apiserver, which passes it in the environment:
//
//	KUBE_TEST_SERVER  https://127.0.0.1:PORT
//	KUBE_TEST_TOKEN   a bearer token of the apiserver's --token-auth-file
//	KUBE_TEST_CA      optional: the CA bundle of the serving certificate (else TLS is not verified)
//	KUBE_TEST_COMPACTION_INTERVAL  the apiserver's --etcd-compaction-interval (TestCompaction)
//	KUBE_TEST_MEMBERS  the script's member control: start|kill NAME, leader, kill-leader (TestMemberFailure)
//
// Tests that need the last two skip without them. The tests run in file order: zz_last_test.go
// and zzz_failover_test.go look at, and disturb, what the others leave.
package kube

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var (
	config *rest.Config
	client *kubernetes.Clientset
	dyn    *dynamic.DynamicClient
)

func TestMain(m *testing.M) {
	server := os.Getenv("KUBE_TEST_SERVER")
	if server == "" {
		fmt.Fprintln(os.Stderr, "KUBE_TEST_SERVER is not set: run scripts/test-kube-apiserver")
		os.Exit(2)
	}
	ca := os.Getenv("KUBE_TEST_CA")
	config = &rest.Config{
		Host:            server,
		BearerToken:     os.Getenv("KUBE_TEST_TOKEN"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: ca, Insecure: ca == ""},
		QPS:             200,
		Burst:           400,
		Timeout:         30 * time.Second,
	}
	var err error
	if client, err = kubernetes.NewForConfig(config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if dyn, err = dynamic.NewForConfig(config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// ctx is a test's context with a deadline.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// namespace creates a fresh namespace for the test; it is deleted (it stays Terminating, as no
// namespace controller runs) when the test ends.
func namespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("%s-%04x", strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), rand.IntN(1<<16))
	name = strings.ReplaceAll(name, "/", "-")
	ns, err := client.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	if ns.Status.Phase != corev1.NamespaceActive {
		t.Fatalf("namespace %s: phase %q, want Active", name, ns.Status.Phase)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.CoreV1().Namespaces().Delete(c, name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return name
}

func configMap(name string, labels map[string]string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Data: data}
}

// rv parses a resourceVersion (etcd's mod revision) so that they can be compared.
func rv(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 {
		t.Fatalf("resourceVersion %q is not a positive integer", s)
	}
	return n
}

// next waits for the next event of a watch (skipping bookmarks unless wantBookmarks).
func next(t *testing.T, w watch.Interface, wantBookmarks bool) watch.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed while an event was expected")
			}
			if ev.Type == watch.Error {
				t.Fatalf("watch error: %v", apierrors.FromObject(ev.Object))
			}
			if ev.Type == watch.Bookmark && !wantBookmarks {
				continue
			}
			return ev
		case <-timeout:
			t.Fatalf("no watch event within 30s")
		}
	}
}

// expect waits for the next event and checks its type and object name; it returns the object.
func expect(t *testing.T, w watch.Interface, typ watch.EventType, name string) metav1.Object {
	t.Helper()
	ev := next(t, w, false)
	obj, err := metaOf(ev.Object)
	if err != nil {
		t.Fatalf("event %s: %v", ev.Type, err)
	}
	if ev.Type != typ || obj.GetName() != name {
		t.Fatalf("got event %s %s (rv %s), want %s %s", ev.Type, obj.GetName(), obj.GetResourceVersion(), typ, name)
	}
	return obj
}

// quiet checks that a watch delivers nothing (but bookmarks) for d.
func quiet(t *testing.T, w watch.Interface, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed")
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			obj, _ := metaOf(ev.Object)
			name := ""
			if obj != nil {
				name = obj.GetName()
			}
			t.Fatalf("unexpected event %s %s", ev.Type, name)
		case <-timeout:
			return
		}
	}
}
