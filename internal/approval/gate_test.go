/*
Copyright 2026 The Custos Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package approval

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
)

// The package's control plane, for the Gate's tests: a real kube-apiserver
// and etcd with Custos's CRDs. Nil, with noAPIServer saying why, when
// KUBEBUILDER_ASSETS does not name the binaries (the unit tests still run).
var (
	apiScheme   = runtime.NewScheme()
	apiConfig   *rest.Config
	apiClient   client.Client
	noAPIServer string
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(apiScheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(apiScheme))
}

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	assets := os.Getenv(controlplane.AssetsEnv)
	if assets == "" {
		noAPIServer = controlplane.AssetsEnv + ` is not set: run with KUBEBUILDER_ASSETS="$(hack/controlplane.sh)"`
		return m.Run()
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			noAPIServer = fmt.Sprintf("%s has no %s: run hack/controlplane.sh", assets, bin)
			return m.Run()
		}
	}
	ctx := context.Background()
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: "../..", Scheme: apiScheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "approval: cannot start the control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "approval: stopping the control plane: %v\n", err)
		}
	}()
	apiConfig = rest.CopyConfig(cp.Config)
	// A hundred tries of one call at once: no client-side throttling.
	apiConfig.QPS, apiConfig.Burst = 5000, 5000
	if apiClient, err = client.New(apiConfig, client.Options{Scheme: apiScheme}); err != nil {
		fmt.Fprintf(os.Stderr, "approval: %v\n", err)
		return 1
	}
	return m.Run()
}

// apiNamespace skips t without an API server, and otherwise makes it a
// namespace of its own.
func apiNamespace(t *testing.T) string {
	t.Helper()
	if apiClient == nil {
		t.Skip(noAPIServer)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "approval-"}}
	if err := apiClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// heldIn is held(t, raw) for agent bot of namespace ns.
func heldIn(t *testing.T, ns, raw string) *Held {
	h := held(t, raw)
	h.Agent = testAgent(nil)
	h.Agent.Namespace = ns
	return h
}

func directGate(hold time.Duration) *Gate {
	return &Gate{Client: apiClient, Live: apiClient, Hold: hold}
}

// requestsOf lists the requests of h's call.
func requestsOf(t *testing.T, h *Held) []custosv1alpha1.ApprovalRequest {
	t.Helper()
	var list custosv1alpha1.ApprovalRequestList
	if err := apiClient.List(context.Background(), &list, client.InNamespace(h.Agent.Namespace),
		client.MatchingLabels{custosv1alpha1.CallDigestLabel: DigestLabel(h.Digest())}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func getRequest(t *testing.T, ns, name string) *custosv1alpha1.ApprovalRequest {
	t.Helper()
	ar := &custosv1alpha1.ApprovalRequest{}
	if err := apiClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ar); err != nil {
		t.Fatal(err)
	}
	return ar
}

// setPhase is the manager deciding ns/name: a status update to phase.
func setPhase(t *testing.T, ns, name string, phase custosv1alpha1.ApprovalPhase) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ar := &custosv1alpha1.ApprovalRequest{}
		if err := apiClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ar); err != nil {
			return err
		}
		ar.Status.Phase = phase
		if phase != custosv1alpha1.ApprovalPending {
			now := metav1.Now()
			ar.Status.DecidedAt = &now
		}
		return apiClient.Status().Update(context.Background(), ar)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func await(t *testing.T, g *Gate, h *Held) Outcome {
	t.Helper()
	out, err := g.Await(context.Background(), h, testRequirement())
	if err != nil {
		t.Fatal(err)
	}
	if out.Request == nil {
		t.Fatal("Await gave no request")
	}
	return out
}

func pending(ar *custosv1alpha1.ApprovalRequest) bool {
	return ar.Status.Phase == "" || ar.Status.Phase == custosv1alpha1.ApprovalPending
}

func TestAwaitCreatesAndHolds(t *testing.T) {
	ns := apiNamespace(t)
	h := heldIn(t, ns, `{"amount": 1500}`)
	hold := 300 * time.Millisecond
	g := directGate(hold)
	start := time.Now()
	out := await(t, g, h)
	if elapsed := time.Since(start); elapsed < hold {
		t.Errorf("Await returned after %s; want it to hold %s", elapsed, hold)
	}
	if !out.Created || out.Run || out.Used || !pending(out.Request) {
		t.Fatalf("outcome %+v (phase %q); want Created, Pending", out, out.Request.Status.Phase)
	}
	want := RequestName("bot", h.Digest(), 1)
	if out.Request.Name != want || out.Request.Namespace != ns {
		t.Errorf("request %s/%s; want %s/%s", out.Request.Namespace, out.Request.Name, ns, want)
	}
	ar := getRequest(t, ns, want)
	if ar.Labels[custosv1alpha1.CallDigestLabel] != DigestLabel(h.Digest()) || ar.Labels[custosv1alpha1.AgentLabel] != "bot" ||
		ar.Spec.CallDigest != h.Digest() || ar.Spec.Quorum != 2 {
		t.Errorf("request as stored: labels %v, spec %+v", ar.Labels, ar.Spec)
	}

	// Retries, one after another and several at once, find it.
	g.Hold = 0
	if out := await(t, g, h); out.Created || out.Request.Name != want || !pending(out.Request) {
		t.Errorf("a retry: %+v; want the same request, not created", out)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := g.Await(context.Background(), h, testRequirement())
			if err != nil || out.Created || out.Request.Name != want {
				t.Errorf("a concurrent retry: %+v, %v", out, err)
			}
		}()
	}
	wg.Wait()
	if n := len(requestsOf(t, h)); n != 1 {
		t.Errorf("%d requests of the call; want 1", n)
	}
	// Another call (another person) has a request of its own.
	other := heldIn(t, ns, `{"amount": 1500}`)
	other.Person = "bob"
	if out := await(t, g, other); !out.Created || out.Request.Name == want {
		t.Errorf("another person's call: %+v; want a request of its own", out)
	}
}

func TestAwaitConsumesExactlyOnce(t *testing.T) {
	ns := apiNamespace(t)
	h := heldIn(t, ns, `{"amount": 1500}`)
	g := directGate(0)
	first := await(t, g, h)
	name := first.Request.Name
	setPhase(t, ns, name, custosv1alpha1.ApprovalApproved)

	const tries = 100
	outs := make([]Outcome, tries)
	errs := make([]error, tries)
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			try := *h
			try.TraceID = fmt.Sprintf("trace-%d", i)
			outs[i], errs[i] = g.Await(context.Background(), &try, testRequirement())
		}()
	}
	close(startGun)
	wg.Wait()
	runs, used, next := 0, 0, 0
	var ranTrace string
	for i, out := range outs {
		if errs[i] != nil {
			t.Errorf("try %d: %v", i, errs[i])
			continue
		}
		switch {
		case out.Run:
			runs++
			ranTrace = fmt.Sprintf("trace-%d", i)
			if out.Request.Name != name || out.Request.Status.Phase != custosv1alpha1.ApprovalConsumed {
				t.Errorf("the run: request %s in %s", out.Request.Name, out.Request.Status.Phase)
			}
		case out.Used:
			used++
			if out.Request.Name != name {
				t.Errorf("try %d used request %s; want %s", i, out.Request.Name, name)
			}
		case out.Request.Name == RequestName("bot", h.Digest(), 2) && pending(out.Request):
			// Came after the run: the call asks again.
			next++
		default:
			t.Errorf("try %d: outcome %+v, request %s in %q", i, out, out.Request.Name, out.Request.Status.Phase)
		}
	}
	t.Logf("%d tries: %d ran, %d found it used, %d asked again", tries, runs, used, next)
	if runs != 1 {
		t.Fatalf("%d tries of an approved call ran %d times; want exactly once", tries, runs)
	}
	ar := getRequest(t, ns, name)
	if ar.Status.Phase != custosv1alpha1.ApprovalConsumed || ar.Status.ConsumedAt == nil || ar.Status.ConsumedTraceID != ranTrace {
		t.Errorf("request after the run: phase %s, consumedAt %v, trace %q; want Consumed, set, %q", ar.Status.Phase, ar.Status.ConsumedAt, ar.Status.ConsumedTraceID, ranTrace)
	}
	if n := len(requestsOf(t, h)); n > 2 {
		t.Errorf("%d requests of the call; want at most 2 (the consumed one and the next)", n)
	}
}

func TestAwaitDeniedAnswersEveryRetry(t *testing.T) {
	ns := apiNamespace(t)
	h := heldIn(t, ns, `{"amount": 1500}`)
	g := directGate(0)
	name := await(t, g, h).Request.Name
	setPhase(t, ns, name, custosv1alpha1.ApprovalDenied)
	for range 3 {
		out := await(t, g, h)
		if out.Run || out.Created || out.Used || out.Request.Name != name || out.Request.Status.Phase != custosv1alpha1.ApprovalDenied {
			t.Errorf("a retry of a denied call: %+v (phase %s); want request %s, Denied", out, out.Request.Status.Phase, name)
		}
	}
	if n := len(requestsOf(t, h)); n != 1 {
		t.Errorf("%d requests; want 1", n)
	}
}

func TestAwaitAsksAgainAfterConsumedOrExpired(t *testing.T) {
	ns := apiNamespace(t)
	h := heldIn(t, ns, `{"amount": 1500}`)
	g := directGate(0)
	d := h.Digest()
	n1 := await(t, g, h).Request.Name
	setPhase(t, ns, n1, custosv1alpha1.ApprovalApproved)
	if out := await(t, g, h); !out.Run {
		t.Fatalf("an approved call: %+v; want it run", out)
	}
	out := await(t, g, h)
	if !out.Created || out.Run || out.Request.Name != RequestName("bot", d, 2) || !pending(out.Request) {
		t.Fatalf("a retry after Consumed: %+v; want request 2 created, Pending", out)
	}
	setPhase(t, ns, out.Request.Name, custosv1alpha1.ApprovalExpired)
	out = await(t, g, h)
	if !out.Created || out.Request.Name != RequestName("bot", d, 3) {
		t.Fatalf("a retry after Expired: %+v; want request 3 created", out)
	}

	// A try held on request 3 when it expires answers Expired; it does
	// not ask again itself.
	g.Hold = 30 * time.Second
	done := make(chan Outcome, 1)
	go func() {
		out, err := g.Await(context.Background(), h, testRequirement())
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	waitHeld(t, g, ns, d, RequestName("bot", d, 3))
	setPhase(t, ns, RequestName("bot", d, 3), custosv1alpha1.ApprovalExpired)
	g.Changed(ns, DigestLabel(d))
	select {
	case out := <-done:
		if out.Created || out.Run || out.Request.Name != RequestName("bot", d, 3) || out.Request.Status.Phase != custosv1alpha1.ApprovalExpired {
			t.Errorf("a try held while its request expired: %+v (%s)", out, out.Request.Status.Phase)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a held try was not woken by Changed")
	}
	if n := len(requestsOf(t, h)); n != 3 {
		t.Errorf("%d requests; want 3", n)
	}
}

// waitHeld waits until a call is held on the request key (ns/name).
func waitHeld(t *testing.T, g *Gate, ns, digest, name string) {
	t.Helper()
	key := ns + "/" + DigestLabel(digest)
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		g.mu.Lock()
		_, ok := g.waiting[key]
		g.mu.Unlock()
		if !ok {
			return false, nil
		}
		err := apiClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &custosv1alpha1.ApprovalRequest{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no call held on %s: %v", name, err)
	}
	// Await listens before it reads the request; let it read it.
	time.Sleep(200 * time.Millisecond)
}

func TestAwaitWokenByWatch(t *testing.T) {
	ns := apiNamespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := cache.New(apiConfig, cache.Options{Scheme: apiScheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		t.Fatal(err)
	}
	cached, err := client.New(apiConfig, client.Options{Scheme: apiScheme, Cache: &client.CacheOptions{Reader: c}})
	if err != nil {
		t.Fatal(err)
	}
	const hold = 30 * time.Second
	g := &Gate{Client: cached, Live: apiClient, Hold: hold}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("the cache did not sync")
	}
	if err := g.Watch(ctx, c); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		phase custosv1alpha1.ApprovalPhase
		check func(Outcome) bool
	}{
		{custosv1alpha1.ApprovalApproved, func(o Outcome) bool { return o.Run && o.Request.Status.Phase == custosv1alpha1.ApprovalConsumed }},
		{custosv1alpha1.ApprovalDenied, func(o Outcome) bool { return !o.Run && o.Request.Status.Phase == custosv1alpha1.ApprovalDenied }},
	} {
		h := heldIn(t, ns, fmt.Sprintf(`{"for": %q}`, tc.phase))
		name := RequestName("bot", h.Digest(), 1)
		start := time.Now()
		done := make(chan Outcome, 1)
		go func() {
			out, err := g.Await(ctx, h, testRequirement())
			if err != nil {
				t.Error(err)
			}
			done <- out
		}()
		waitHeld(t, g, ns, h.Digest(), name)
		decided := time.Now()
		setPhase(t, ns, name, tc.phase)
		select {
		case out := <-done:
			took := time.Since(decided)
			t.Logf("%s: the held call returned %s after the status update", tc.phase, took)
			if !out.Created || !tc.check(out) {
				t.Errorf("%s while held: %+v (phase %s)", tc.phase, out, out.Request.Status.Phase)
			}
			if time.Since(start) >= hold {
				t.Errorf("%s while held: Await waited out its hold", tc.phase)
			}
		case <-time.After(hold + 5*time.Second):
			t.Fatalf("%s while held: Await did not return", tc.phase)
		}
	}
}

func TestAwaitApprovedPastExpiryDoesNotRun(t *testing.T) {
	ns := apiNamespace(t)
	h := heldIn(t, ns, `{"amount": 1500}`)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	g := &Gate{Client: apiClient, Live: apiClient, Clock: clk}
	name := await(t, g, h).Request.Name // expires 10 minutes from now
	setPhase(t, ns, name, custosv1alpha1.ApprovalApproved)
	clk.SetTime(clk.Now().Add(11 * time.Minute))
	out := await(t, g, h)
	if out.Run || out.Used || out.Created {
		t.Errorf("an approval past its expiresAt: %+v; want it not run", out)
	}
	if ar := getRequest(t, ns, name); ar.Status.Phase != custosv1alpha1.ApprovalApproved || ar.Status.ConsumedAt != nil {
		t.Errorf("request after a try past expiresAt: %s, consumedAt %v; want it left Approved, unconsumed", ar.Status.Phase, ar.Status.ConsumedAt)
	}
}
