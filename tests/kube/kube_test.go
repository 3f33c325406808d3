package kube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

func metaOf(obj runtime.Object) (metav1.Object, error) { return meta.Accessor(obj) }

// TestHealth: /readyz, /livez and /healthz pass, with their etcd checks, and /version is 1.37.
func TestHealth(t *testing.T) {
	c := ctx(t)
	for _, path := range []string{"/readyz", "/livez", "/healthz"} {
		body, err := client.RESTClient().Get().AbsPath(path).Param("verbose", "true").DoRaw(c)
		if err != nil {
			t.Fatalf("GET %s?verbose: %v\n%s", path, err, body)
		}
		text := string(body)
		if !strings.Contains(text, "[+]etcd ok") {
			t.Errorf("GET %s?verbose has no [+]etcd ok:\n%s", path, text)
		}
		if path == "/readyz" && !strings.Contains(text, "[+]etcd-readiness ok") {
			t.Errorf("GET /readyz?verbose has no [+]etcd-readiness ok:\n%s", text)
		}
		if !strings.Contains(text, "check passed") {
			t.Errorf("GET %s?verbose did not pass:\n%s", path, text)
		}
	}
	for _, path := range []string{"/readyz/etcd", "/readyz/etcd-readiness", "/livez/etcd", "/healthz/etcd"} {
		body, err := client.RESTClient().Get().AbsPath(path).DoRaw(c)
		if err != nil || string(body) != "ok" {
			t.Errorf("GET %s: %q, %v", path, body, err)
		}
	}
	v, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != "1" || v.Minor != "37" {
		t.Errorf("server version %s.%s (%s), want 1.37", v.Major, v.Minor, v.GitVersion)
	}
	t.Logf("kube-apiserver %s", v.GitVersion)
}

// TestConfigMapLifecycle: create, get, duplicate create (409), update, stale update (409 Conflict),
// patch, unconditional update, delete with preconditions, get and delete after delete (404).
func TestConfigMapLifecycle(t *testing.T) {
	c, ns := ctx(t), namespace(t)
	cms := client.CoreV1().ConfigMaps(ns)

	created, err := cms.Create(c, configMap("a", map[string]string{"app": "x"}, map[string]string{"k": "v1"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() {
		t.Fatalf("created object lacks uid/resourceVersion/creationTimestamp: %+v", created.ObjectMeta)
	}
	got, err := cms.Get(c, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created.ResourceVersion || got.UID != created.UID || got.Data["k"] != "v1" {
		t.Fatalf("get: %+v %v, want rv %s uid %s data k=v1", got.ObjectMeta, got.Data, created.ResourceVersion, created.UID)
	}
	// A get from the watch cache (resourceVersion=0) sees the object too.
	if cached, err := cms.Get(c, "a", metav1.GetOptions{ResourceVersion: "0"}); err != nil || cached.UID != created.UID {
		t.Fatalf("get rv=0: %v %v", cached, err)
	}

	_, err = cms.Create(c, configMap("a", nil, nil), metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		t.Fatalf("duplicate create: %v, want AlreadyExists (409)", err)
	}

	stale := got.DeepCopy()
	got.Data["k"] = "v2"
	updated, err := cms.Update(c, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rv(t, updated.ResourceVersion) <= rv(t, created.ResourceVersion) || updated.Data["k"] != "v2" {
		t.Fatalf("update: rv %s (was %s), data %v", updated.ResourceVersion, created.ResourceVersion, updated.Data)
	}

	stale.Data["k"] = "lost"
	_, err = cms.Update(c, stale, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("update with stale resourceVersion %s: %v, want Conflict (409)", stale.ResourceVersion, err)
	}
	if status, ok := err.(apierrors.APIStatus); !ok || status.Status().Code != 409 {
		t.Fatalf("stale update: %#v, want code 409", err)
	}

	patched, err := cms.Patch(c, "a", types.MergePatchType, []byte(`{"data":{"p":"1"},"metadata":{"labels":{"patched":"yes"}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if patched.Data["k"] != "v2" || patched.Data["p"] != "1" || patched.Labels["patched"] != "yes" {
		t.Fatalf("patch: %v %v", patched.Labels, patched.Data)
	}
	// A JSON patch with a failing test op is rejected and changes nothing.
	_, err = cms.Patch(c, "a", types.JSONPatchType, []byte(`[{"op":"test","path":"/data/k","value":"nope"},{"op":"remove","path":"/data/k"}]`), metav1.PatchOptions{})
	if err == nil {
		t.Fatalf("json patch with a failing test op succeeded")
	}

	// ConfigMaps allow unconditional updates: no resourceVersion, last writer wins.
	unconditional := configMap("a", nil, map[string]string{"k": "v3"})
	unconditional.Namespace = ns
	final, err := cms.Update(c, unconditional, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("unconditional update: %v", err)
	}
	if final.Data["k"] != "v3" || final.UID != created.UID {
		t.Fatalf("unconditional update: %v uid %s", final.Data, final.UID)
	}

	// Server-side apply creates and updates, with its managed fields.
	applied, err := cms.Patch(c, "b", types.ApplyPatchType, []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"},"data":{"x":"1"}}`), metav1.PatchOptions{FieldManager: "tally-test"})
	if err != nil {
		t.Fatalf("server-side apply (create): %v", err)
	}
	if applied.Data["x"] != "1" || len(applied.ManagedFields) == 0 {
		t.Fatalf("apply: %v, managed fields %v", applied.Data, applied.ManagedFields)
	}

	err = cms.Delete(c, "a", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: ptr.To(updated.ResourceVersion)}})
	if !apierrors.IsConflict(err) {
		t.Fatalf("delete with stale resourceVersion precondition: %v, want Conflict", err)
	}
	err = cms.Delete(c, "a", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("00000000-0000-0000-0000-000000000000"))}})
	if !apierrors.IsConflict(err) {
		t.Fatalf("delete with wrong uid precondition: %v, want Conflict", err)
	}
	if err := cms.Delete(c, "a", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &created.UID, ResourceVersion: &final.ResourceVersion}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := cms.Get(c, "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v, want NotFound", err)
	}
	if err := cms.Delete(c, "a", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("second delete: %v, want NotFound", err)
	}
	if _, err := cms.Update(c, final, metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("update after delete: %v, want NotFound", err)
	}
}

