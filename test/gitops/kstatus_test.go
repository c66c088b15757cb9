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

package gitops

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// These tests follow each kind through what a GitOps tool watches after it
// applies: the object as the API server returns it, then as Custos
// reconciles it. At every step both kstatus (Flux's health checks, kubectl
// wait tooling) and the Argo CD health check of docs/argocd read the very
// object the API server served, and must agree.

// unstructuredOf returns obj as an unstructured object of its kind.
func unstructuredOf(g Gomega, obj client.Object) *unstructured.Unstructured {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{Object: m}
	gvk, err := apiutil.GVKForObject(obj, scheme)
	g.Expect(err).NotTo(HaveOccurred())
	u.SetGroupVersionKind(gvk)
	return u
}

// create creates obj and returns the object the API server answered with:
// what a GitOps tool sees right after it applied.
func create(g Gomega, obj client.Object) map[string]any {
	u := unstructuredOf(g, obj)
	g.ExpectWithOffset(1, k8sClient.Create(context.Background(), u)).To(Succeed())
	return u.Object
}

// read reads obj afresh from the API server, as Argo CD's cache and Flux's
// status poller hold it.
func read(g Gomega, obj client.Object) map[string]any {
	u := &unstructured.Unstructured{}
	gvk, err := apiutil.GVKForObject(obj, scheme)
	g.Expect(err).NotTo(HaveOccurred())
	u.SetGroupVersionKind(gvk)
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), u)).To(Succeed())
	return u.Object
}

// mergePatch changes obj's spec as an edit in Git would and returns the
// object the API server answered with.
func mergePatch(g Gomega, obj client.Object, patch string) map[string]any {
	u := &unstructured.Unstructured{}
	gvk, err := apiutil.GVKForObject(obj, scheme)
	g.Expect(err).NotTo(HaveOccurred())
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(obj.GetNamespace())
	u.SetName(obj.GetName())
	g.ExpectWithOffset(1, k8sClient.Patch(context.Background(), u, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
	return u.Object
}

// expectStatus asserts what kstatus computes for obj and what the Argo CD
// health check makes of it, whose message must hold each substring.
func expectStatus(g Gomega, obj map[string]any, want status.Status, wantArgo string, msgSubstrings ...string) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	g.Expect(err).NotTo(HaveOccurred())
	g.ExpectWithOffset(1, res.Status).To(Equal(want), "kstatus of %s %s: %s", obj["kind"], nameOf(obj), res.Message)
	h, err := argoCDHealth(healthScript, obj)
	g.Expect(err).NotTo(HaveOccurred(), "the health check fails on %s %s", obj["kind"], nameOf(obj))
	g.ExpectWithOffset(1, h.Status).To(Equal(wantArgo), "Argo CD health of %s %s: %q", obj["kind"], nameOf(obj), h.Message)
	for _, s := range msgSubstrings {
		g.ExpectWithOffset(1, h.Message).To(ContainSubstring(s), "Argo CD health message of %s %s", obj["kind"], nameOf(obj))
	}
}

func observedGeneration(obj map[string]any) int64 {
	n, _, _ := unstructured.NestedInt64(obj, "status", "observedGeneration")
	return n
}

func generation(obj map[string]any) int64 {
	return (&unstructured.Unstructured{Object: obj}).GetGeneration()
}

// TestAgentStatusForGitOps follows an Agent from Git through onboarding,
// rollout, suspension and decommissioning by spec.
func TestAgentStatusForGitOps(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("ks-agent")
	createBoundary(t, tenant)
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	create(g, fixtures.Toolset(ns, "ledger", tenant))
	agent := newAgent(ns, "reconciler", tenant, fixtures.WithToolsets("ledger"),
		fixtures.WithAWSRole(fixtures.AWSRoleARN(tenant+"-reconciler")))
	const deployment = "agent-reconciler"

	// Right after the apply: not observed yet.
	obj := create(g, agent)
	g.Expect(observedGeneration(obj)).To(Equal(int64(-1)))
	expectStatus(g, obj, status.InProgressStatus, progressing, "Waiting for Custos to observe the Agent")

	// Reconciled, waiting for its Deployment to roll out.
	g.Eventually(func(g Gomega) {
		obj := read(g, agent)
		g.Expect(observedGeneration(obj)).To(Equal(generation(obj)))
		expectStatus(g, obj, status.InProgressStatus, progressing, "waiting for the deployment controller to roll out generation 1")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Rolled out: current and healthy.
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, deployment) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, agent), status.CurrentStatus, healthy, "Agent runs with its own identity", "1/1 replicas available")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Suspended in Git: the edit is a generation ahead of the status...
	obj = mergePatch(g, agent, `{"spec":{"lifecycle":{"state":"Suspended"}}}`)
	g.Expect(generation(obj)).To(Equal(int64(2)))
	expectStatus(g, obj, status.InProgressStatus, progressing, "Waiting for Custos to observe generation 2 (observed 1)")
	// ...then Custos scales it to zero and waits for the rollout...
	g.Eventually(func(g Gomega) {
		obj := read(g, agent)
		g.Expect(observedGeneration(obj)).To(Equal(int64(2)))
		expectStatus(g, obj, status.InProgressStatus, progressing, "waiting for the deployment controller to roll out generation 2")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// ...and once it has, is what its spec asks for: current, and suspended
	// for Argo CD.
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, deployment) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, agent), status.CurrentStatus, suspended, "Suspended by spec.lifecycle.state")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Decommissioned in Git: a tombstone that reached its final state.
	mergePatch(g, agent, `{"spec":{"lifecycle":{"state":"Decommissioned"}}}`)
	g.Eventually(func(g Gomega) {
		obj := read(g, agent)
		g.Expect(observedGeneration(obj)).To(Equal(generation(obj)))
		expectStatus(g, obj, status.CurrentStatus, healthy, "Decommissioned: every lease revoked")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestExpiredAgentIsSuspended: an agent past its expiry is suspended on its
// own; GitOps tools see it current, Argo CD as suspended.
func TestExpiredAgentIsSuspended(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("ks-expired")
	createBoundary(t, tenant)
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent := newAgent(ns, "expired", tenant, fixtures.WithExpiry(time.Now().Add(-time.Hour)))
	create(g, agent)

	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, "agent-expired") }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, agent), status.CurrentStatus, suspended, "Expired at")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestStalledAgentFails: the platform team narrows the boundary so that a
