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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestFreeze: a tenant cannot forge a trip, an owner may freeze their agent
// by hand, and a freeze holds the agent Frozen through the suspend path
// (leases revoked, deny-all, scaled to zero) until a person who may
// unfreeze it, and does not own it, lifts it with a verdict; nobody lifts
// it by deleting it; who froze and who lifted are stamped and on the
// record.
func TestFreeze(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("frz")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	owner := fixtures.Create(t, k8sClient, chartTenantRole(t, "agent-owner", ns+"-agent-owner"))
	risk := fixtures.Create(t, k8sClient, chartTenantRole(t, "risk-owner", ns+"-risk-owner"))
	bindInNamespace(t, ns, "owner-olga", owner.Name, "olga")
	bindInNamespace(t, ns, "risk-rita", risk.Name, "rita")
	// Olga owns the agent and is a risk owner too: still an owner.
	bindInNamespace(t, ns, "risk-olga", risk.Name, "olga")
	bindInNamespace(t, ns, "risk-bot", risk.Name, "system:serviceaccount:"+ns+":responder")
	bindInNamespace(t, ns, "edit-eve", "edit", "eve")

	agent := newAgent(ns, "reconciler", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, "agent-reconciler") }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	uid := getAgent(g, agent).UID

	freeze := func(c client.Client, trigger custosv1alpha1.FreezeTrigger) (*custosv1alpha1.AgentFreeze, error) {
		f := &custosv1alpha1.AgentFreeze{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "reconciler-"},
			Spec: custosv1alpha1.AgentFreezeSpec{Agent: "reconciler", Trigger: trigger, Signal: "records",
				Reason: "records per minute 40x its baseline", Observed: ptr.To[int64](4000), Baseline: ptr.To[int64](100),
				Evidence: &custosv1alpha1.FreezeEvidence{AuditLogID: "gateway-0", Sequences: []int64{41, 42}},
				FrozenBy: custosv1alpha1.Approver{Username: "custos-gateway"}, AgentUID: "forged"},
		}
		return f, c.Create(ctx, f)
	}
	// A tenant cannot forge a trip, with the evidence it cites; the
	// namespace's edit role cannot freeze at all.
	_, err := freeze(asUser(t, "olga"), custosv1alpha1.FreezeCap)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("spec.trigger: Forbidden"), ContainSubstring("verb trip")))
	_, err = freeze(asUser(t, "eve"), custosv1alpha1.FreezeManual)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
	g.Consistently(func(g Gomega) {
		g.Expect(getAgent(g, agent).Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseActive))
	}).WithTimeout(2 * time.Second).WithPolling(poll).Should(Succeed())

	// The owner freezes it by hand: who and which Agent are stamped.
	made, err := freeze(asUser(t, "olga"), custosv1alpha1.FreezeManual)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(made.Spec.FrozenBy.Username).To(Equal("olga"))
	g.Expect(made.Spec.AgentUID).To(Equal(string(uid)))
	g.Expect(made.OwnerReferences).To(BeEmpty(), "nobody's while it holds: the Agent's deletion must not lift it")
	expectSuspended(t, g, agent, custosv1alpha1.FrozenReason)
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Lifecycle.Freeze).To(Equal(made.Name))
		g.Expect(conditionMessage(a, custosv1alpha1.ReadyCondition)).To(ContainSubstring("kubectl custos unfreeze reconciler -n " + ns))
		g.Expect(conditionMessage(a, custosv1alpha1.CredentialsIssuedCondition)).To(ContainSubstring("Every lease revoked"))
		var leases corev1.SecretList
		g.Expect(k8sClient.List(ctx, &leases, client.InNamespace(ns), client.MatchingLabels{custosv1alpha1.AgentLabel: "reconciler"})).To(Succeed())
		g.Expect(leases.Items).To(BeEmpty(), "a frozen agent's leases are revoked")
		f := &custosv1alpha1.AgentFreeze{}
		g.Expect(k8sClient.Get(ctx, keyOf(made), f)).To(Succeed())
		g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FreezeActive))
		g.Expect(auditActions(auditTrail(uid))).To(ContainElement(audit.ActionAgentFrozen))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Nobody lifts it by deleting it, not even a cluster admin, nor by
	// changing it.
	err = asUser(t, "olga").Delete(ctx, made)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "RBAC: %v", err)
	err = k8sClient.Delete(ctx, made)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "admission: %v", err)
	g.Expect(err.Error()).To(ContainSubstring("kubectl custos unfreeze reconciler -n " + ns))
	changed := &custosv1alpha1.AgentFreeze{}
	g.Expect(k8sClient.Get(ctx, keyOf(made), changed)).To(Succeed())
	changed.Spec.Trigger = custosv1alpha1.FreezeManual
	changed.Spec.Agent = "another"
	g.Expect(k8sClient.Update(ctx, changed)).To(MatchError(ContainSubstring("an AgentFreeze is immutable")))
	// Nor by writing its status Lifted: the status subresource is the
	// manager's alone, not the owner's, the risk owner's or edit's.
	for _, user := range []string{"olga", "rita", "eve"} {
		lifted := &custosv1alpha1.AgentFreeze{}
		g.Expect(k8sClient.Get(ctx, keyOf(made), lifted)).To(Succeed())
		patch := client.MergeFrom(lifted.DeepCopy())
		lifted.Status.Phase = custosv1alpha1.FreezeLifted
		err := asUser(t, user).Status().Patch(ctx, lifted, patch)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s writes the freeze's status: %v", user, err)
	}

	// Nor by deleting the Agent and applying it again: the freeze holds
	// the name, and the new Agent starts Frozen.
	g.Expect(k8sClient.Delete(ctx, agent)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(agent), &custosv1alpha1.Agent{}))
	}).WithTimeout(eventually).WithPolling(poll).Should(BeTrue())
	g.Expect(k8sClient.Get(ctx, keyOf(made), &custosv1alpha1.AgentFreeze{})).To(Succeed(), "kept through the Agent's deletion")
	g.Expect(k8sClient.Delete(ctx, made)).To(MatchError(ContainSubstring("holds Agent")), "refused with its Agent gone too")
	agent = newAgent(ns, "reconciler", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Lifecycle).NotTo(BeNil())
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseFrozen))
		g.Expect(a.Status.Lifecycle.Freeze).To(Equal(made.Name))
		var leases corev1.SecretList
		g.Expect(k8sClient.List(ctx, &leases, client.InNamespace(ns), client.MatchingLabels{custosv1alpha1.AgentLabel: "reconciler"})).To(Succeed())
		g.Expect(leases.Items).To(BeEmpty(), "the agent applied again gets no lease while frozen")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	expectSuspended(t, g, agent, custosv1alpha1.FrozenReason)
	newUID := getAgent(g, agent).UID

	unfreeze := func(user string) (*custosv1alpha1.AgentUnfreeze, error) {
		u := &custosv1alpha1.AgentUnfreeze{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "reconciler-"},
			Spec: custosv1alpha1.AgentUnfreezeSpec{Freeze: made.Name, Verdict: custosv1alpha1.FalsePositive,
				Reason: "month-end batch, expected", UnfrozenBy: custosv1alpha1.Approver{Username: "the-ceo"}},
		}
		return u, asUser(t, user).Create(ctx, u)
	}
	for _, tc := range []struct{ user, want string }{
		{"olga", approval.RuleOwner},
		{"system:serviceaccount:" + ns + ":responder", "is a ServiceAccount"},
	} {
		_, err := unfreeze(tc.user)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", tc.user, err)
		g.Expect(err.Error()).To(And(ContainSubstring("spec.unfrozenBy: Forbidden"), ContainSubstring(tc.want)))
	}
	_, err = unfreeze("eve")
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
	g.Expect(getAgent(g, agent).Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseFrozen))

	// Rita, a risk owner who does not own it, lifts it: stamped, counted,
	// and the agent runs again.
	lifted, err := unfreeze("rita")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(lifted.Spec.UnfrozenBy.Username).To(Equal("rita"))
	g.Eventually(func(g Gomega) {
		g.Expect(fixtures.MarkRolledOut(k8sClient, ns, "agent-reconciler")).To(Succeed())
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseActive))
		g.Expect(a.Status.Lifecycle.Freeze).To(BeEmpty())
		f := &custosv1alpha1.AgentFreeze{}
		g.Expect(k8sClient.Get(ctx, keyOf(made), f)).To(Succeed())
		g.Expect(f.Status.Phase).To(Equal(custosv1alpha1.FreezeLifted))
		g.Expect(f.Status.Unfreeze).To(Equal(lifted.Name))
		g.Expect(f.Status.LiftedBy.Username).To(Equal("rita"))
		g.Expect(f.Status.Verdict).To(Equal(custosv1alpha1.FalsePositive))
		g.Expect(f.OwnerReferences).To(ContainElement(HaveField("UID", newUID)), "lifted, it goes with the Agent")
		g.Expect(auditActions(auditTrail(uid))).To(ContainElement(audit.ActionAgentUnfrozen))
		// Frozen from its start, the agent applied again is onboarded
		// (its first lease) only now.
		g.Expect(auditActions(auditTrail(newUID))).To(ContainElements(audit.ActionLeaseIssued, audit.ActionAgentOnboarded))
		g.Expect(eventReasons(g, a)).To(ContainElement("Unfrozen"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// A lifted freeze is lifted once, and may then go.
	_, err = unfreeze("rita")
	g.Expect(err).To(MatchError(ContainSubstring("there is nothing to lift")))
	g.Expect(asUser(t, "rita").Delete(ctx, made)).To(Or(Succeed(), MatchError(ContainSubstring("forbidden"))))
	g.Expect(k8sClient.Delete(ctx, made)).To(Succeed())

	// custos-gateway trips a cap: the two rules the chart gives it for
	// that (create agentfreezes, trip agents) are what admission wants,
	// and the freeze holds the agent as a person's does.
	const gateway = "system:serviceaccount:custos-system:custos-gateway"
	tripper := fixtures.Create(t, k8sClient, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-gateway-trips"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"custos.dev"}, Resources: []string{"agentfreezes"}, Verbs: []string{"get", "list", "watch", "create"}},
			{APIGroups: []string{"custos.dev"}, Resources: []string{"agents"}, Verbs: []string{"trip"}},
		}})
	bindInNamespace(t, ns, "gateway-trips", tripper.Name, gateway)
	tripped, err := freeze(asUser(t, gateway, "system:serviceaccounts"), custosv1alpha1.FreezeCap)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tripped.Spec.FrozenBy.Username).To(Equal(gateway))
	g.Expect(tripped.Spec.AgentUID).To(Equal(string(newUID)))
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseFrozen))
		g.Expect(a.Status.Lifecycle.Freeze).To(Equal(tripped.Name))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// An Agent may lower its DataBoundary's caps, never raise them: admission
