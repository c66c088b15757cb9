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

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/controlplane"
)

// approvalCluster is a real API server with Custos's CRDs, the finance
// namespace, and an ApprovalPolicy there (irreversible tools, by
// default); the test stands in for the manager and writes phases.
func approvalCluster(t *testing.T) client.Client {
	t.Helper()
	if os.Getenv(controlplane.AssetsEnv) == "" {
		t.Fatal(controlplane.AssetsEnv + " is not set: make test sets it (the control plane hack/controlplane.sh builds)")
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = custosv1alpha1.AddToScheme(scheme)
	cp, err := controlplane.Start(context.Background(), controlplane.Options{RepoRoot: "../..", Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "finance"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &custosv1alpha1.ApprovalPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "finance", Name: "payments"}}); err != nil {
		t.Fatal(err)
	}
	return c
}

func requestsOf(t *testing.T, c client.Client) []custosv1alpha1.ApprovalRequest {
	t.Helper()
	var list custosv1alpha1.ApprovalRequestList
	if err := c.List(context.Background(), &list, client.InNamespace("finance")); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func setPhase(t *testing.T, c client.Client, name string, phase custosv1alpha1.ApprovalPhase, approver string) {
	t.Helper()
	ar := &custosv1alpha1.ApprovalRequest{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "finance", Name: name}, ar); err != nil {
		t.Fatal(err)
	}
	ar.Status.Phase = phase
	verdict := custosv1alpha1.Approve
	if phase == custosv1alpha1.ApprovalDenied {
		verdict = custosv1alpha1.Deny
	}
	ar.Status.Decisions = append(ar.Status.Decisions, custosv1alpha1.ApprovalVote{Name: name + "-x", Approver: custosv1alpha1.Approver{Username: approver},
		Decision: verdict, Counted: true, DecidedAt: metav1.Now()})
	if verdict == custosv1alpha1.Approve {
		ar.Status.Approvals = 1
	}
	if err := c.Status().Update(context.Background(), ar); err != nil {
		t.Fatal(err)
	}
}

// TestApprovalHoldsIrreversibleCalls: an irreversible call waits for its
// approval (and is told the request's name), a retry finds the same
// request, a read is never held, an approved call runs exactly once
// however many retries race for it, and a denied one never runs.
func TestApprovalHoldsIrreversibleCalls(t *testing.T) {
	c := approvalCluster(t)
	gate := &approval.Gate{Client: c, Live: c}
	w := newWorld(t, func(s *Server) {
		s.Approvals, s.Limits = gate, nil
		// 100 calls at once under the race detector: the one that runs
		// must not time out (its approval would be used, at most once).
		s.Upstream.(*MCPUpstream).Timeout = 30 * time.Second
	})
	w.agents[invoiceAgent].UID = "uid-invoice"

	got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs(), decision(0.8))
	reqs := requestsOf(t, c)
	if len(reqs) != 1 {
		t.Fatalf("ApprovalRequests after one held call: %d, want 1", len(reqs))
	}
	ar := reqs[0]
	if got.result == nil || !got.result.IsError || !strings.Contains(got.text(), "waits for approval: approval request finance/"+ar.Name+" has 0 of 1") ||
		!strings.Contains(got.text(), "kubectl custos approve "+ar.Name+" -n finance") {
		t.Fatalf("the held call's answer: %s", got.body)
	}
	if w.ledger.Calls() != 0 {
		t.Fatalf("a held call reached the tool server")
	}
	e, _ := w.lastEvent()
	if e.Action != audit.ActionToolRefused || e.Policy != ReasonApprovalPending || !strings.HasSuffix(e.Details["checks"], "policy=pass approval=fail") && !strings.HasSuffix(e.Details["checks"], "input=pass approval=fail") ||
		e.Details["approvalRequest"] != ar.Name {
		t.Errorf("the held call's record: %+v", e)
	}
	requested := 0
	for _, ev := range w.eventsSince(0) {
		if ev.Action == audit.ActionApprovalRequested && ev.Subject.Name == ar.Name {
			requested++
		}
	}
	if requested != 1 {
		t.Errorf("approval.requested records: %d, want 1", requested)
	}
	// The request is this call: agent UID, person, bound arguments, the
	// decision record, the policy.
	s := ar.Spec
	if s.Agent.UID != "uid-invoice" || s.Person != "alice" || s.Session != "sid-1" || s.Tool != "pay" || !s.Irreversible ||
		s.Arguments != `{"amount":120.5,"invoice":"INV-000001","requestedBy":"alice"}` || !strings.Contains(s.DecisionRecord, `"confidence":0.8`) ||
		len(s.Policies) != 1 || s.Policies[0] != "payments" || s.Quorum != 1 || !s.SeparationOfDuties.Person() {
		t.Errorf("the request: %+v", s)
	}

	// Retried, the same call finds the same request; a read is not held.
	w.call(t, "acme", w.token(t), "ledger.pay", payArgs(), decision(0.8))
	if n := len(requestsOf(t, c)); n != 1 {
		t.Errorf("ApprovalRequests after a retry: %d, want 1", n)
	}
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
		t.Errorf("a read was held: %s", got.body)
	}
	reads := w.ledger.Calls()

	// Approved: 100 retries race; the call runs once.
	setPhase(t, c, ar.Name, custosv1alpha1.ApprovalApproved, "carol")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran, used := 0, 0
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs(), decision(0.8))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case got.result != nil && !got.result.IsError:
				ran++
			case strings.Contains(got.text(), "was already used by another try"):
				used++
			}
		}()
	}
	wg.Wait()
	if ran != 1 || w.ledger.Calls()-reads != 1 {
		t.Fatalf("100 retries of an approved call: %d ran, the tool server saw %d calls; want exactly 1 (%d told it was used)", ran, w.ledger.Calls()-reads, used)
	}
	consumed := &custosv1alpha1.ApprovalRequest{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "finance", Name: ar.Name}, consumed); err != nil {
		t.Fatal(err)
	}
	if consumed.Status.Phase != custosv1alpha1.ApprovalConsumed || consumed.Status.ConsumedAt == nil || consumed.Status.ConsumedTraceID == "" {
		t.Errorf("the approved request after its call ran: %+v", consumed.Status)
	}
	var consumedRecords int
	for _, ev := range w.eventsSince(0) {
		if ev.Action == audit.ActionApprovalConsumed {
			consumedRecords++
		}
	}
	if consumedRecords != 1 {
		t.Errorf("approval.consumed records: %d, want 1", consumedRecords)
	}

	// Another call (another amount) is another request; denied, it never
	// runs, and its retries are told so.
	before := w.ledger.Calls()
	w.call(t, "acme", w.token(t), "ledger.pay", payArgs("amount", 99), decision(0.8))
	var other string
	for _, r := range requestsOf(t, c) {
		if r.Spec.CallDigest != ar.Spec.CallDigest {
			other = r.Name
		}
	}
	if other == "" {
		t.Fatal("another call made no request of its own")
	}
	setPhase(t, c, other, custosv1alpha1.ApprovalDenied, "dave")
	for range 2 {
		got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs("amount", 99), decision(0.8))
		if !strings.Contains(got.text(), "approval request finance/"+other+" was denied by dave") {
			t.Errorf("a denied call's retry: %s", got.body)
		}
	}
	if e, _ := w.lastEvent(); e.Policy != ReasonApprovalDenied {
		t.Errorf("a denied call's record: %+v", e)
	}
	if w.ledger.Calls() != before {
		t.Errorf("a denied call reached the tool server")
	}
}