// running agent's role is no longer allowed. The agent stalls: kstatus
// Failed, Degraded in Argo CD, saying which field breaks which rule; and it
// recovers when the boundary allows it again.
func TestStalledAgentFails(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("ks-stalled")
	b := createBoundary(t, tenant)
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent := newAgent(ns, "narrowed", tenant, fixtures.WithAWSRole(fixtures.AWSRoleARN(tenant+"-narrowed")))
	create(g, agent)
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, "agent-narrowed") }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, agent), status.CurrentStatus, healthy)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	setRoles := func(roles string) {
		g.Eventually(func() error {
			return k8sClient.Patch(context.Background(), b.DeepCopy(),
				client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cloudRoles":{"awsRoleARNs":["`+roles+`"]}}}`)))
		}).WithTimeout(eventually).Should(Succeed())
	}
	setRoles("arn:aws:iam::111122223333:role/" + tenant + "-readers-*")
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, agent), status.FailedStatus, degraded, "spec.identity.aws.roleARN")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Allowed again, it runs again: no longer stalled.
	setRoles("arn:aws:iam::111122223333:role/" + tenant + "-*")
	g.Eventually(func(g Gomega) {
		obj := read(g, agent)
		res, err := status.Compute(&unstructured.Unstructured{Object: obj})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Status).NotTo(Equal(status.FailedStatus), res.Message)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, "agent-narrowed") }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, agent), status.CurrentStatus, healthy)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestUnsignedImageFails: an Agent whose image carries no signature its
