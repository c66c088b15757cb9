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
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// changeRequestOf is the agent's ApprovalRequest for generation gen.
func changeRequestOf(g Gomega, a *custosv1alpha1.Agent, gen int64) *custosv1alpha1.ApprovalRequest {
	var list custosv1alpha1.ApprovalRequestList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(a.Namespace),
		client.MatchingLabels{custosv1alpha1.AgentUIDLabel: string(a.UID)})).To(Succeed())
	for i := range list.Items {
		if c := list.Items[i].Spec.Change; c != nil && c.Generation == gen {
			return &list.Items[i]
		}
	}
	g.Expect(list.Items).To(ContainElement(HaveField("Spec.Change.Generation", gen)), "no request for generation %d", gen)
	return nil
}

// egressPorts are the ports the agent's NetworkPolicy lets it reach.
func egressPorts(g Gomega, a *custosv1alpha1.Agent) []int {
	np := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: a.Namespace, Name: "agent-" + a.Name}, np)).To(Succeed())
	var out []int
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			out = append(out, p.Port.IntValue())
		}
	}
	return out
}

func grantedNames(a *custosv1alpha1.Agent) []string {
	var out []string
	for _, r := range a.GrantedToolsetRefs() {
		out = append(out, r.Name)
	}
	return out
}

