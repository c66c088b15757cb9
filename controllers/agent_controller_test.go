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
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/workload"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestAgentLifecycle walks one agent through its whole life as its owner
// would: onboard, Ready, new bindings, suspend, resume, expire, decommission
// by state, delete. At each step it checks what a user sees.
func TestAgentLifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("life")
	createBoundary(t, tenant, "eu-west-1", "eu-central-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger-readonly", tenant))
	agent := newAgent(ns, "reconciler", tenant,
		fixtures.WithToolsets("ledger-readonly"),
		fixtures.WithAWSRole("arn:aws:iam::111122223333:role/"+tenant+"-reconciler"))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())

	saKey := client.ObjectKey{Namespace: ns, Name: "agent-reconciler"}
	childKey := client.ObjectKey{Namespace: ns, Name: "agent-reconciler"}

	// Onboarding: identity, network and workload exist; not Ready until the
	// Deployment is available.
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		expectCondition(g, a, custosv1alpha1.IdentityBoundCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionTrue, custosv1alpha1.VerifiedReason)
		expectCondition(g, a, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		expectCondition(g, a, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason)
		expectCondition(g, a, custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, custosv1alpha1.ProgressingReason)
		g.Expect(kstatusOf(g, a)).To(Equal(status.InProgressStatus))
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhasePending))
		g.Expect(a.Finalizers).To(ContainElement(custosv1alpha1.DecommissionFinalizer))
		g.Expect(a.Status.Identity).To(Equal(&custosv1alpha1.IdentityStatus{
			ServiceAccount: "agent-reconciler",
			SPIFFEID:       "spiffe://" + testTrustDomain + "/ns/" + ns + "/sa/agent-reconciler",
			Mode:           custosv1alpha1.IdentityModeLeased,
		}))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	a := getAgent(g, agent)
	wantLabels := map[string]string{
		custosv1alpha1.AgentLabel:     "reconciler",
		custosv1alpha1.AgentUIDLabel:  string(a.UID),
		custosv1alpha1.TenantLabel:    tenant,
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
	sa := &corev1.ServiceAccount{}
	g.Expect(k8sClient.Get(ctx, saKey, sa)).To(Succeed())
	g.Expect(sa.Labels).To(Equal(wantLabels))
	// Leased, by default: no annotation has a platform webhook hand the
	// pods a cloud token (agent_identity_mode_test.go covers the modes).
	g.Expect(sa.Annotations).NotTo(HaveKey(identity.AWSRoleARNAnnotation))
	g.Expect(sa.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
	g.Expect(sa.OwnerReferences).To(ConsistOf(HaveField("UID", a.UID)))

	np := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(ctx, childKey, np)).To(Succeed())
	g.Expect(np.Labels).To(Equal(wantLabels))
	g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
	g.Expect(np.Spec.Ingress).To(BeEmpty())
	g.Expect(np.Spec.Egress).To(HaveLen(2), "DNS and the Toolset")
	g.Expect(np.Spec.Egress[1].To[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{"kubernetes.io/metadata.name": ns}))
	g.Expect(np.Spec.Egress[1].To[0].PodSelector.MatchLabels).To(Equal(map[string]string{"app": "ledger-api"}))
	g.Expect(np.Spec.Egress[1].Ports[0].Port.IntValue()).To(Equal(8080))

	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, childKey, d)).To(Succeed())
	g.Expect(d.Labels).To(Equal(wantLabels))
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(1))))
	pod := d.Spec.Template.Spec
	// The image runs by the digest that was verified, never by its tag.
	g.Expect(pod.Containers[0].Image).To(Equal(testPinned()))
	g.Expect(a.Status.Image.Reference).To(Equal(testImage))
	g.Expect(a.Status.Image.Digest).To(Equal(testImageDigest))
	g.Expect(a.Status.Image.Signer).To(Equal(testSignerKeyID(g)))
	g.Expect(a.Status.Image.VerifiedAt).NotTo(BeNil())
	g.Expect(pod.ServiceAccountName).To(Equal("agent-reconciler"))
	g.Expect(pod.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	sc := pod.Containers[0].SecurityContext
	g.Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	terms := pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	g.Expect(terms[0].MatchExpressions[0].Key).To(Equal(workload.RegionLabel))
	g.Expect(terms[0].MatchExpressions[0].Values).To(ConsistOf("eu-west-1", "eu-central-1"))
	g.Expect(d.Spec.Template.Labels).To(Equal(wantLabels))
	firstHash := d.Spec.Template.Annotations[workload.ConfigHashAnnotation]
	g.Expect(firstHash).NotTo(BeEmpty())

	// Ready once the Deployment is available.
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, childKey.Name) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Conditions).NotTo(ContainElement(HaveField("Type", custosv1alpha1.ReconcilingCondition)))
		g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
		g.Expect(kstatusOf(g, a)).To(Equal(status.CurrentStatus))
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseActive))
		g.Expect(a.Status.Lifecycle.OnboardedAt).NotTo(BeNil())
		// Onboarding is one Event, not one per step.
		g.Expect(eventReasons(g, a)).To(ConsistOf(custosv1alpha1.SucceededReason))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Someone opens the agent's network by hand: Custos puts it back.
	g.Eventually(func() error {
		if err := k8sClient.Get(ctx, childKey, np); err != nil {
			return err
		}
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{})
		return k8sClient.Update(ctx, np)
	}).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, childKey, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(HaveLen(2), "an allow-all rule added by hand must be removed")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// New bindings roll the pods: the template's config hash changes.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) {
		a.Spec.Identity.GCP = &custosv1alpha1.GCPIdentity{ServiceAccount: "reconciler@" + tenant + ".iam.gserviceaccount.com"}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(conditionMessage(getAgent(g, agent), custosv1alpha1.IdentityBoundCondition)).To(ContainSubstring("bound to aws, gcp (leased)"))
		g.Expect(k8sClient.Get(ctx, childKey, d)).To(Succeed())
		g.Expect(d.Spec.Template.Annotations[workload.ConfigHashAnnotation]).NotTo(Equal(firstHash))
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason)
		g.Expect(kstatusOf(g, a)).To(Equal(status.InProgressStatus))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, childKey.Name) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Suspend: scaled to zero, deny-all, identity kept.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended })
	expectSuspended(t, g, agent, custosv1alpha1.SuspendedBySpecReason)

	// Resume.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleActive })
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, childKey, d)).To(Succeed())
		g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(1))))
		g.Expect(k8sClient.Get(ctx, childKey, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(HaveLen(2))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, childKey.Name) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseActive))
		g.Expect(a.Status.Lifecycle.SuspendedAt).To(BeNil())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Expire: an hour from the reconcilers' now; then time passes.
	expiry := metav1.NewTime(testClock.Now().Add(time.Hour).Truncate(time.Second))
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.ExpiresAt = &expiry })
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Lifecycle.ExpiresAt).NotTo(BeNil())
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	testClock.Step(2 * time.Hour)
	poke(g, agent)
	expectSuspended(t, g, agent, custosv1alpha1.ExpiredReason)

	// Decommission by state: everything goes, the Agent stays as a record.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleDecommissioned })
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.DecommissionedReason)
		expectCondition(g, a, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.DecommissionedReason)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseDecommissioned))
		g.Expect(a.Status.Lifecycle.DecommissionedAt).NotTo(BeNil())
		g.Expect(a.Finalizers).To(BeEmpty())
		g.Expect(kstatusOf(g, a)).To(Equal(status.CurrentStatus))
		g.Expect(eventReasons(g, a)).To(ContainElement(custosv1alpha1.DecommissionedReason))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	expectNoChildren(g, ns, "reconciler")

	// Every step of its life is on the audit trail, by the controller, in
	// order, and nothing else is.
	uid := getAgent(g, agent).UID
	g.Eventually(func(g Gomega) {
		// Leases are recorded as the credentials step acts; the other
		// transitions once the status that reports them is written.
		g.Expect(auditActions(auditTrail(uid))).To(Equal([]string{
			audit.ActionImageVerified,
			audit.ActionLeaseIssued, audit.ActionIdentityBound, audit.ActionAgentOnboarded,
			audit.ActionIdentityBound, // the GCP binding added
			audit.ActionLeaseRevoked, audit.ActionAgentSuspended,
			audit.ActionLeaseIssued, audit.ActionAgentResumed,
			audit.ActionLeaseRevoked, audit.ActionAgentExpired,
			audit.ActionAgentDecommissioning,
			audit.ActionWorkloadRemoved, audit.ActionNetworkRemoved, audit.ActionIdentityRemoved,
			audit.ActionAgentDecommissioned,
		}))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	for _, r := range auditTrail(uid) {
		g.Expect(r.Actor).To(HaveValue(Equal(ControllerActor)), r.Action)
		g.Expect(*r.Subject).To(Equal(audit.Subject{Kind: "Agent", Namespace: ns, Name: "reconciler", UID: string(uid), Tenant: tenant}), r.Action)
		g.Expect(r.TraceID).NotTo(BeEmpty(), "the reconcile's ID leads to its logs")
		g.Expect(r.Reason).NotTo(BeEmpty(), r.Action)
	}
	trail := auditTrail(uid)
	g.Expect(trail[0].Decision).To(Equal(audit.DecisionAllow))
	g.Expect(trail[0].Details).To(And(HaveKeyWithValue("digest", testImageDigest), HaveKeyWithValue("signer", testSignerKeyID(g)),
		HaveKeyWithValue("image", testImage), HaveKeyWithValue("reason", custosv1alpha1.VerifiedReason)))
	rebound := trail[4]
	g.Expect(rebound.Reason).To(HaveSuffix("bound to aws, gcp (leased)"))
	g.Expect(rebound.Details).To(HaveKeyWithValue("spiffeID", "spiffe://"+testTrustDomain+"/ns/"+ns+"/sa/agent-reconciler"))
	g.Expect(trail[1].Details).To(And(HaveKeyWithValue("credentialName", "ledger-api"), HaveKeyWithValue("backend", "kubernetesToken"),
		HaveKeyWithValue("lease.audience", "ledger-api")))
	g.Expect(trail[5].Reason).To(HaveSuffix("the agent is suspended"))
	g.Expect(trail[10].Details).To(HaveKey("expiresAt"))
	g.Expect(trail[11].Details).To(HaveKeyWithValue("trigger", "spec.lifecycle.state"))

	g.Expect(k8sClient.Delete(ctx, agent)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(agent), &custosv1alpha1.Agent{}))
	}).WithTimeout(eventually).Should(BeTrue())
}