// restartable is the gateway's approvals, replaced as a restarted gateway
// would have them: a Gate that knows nothing of the one before.
type restartable struct{ gate atomic.Pointer[approval.Gate] }

func (r *restartable) Require(ctx context.Context, call approval.Call) (*approval.Requirement, error) {
	return r.gate.Load().Require(ctx, call)
}

func (r *restartable) Await(ctx context.Context, h *approval.Held, req *approval.Requirement) (approval.Outcome, error) {
	return r.gate.Load().Await(ctx, h, req)
}

// dying is a client of a gateway process that has gone: once dead, every
// read and write fails.
type dying struct {
	client.Client
	dead atomic.Bool
}

var errGone = errors.New("the gateway process is gone")

func (d *dying) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if d.dead.Load() {
		return errGone
	}
	return d.Client.Get(ctx, key, obj, opts...)
}

func (d *dying) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if d.dead.Load() {
		return errGone
	}
	return d.Client.List(ctx, list, opts...)
}

func (d *dying) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if d.dead.Load() {
		return errGone
	}
	return d.Client.Create(ctx, obj, opts...)
}

func (d *dying) Status() client.SubResourceWriter { return &dyingStatus{d.Client.Status(), d} }

type dyingStatus struct {
	client.SubResourceWriter
	d *dying
}

func (s *dyingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if s.d.dead.Load() {
		return errGone
	}
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

// TestApprovalSurvivesAGatewayRestart: a call held when the gateway goes
// away (its connection dropped, the gateway's memory gone) loses nothing:
// its request is in the API server, approved there, and the same call
// retried at the new gateway runs, once.
func TestApprovalSurvivesAGatewayRestart(t *testing.T) {
	c := approvalCluster(t)
	approvals := &restartable{}
	// The gateway that goes away reaches the API server no more.
	old := &dying{Client: c}
	approvals.gate.Store(&approval.Gate{Client: old, Live: old, Hold: time.Minute})
	w := newWorld(t, func(s *Server) { s.Approvals, s.Limits = approvals, nil })
	w.agents[invoiceAgent].UID = "uid-invoice"

	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": "ledger.pay", "arguments": payArgs(), "_meta": decision(0.8)}})
	req := w.request(t, "acme", w.token(t), "ledger.pay", nil)
	ctx, cancel := context.WithCancel(context.Background())
	req = req.WithContext(ctx)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for len(requestsOf(t, c)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the held call made no ApprovalRequest")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The gateway goes away while it holds the call.
	old.dead.Store(true)
	cancel()
	w.gateway.CloseClientConnections()
	if err := <-done; err == nil {
		t.Fatal("the held call was answered, not dropped")
	}
	approvals.gate.Store(&approval.Gate{Client: c, Live: c})
	ar := requestsOf(t, c)[0]
	setPhase(t, c, ar.Name, custosv1alpha1.ApprovalApproved, "carol")

	got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs(), decision(0.8))
	if got.result == nil || got.result.IsError {
		t.Fatalf("the approved call at the restarted gateway: %s", got.body)
	}
	if w.ledger.Calls() != 1 || len(requestsOf(t, c)) != 1 {
		t.Errorf("after the restart: the tool server saw %d calls, %d requests exist; want 1 and 1", w.ledger.Calls(), len(requestsOf(t, c)))
	}
	// (The gone gateway's held call may still be recorded, refused, as
	// it ends: look for the call that ran.)
	ran := 0
	for _, e := range w.eventsSince(0) {
		if e.Action == audit.ActionToolCalled && e.Details["approvalRequest"] == ar.Name {
			ran++
		}
	}
	if ran != 1 {
		t.Errorf("tool.called records of the approved call: %d, want 1", ran)
	}
}