// boundary trusts never runs, and stalls: kstatus Failed, Degraded in Argo
// CD, saying why. Pointed in Git at a signed image, it runs that image,
// pinned by digest.
func TestUnsignedImageFails(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("ks-unsigned")
	createBoundary(t, tenant)
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	unsigned, _, err := images.Registry.Push("agents/unsigned:1.0.0")
	g.Expect(err).NotTo(HaveOccurred())
	agent := newAgent(ns, "unsigned", tenant)
	agent.Spec.Image = unsigned
	create(g, agent)
	g.Eventually(func(g Gomega) {
		obj := read(g, agent)
		g.Expect(observedGeneration(obj)).To(Equal(generation(obj)))
		expectStatus(g, obj, status.FailedStatus, degraded, "spec.image has no signature")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	err = k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "agent-unsigned"}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "an unverified image got a Deployment: %v", err)

	mergePatch(g, agent, `{"spec":{"image":"`+images.Image+`"}}`)
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, "agent-unsigned") }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, agent), status.CurrentStatus, healthy)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	get(g, agent)
	expectPinned(g, agent)
}

// TestToolsetStatusForGitOps: a Toolset is in progress until Custos has
// compiled its schemas, then current, and in progress again for each edit
// until Custos has seen it.
func TestToolsetStatusForGitOps(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("ks-toolset")
	createBoundary(t, tenant)
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	ts := fixtures.Toolset(ns, "ledger", tenant)

	obj := create(g, ts)
	expectStatus(g, obj, status.InProgressStatus, progressing, "Waiting for Custos to observe the Toolset")
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, ts), status.CurrentStatus, healthy, "1 tool, ReadOnly")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	obj = mergePatch(g, ts, `{"spec":{"description":"Look up invoices."}}`)
	expectStatus(g, obj, status.InProgressStatus, progressing, "Waiting for Custos to observe generation 2 (observed 1)")
	g.Eventually(func(g Gomega) {
		obj := read(g, ts)
		g.Expect(observedGeneration(obj)).To(Equal(int64(2)))
		expectStatus(g, obj, status.CurrentStatus, healthy, "1 tool, ReadOnly")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestInvalidToolsetNeverLooksCurrent: a Toolset whose schema does not
// compile is refused wherever it is applied, so a sync fails loudly instead
// of leaving an object that looks Current: by the webhook in a tenant
// namespace, and by the tenant-label policy where the webhooks do not look
// (Custos's own namespace).
func TestInvalidToolsetNeverLooksCurrent(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	const system = "custos-system"
	err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: system}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %s: %v", system, err)
	}
	tenant := fixtures.UniqueTenant("schema")
	for ns, want := range map[string]string{
		fixtures.CreateTenantNamespace(t, k8sClient, tenant): "spec.tools[0].inputSchema",
		system: "carries no custos.dev/tenant label",
	} {
		ts := fixtures.Toolset(ns, "broken", tenant)
		ts.Spec.Tools[0].InputSchema = &runtime.RawExtension{Raw: []byte(`{"type": "object", "properties": {"amount": {"type": 12}}}`)}
		err := k8sClient.Create(ctx, unstructuredOf(g, ts))
		g.Expect(err).To(HaveOccurred(), "an invalid Toolset was stored in %s", ns)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "refused, but not as invalid: %v", err)
		g.Expect(err.Error()).To(ContainSubstring(want))
	}
}