// expectSuspended waits for a suspended agent: zero replicas, deny-all,
// identity kept, Ready True with the suspension's reason, kstatus Current
// once scaled down.
func expectSuspended(t *testing.T, g *WithT, agent *custosv1alpha1.Agent, reason string) {
	t.Helper()
	ctx := context.Background()
	key := client.ObjectKey{Namespace: agent.Namespace, Name: "agent-" + agent.Name}
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(0))))
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(BeEmpty(), "a suspended agent reaches nothing, not even DNS")
		g.Expect(k8sClient.Get(ctx, key, &corev1.ServiceAccount{})).To(Succeed(), "suspension keeps the identity")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, key.Namespace, key.Name) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, reason)
		expectCondition(g, a, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		phase := custosv1alpha1.AgentPhaseSuspended
		if reason == custosv1alpha1.FrozenReason {
			phase = custosv1alpha1.AgentPhaseFrozen
		}
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(phase))
		g.Expect(a.Status.Lifecycle.SuspendedAt).NotTo(BeNil())
		g.Expect(kstatusOf(g, a)).To(Equal(status.CurrentStatus))
		g.Expect(eventReasons(g, a)).To(ContainElement(reason))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// updateAgent applies change to the current Agent, retrying on conflicts.
func updateAgent(g *WithT, agent *custosv1alpha1.Agent, change func(*custosv1alpha1.Agent)) {
	g.Eventually(func() error {
		a := &custosv1alpha1.Agent{}
		if err := k8sClient.Get(context.Background(), keyOf(agent), a); err != nil {
			return err
		}
		change(a)
		return k8sClient.Update(context.Background(), a)
	}).WithTimeout(eventually).Should(Succeed())
}

