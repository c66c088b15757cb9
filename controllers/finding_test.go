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

package controllers

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/evaluate"
	"github.com/custos-dev/custos/test/fixtures"
)

// gatewayTrail is a custos-gateway-like audit trail: a real segment store
// written through an audit.Log, at a time the test sets.
type gatewayTrail struct {
	t     *testing.T
	log   *audit.Log
	dir   string
	clock *clocktesting.FakeClock
}

func newGatewayTrail(t *testing.T, at time.Time) *gatewayTrail {
	t.Helper()
	dir := t.TempDir()
	store, err := audit.OpenSegmentStore(dir, audit.StoreOptions{SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(at)
	log, err := audit.New(audit.Options{Sinks: []audit.Sink{store}, Clock: clk, BufferDir: dir + "-buffer",
		Registerer: prometheus.NewRegistry(), Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close(); _ = os.RemoveAll(dir + "-buffer") })
	return &gatewayTrail{t: t, log: log, dir: dir, clock: clk}
}

// call records a call as custos-gateway does (tool.called, allow).
func (g *gatewayTrail) call(ns, agent, tool string, details map[string]string) uint64 {
	d := map[string]string{"tool": tool, "toolset": "ledger"}
	for k, v := range details {
		d[k] = v
	}
	return g.record(audit.Event{Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Policy: "gateway.call",
		Subject: agentSubject(ns, agent), Reason: "called " + tool, Details: d})
}

// refusal records a refused call (tool.refused) with reason.
func (g *gatewayTrail) refusal(ns, agent, tool, reason string) uint64 {
	return g.record(audit.Event{Action: audit.ActionToolRefused, Decision: audit.DecisionDeny, Policy: reason,
		Subject: agentSubject(ns, agent), Reason: "refused " + tool, Details: map[string]string{"tool": tool}})
}

func (g *gatewayTrail) record(e audit.Event) uint64 {
	g.t.Helper()
	e.Actor = audit.Actor{Kind: audit.ActorController, Name: "custos-gateway"}
	e.TraceID = fmt.Sprintf("%032x", time.Now().UnixNano())
	seq, ok := g.log.RecordSeq(context.Background(), e)
	if !ok {
		g.t.Fatal("record refused")
	}
	if err := g.log.Flush(context.Background()); err != nil {
		g.t.Fatal(err)
	}
	g.clock.Step(time.Second)
	return seq
}

func agentSubject(ns, agent string) audit.Subject {
	return audit.Subject{Kind: "Agent", Namespace: ns, Name: agent, UID: "uid-" + ns + "-" + agent, Tenant: "t"}
}

// TestFindings: the evaluator opens one Finding per agent, rubric and day
// from a custos-gateway trail, merges repeats, and neither doubles nor
// skips anything when it starts again from its state or from before it;
// people review Findings as themselves, only with the verb review (an
// owner does not dismiss), and nobody deletes or rewrites an open one; a
// closed Finding opens again with new evidence and expires after its
// retention.
func TestFindings(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("fnd")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	owner := fixtures.Create(t, k8sClient, chartTenantRole(t, "agent-owner", ns+"-agent-owner"))
	approver := fixtures.Create(t, k8sClient, chartTenantRole(t, "approver", ns+"-approver"))
	risk := fixtures.Create(t, k8sClient, chartTenantRole(t, "risk-owner", ns+"-risk-owner"))
	viewer := fixtures.Create(t, k8sClient, chartTenantRole(t, "agent-viewer", ns+"-agent-viewer"))
	bindInNamespace(t, ns, "owner-olga", owner.Name, "olga")
	bindInNamespace(t, ns, "approver-anna", approver.Name, "anna")
	bindInNamespace(t, ns, "risk-rita", risk.Name, "rita")
	bindInNamespace(t, ns, "viewer-vic", viewer.Name, "vic")
	bindInNamespace(t, ns, "edit-eve", "edit", "eve")
	// The agent itself, or any ServiceAccount, with the approver's rights.
	bindInNamespace(t, ns, "approver-agent", approver.Name, "system:serviceaccount:"+ns+":agent-payer")
	// Pat may create reviews but holds no verb review.
	reviewsOnly := fixtures.Create(t, k8sClient, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-reviews-only"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"custos.dev"}, Resources: []string{"findings", "findingreviews"}, Verbs: []string{"get", "list", "create"}}}})
	bindInNamespace(t, ns, "reviews-pat", reviewsOnly.Name, "pat")

	stopManager()
	g.Expect(startManager(func(o *Options) { o.FindingRetention = 2 * time.Second })).To(Succeed())
	t.Cleanup(func() {
		stopManager()
		if err := startManager(); err != nil {
			t.Errorf("restarting the suite's manager: %v", err)
		}
	})

	stateNS := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("fnds"))
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	gw := newGatewayTrail(t, noon)
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: kubernetes.NewForConfigOrDie(cp.Config).EventsV1()})
	broadcaster.StartRecordingToSink(ctx.Done())
	t.Cleanup(broadcaster.Shutdown)
	recorder := broadcaster.NewRecorder(testScheme, "custos")
	runner := func() *evaluate.Runner {
		return &evaluate.Runner{Reader: k8sClient, Client: k8sClient, Namespace: stateNS, Audit: auditLog, Actor: ControllerActor,
			Trails: []evaluate.Trail{evaluate.DirTrail("custos-gateway/gw-0", gw.dir)}, Recorder: recorder}
	}
	findings := func(g Gomega) []custosv1alpha1.Finding {
		var list custosv1alpha1.FindingList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		return list.Items
	}
	get := func(g Gomega, name string) *custosv1alpha1.Finding {
		f := &custosv1alpha1.Finding{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, f)).To(Succeed())
		return f
	}
	lowName := evaluate.FindingName("payer", evaluate.RubricLowConfidence, noon)
	g.Expect(lowName).To(Equal("payer-low-confidence-20261207"))

	// An irreversible payment with a stated confidence of 0.4 and one
	// with none, a reversible read, and another agent's fine call.
	r1 := runner()
	first := gw.call(ns, "payer", "pay", map[string]string{"access": "Write", "irreversible": "true", "decisionDigest": "sha256:aa", "decision.confidence": "0.4"})
	gw.call(ns, "payer", "balance", map[string]string{"access": "Read"})
	gw.call(ns, "other", "pay", map[string]string{"access": "Write", "irreversible": "true", "decisionDigest": "sha256:bb", "decision.confidence": "0.95"})
	g.Expect(r1.Pass(ctx)).To(Succeed())
	f := get(g, lowName)
	g.Expect(f.Spec).To(And(HaveField("Agent", "payer"), HaveField("AgentUID", "uid-"+ns+"-payer"), HaveField("Rubric", evaluate.RubricLowConfidence)))
	g.Expect(f.Spec.WindowStart.Time.Equal(noon.Truncate(24*time.Hour))).To(BeTrue(), "the UTC day: %v", f.Spec.WindowStart)
	g.Expect(f.Labels).To(HaveKeyWithValue(custosv1alpha1.AgentLabel, "payer"))
	g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FindingOpen))
	g.Expect(f.Status.Severity).To(Equal(custosv1alpha1.SeverityHigh))
	g.Expect(f.Status.Score).To(BeEquivalentTo(43))
	g.Expect(f.Status.Hits).To(BeEquivalentTo(1))
	g.Expect(f.Status.Summary).To(ContainSubstring("stated confidence of 0.4, below 0.7"))
	g.Expect(f.Status.Evidence).To(ConsistOf(HaveField("AuditLogID", MatchRegexp(`^custos-gateway/gw-0@[0-9a-f]{12}$`))))
	g.Expect(f.Status.Evidence[0].Sequences).To(Equal([]int64{int64(first)}))
	g.Expect(f.Status.Evidence[0].TraceIDs).To(HaveLen(1))
	g.Expect(findings(g)).To(HaveLen(1), "the fine call and the read open nothing")
	opened := auditTrail(trailUID(ns, "payer"))
	g.Expect(auditActions(opened)).To(ContainElement(audit.ActionFindingOpened))
	g.Eventually(func(g Gomega) []string { return eventReasons(g, f) }).WithTimeout(eventually).WithPolling(poll).
		Should(ContainElement("FindingOpened"))

	// Read again: nothing new, nothing changes.
	g.Expect(r1.Pass(ctx)).To(Succeed())
	g.Expect(get(g, lowName).Status.Hits).To(BeEquivalentTo(1))

	// A repeat the same day merges into the same Finding.
	second := gw.call(ns, "payer", "pay", map[string]string{"access": "Write", "irreversible": "true", "decisionDigest": "sha256:cc"})
	g.Expect(r1.Pass(ctx)).To(Succeed())
	f = get(g, lowName)
	g.Expect(f.Status.Hits).To(BeEquivalentTo(2))
	g.Expect(f.Status.Score).To(BeEquivalentTo(100), "the highest of its hits")
	g.Expect(f.Status.Evidence[0].Sequences).To(Equal([]int64{int64(first), int64(second)}))
	g.Expect(findings(g)).To(HaveLen(1))

	// A manager that stopped after writing the Findings and before its
	// state, or whose state is lost, reads the records again: no Finding
	// is doubled, no hit counted twice.
	state := &corev1.ConfigMap{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: stateNS, Name: evaluate.StateName}, state)).To(Succeed())
	g.Expect(state.Data).To(HaveKeyWithValue("custos-gateway.gw-0", ContainSubstring(`"chain":"`+strings.TrimPrefix(f.Status.Evidence[0].AuditLogID, "custos-gateway/gw-0@")+`"`)))
	// The state of trails no longer followed (a pod gone) is forgotten
	// after a week without records, not before.
	forgetting := client.MergeFrom(state.DeepCopy())
	state.Data["custos-gateway.gone"] = fmt.Sprintf(`{"next":5,"at":%d}`, time.Now().Add(-8*24*time.Hour).Unix())
	state.Data["custos-gateway.resting"] = fmt.Sprintf(`{"next":5,"at":%d}`, time.Now().Add(-24*time.Hour).Unix())
	g.Expect(k8sClient.Patch(ctx, state, forgetting)).To(Succeed())
	g.Expect(r1.Pass(ctx)).To(Succeed())
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(state), state)).To(Succeed())
	g.Expect(state.Data).To(And(HaveKey("custos-gateway.gw-0"), HaveKey("custos-gateway.resting"), Not(HaveKey("custos-gateway.gone"))))

	g.Expect(k8sClient.Delete(ctx, state)).To(Succeed())
	g.Expect(runner().Pass(ctx)).To(Succeed())
	g.Expect(findings(g)).To(HaveLen(1))
	g.Expect(get(g, lowName).Status.Hits).To(BeEquivalentTo(2))

	// Probing spread over two passes, with a manager started again in
	// between: the refusals before its state are read back.
	for _, tool := range []string{"drop-table", "export-all", "sudo"} {
		gw.refusal(ns, "payer", tool, "UnknownTool")
	}
	g.Expect(runner().Pass(ctx)).To(Succeed())
	probeName := evaluate.FindingName("payer", evaluate.RubricProbing, noon)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: probeName}, &custosv1alpha1.Finding{}))).To(BeTrue())
	gw.refusal(ns, "payer", "pay", "OutOfScope")
	gw.refusal(ns, "payer", "pay", "InvalidInput")
	r2 := runner()
	g.Expect(r2.Pass(ctx)).To(Succeed())
	probe := get(g, probeName)
	g.Expect(probe.Status.Summary).To(ContainSubstring("5 calls refused"))
	g.Expect(probe.Status.Evidence[0].Sequences).To(HaveLen(5))
	g.Expect(probe.Status.Severity).To(Equal(custosv1alpha1.SeverityMedium))

	// Reviews. The namespace's edit role and a viewer cannot make one;
	// a ServiceAccount (the agent itself) and a person without the verb
	// review are refused by admission; an owner does not dismiss.
	review := func(c client.Client, name string, verdict custosv1alpha1.FindingPhase) (*custosv1alpha1.FindingReview, error) {
		rv := &custosv1alpha1.FindingReview{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "review-"},
			Spec: custosv1alpha1.FindingReviewSpec{Finding: name, Verdict: verdict, Reason: "looked at the ledger",
				Reviewer: custosv1alpha1.Approver{Username: "someone-else"}}}
		return rv, c.Create(ctx, rv)
	}
	for _, user := range []string{"eve", "vic"} {
		_, err := review(asUser(t, user), lowName, custosv1alpha1.FindingDismissed)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", user, err)
	}
	for user, want := range map[string]string{
		"system:serviceaccount:" + ns + ":agent-payer": "SeparationOfDuties.ServiceAccount",
		"pat":  "NotAuthorized",
		"olga": "SeparationOfDuties.Owner",
	} {
		_, err := review(asUser(t, user), lowName, custosv1alpha1.FindingDismissed)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", user, err)
		g.Expect(err.Error()).To(ContainSubstring(want), user)
	}
	_, err := review(asUser(t, "anna"), "no-such-finding", custosv1alpha1.FindingConfirmed)
	g.Expect(err).To(MatchError(ContainSubstring("spec.finding: Not found")))

	// The owner acknowledges it, as themselves whatever they wrote.
	ack, err := review(asUser(t, "olga"), lowName, custosv1alpha1.FindingAcknowledged)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ack.Spec.Reviewer.Username).To(Equal("olga"))
	g.Eventually(func(g Gomega) {
		f := get(g, lowName)
		g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FindingAcknowledged))
		g.Expect(f.Status.Reviews).To(ConsistOf(And(HaveField("Review", ack.Name), HaveField("Reviewer.Username", "olga"))))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	_, err = review(asUser(t, "olga"), lowName, custosv1alpha1.FindingAcknowledged)
	g.Expect(err).To(MatchError(ContainSubstring("Acknowledged already")))

	// Nobody deletes an open Finding, or writes its status, or changes
	// what it is about.
	open := get(g, lowName)
	g.Expect(apierrors.IsForbidden(asUser(t, "olga").Delete(ctx, open))).To(BeTrue(), "RBAC")
	err = k8sClient.Delete(ctx, open)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "admission: %v", err)
	g.Expect(err.Error()).To(ContainSubstring("kubectl custos review " + lowName))
	for _, user := range []string{"olga", "rita", "eve"} {
		closed := get(g, lowName)
		patch := client.MergeFrom(closed.DeepCopy())
		closed.Status.Phase = custosv1alpha1.FindingDismissed
		g.Expect(apierrors.IsForbidden(asUser(t, user).Status().Patch(ctx, closed, patch))).To(BeTrue(), user)
	}
	changed := get(g, lowName)
	changed.Spec.Agent = "someone-else"
	g.Expect(k8sClient.Update(ctx, changed)).To(MatchError(ContainSubstring("cannot change")))

	// The risk owner dismisses it: closed, stamped and on the record.
	dismissed, err := review(asUser(t, "rita"), lowName, custosv1alpha1.FindingDismissed)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		f := get(g, lowName)
		g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FindingDismissed))
		g.Expect(f.Status.ClosedAt).NotTo(BeNil())
		g.Expect(f.Status.Reviews).To(HaveLen(2))
		g.Expect(f.Status.Reviews[1].Reviewer.Username).To(Equal("rita"))
		rv := &custosv1alpha1.FindingReview{}
		g.Expect(k8sClient.Get(ctx, keyOf(dismissed), rv)).To(Succeed())
		g.Expect(rv.OwnerReferences).To(ConsistOf(HaveField("UID", f.UID)), "the review goes with its Finding")
		var reviewed []audit.Record
		for _, r := range auditTrail(trailUID(ns, "payer")) {
			if r.Action == audit.ActionFindingReviewed {
				reviewed = append(reviewed, r)
			}
		}
		g.Expect(reviewed).To(HaveLen(2))
		g.Expect(reviewed[1].Details).To(And(HaveKeyWithValue("reviewer", "rita"), HaveKeyWithValue("verdict", "Dismissed"),
			HaveKeyWithValue("finding", lowName)))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	_, err = review(asUser(t, "anna"), lowName, custosv1alpha1.FindingConfirmed)
	g.Expect(err).To(MatchError(ContainSubstring("it is closed")))

	// New evidence the same day opens it again, its reviews kept.
	third := gw.call(ns, "payer", "pay", map[string]string{"access": "Write", "irreversible": "true", "decisionDigest": "sha256:dd", "decision.confidence": "0.1"})
	g.Expect(runner().Pass(ctx)).To(Succeed())
	f = get(g, lowName)
	g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FindingOpen))
	g.Expect(f.Status.ClosedAt).To(BeNil())
	g.Expect(f.Status.Reviews).To(HaveLen(2))
	g.Expect(f.Status.Evidence[0].Sequences).To(ContainElement(int64(third)))
	g.Expect(findings(g)).To(HaveLen(2))

	// An approver confirms it; once its retention has passed it is gone
	// (the suite's clock moves past it).
	_, err = review(asUser(t, "anna"), lowName, custosv1alpha1.FindingConfirmed)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, lowName).Status.Phase).To(Equal(custosv1alpha1.FindingConfirmed))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	testClock.Step(3 * time.Second)
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: lowName}, &custosv1alpha1.Finding{}))
	}).WithTimeout(eventually).WithPolling(poll).Should(BeTrue())
	g.Expect(get(g, probeName).Status.Phase).To(Equal(custosv1alpha1.FindingOpen), "an open Finding does not expire")

	// An agent whose refusals two gateway replicas served (three on one,
	// two on the other) is probing all the same: the windowed rubrics
	// read every trail's records together, and the Finding cites both.
	gwB := newGatewayTrail(t, noon.Add(30*time.Minute))
	gw.clock.SetTime(noon.Add(30 * time.Minute))
	for _, tool := range []string{"a", "b", "c"} {
		gw.refusal(ns, "spread", tool, "UnknownTool")
	}
	for _, tool := range []string{"d", "e"} {
		gwB.refusal(ns, "spread", tool, "OutOfScope")
	}
	both := runner()
	both.Trails = append(both.Trails, evaluate.DirTrail("custos-gateway/gw-1", gwB.dir))
	g.Expect(both.Pass(ctx)).To(Succeed())
	spread := get(g, evaluate.FindingName("spread", evaluate.RubricProbing, noon))
	g.Expect(spread.Status.Hits).To(BeEquivalentTo(1))
	g.Expect(spread.Status.RecordCount).To(BeEquivalentTo(5))
	g.Expect(spread.Status.Evidence).To(ConsistOf(HaveField("AuditLogID", HavePrefix("custos-gateway/gw-0@")), HaveField("AuditLogID", HavePrefix("custos-gateway/gw-1@"))))
	g.Expect(both.Pass(ctx)).To(Succeed())
	g.Expect(runner().Pass(ctx)).To(Succeed())
	g.Expect(get(g, spread.Name).Status.RecordCount).To(BeEquivalentTo(5), "read again, by a manager started again: counted once")

	// The tenant's DataBoundary tightens a line: a confidence of 0.9 is
	// below its 95%, where Custos's default 70% raised nothing.
	b := &custosv1alpha1.DataBoundary{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: tenant}, b)).To(Succeed())
	patch := client.MergeFrom(b.DeepCopy())
	b.Spec.Evaluation = &custosv1alpha1.EvaluationThresholds{MinConfidencePercent: ptr.To[int32](95)}
	g.Expect(k8sClient.Patch(ctx, b, patch)).To(Succeed())
	gw.call(ns, "cautious", "pay", map[string]string{"access": "Write", "irreversible": "true", "decisionDigest": "sha256:ee", "decision.confidence": "0.9"})
	g.Expect(runner().Pass(ctx)).To(Succeed())
	g.Expect(get(g, evaluate.FindingName("cautious", evaluate.RubricLowConfidence, noon)).Status.Summary).To(ContainSubstring("below 0.95"))

	// A trail under the same name whose store was emptied (a new chain)
	// is read from its first record, not from where the old one ended.
	gw2 := newGatewayTrail(t, noon.Add(time.Hour))
	fresh := gw2.call(ns, "newcomer", "pay", map[string]string{"access": "Write", "irreversible": "true", "decisionDigest": "sha256:ff"})
	g.Expect(fresh).To(BeZero())
	r3 := runner()
	r3.Trails = []evaluate.Trail{evaluate.DirTrail("custos-gateway/gw-0", gw2.dir)}
	g.Expect(r3.Pass(ctx)).To(Succeed())
	newcomer := get(g, evaluate.FindingName("newcomer", evaluate.RubricLowConfidence, noon))
	g.Expect(newcomer.Status.Evidence).To(ConsistOf(And(HaveField("Sequences", Equal([]int64{0})),
		HaveField("AuditLogID", Not(Equal(f.Status.Evidence[0].AuditLogID))))))
	// What hits consumed of the old chain does not hide the new chain's
	// records: five refusals at its start (seqs 1 to 5, which the old
	// chain's probing consumed) are probing.
	for _, tool := range []string{"v", "w", "x", "y", "z"} {
		gw2.refusal(ns, "payer", tool, "UnknownTool")
	}
	g.Expect(r3.Pass(ctx)).To(Succeed())
	g.Expect(get(g, probeName).Status.Evidence).To(ContainElement(And(HaveField("AuditLogID", Equal(newcomer.Status.Evidence[0].AuditLogID)),
		HaveField("Sequences", Equal([]int64{1, 2, 3, 4, 5})))))
}