// TestDataBoundaryStatusForGitOps: a boundary is in progress until Custos
// has seen it, current while it alone covers its namespaces, failed while
// another boundary covers one of them too, and current again once the
// conflict is gone.
func TestDataBoundaryStatusForGitOps(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("ks-boundary")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	b := newBoundary(tenant)
	obj := create(g, b)
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, b) })
	expectStatus(g, obj, status.InProgressStatus, progressing, "Waiting for Custos to observe the DataBoundary")
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, b), status.CurrentStatus, healthy, "Covers 1 namespace")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	other := newBoundary(tenant)
	other.Name = tenant + "-other"
	create(g, other)
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, other) })
	for _, db := range []*custosv1alpha1.DataBoundary{b, other} {
		g.Eventually(func(g Gomega) {
			expectStatus(g, read(g, db), status.FailedStatus, degraded, "namespace "+ns+" is also covered by DataBoundary")
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	}

	g.Expect(k8sClient.Delete(ctx, other)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectStatus(g, read(g, b), status.CurrentStatus, healthy, "Covers 1 namespace")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// newApprovalRequest is a request as custos-gateway makes one for a call
// of agent payer to tool pay of Toolset ledger, needing quorum approvals.
func newApprovalRequest(ns, name string, quorum int32) *custosv1alpha1.ApprovalRequest {
	return &custosv1alpha1.ApprovalRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: custosv1alpha1.ApprovalRequestSpec{
			Agent:      custosv1alpha1.ApprovalAgent{Name: "payer", UID: "6d1f3c9e-0000-4000-8000-000000000001"},
			Toolset:    custosv1alpha1.ToolsetReference{Name: "ledger"},
			Tool:       "pay",
			Access:     custosv1alpha1.ToolAccessWrite,
			CallDigest: "sha256:" + strings.Repeat("ab", 32),
			Arguments:  `{"amount":1200}`,
			Person:     "paula@example.com",
			Policies:   []string{"payments"},
			Quorum:     quorum,
			ExpiresAt:  metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		},
	}
}

// setApprovalStatus writes req's status through the status subresource,
// as the manager (phase, counts, Ready) or custos-gateway (Consumed) do,
// and returns the object the API server answered with. (The manager's
// approval controller may tally the request again afterwards; what a tool
// reads is asserted on the answer, so the test does not race it.)
func setApprovalStatus(g Gomega, req *custosv1alpha1.ApprovalRequest, st custosv1alpha1.ApprovalRequestStatus) map[string]any {
	g.Eventually(func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(req), req); err != nil {
			return err
		}
		req.Status = st
		return k8sClient.Status().Update(context.Background(), req)
	}).WithTimeout(eventually).Should(Succeed())
	g.ExpectWithOffset(1, req.Status.Phase).To(Equal(st.Phase))
	return unstructuredOf(g, req).Object
}

// readyCondition is the Ready condition of an ApprovalRequest in phase:
// False while Pending, True once decided.
func readyCondition(phase custosv1alpha1.ApprovalPhase, message string) []metav1.Condition {
	st := metav1.ConditionTrue
	if phase == custosv1alpha1.ApprovalPending {
		st = metav1.ConditionFalse
	}
	return []metav1.Condition{{Type: custosv1alpha1.ReadyCondition, Status: st, Reason: string(phase), Message: message,
		LastTransitionTime: metav1.Now()}}
}