// names the field and the boundary's cap; caps the boundary does not set
// are the agent's own.
func TestAgentCapsOnlyLowerTheBoundarys(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("caps")
	b := createBoundary(t, tenant, "eu-west-1")
	// A merge patch: the boundary's controller writes it too (finalizer,
	// status), and an update could lose that race.
	patch := client.MergeFrom(b.DeepCopy())
	b.Spec.Caps = &custosv1alpha1.AgentCaps{PerDay: &custosv1alpha1.CapLimits{Records: ptr.To[int64](10000)}}
	g.Expect(k8sClient.Patch(ctx, b, patch)).To(Succeed())
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	higher := newAgent(ns, "greedy", tenant)
	higher.Spec.Caps = &custosv1alpha1.AgentCaps{PerDay: &custosv1alpha1.CapLimits{Records: ptr.To[int64](20000)}}
	err := k8sClient.Create(ctx, higher)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("spec.caps.perDay.records: Invalid value: 20000"),
		ContainSubstring("above DataBoundary "+b.Name+"'s cap of 10000"), ContainSubstring("may only lower")))

	lower := newAgent(ns, "frugal", tenant)
	lower.Spec.Caps = &custosv1alpha1.AgentCaps{PerDay: &custosv1alpha1.CapLimits{Records: ptr.To[int64](5000)},
		PerMinute: &custosv1alpha1.CapLimits{Calls: ptr.To[int64](60)}}
	g.Expect(k8sClient.Create(ctx, lower)).To(Succeed())
	// Raising it later is refused the same way.
	raise := client.MergeFrom(lower.DeepCopy())
	lower.Spec.Caps.PerDay.Records = ptr.To[int64](10001)
	g.Expect(k8sClient.Patch(ctx, lower, raise)).To(MatchError(ContainSubstring("spec.caps.perDay.records: Invalid value: 10001")))
	// The CRD refuses a cap of 0 or less.
	zero := newAgent(ns, "zero", tenant)
	zero.Spec.Caps = &custosv1alpha1.AgentCaps{PerDay: &custosv1alpha1.CapLimits{Calls: ptr.To[int64](0)}}
	g.Expect(k8sClient.Create(ctx, zero)).To(MatchError(ContainSubstring("spec.caps.perDay.calls")))
}