func trailUID(ns, agent string) types.UID { return types.UID("uid-" + ns + "-" + agent) }

// An Agent may tighten the lines its DataBoundary sets for the evaluator,
// never loosen them, and no window passes what the evaluator keeps:
// admission names the field, the boundary and its line.
func TestAgentEvaluationOnlyTightens(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("evl")
	b := createBoundary(t, tenant, "eu-west-1")
	patch := client.MergeFrom(b.DeepCopy())
	b.Spec.Evaluation = &custosv1alpha1.EvaluationThresholds{MinConfidencePercent: ptr.To[int32](80)}
	g.Expect(k8sClient.Patch(ctx, b, patch)).To(Succeed())
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	loose := newAgent(ns, "loose", tenant)
	loose.Spec.Evaluation = &custosv1alpha1.EvaluationThresholds{MinConfidencePercent: ptr.To[int32](60), ProbeRefusals: ptr.To[int32](50)}
	err := k8sClient.Create(ctx, loose)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("spec.evaluation.minConfidencePercent: Invalid value: 60"),
		ContainSubstring("looser than DataBoundary "+b.Name+"'s"), ContainSubstring("of 80%"),
		ContainSubstring("spec.evaluation.probeRefusals: Invalid value: 50"), ContainSubstring("may only tighten")))

	tight := newAgent(ns, "tight", tenant)
	tight.Spec.Evaluation = &custosv1alpha1.EvaluationThresholds{MinConfidencePercent: ptr.To[int32](90), ProbeRefusals: ptr.To[int32](2),
		ProbeWindow: &metav1.Duration{Duration: 30 * time.Minute}}
	g.Expect(k8sClient.Create(ctx, tight)).To(Succeed())
	long := client.MergeFrom(tight.DeepCopy())
	tight.Spec.Evaluation.ProbeWindow = &metav1.Duration{Duration: 2 * time.Hour}
	err = k8sClient.Patch(ctx, tight, long)
	g.Expect(err).To(MatchError(ContainSubstring("spec.evaluation.probeWindow: Invalid value: \"2h0m0s\": must be above 0s and at most 1h0m0s")))

	// A boundary's own window is held to the same.
	patch = client.MergeFrom(b.DeepCopy())
	b.Spec.Evaluation.DeniedWindow = &metav1.Duration{Duration: 30 * 24 * time.Hour}
	err = k8sClient.Patch(ctx, b, patch)
	g.Expect(err).To(MatchError(ContainSubstring("spec.evaluation.deniedWindow")))

	// A schedule: an unknown time zone is refused; a call outside the
	// agent's schedule, read in its zone, opens an off-schedule Finding,
	// one inside it nothing.
	mars := newAgent(ns, "martian", tenant)
	mars.Spec.Schedule = &custosv1alpha1.AgentSchedule{TimeZone: "Mars/Olympus_Mons",
		Windows: []custosv1alpha1.ScheduleWindow{{Start: "09:00", Duration: metav1.Duration{Duration: 8 * time.Hour}}}}
	err = k8sClient.Create(ctx, mars)
	g.Expect(err).To(MatchError(ContainSubstring("spec.schedule.timeZone: Invalid value: \"Mars/Olympus_Mons\"")))
	office := newAgent(ns, "office", tenant)
	office.Spec.Schedule = &custosv1alpha1.AgentSchedule{TimeZone: "Europe/Berlin", Windows: []custosv1alpha1.ScheduleWindow{
		{Days: []custosv1alpha1.Weekday{"Mon", "Tue", "Wed", "Thu", "Fri"}, Start: "09:00", Duration: metav1.Duration{Duration: 9 * time.Hour}}}}
	g.Expect(k8sClient.Create(ctx, office)).To(Succeed())
	saturday := time.Date(2026, 12, 12, 2, 12, 0, 0, time.UTC) // 03:12 in Berlin
	gw := newGatewayTrail(t, saturday)
	gw.call(ns, "office", "ledger.get", map[string]string{"access": "Read"})
	monday := newGatewayTrail(t, time.Date(2026, 12, 14, 9, 30, 0, 0, time.UTC))
	monday.call(ns, "office", "ledger.get", map[string]string{"access": "Read"})
	stateNS := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("evls"))
	runner := &evaluate.Runner{Reader: k8sClient, Client: k8sClient, Namespace: stateNS, Audit: auditLog, Actor: ControllerActor,
		Trails: []evaluate.Trail{evaluate.DirTrail("custos-gateway/sat", gw.dir), evaluate.DirTrail("custos-gateway/mon", monday.dir)}}
	g.Expect(runner.Pass(ctx)).To(Succeed())
	f := &custosv1alpha1.Finding{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: evaluate.FindingName("office", evaluate.RubricOffSchedule, saturday)}, f)).To(Succeed())
	g.Expect(f.Status.Summary).To(ContainSubstring("at Sat 03:12 CET, outside its schedule"))
	err = k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: evaluate.FindingName("office", evaluate.RubricOffSchedule, monday.clock.Now())}, &custosv1alpha1.Finding{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Monday 10:30 in Berlin is within it: %v", err)
}