// expectNoChildren asserts that nothing labelled for the agent is left.
func expectNoChildren(g Gomega, ns, agentName string) {
	sel := client.MatchingLabels{custosv1alpha1.AgentLabel: agentName}
	for _, list := range []client.ObjectList{
		&corev1.ServiceAccountList{}, &appsv1.DeploymentList{}, &networkingv1.NetworkPolicyList{}, &corev1.SecretList{},
	} {
		g.Expect(k8sClient.List(context.Background(), list, client.InNamespace(ns), sel)).To(Succeed())
		g.Expect(list).To(HaveField("Items", BeEmpty()), "%T left behind", list)
	}
}

// TestAgentDeletedDecommissions deletes a running agent: the finalizer holds
// it until everything it had is gone.
func TestAgentDeletedDecommissions(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("del")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent := newAgent(ns, "doomed", tenant, fixtures.WithReplicas(2))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-doomed"}, &appsv1.Deployment{})).To(Succeed())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	uid := getAgent(g, agent).UID
	g.Expect(k8sClient.Delete(ctx, agent)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(agent), &custosv1alpha1.Agent{}))
	}).WithTimeout(eventually).WithPolling(poll).Should(BeTrue())
	expectNoChildren(g, ns, "doomed")
	g.Eventually(func(g Gomega) {
		trail := auditTrail(uid)
		g.Expect(auditActions(trail)).To(ContainElements(audit.ActionAgentDecommissioning, audit.ActionWorkloadRemoved,
			audit.ActionNetworkRemoved, audit.ActionIdentityRemoved, audit.ActionAgentDecommissioned))
		g.Expect(auditActions(trail)[len(trail)-1]).To(Equal(audit.ActionAgentDecommissioned), "recorded as the Agent is released")
		for _, r := range trail {
			if r.Action == audit.ActionAgentDecommissioning {
				g.Expect(r.Details).To(HaveKeyWithValue("trigger", "deletion"))
			}
		}
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestAgentConvergesWhenItsDependenciesArrive: an Agent may be applied
// before its Toolset (GitOps applies in any order; admission warns), and an
// Agent whose DataBoundary goes away stops and waits, deny-all, until it is
// back. Both converge without anyone touching the Agent.
func TestAgentConvergesWhenItsDependenciesArrive(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("order")
	b := createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	key := client.ObjectKey{Namespace: ns, Name: "agent-early"}

	agent := newAgent(ns, "early", tenant, fixtures.WithToolsets("late-tools"))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.DependencyNotFoundReason)
		expectCondition(g, a, custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, custosv1alpha1.DependencyNotFoundReason)
		g.Expect(kstatusOf(g, a)).To(Equal(status.InProgressStatus))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	np := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
	g.Expect(np.Spec.Egress).To(HaveLen(1), "DNS only: the missing Toolset's endpoint stays closed")

	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "late-tools", tenant))
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, key.Name) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(HaveLen(2))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The boundary goes: the agent stops, deny-all, and waits.
	g.Expect(k8sClient.Delete(ctx, b)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryNotFoundReason)
		expectCondition(g, a, custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, custosv1alpha1.BoundaryNotFoundReason)
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(0))))
		g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// It comes back: the agent converges on its own.
	createBoundary(t, tenant, "eu-west-1")
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
		g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(1))))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, key.Name) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestAgentOutsideItsBoundaryIsStalled: when the platform team narrows a