// TestApprovalStatusForGitOps: what kstatus and the Argo CD health check
// make of the approval kinds, as the API server serves them (their CRDs,
// defaults and status subresource). ApprovalPolicies and ApprovalDecisions
// have no status: Current and Healthy once stored. An ApprovalRequest is
// waited on while Pending, Healthy when approved or consumed, and Degraded
// for Argo CD when denied or expired; kstatus, which reads its Ready
// condition, calls every decided request Current. custos-gateway and the
// manager write the statuses here by hand: the test is what the tools
// read, not who writes it.
func TestApprovalStatusForGitOps(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("ks-approval")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	// The risk owner's policy, from Git.
	policy := &custosv1alpha1.ApprovalPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments"},
		Spec:       custosv1alpha1.ApprovalPolicySpec{Quorum: 2, Match: custosv1alpha1.ApprovalMatch{Write: true}},
	}
	expectStatus(g, create(g, policy), status.CurrentStatus, healthy, "ApprovalPolicy stored")
	expectStatus(g, read(g, policy), status.CurrentStatus, healthy, "ApprovalPolicy stored")

	// A held call, as the gateway creates it: no phase yet. kstatus sees
	// no condition and says Current; the health check waits for Custos.
	req := newApprovalRequest(ns, "payer-0123456789abcdef-1", 2)
	obj := create(g, req)
	expectStatus(g, obj, status.CurrentStatus, progressing, "Waiting for Custos to observe the ApprovalRequest")

	// Pending: Ready False.
	obj = setApprovalStatus(g, req, custosv1alpha1.ApprovalRequestStatus{
		Phase: custosv1alpha1.ApprovalPending, Approvals: 1,
		Conditions: readyCondition(custosv1alpha1.ApprovalPending, "waiting for 1 more approval"),
	})
	expectStatus(g, obj, status.InProgressStatus, progressing, "Waiting for 1 of 2 approvals, until 2030-01-01T00:00:00Z")

	// Approved: decided, ready to run once.
	decided := metav1.Now()
	obj = setApprovalStatus(g, req, custosv1alpha1.ApprovalRequestStatus{
		Phase: custosv1alpha1.ApprovalApproved, Approvals: 2, DecidedAt: &decided,
		Conditions: readyCondition(custosv1alpha1.ApprovalApproved, "approved by 2 of 2"),
	})
	expectStatus(g, obj, status.CurrentStatus, healthy, "Approved with 2 of 2 approvals", "runs once")

	// Consumed by the gateway: the call ran.
	consumed := metav1.NewTime(time.Date(2029, 12, 31, 12, 0, 0, 0, time.UTC))
	obj = setApprovalStatus(g, req, custosv1alpha1.ApprovalRequestStatus{
		Phase: custosv1alpha1.ApprovalConsumed, Approvals: 2, DecidedAt: &decided, ConsumedAt: &consumed,
		Conditions: readyCondition(custosv1alpha1.ApprovalConsumed, "the approved call ran"),
	})
	expectStatus(g, obj, status.CurrentStatus, healthy, "Consumed: the approved call ran at 2029-12-31T12:00:00Z")
	// A consumed request is final: read again, it is what it was.
	expectStatus(g, read(g, req), status.CurrentStatus, healthy, "Consumed: the approved call ran")

	// Denied by one counted veto: decided, so Current for kstatus;
	// Degraded for Argo CD, naming who denied it.
	denied := newApprovalRequest(ns, "payer-0123456789abcdef-2", 2)
	create(g, denied)
	setApprovalStatus(g, denied, custosv1alpha1.ApprovalRequestStatus{
		Phase: custosv1alpha1.ApprovalDenied, DecidedAt: &decided,
		Decisions: []custosv1alpha1.ApprovalVote{
			{Name: "paula-approves", Approver: custosv1alpha1.Approver{Username: "paula@example.com"}, Decision: custosv1alpha1.Approve,
				Counted: false, Reason: "the person the agent acts for", DecidedAt: decided},
			{Name: "dora-denies", Approver: custosv1alpha1.Approver{Username: "dora@example.com"}, Decision: custosv1alpha1.Deny,
				Counted: true, DecidedAt: decided},
		},
		Conditions: readyCondition(custosv1alpha1.ApprovalDenied, "denied by dora@example.com"),
	})
	expectStatus(g, read(g, denied), status.CurrentStatus, degraded, "Denied by dora@example.com (0 of 2 approvals)")

	// Expired: silence denies.
	expired := newApprovalRequest(ns, "payer-0123456789abcdef-3", 1)
	create(g, expired)
	setApprovalStatus(g, expired, custosv1alpha1.ApprovalRequestStatus{
		Phase: custosv1alpha1.ApprovalExpired, DecidedAt: &decided,
		Conditions: readyCondition(custosv1alpha1.ApprovalExpired, "no quorum before 2030-01-01T00:00:00Z"),
	})
	expectStatus(g, read(g, expired), status.CurrentStatus, degraded, "Expired at 2030-01-01T00:00:00Z with 0 of 1 approvals")

	// A person's decision: immutable, no status. It is made on a request
	// still open, which the suite's administrator may decide (it holds
	// approve on every Toolset, and may change the Agent: owners are let
	// approve here), so that Custos's admission webhook lets it through.
	open := newApprovalRequest(ns, "payer-0123456789abcdef-4", 2)
	notOwners := false
	open.Spec.SeparationOfDuties.ExcludeOwners = &notOwners
	create(g, open)
	decision := &custosv1alpha1.ApprovalDecision{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admin-approves"},
		Spec:       custosv1alpha1.ApprovalDecisionSpec{Request: open.Name, Decision: custosv1alpha1.Approve, Comment: "within budget"},
	}
	expectStatus(g, create(g, decision), status.CurrentStatus, healthy, "ApprovalDecision stored")
	expectStatus(g, read(g, decision), status.CurrentStatus, healthy, "ApprovalDecision stored")
}