// TestAuditFeed: the evaluator reads a component's trail from its pod's
// feed, as it does in a cluster: the pods found by their labels, each
// dialled by IP and verified for the component's Service name, with a
// token of the feed's audience for the manager's ServiceAccount; the feed
// answers no other token, audience or reader, and the evaluator trusts no
// other certificate.
func TestAuditFeed(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("feed"))
	for _, sa := range []string{"custos-manager", "intruder"} {
		g.Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}})).To(Succeed())
	}
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	gw := newGatewayTrail(t, noon)
	seq := gw.call(ns, "remote", "pay", map[string]string{"access": "Write", "irreversible": "true", "decisionDigest": "sha256:aa", "decision.confidence": "0.2"})

	// The component's TLS listener, serving its feed beside its own
	// handler.
	handler, feedHandler, err := audit.WithFeed(http.NotFoundHandler(), audit.Config{Sink: audit.SinkBoth, Dir: gw.dir},
		[]string{"system:serviceaccount:" + ns + ":custos-manager"}, k8sClient)
	g.Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewTLSServer(handler)
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	g.Expect(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)).To(Succeed())
	_, _, err = audit.WithFeed(http.NotFoundHandler(), audit.Config{Sink: audit.SinkStdout}, []string{"x"}, k8sClient)
	g.Expect(err).To(MatchError(ContainSubstring("needs --audit-sink=file or both")))

	token := &audit.FeedToken{Client: k8sClient, Namespace: ns, SA: "custos-manager"}
	feed := &audit.FeedClient{URL: srv.URL, HTTP: evaluate.FeedHTTPClient(caFile, "example.com"), Token: token.Get}
	records, err := feed.Records(ctx, 0, 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(records).To(HaveLen(1))
	g.Expect(records[0].Seq).To(Equal(seq))
	g.Expect(records[0].Details).To(HaveKeyWithValue("decision.confidence", "0.2"))

	// Refused: another ServiceAccount's token of the feed's audience, the
	// manager's token of another audience, no token; and a certificate
	// not for the component's name.
	intruder := &audit.FeedClient{URL: srv.URL, HTTP: feed.HTTP, Token: (&audit.FeedToken{Client: k8sClient, Namespace: ns, SA: "intruder"}).Get}
	_, err = intruder.Records(ctx, 0, 0)
	g.Expect(err).To(MatchError(And(ContainSubstring("403"), ContainSubstring("intruder may not read this trail"))))
	apiToken := func(ctx context.Context) (string, error) {
		tr := &authenticationv1.TokenRequest{}
		err := k8sClient.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "custos-manager"}}, tr)
		return tr.Status.Token, err
	}
	_, err = (&audit.FeedClient{URL: srv.URL, HTTP: feed.HTTP, Token: apiToken}).Records(ctx, 0, 0)
	g.Expect(err).To(MatchError(And(ContainSubstring("401"), ContainSubstring("audience custos-audit-feed"))))
	_, err = (&audit.FeedClient{URL: srv.URL, HTTP: feed.HTTP, Token: func(context.Context) (string, error) { return "", nil }}).Records(ctx, 0, 0)
	g.Expect(err).To(MatchError(ContainSubstring("401")))
	_, err = (&audit.FeedClient{URL: srv.URL, HTTP: evaluate.FeedHTTPClient(caFile, "custos-gateway.custos-system.svc"), Token: token.Get}).Records(ctx, 0, 0)
	g.Expect(err).To(MatchError(ContainSubstring("certificate is valid for")))

	// The evaluator finds the component's running pods by their labels
	// (a pod not running, or of another component, is not read) and
	// opens the Finding from the record it read through the feed.
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	g.Expect(err).NotTo(HaveOccurred())
	portN, err := strconv.Atoi(port)
	g.Expect(err).NotTo(HaveOccurred())
	pod := func(name string, labels map[string]string, phase corev1.PodPhase) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway", Image: "gateway"}}}}
		g.Expect(k8sClient.Create(ctx, p)).To(Succeed())
		p.Status = corev1.PodStatus{Phase: phase, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}}
		g.Expect(k8sClient.Status().Update(ctx, p)).To(Succeed())
	}
	gatewayLabels := map[string]string{"app.kubernetes.io/name": "custos-gateway"}
	pod("custos-gateway-0", gatewayLabels, corev1.PodRunning)
	pod("custos-gateway-1", gatewayLabels, corev1.PodPending)
	pod("something-else", map[string]string{"app.kubernetes.io/name": "ledger"}, corev1.PodRunning)
	discover := evaluate.FeedTrails(k8sClient, token.Get, evaluate.Feed{Component: "custos-gateway", Namespace: ns,
		Selector: labels.SelectorFromSet(gatewayLabels), Port: portN, HTTP: feed.HTTP})
	trails, err := discover(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(trails).To(ConsistOf(HaveField("ID", "custos-gateway/custos-gateway-0")))

	stateNS := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("feeds"))
	runner := &evaluate.Runner{Reader: k8sClient, Client: k8sClient, Namespace: stateNS, Audit: auditLog, Actor: ControllerActor,
		Discover: discover}
	g.Expect(runner.Pass(ctx)).To(Succeed())
	f := &custosv1alpha1.Finding{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: evaluate.FindingName("remote", evaluate.RubricLowConfidence, noon)}, f)).To(Succeed())
	g.Expect(f.Status.Evidence).To(ConsistOf(HaveField("AuditLogID", HavePrefix("custos-gateway/custos-gateway-0@"))))

	// A component stopping serves its feed alone, once it stopped serving
	// the rest, until the evaluator has read its last record: here the
	// record after those it read, which the next pass reads.
	certDir := t.TempDir()
	key, err := x509.MarshalPKCS8PrivateKey(srv.TLS.Certificates[0].PrivateKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(certDir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(certDir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)).To(Succeed())
	last := gw.call(ns, "remote", "pay", map[string]string{"access": "Write", "irreversible": "true", "decisionDigest": "sha256:bb", "decision.confidence": "0.1"})
	srv.Close()
	drained := make(chan error, 1)
	go func() {
		read, err := audit.DrainFeed(ctx, feedHandler, srv.Listener.Addr().String(), certDir, last, 20*time.Second)
		if err == nil && !read {
			err = errors.New("the drain ended before the evaluator read the last record")
		}
		drained <- err
	}()
	g.Consistently(drained).WithTimeout(time.Second).ShouldNot(Receive(), "the evaluator has not read it yet")
	g.Eventually(func() error { return runner.Pass(ctx) }).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(runner.Pass(ctx)).To(Succeed())
	g.Eventually(drained).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(f), f)).To(Succeed())
	g.Expect(f.Status.Hits).To(BeEquivalentTo(2))

	// Nobody reading: the drain ends after its time.
	read, err := audit.DrainFeed(ctx, feedHandler, "127.0.0.1:0", certDir, last+5, 300*time.Millisecond)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(read).To(BeFalse())
}