// boundary so that a running agent's role is no longer allowed, the agent
// stops, deny-all, and says why; admission refuses such an agent outright.
func TestAgentOutsideItsBoundaryIsStalled(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("out")
	b := createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	rogue := newAgent(ns, "rogue", tenant, fixtures.WithAWSRole("arn:aws:iam::999999999999:role/someone-elses"))
	err := k8sClient.Create(ctx, rogue)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "admission must refuse a role outside the boundary: %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.identity.aws.roleARN: Forbidden"))

	agent := newAgent(ns, "narrowed", tenant, fixtures.WithAWSRole("arn:aws:iam::111122223333:role/"+tenant+"-narrowed"))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	updateBoundary(g, b.Name, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.CloudRoles.AWSRoleARNs = []string{"arn:aws:iam::111122223333:role/" + tenant + "-readers-*"}
	})
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryViolationReason)
		expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.BoundaryViolationReason)
		g.Expect(conditionMessage(a, custosv1alpha1.ReadyCondition)).To(ContainSubstring("spec.identity.aws.roleARN"))
		g.Expect(kstatusOf(g, a)).To(Equal(status.FailedStatus))
		g.Expect(eventReasons(g, a)).To(ContainElement(custosv1alpha1.BoundaryViolationReason))
		violations := slices.DeleteFunc(auditTrail(a.UID), func(r audit.Record) bool { return r.Action != audit.ActionBoundaryViolation })
		g.Expect(violations).To(HaveLen(1))
		g.Expect(violations[0].Decision).To(Equal(audit.DecisionDeny))
		g.Expect(violations[0].Reason).To(ContainSubstring("spec.identity.aws.roleARN"))
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-narrowed"}, d)).To(Succeed())
		g.Expect(d.Spec.Replicas).To(Equal(ptr.To[int32](0)), "an agent outside its boundary does not run")
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-narrowed"}, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Suspending it is always allowed, even outside the boundary.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended })
}