// Who sets the breaker's watch of an agent: the DataBoundary sets its
// sensitivity and how large an allowance may be; an Agent may raise the
// sensitivity, never lower it. Observe and batch-window allowances loosen
// the watch, so they take what lifting a freeze takes: the agent's owner,
// the namespace's edit role, a ServiceAccount holding every verb (the
// agent's own, a GitOps controller's) and the risk owner (who may not
// write the Agent) are all refused; a platform administrator is not.
// Taking them away is anyone's who may write the Agent; lowering the
// sensitivity is loosening too.
func TestBreakerWatchIsNotTheOwners(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("watch")
	b := createBoundary(t, tenant, "eu-west-1")
	patch := client.MergeFrom(b.DeepCopy())
	b.Spec.Breaker = &custosv1alpha1.BreakerPolicy{Sensitivity: custosv1alpha1.SensitivityHigh, MaxAllowance: 4}
	g.Expect(k8sClient.Patch(ctx, b, patch)).To(Succeed())
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	owner := fixtures.Create(t, k8sClient, chartTenantRole(t, "agent-owner", ns+"-agent-owner"))
	risk := fixtures.Create(t, k8sClient, chartTenantRole(t, "risk-owner", ns+"-risk-owner"))
	bindInNamespace(t, ns, "owner-olga", owner.Name, "olga")
	bindInNamespace(t, ns, "risk-rita", risk.Name, "rita")
	bindInNamespace(t, ns, "edit-eve", "edit", "eve")
	bot := "system:serviceaccount:" + ns + ":gitops"
	bindInNamespace(t, ns, "admin-bot", "cluster-admin", bot)
	bindInNamespace(t, ns, "admin-pat", "cluster-admin", "pat")

	agent := newAgent(ns, "reconciler", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	change := func(user string, set func(*custosv1alpha1.AgentBreaker)) error {
		a := getAgent(g, agent)
		p := client.MergeFrom(a.DeepCopy())
		if a.Spec.Breaker == nil {
			a.Spec.Breaker = &custosv1alpha1.AgentBreaker{}
		}
		set(a.Spec.Breaker)
		return asUser(t, user).Patch(ctx, a, p)
	}
	observe := func(ab *custosv1alpha1.AgentBreaker) { ab.Mode = custosv1alpha1.BreakerObserve }
	monthEnd := func(factor int32) func(*custosv1alpha1.AgentBreaker) {
		return func(ab *custosv1alpha1.AgentBreaker) {
			ab.Allowances = []custosv1alpha1.BreakerAllowance{{Name: "month-end", Days: []custosv1alpha1.Weekday{"Mon"},
				Start: "02:00", Duration: metav1.Duration{Duration: 3 * time.Hour}, Factor: factor}}
		}
	}

	// The sensitivity: only up.
	err := change("olga", func(ab *custosv1alpha1.AgentBreaker) { ab.Sensitivity = custosv1alpha1.SensitivityMedium })
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("spec.breaker.sensitivity: Invalid value: \"Medium\""),
		ContainSubstring("below DataBoundary "+b.Name+"'s sensitivity High"), ContainSubstring("may only raise it")))

	// Observe and an allowance, by everyone who may not loosen the watch.
	for _, tc := range []struct{ user, want string }{
		{"olga", "olga may not unfreeze Agent " + ns + "/reconciler"},
		{bot, "is a ServiceAccount"},
	} {
		err := change(tc.user, observe)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", tc.user, err)
		g.Expect(err.Error()).To(And(ContainSubstring("spec.breaker.mode: Forbidden"), ContainSubstring(tc.want),
			ContainSubstring("its owners cannot switch their own watch off")))
		err = change(tc.user, monthEnd(3))
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: %v", tc.user, err)
		g.Expect(err.Error()).To(And(ContainSubstring("spec.breaker.allowances[0]: Forbidden"), ContainSubstring(tc.want)))
	}
	for _, user := range []string{"eve", "rita", "system:serviceaccount:" + ns + ":agent-reconciler"} {
		err := change(user, observe)
		g.Expect(err).To(HaveOccurred(), user)
		g.Expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", user, err)
	}
	// Nor on create: an owner's new agent may not start observed.
	observed := newAgent(ns, "unwatched", tenant)
	observed.Spec.Breaker = &custosv1alpha1.AgentBreaker{Mode: custosv1alpha1.BreakerObserve}
	err = asUser(t, "olga").Create(ctx, observed)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.breaker.mode: Forbidden"))
	g.Expect(getAgent(g, agent).Spec.Breaker).To(BeNil(), "nothing of the refused changes was kept")

	// A platform administrator: within the boundary's maxAllowance.
	err = change("pat", monthEnd(5))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("spec.breaker.allowances[0].factor: Invalid value: 5"),
		ContainSubstring("above DataBoundary "+b.Name+"'s maxAllowance of 4")))
	g.Expect(change("pat", monthEnd(3))).To(Succeed())
	g.Expect(change("pat", observe)).To(Succeed())

	// The owner may tighten it again, but not change the allowance.
	err = change("olga", monthEnd(2))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(change("olga", func(ab *custosv1alpha1.AgentBreaker) {
		ab.Mode, ab.Allowances, ab.Sensitivity = custosv1alpha1.BreakerEnforce, nil, custosv1alpha1.SensitivityHigh
	})).To(Succeed())
	got := getAgent(g, agent).Spec.Breaker
	g.Expect(got.Mode).To(Equal(custosv1alpha1.BreakerEnforce))
	g.Expect(got.Allowances).To(BeEmpty())
	// Nor lower the sensitivity again, or drop spec.breaker to do so.
	for _, set := range []func(*custosv1alpha1.Agent){
		func(a *custosv1alpha1.Agent) { a.Spec.Breaker.Sensitivity = "" },
		func(a *custosv1alpha1.Agent) { a.Spec.Breaker = nil },
	} {
		a := getAgent(g, agent)
		p := client.MergeFrom(a.DeepCopy())
		set(a)
		err := asUser(t, "olga").Patch(ctx, a, p)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		g.Expect(err.Error()).To(ContainSubstring("spec.breaker.sensitivity: Forbidden"))
	}
}