// TestDeniedApprovalsFromTheManagersTrail: three of an agent's requests
// denied by people within a day, as the manager records its tallies on its
// own trail, open a denied-approvals Finding that cites those three
// tallies, not the decisions behind them.
func TestDeniedApprovalsFromTheManagersTrail(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := newApprovalFixture(t)
	for range 3 {
		ar := f.request(1)
		_, err := f.decide(ar, "carol", custosv1alpha1.Deny)
		g.Expect(err).NotTo(HaveOccurred())
		expectPhase(g, ar, custosv1alpha1.ApprovalDenied, 0)
	}
	g.Expect(auditLog.Flush(ctx)).To(Succeed())
	stateNS := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("dens"))
	runner := &evaluate.Runner{Reader: k8sClient, Client: k8sClient, Namespace: stateNS, Audit: auditLog, Actor: ControllerActor,
		Trails: []evaluate.Trail{evaluate.DirTrail("custos-manager", auditDir)}}
	g.Expect(runner.Pass(ctx)).To(Succeed())
	var list custosv1alpha1.FindingList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(f.ns), client.MatchingLabels{evaluate.RubricLabel: evaluate.RubricDeniedApprovals})).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1))
	found := list.Items[0]
	g.Expect(found.Spec.Agent).To(Equal("payer"))
	g.Expect(found.Status.RecordCount).To(BeEquivalentTo(3))
	g.Expect(found.Status.Summary).To(MatchRegexp(`^3 approval requests denied within \d+s \(pay 3\)$`))
	g.Expect(found.Status.Evidence).To(ConsistOf(HaveField("AuditLogID", HavePrefix("custos-manager@"))))
	for _, r := range auditRecords.Events() {
		for _, seq := range found.Status.Evidence[0].Sequences {
			if r.Seq == uint64(seq) {
				g.Expect(r.Action).To(Equal(audit.ActionApprovalDecided))
				g.Expect(r.Details).To(And(HaveKeyWithValue("phase", "Denied"), Not(HaveKey("approvalDecision"))), "the tally, not a decision")
			}
		}
	}
}