// TestAgentChangesWaitForApproval: with an ApprovalPolicy that holds the
// agent's changes, a generation adding a Toolset with Write tools and a
// cloud role runs with the previous generation's Toolsets, network and
// roles until two people who may approve agents (not its owner) approve
// it; it is consumed once; removals take effect at once; a denial keeps
// the addition out. Without such a policy, nothing waits.
func TestAgentChangesWaitForApproval(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("chg")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "docs", tenant))
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "crm", tenant, fixtures.WithTools(
		custosv1alpha1.Tool{Name: "update_contact", Access: custosv1alpha1.ToolAccessWrite})))
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "payments", tenant, func(ts *custosv1alpha1.Toolset) {
		ts.Spec.Endpoint.InCluster.PodSelector = map[string]string{"app": "payments-api"}
		ts.Spec.Endpoint.InCluster.Port = 9090
		ts.Spec.Tools = []custosv1alpha1.Tool{{Name: "pay", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true}}
	}))
	approver := fixtures.Create(t, k8sClient, chartTenantRole(t, "approver", ns+"-approver"))
	owner := fixtures.Create(t, k8sClient, chartTenantRole(t, "agent-owner", ns+"-agent-owner"))
	for _, u := range []string{"carol", "dave", "olga"} {
		bindInNamespace(t, ns, "approver-"+u, approver.Name, u)
	}
	bindInNamespace(t, ns, "owner-olga", owner.Name, "olga")

	// No policy holds changes: a Write Toolset is in force at once.
	agent := newAgent(ns, "treasurer", tenant, fixtures.WithToolsets("docs", "crm"))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ChangesApprovedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(grantedNames(a)).To(Equal([]string{"docs", "crm"}))
		g.Expect(a.Status.Granted.Generation).To(Equal(a.Generation))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	fixtures.Create(t, k8sClient, &custosv1alpha1.ApprovalPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent-changes"},
		Spec: custosv1alpha1.ApprovalPolicySpec{AgentChanges: true, Quorum: 2,
			Match: custosv1alpha1.ApprovalMatch{Irreversible: new(bool)}},
	})

	// Generation 2 adds payments (irreversible pay) and an AWS role.
	role := fixtures.AWSRoleARN(tenant + "-treasurer")
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) {
		a.Spec.ToolsetRefs = append(a.Spec.ToolsetRefs, custosv1alpha1.ToolsetReference{Name: "payments"})
		a.Spec.Identity = &custosv1alpha1.IdentityBindings{AWS: &custosv1alpha1.AWSIdentity{RoleARN: role}}
	})
	var ar *custosv1alpha1.ApprovalRequest
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Generation).To(Equal(int64(2)))
		expectCondition(g, a, custosv1alpha1.ChangesApprovedCondition, metav1.ConditionFalse, custosv1alpha1.ApprovalRequiredReason)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.ApprovalRequiredReason)
		g.Expect(conditionMessage(a, custosv1alpha1.ReadyCondition)).To(And(
			ContainSubstring("Toolset "+ns+"/payments with Write tools pay (irreversible)"), ContainSubstring("AWS role "+role),
			ContainSubstring("the Toolsets, Write tools and cloud roles in force stay as they are")))
		// What runs is generation 1's: its Toolsets, its network, no role.
		g.Expect(a.Status.Granted.Generation).To(Equal(int64(1)))
		g.Expect(grantedNames(a)).To(Equal([]string{"docs", "crm"}))
		g.Expect(a.Status.Granted.Identity).To(BeNil())
		g.Expect(a.GrantedIdentity()).To(BeNil())
		g.Expect(egressPorts(g, a)).NotTo(ContainElement(9090), "payments' endpoint is not reachable before approval")
		ar = changeRequestOf(g, a, 2)
		g.Expect(ar.Spec.Change.InForce).To(Equal(int64(1)))
		g.Expect(ar.Spec.Change.Toolsets).To(ConsistOf(HaveField("Name", "payments")))
		g.Expect(ar.Spec.Change.Identity.AWS.RoleARN).To(Equal(role))
		g.Expect(ar.Spec.Quorum).To(Equal(int32(2)))
		g.Expect(ar.Spec.Agent.UID).To(Equal(string(a.UID)))
		g.Expect(eventReasons(g, a)).To(ContainElement("ApprovalRequested"))
		g.Expect(auditActions(auditTrail(a.UID))).To(ContainElement(audit.ActionApprovalRequested))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The owner cannot approve their own change, nor write what is in
	// force, nor make a request of their own.
	decide := func(user string, verdict custosv1alpha1.ApprovalVerdict, req string) error {
		return asUser(t, user).Create(ctx, &custosv1alpha1.ApprovalDecision{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: req + "-"},
			Spec:       custosv1alpha1.ApprovalDecisionSpec{Request: req, Decision: verdict},
		})
	}
	err := decide("olga", custosv1alpha1.Approve, ar.Name)
	g.Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("SeparationOfDuties.Owner"))
	a := getAgent(g, agent)
	a.Status.Granted.ToolsetRefs = a.Spec.ToolsetRefs
	g.Expect(apierrors.IsForbidden(asUser(t, "olga").Status().Update(ctx, a))).To(BeTrue(), "the owner writes status.granted")
	forged := ar.DeepCopy()
	forged.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: "treasurer-forged"}
	g.Expect(apierrors.IsForbidden(asUser(t, "olga").Create(ctx, forged))).To(BeTrue(), "the owner creates an ApprovalRequest")

	// Two approvers: in force, the request consumed once.
	g.Expect(decide("carol", custosv1alpha1.Approve, ar.Name)).To(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(getAgent(g, agent).Status.Granted.Generation).To(Equal(int64(1)), "one approval of two")
	}).WithTimeout(time.Second).WithPolling(poll).Should(Succeed())
	g.Expect(decide("dave", custosv1alpha1.Approve, ar.Name)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ChangesApprovedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Granted.Generation).To(Equal(int64(2)))
		g.Expect(a.Status.Granted.ApprovalRequest).To(Equal(ar.Name))
		g.Expect(grantedNames(a)).To(Equal([]string{"docs", "crm", "payments"}))
		g.Expect(a.GrantedIdentity().AWS.RoleARN).To(Equal(role))
		g.Expect(egressPorts(g, a)).To(ContainElement(9090))
		got := &custosv1alpha1.ApprovalRequest{}
		g.Expect(k8sClient.Get(ctx, keyOf(ar), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(custosv1alpha1.ApprovalConsumed))
		g.Expect(got.Status.ConsumedAt).NotTo(BeNil())
		g.Expect(eventReasons(g, a)).To(ContainElement("ChangeApproved"))
		g.Expect(auditActions(auditTrail(a.UID))).To(ContainElement(audit.ActionApprovalConsumed))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Removing is never held.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.ToolsetRefs = a.Spec.ToolsetRefs[:2] })
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Granted.Generation).To(Equal(int64(3)))
		g.Expect(grantedNames(a)).To(Equal([]string{"docs", "crm"}))
		g.Expect(egressPorts(g, a)).NotTo(ContainElement(9090))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Added again, it is asked again; one deny keeps it out.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) {
		a.Spec.ToolsetRefs = append(a.Spec.ToolsetRefs, custosv1alpha1.ToolsetReference{Name: "payments"})
	})
	g.Eventually(func(g Gomega) {
		ar = changeRequestOf(g, getAgent(g, agent), 4)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(strings.Contains(ar.Spec.Change.Describe(), "AWS role")).To(BeFalse(), "the role in force is not asked again")
	g.Expect(decide("carol", custosv1alpha1.Deny, ar.Name)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ChangesApprovedCondition, metav1.ConditionFalse, custosv1alpha1.ApprovalDeniedReason)
		expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.ApprovalDeniedReason)
		g.Expect(a.Status.Granted.Generation).To(Equal(int64(3)))
		g.Expect(grantedNames(a)).To(Equal([]string{"docs", "crm"}))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// An approval after the veto changes nothing.
	g.Expect(decide("dave", custosv1alpha1.Approve, ar.Name)).NotTo(Succeed())
	g.Consistently(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Granted.Generation).To(Equal(int64(3)))
		g.Expect(grantedNames(a)).To(Equal([]string{"docs", "crm"}))
		g.Expect(egressPorts(g, a)).NotTo(ContainElement(9090))
	}).WithTimeout(3 * time.Second).WithPolling(poll).Should(Succeed())
	// Nor does time: a decided request is forgotten a day later, but not
	// a denied change while the agent is at that generation (it would
	// ask again); once the spec moves on, it is.
	denied := ar.DeepCopy()
	nextDay := &ApprovalRequestReconciler{Client: decisionsByRequest{k8sClient},
		Clock: clocktesting.NewFakeClock(testClock.Now().Add(DefaultDecidedRetention + time.Hour))}
	_, err = nextDay.Reconcile(ctx, ctrl.Request{NamespacedName: keyOf(denied)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8sClient.Get(ctx, keyOf(denied), &custosv1alpha1.ApprovalRequest{})).To(Succeed(), "the denied change forgotten")

	// A role replaced: the one in force keeps running until the new one
	// is approved (and the Toolset denied is dropped from the spec).
	other := fixtures.AWSRoleARN(tenant + "-payer")
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) {
		a.Spec.ToolsetRefs = a.Spec.ToolsetRefs[:2]
		a.Spec.Identity.AWS.RoleARN = other
	})
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Generation).To(Equal(int64(5)))
		expectCondition(g, a, custosv1alpha1.ChangesApprovedCondition, metav1.ConditionFalse, custosv1alpha1.ApprovalRequiredReason)
		g.Expect(changeRequestOf(g, a, 5).Spec.Change.Identity.AWS.RoleARN).To(Equal(other))
		g.Expect(a.GrantedIdentity().AWS.RoleARN).To(Equal(role), "the role in force is the approved one")
		g.Expect(grantedNames(a)).To(Equal([]string{"docs", "crm"}))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	_, err = nextDay.Reconcile(ctx, ctrl.Request{NamespacedName: keyOf(denied)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(denied), &custosv1alpha1.ApprovalRequest{}))).To(BeTrue(),
		"the denied change kept after the agent moved on")
	var left custosv1alpha1.ApprovalDecisionList
	g.Expect(k8sClient.List(ctx, &left, client.InNamespace(ns))).To(Succeed())
	g.Expect(left.Items).NotTo(ContainElement(HaveField("Spec.Request", denied.Name)), "its decisions kept")

	// The owner may write Toolsets: docs, in force as read-only, given a
	// Write tool stays in force without it (custos-gateway and custos-sts
	// serve only the Write tools in force: internal/sts/cluster), and the
	// new tool is held. Nor may the owner lift the policy, by deleting it
	// or by taking the agent out of its selector.
	g.Eventually(func() error {
		ts := &custosv1alpha1.Toolset{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "docs"}, ts); err != nil {
			return err
		}
		ts.Spec.Tools = append(ts.Spec.Tools, custosv1alpha1.Tool{Name: "delete_doc", Access: custosv1alpha1.ToolAccessWrite})
		return asUser(t, "olga").Update(ctx, ts)
	}).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(grantedNames(a)).To(Equal([]string{"docs", "crm"}))
		g.Expect(a.GrantedWriteTools(ns, "docs")).To(BeEmpty(), "docs with a Write tool nobody approved")
		g.Expect(a.GrantedWriteTools(ns, "crm")).To(Equal([]string{"update_contact"}))
		var list custosv1alpha1.ApprovalRequestList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{custosv1alpha1.AgentUIDLabel: string(a.UID)})).To(Succeed())
		g.Expect(list.Items).To(ContainElement(HaveField("Spec.Change.Toolsets", ContainElement(And(
			HaveField("Name", "docs"), HaveField("WriteTools", Equal([]string{"delete_doc"})))))))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	policy := &custosv1alpha1.ApprovalPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent-changes"}}
	g.Expect(apierrors.IsForbidden(asUser(t, "olga").Delete(ctx, policy))).To(BeTrue(), "the owner deletes the ApprovalPolicy")

	fixtures.Create(t, k8sClient, &custosv1alpha1.ApprovalPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "high-risk"},
		Spec: custosv1alpha1.ApprovalPolicySpec{AgentChanges: true, Quorum: 3,
			AgentSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"risk": "high"}}},
	})
	relabel := func(c client.Client, f func(map[string]string)) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			a := &custosv1alpha1.Agent{}
			if err := c.Get(ctx, keyOf(agent), a); err != nil {
				return err
			}
			f(a.Labels)
			return c.Update(ctx, a)
		})
	}
	g.Expect(relabel(k8sClient, func(l map[string]string) { l["risk"] = "high" })).To(Succeed())
	err = relabel(asUser(t, "olga"), func(l map[string]string) { delete(l, "risk") })
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "the owner takes the agent out of high-risk's selector: %v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("metadata.labels"), ContainSubstring("ApprovalPolicy high-risk's agentSelector")))
	g.Expect(relabel(asUser(t, "olga"), func(l map[string]string) { l["risk"] = "low" })).NotTo(Succeed(), "relabelled instead")
	g.Expect(relabel(asUser(t, "olga"), func(l map[string]string) { l["team"] = "treasury" })).To(Succeed(), "a label no policy reads")
	g.Expect(relabel(k8sClient, func(l map[string]string) { delete(l, "risk") })).To(Succeed(), "one who may update the policy")
}

// decisionsByRequest lists ApprovalDecisions by the request they decide
// as the manager's cache does by its index (the API server has no such
// field selector), for a reconciler run with the suite's direct client.
type decisionsByRequest struct{ client.Client }

func (c decisionsByRequest) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	if o.FieldSelector == nil {
		return c.Client.List(ctx, list, opts...)
	}
	req, ok := o.FieldSelector.RequiresExactMatch(approvalDecisionRequestIndex)
	decisions, isDecisions := list.(*custosv1alpha1.ApprovalDecisionList)
	if !ok || !isDecisions {
		return fmt.Errorf("decisionsByRequest lists decisions by request only, not %s", o.FieldSelector)
	}
	if err := c.Client.List(ctx, decisions, client.InNamespace(o.Namespace)); err != nil {
		return err
	}
	decisions.Items = slices.DeleteFunc(decisions.Items, func(d custosv1alpha1.ApprovalDecision) bool { return d.Spec.Request != req })
	return nil
}