// TestListPagination: 25 ConfigMaps read 10 at a time with limit/continue; a write between pages
// is not seen (all pages are one snapshot); lists at an exact resourceVersion, from the cache
// (resourceVersion=0), with label and field selectors; DeleteCollection.
func TestListPagination(t *testing.T) {
	c, ns := ctx(t), namespace(t)
	cms := client.CoreV1().ConfigMaps(ns)
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("cm-%02d", i)
		want = append(want, name)
		labels := map[string]string{"set": "page", "parity": []string{"even", "odd"}[i%2]}
		if _, err := cms.Create(c, configMap(name, labels, map[string]string{"i": fmt.Sprint(i)}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	var names []string
	opts := metav1.ListOptions{Limit: 10}
	var firstRV string
	for page := 0; ; page++ {
		list, err := cms.List(c, opts)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, cm := range list.Items {
			names = append(names, cm.Name)
		}
		wantLen, wantRemaining := 10, int64(25-10*(page+1))
		if page == 2 {
			wantLen, wantRemaining = 5, 0
		}
		if len(list.Items) != wantLen {
			t.Fatalf("page %d: %d items, want %d", page, len(list.Items), wantLen)
		}
		if page < 2 && (list.RemainingItemCount == nil || *list.RemainingItemCount != wantRemaining) {
			t.Fatalf("page %d: remainingItemCount %v, want %d", page, list.RemainingItemCount, wantRemaining)
		}
		if page == 0 {
			firstRV = list.ResourceVersion
			// Written between pages: must not show up in the later pages.
			if _, err := cms.Create(c, configMap("cm-99", nil, nil), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		} else if list.ResourceVersion != firstRV {
			t.Fatalf("page %d at resourceVersion %s, first page at %s", page, list.ResourceVersion, firstRV)
		}
		if list.Continue == "" {
			if page != 2 {
				t.Fatalf("pagination ended after page %d", page)
			}
			break
		}
		opts.Continue = list.Continue
	}
	if !slices.Equal(names, want) {
		t.Fatalf("paged names %v, want %v", names, want)
	}

	// Whole list now: 26, and sorted by name (etcd key order).
	all, err := cms.List(c, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 26 || rv(t, all.ResourceVersion) <= rv(t, firstRV) {
		t.Fatalf("full list: %d items at rv %s (paged at %s), want 26 after it", len(all.Items), all.ResourceVersion, firstRV)
	}
	if !sort.SliceIsSorted(all.Items, func(i, j int) bool { return all.Items[i].Name < all.Items[j].Name }) {
		t.Fatalf("full list not sorted by name")
	}

	// The list at the first page's revision, exactly: 25 without cm-99; paged too.
	exact, err := cms.List(c, metav1.ListOptions{ResourceVersion: firstRV, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if err != nil {
		t.Fatalf("list at exact resourceVersion %s: %v", firstRV, err)
	}
	if len(exact.Items) != 25 || exact.ResourceVersion != firstRV {
		t.Fatalf("list at exact rv %s: %d items at rv %s, want 25", firstRV, len(exact.Items), exact.ResourceVersion)
	}
	exactPage, err := cms.List(c, metav1.ListOptions{ResourceVersion: firstRV, ResourceVersionMatch: metav1.ResourceVersionMatchExact, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(exactPage.Items) != 20 || exactPage.Continue == "" {
		t.Fatalf("paged list at exact rv: %d items, continue %q", len(exactPage.Items), exactPage.Continue)
	}
	rest, err := cms.List(c, metav1.ListOptions{Continue: exactPage.Continue, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Items) != 5 || rest.Continue != "" {
		t.Fatalf("second page at exact rv: %d items, continue %q", len(rest.Items), rest.Continue)
	}

	// NotOlderThan and resourceVersion=0 (any, from the watch cache).
	for _, o := range []metav1.ListOptions{
		{ResourceVersion: firstRV, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan},
		{ResourceVersion: "0"},
	} {
		l, err := cms.List(c, o)
		if err != nil {
			t.Fatalf("list %+v: %v", o, err)
		}
		if len(l.Items) < 25 {
			t.Fatalf("list %+v: %d items", o, len(l.Items))
		}
	}

	// Selectors, also paged.
	odd, err := cms.List(c, metav1.ListOptions{LabelSelector: "set=page,parity=odd", Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	count := len(odd.Items)
	for odd.Continue != "" {
		if odd, err = cms.List(c, metav1.ListOptions{LabelSelector: "set=page,parity=odd", Limit: 5, Continue: odd.Continue}); err != nil {
			t.Fatal(err)
		}
		count += len(odd.Items)
	}
	if count != 12 {
		t.Fatalf("label selector parity=odd: %d items, want 12", count)
	}
	one, err := cms.List(c, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "cm-07").String()})
	if err != nil || len(one.Items) != 1 || one.Items[0].Data["i"] != "7" {
		t.Fatalf("field selector: %v %v", one, err)
	}

	// Across namespaces, paged: at least our 26.
	crossCount := 0
	cross := metav1.ListOptions{Limit: 50, LabelSelector: "set=page"}
	for {
		l, err := client.CoreV1().ConfigMaps("").List(c, cross)
		if err != nil {
			t.Fatal(err)
		}
		crossCount += len(l.Items)
		if l.Continue == "" {
			break
		}
		cross.Continue = l.Continue
	}
	if crossCount < 25 {
		t.Fatalf("all-namespace list: %d items with set=page", crossCount)
	}

	if err := cms.DeleteCollection(c, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "parity=even"}); err != nil {
		t.Fatal(err)
	}
	left, err := cms.List(c, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// 12 odd, cm-99, and the kube-root-ca.crt ConfigMap is not made (no controller-manager).
	if len(left.Items) != 13 {
		t.Fatalf("after DeleteCollection parity=even: %d left, want 13", len(left.Items))
	}
}

// TestWatch: a watch from a list's resourceVersion sees create/update/delete in order; a second
// watch from the same resourceVersion replays them; a watch without one starts with the current
// state; selectors filter.
func TestWatch(t *testing.T) {
	c, ns := ctx(t), namespace(t)
	cms := client.CoreV1().ConfigMaps(ns)
	if _, err := cms.Create(c, configMap("before", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := cms.List(c, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := list.ResourceVersion

	w, err := cms.Watch(c, metav1.ListOptions{ResourceVersion: start})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	sel, err := cms.Watch(c, metav1.ListOptions{ResourceVersion: start, LabelSelector: "watch=me"})
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Stop()

	a, err := cms.Create(c, configMap("a", map[string]string{"watch": "me"}, map[string]string{"n": "1"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(c, configMap("b", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.Data["n"] = "2"
	a2, err := cms.Update(c, a, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(c, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	check := func(w watch.Interface, withB bool) {
		t.Helper()
		var last int64
		step := func(o metav1.Object) {
			t.Helper()
			r := rv(t, o.GetResourceVersion())
			if r <= last || r <= rv(t, start) {
				t.Fatalf("event rv %d not after %d (start %s)", r, last, start)
			}
			last = r
		}
		o := expect(t, w, watch.Added, "a")
		if o.GetResourceVersion() != a.ResourceVersion {
			t.Fatalf("ADDED a at rv %s, created at %s", o.GetResourceVersion(), a.ResourceVersion)
		}
		step(o)
		if withB {
			step(expect(t, w, watch.Added, "b"))
		}
		o = expect(t, w, watch.Modified, "a")
		if o.GetResourceVersion() != a2.ResourceVersion {
			t.Fatalf("MODIFIED a at rv %s, updated at %s", o.GetResourceVersion(), a2.ResourceVersion)
		}
		step(o)
		step(expect(t, w, watch.Deleted, "a"))
	}
	check(w, true)
	check(sel, false)

	// Replay from the same resourceVersion, after the fact.
	replay, err := cms.Watch(c, metav1.ListOptions{ResourceVersion: start})
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Stop()
	check(replay, true)
	quiet(t, replay, time.Second)

	// From resourceVersion "" : synthetic ADDED for what exists now (before, b), then live events.
	now, err := cms.Watch(c, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer now.Stop()
	var initial []string
	for range 2 {
		ev := next(t, now, false)
		o, _ := metaOf(ev.Object)
		if ev.Type != watch.Added {
			t.Fatalf("initial event %s %s, want ADDED", ev.Type, o.GetName())
		}
		initial = append(initial, o.GetName())
	}
	sort.Strings(initial)
	if !slices.Equal(initial, []string{"b", "before"}) {
		t.Fatalf("initial events for %v, want [b before]", initial)
	}
	if _, err := cms.Create(c, configMap("c", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, now, watch.Added, "c")

	// A single object, by field selector.
	one, err := cms.Watch(c, metav1.ListOptions{FieldSelector: "metadata.name=c", ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Stop()
	expect(t, one, watch.Added, "c")
	if _, err := cms.Patch(c, "b", types.MergePatchType, []byte(`{"data":{"x":"y"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Patch(c, "c", types.MergePatchType, []byte(`{"data":{"x":"y"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, one, watch.Modified, "c")

	// A resourceVersion far in the future is refused rather than served: the apiserver waits for
	// its watch cache to catch up, then answers "Too large resource version" (with a Retry-After,
	// so this asks with plain HTTP: client-go would retry it ten times).
	future := fmt.Sprint(rv(t, start) + 1_000_000)
	httpClient, err := rest.HTTPClientFor(config)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("%s/api/v1/namespaces/%s/configmaps?resourceVersion=%s&resourceVersionMatch=NotOlderThan", config.Host, ns, future)
	req, _ := http.NewRequestWithContext(c, http.MethodGet, url, nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || !strings.Contains(string(body), "Too large resource version") {
		t.Fatalf("list not older than rv %s (future): %s %s", future, resp.Status, body)
	}
	t.Logf("list at a future rv: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
}

// TestWatchList: sendInitialEvents=true streams the current objects as ADDED events, then a
// BOOKMARK annotated k8s.io/initial-events-end; then live events. And a client-go informer (which
// uses watch-list by default in client-go 1.35+) syncs and follows changes.
func TestWatchList(t *testing.T) {
	c, ns := ctx(t), namespace(t)
	cms := client.CoreV1().ConfigMaps(ns)
	var last string
	for i := range 5 {
		cm, err := cms.Create(c, configMap(fmt.Sprintf("w%d", i), nil, nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = cm.ResourceVersion
	}
	w, err := cms.Watch(c, metav1.ListOptions{
		SendInitialEvents:    ptr.To(true),
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		AllowWatchBookmarks:  true,
	})
	if err != nil {
		t.Fatalf("watch-list: %v", err)
	}
	defer w.Stop()
	var names []string
	for {
		ev := next(t, w, true)
		o, err := metaOf(ev.Object)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == watch.Bookmark {
			if o.GetAnnotations()[metav1.InitialEventsAnnotationKey] != "true" {
				t.Fatalf("bookmark before the end of the initial events: %v", o.GetAnnotations())
			}
			if rv(t, o.GetResourceVersion()) < rv(t, last) {
				t.Fatalf("initial-events-end bookmark at rv %s, before the last write %s", o.GetResourceVersion(), last)
			}
			t.Logf("initial-events-end bookmark at rv %s (last write %s)", o.GetResourceVersion(), last)
			break
		}
		if ev.Type != watch.Added {
			t.Fatalf("initial event %s %s, want ADDED", ev.Type, o.GetName())
		}
		names = append(names, o.GetName())
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"w0", "w1", "w2", "w3", "w4"}) {
		t.Fatalf("initial events for %v", names)
	}
	if err := cms.Delete(c, "w2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Deleted, "w2")

	// An informer.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	informer := factory.Core().V1().ConfigMaps().Informer()
	events := make(chan string, 100)
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { events <- "add " + o.(*corev1.ConfigMap).Name },
		UpdateFunc: func(_, o any) { events <- "update " + o.(*corev1.ConfigMap).Name },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			events <- "delete " + o.(*corev1.ConfigMap).Name
		},
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, informer.HasSynced) {
		t.Fatal("informer did not sync")
	}
	if n := len(informer.GetStore().List()); n != 4 {
		t.Fatalf("informer store: %d objects, want 4", n)
	}
	for range 4 {
		<-events
	}
	if _, err := cms.Create(c, configMap("w9", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Patch(c, "w0", types.MergePatchType, []byte(`{"data":{"a":"b"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(c, "w1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"add w9", "update w0", "delete w1"} {
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("informer event %q, want %q", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("informer: no %q within 30s", want)
		}
	}
}

// TestDeployment: apps/v1 Deployment create, scale subresource, status subresource, generation,
// conflict on a stale update, delete. And a Service (its ClusterIP allocated by the apiserver,
// which stores an IPAddress object) and a Secret.
func TestDeployment(t *testing.T) {
	c, ns := ctx(t), namespace(t)
	deps := client.AppsV1().Deployments(ns)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	created, err := deps.Create(c, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Generation != 1 {
		t.Fatalf("generation %d, want 1", created.Generation)
	}
	scale, err := deps.GetScale(c, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if scale.Spec.Replicas != 2 {
		t.Fatalf("scale: %d replicas", scale.Spec.Replicas)
	}
	if _, err := deps.UpdateScale(c, "web", &autoscalingv1.Scale{ObjectMeta: scale.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The scale's resourceVersion is now stale.
	if _, err := deps.UpdateScale(c, "web", &autoscalingv1.Scale{ObjectMeta: scale.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: 4}}, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale scale update: %v, want Conflict", err)
	}
	got, err := deps.Get(c, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Replicas != 3 || got.Generation != 2 {
		t.Fatalf("after scale: replicas %d generation %d, want 3 and 2", *got.Spec.Replicas, got.Generation)
	}
	got.Status.ObservedGeneration = got.Generation
	got.Status.Replicas = 3
	st, err := deps.UpdateStatus(c, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.Replicas != 3 || st.Generation != 2 {
		t.Fatalf("status update: %+v generation %d", st.Status, st.Generation)
	}
	got.Spec.Template.Spec.Containers[0].Image = "registry.k8s.io/pause:3.9"
	if _, err := deps.Update(c, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update with the resourceVersion before the status update: %v, want Conflict", err)
	}
	st.Spec.Template.Spec.Containers[0].Image = "registry.k8s.io/pause:3.9"
	up, err := deps.Update(c, st, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if up.Generation != 3 || up.Status.Replicas != 3 {
		t.Fatalf("update: generation %d status %+v", up.Generation, up.Status)
	}
	if err := deps.Delete(c, "web", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	if _, err := deps.Get(c, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}

	// A Service: the apiserver allocates its ClusterIP.
	svc, err := client.CoreV1().Services(ns).Create(c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == "None" {
		t.Fatalf("service has no ClusterIP: %q", svc.Spec.ClusterIP)
	}
	if _, err := client.NetworkingV1().IPAddresses().Get(c, svc.Spec.ClusterIP, metav1.GetOptions{}); err != nil {
		t.Errorf("IPAddress %s of the service: %v", svc.Spec.ClusterIP, err)
	}
	if err := client.CoreV1().Services(ns).Delete(c, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	sec, err := client.CoreV1().Secrets(ns).Create(c, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["password"]) != "hunter2" {
		t.Fatalf("secret data %v", sec.Data)
	}
}

// TestCustomResource: a CRD becomes Established, its custom resources are created, listed,
// watched, updated (409 on a stale one) and deleted through the dynamic client.
func TestCustomResource(t *testing.T) {
	c, ns := ctx(t), namespace(t)
	suffix := strings.TrimPrefix(ns, "customresource-")
	plural, group := "widgets"+suffix, "tally.test"
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": plural + "." + group},
		"spec": map[string]any{
			"group": group,
			"scope": "Namespaced",
			"names": map[string]any{"plural": plural, "singular": "widget" + suffix, "kind": "Widget" + suffix, "listKind": "Widget" + suffix + "List"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec": map[string]any{"type": "object", "properties": map[string]any{"size": map[string]any{"type": "integer"}}},
					},
				}},
			}},
		},
	}}
	if _, err := dyn.Resource(crdGVR).Create(c, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(crdGVR).Delete(ctx(t), plural+"."+group, metav1.DeleteOptions{})
	})
	err := wait.PollUntilContextTimeout(c, 200*time.Millisecond, 60*time.Second, true, func(ctx2 context.Context) (bool, error) {
		o, err := dyn.Resource(crdGVR).Get(ctx2, plural+"."+group, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		for _, cond := range conds {
			m := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD not Established: %v", err)
	}
	gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: plural}
	res := dyn.Resource(gvr).Namespace(ns)
	widget := func(name string, size int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": group + "/v1", "kind": "Widget" + suffix,
			"metadata": map[string]any{"name": name},
			"spec":     map[string]any{"size": size},
		}}
	}
	// The resource may take a moment to be served after Established.
	var first *unstructured.Unstructured
	err = wait.PollUntilContextTimeout(c, 200*time.Millisecond, 30*time.Second, true, func(ctx2 context.Context) (bool, error) {
		var err error
		first, err = res.Create(ctx2, widget("w0", 0), metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("create the first custom resource: %v", err)
	}
	w, err := res.Watch(c, metav1.ListOptions{ResourceVersion: first.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := 1; i < 7; i++ {
		if _, err := res.Create(c, widget(fmt.Sprintf("w%d", i), int64(i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 7; i++ {
		expect(t, w, watch.Added, fmt.Sprintf("w%d", i))
	}
	page, err := res.List(c, metav1.ListOptions{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 || page.GetContinue() == "" {
		t.Fatalf("custom resources page 1: %d items, continue %q", len(page.Items), page.GetContinue())
	}
	page2, err := res.List(c, metav1.ListOptions{Limit: 4, Continue: page.GetContinue()})
	if err != nil {
		t.Fatal(err)
	}
	if len(page2.Items) != 3 || page2.GetContinue() != "" {
		t.Fatalf("custom resources page 2: %d items, continue %q", len(page2.Items), page2.GetContinue())
	}
	stale := first.DeepCopy()
	if err := unstructured.SetNestedField(first.Object, int64(100), "spec", "size"); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Update(c, first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Modified, "w0")
	if _, err := res.Update(c, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale custom resource update: %v, want Conflict", err)
	}
	if err := res.Delete(c, "w3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Deleted, "w3")
}