// TestAgentDoesNotTakeOverForeignObjects: an object that already holds the
// name of an agent's child and was not made by Custos is left alone; the
// agent stalls and says why, and converges once the object is gone.
func TestAgentDoesNotTakeOverForeignObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("squat")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	key := client.ObjectKey{Namespace: ns, Name: "agent-squatter"}
	foreign := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: ns, Labels: map[string]string{"team": "payments"}},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	g.Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
	agent := newAgent(ns, "squatter", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())

	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason)
		expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.NameConflictReason)
		g.Expect(conditionMessage(a, custosv1alpha1.ReadyCondition)).To(ContainSubstring("NetworkPolicy " + key.String() + " exists and was not made by Custos"))
		g.Expect(kstatusOf(g, a)).To(Equal(status.FailedStatus))
		g.Expect(eventReasons(g, a)).To(ContainElement(custosv1alpha1.NameConflictReason))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	got := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(ctx, key, got)).To(Succeed())
	g.Expect(got.Labels).To(Equal(foreign.Labels), "the foreign object keeps its labels")
	g.Expect(got.OwnerReferences).To(BeEmpty(), "the Agent does not own it")
	g.Expect(got.Spec.PolicyTypes).To(Equal(foreign.Spec.PolicyTypes))
	for _, f := range got.ManagedFields {
		g.Expect(f.Manager).NotTo(Equal(FieldOwner), "Custos wrote no field of it")
	}

	// Its owner removes it: the agent converges with nothing else touched.
	g.Expect(k8sClient.Delete(ctx, got)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(k8sClient.Get(ctx, key, got)).To(Succeed())
		g.Expect(got.Labels).To(HaveKeyWithValue(custosv1alpha1.AgentLabel, "squatter"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestNetworkPolicyOutlivesItsPods: an agent's NetworkPolicy cannot be
// removed from under pods that still run, not by a person and not by the
// garbage collector of a foreground deletion (which deletes all children
// at once): its finalizer holds it, still enforced, until the decommission
// path has seen every pod go.
func TestNetworkPolicyOutlivesItsPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("netfin")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent := newAgent(ns, "isolated", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	key := client.ObjectKey{Namespace: ns, Name: "agent-isolated"}
	np := &networkingv1.NetworkPolicy{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
		g.Expect(np.Finalizers).To(ContainElement(custosv1alpha1.NetworkPolicyFinalizer))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Deleted while the agent runs: it stays, as it was.
	g.Expect(k8sClient.Delete(ctx, np)).To(Succeed())
	g.Consistently(func(g Gomega) {
		got := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, key, got)).To(Succeed())
		g.Expect(got.DeletionTimestamp).NotTo(BeNil())
		g.Expect(got.Spec).To(Equal(np.Spec))
	}).WithTimeout(2 * time.Second).WithPolling(poll).Should(Succeed())

	// An agent pod still running holds it through the decommission, too.
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, key, d)).To(Succeed())
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "agent-isolated-", Namespace: ns,
		Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations, Finalizers: []string{holdFinalizer}},
		Spec: *d.Spec.Template.Spec.DeepCopy()}
	g.Expect(k8sClient.Create(ctx, running)).To(Succeed())
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleDecommissioned })
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.RemovingWorkloadReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Consistently(func() error { return k8sClient.Get(ctx, key, &networkingv1.NetworkPolicy{}) }).
		WithTimeout(2*time.Second).WithPolling(poll).Should(Succeed(), "held while a pod of the agent is left")

	// The pod goes; so does the policy, and the agent is decommissioned.
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(running), running)).To(Succeed())
	running.Finalizers = nil
	g.Expect(k8sClient.Update(ctx, running)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key, &networkingv1.NetworkPolicy{}))).To(BeTrue())
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.DecommissionedReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}
