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
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/netpol"
	"github.com/custos-dev/custos/internal/toolschema"
	"github.com/custos-dev/custos/test/fixtures"
)

// Where the gateway-mode manager of these tests is told custos-gateway's and
// custos-sts's pods are (nothing runs there: the policies are what count).
var (
	testGatewayPods = netpol.InClusterPeer{
		Namespace:   "custos-system",
		PodSelector: map[string]string{"app.kubernetes.io/name": "custos", "app.kubernetes.io/component": "gateway"},
		Port:        8443,
	}
	testSTSPods = netpol.InClusterPeer{
		Namespace:   "custos-system",
		PodSelector: map[string]string{"app.kubernetes.io/name": "custos", "app.kubernetes.io/component": "sts"},
		Port:        9443,
	}
)

// inGatewayMode configures the manager as the chart does with
// gateway.enabled.
func inGatewayMode(o *Options) {
	o.Gateway, o.STS = &testGatewayPods, &testSTSPods
}

// podsPeer is the NetworkPolicy peer of pods in a namespace, as Custos
// writes it.
func podsPeer(p netpol.InClusterPeer) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": p.Namespace}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: p.PodSelector},
	}
}

func tcp(port int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))}
}

// gatewayModeEgress is an Active agent's whole egress in gateway mode: DNS,
// the gateway's pods and the STS's, each on its own port.
func gatewayModeEgress() []networkingv1.NetworkPolicyEgressRule {
	return []networkingv1.NetworkPolicyEgressRule{
		{
			To: []networkingv1.NetworkPolicyPeer{podsPeer(netpol.InClusterPeer{Namespace: netpol.DefaultDNS.Namespace, PodSelector: netpol.DefaultDNS.PodSelector})},
			Ports: []networkingv1.NetworkPolicyPort{
				{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))},
				tcp(53),
			},
		},
		{To: []networkingv1.NetworkPolicyPeer{podsPeer(testGatewayPods)}, Ports: []networkingv1.NetworkPolicyPort{tcp(testGatewayPods.Port)}},
		{To: []networkingv1.NetworkPolicyPeer{podsPeer(testSTSPods)}, Ports: []networkingv1.NetworkPolicyPort{tcp(testSTSPods.Port)}},
	}
}

// toolServerSpec is the spec of the NetworkPolicy of the fixtures' tool
// server (app=ledger-api on 8080): the gateway's pods alone, in.
func toolServerSpec() networkingv1.NetworkPolicySpec {
	return networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{
			MatchLabels:      map[string]string{"app": "ledger-api"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: custosv1alpha1.AgentLabel, Operator: metav1.LabelSelectorOpDoesNotExist}},
		},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{podsPeer(testGatewayPods)},
			Ports: []networkingv1.NetworkPolicyPort{tcp(8080)},
		}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
	}
}

// toolServerPolicyOf reads the NetworkPolicy of ts's tool server in ns.
func toolServerPolicyOf(g Gomega, ts *custosv1alpha1.Toolset, ns string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "custos-toolset-" + ts.Namespace + "." + ts.Name}, np)).To(Succeed())
	return np
}

// expectNoToolServerPolicy asserts that Custos keeps no NetworkPolicy for
// ts anywhere.
func expectNoToolServerPolicy(g Gomega, ts *custosv1alpha1.Toolset) {
	var list networkingv1.NetworkPolicyList
	g.Expect(k8sClient.List(context.Background(), &list, client.HasLabels{custosv1alpha1.ToolsetUIDLabel})).To(Succeed())
	for _, np := range list.Items {
		g.Expect(np.Annotations[custosv1alpha1.ToolsetAnnotation]).NotTo(Equal(ts.Namespace+"/"+ts.Name), "NetworkPolicy %s/%s is left", np.Namespace, np.Name)
	}
}

// expectToolServerIsolated waits until ts reports its tool server in ns
// isolated by exactly the policy Custos renders, and returns that policy.
func expectToolServerIsolated(t *testing.T, ts *custosv1alpha1.Toolset, ns string) *networkingv1.NetworkPolicy {
	t.Helper()
	var np *networkingv1.NetworkPolicy
	NewWithT(t).Eventually(func(g Gomega) {
		got := getToolset(g, ts)
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"NetworkPolicy "+ns+"/custos-toolset-"+ts.Namespace+"."+ts.Name, "lets only custos-gateway's pods in", "on port 8080"))
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
		g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))
		g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.ReconcilingCondition))
		g.Expect(kstatusOf(g, got)).To(Equal(status.CurrentStatus))
		np = toolServerPolicyOf(g, ts, ns)
		g.Expect(np.Spec).To(Equal(toolServerSpec()))
		g.Expect(np.Labels).To(Equal(map[string]string{
			custosv1alpha1.ToolsetUIDLabel: string(got.UID),
			custosv1alpha1.TenantLabel:     got.Labels[custosv1alpha1.TenantLabel],
			custosv1alpha1.ManagedByLabel:  custosv1alpha1.ManagedByValue,
		}))
		g.Expect(np.Annotations).To(HaveKeyWithValue(custosv1alpha1.ToolsetAnnotation, ts.Namespace+"/"+ts.Name))
		g.Expect(np.OwnerReferences).To(BeEmpty(), "no owner reference crosses namespaces")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	return np
}

// expectSettled asserts that nobody writes np any more: Custos does not
// fight itself (or the API server's defaults) over it.
func expectSettled(g Gomega, np *networkingv1.NetworkPolicy) {
	g.Consistently(func(g Gomega) {
		got := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(np), got)).To(Succeed())
		g.Expect(got.ResourceVersion).To(Equal(np.ResourceVersion))
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// TestGatewayMode runs the manager in gateway mode (custos-gateway and
// custos-sts configured): an Active agent reaches DNS, the gateway and the
// STS only, and each Toolset's in-cluster tool server admits the gateway's
// pods alone, whatever a tenant with the edit role in its namespace does.
// Back out of gateway mode, everything is as before.
func TestGatewayMode(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	stopManager()
	g.Expect(startManager(inGatewayMode)).To(Succeed())
	restored := false
	t.Cleanup(func() {
		if !restored {
			stopManager()
			if err := startManager(); err != nil {
				t.Errorf("restarting the suite's manager: %v", err)
			}
		}
	})

	// An Active agent with a Toolset, and a tenant user with the edit role
	// in their namespace, where the tool server runs too.
	w := newContainmentWorld(t)
	tenant := w.agent.Labels[custosv1alpha1.TenantLabel]
	ts := fixtures.Create(t, k8sClient, fixtures.Toolset(w.ns, "ledger", tenant))
	updateAgent(g, w.agent, func(a *custosv1alpha1.Agent) {
		a.Spec.ToolsetRefs = []custosv1alpha1.ToolsetReference{{Name: ts.Name}}
	})
	agentPolicy := client.ObjectKey{Namespace: w.ns, Name: "agent-held"}

	t.Run("an Active agent's egress is DNS, the gateway and the STS only", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func(g Gomega) {
			a := getAgent(g, w.agent)
			g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
			expectCondition(g, a, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
			g.Expect(conditionMessage(a, custosv1alpha1.NetworkIsolatedCondition)).To(Equal(
				"NetworkPolicy agent-held denies all traffic except DNS, custos-gateway and custos-sts: every tool call goes through the gateway"))
			np := &networkingv1.NetworkPolicy{}
			g.Expect(k8sClient.Get(ctx, agentPolicy, np)).To(Succeed())
			g.Expect(np.Spec.Egress).To(Equal(gatewayModeEgress()), "no rule to the Toolset's endpoint")
			g.Expect(np.Spec.Ingress).To(BeEmpty())
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

		// Not Active: deny-all, DNS included.
		updateAgent(g, w.agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended })
		g.Eventually(func(g Gomega) {
			np := &networkingv1.NetworkPolicy{}
			g.Expect(k8sClient.Get(ctx, agentPolicy, np)).To(Succeed())
			g.Expect(np.Spec.Egress).To(BeEmpty())
			g.Expect(conditionMessage(getAgent(g, w.agent), custosv1alpha1.NetworkIsolatedCondition)).To(ContainSubstring("while the agent is not active"))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		updateAgent(g, w.agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleActive })
		g.Eventually(func(g Gomega) {
			np := &networkingv1.NetworkPolicy{}
			g.Expect(k8sClient.Get(ctx, agentPolicy, np)).To(Succeed())
			g.Expect(np.Spec.Egress).To(Equal(gatewayModeEgress()))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

		// The tenant cannot touch it (config/crd/policies).
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, agentPolicy, np)).To(Succeed())
		expectPolicyRefused(g, w.tenant.Delete(ctx, np), "custos-agent-networkpolicies", "only Custos creates, changes or deletes it")
	})

	t.Run("the tool server admits the gateway's pods alone", func(t *testing.T) {
		np := expectToolServerIsolated(t, ts, w.ns)
		expectSettled(NewWithT(t), np)
	})

	t.Run("a tenant cannot touch the tool server's policy; an admin's edits and deletion are undone", func(t *testing.T) {
		g := NewWithT(t)
		np := expectToolServerIsolated(t, ts, w.ns)
		// The tenant with the edit role in the tool server's namespace
		// (config/crd/policies/toolset-networkpolicies.yaml).
		const refusal = "only Custos creates, changes or deletes it"
		tampered := np.DeepCopy()
		tampered.Spec.PodSelector.MatchLabels["tampered"] = "yes"
		expectPolicyRefused(g, w.tenant.Patch(ctx, tampered, client.MergeFrom(np)), "custos-toolset-networkpolicies", refusal)
		expectPolicyRefused(g, w.tenant.Delete(ctx, np.DeepCopy()), "custos-toolset-networkpolicies", refusal)
		expectPolicyRefused(g, w.tenant.Create(ctx, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "custos-toolset-" + w.ns + ".not-yet", Namespace: w.ns},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}), "custos-toolset-networkpolicies", refusal)

		// A cluster admin, who may: narrowed to no pod (server-side apply
		// alone would keep a label it does not set) and opened to everyone.
		patch := client.MergeFrom(np.DeepCopy())
		np.Spec.PodSelector.MatchLabels["tampered"] = "yes"
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
		g.Expect(k8sClient.Patch(ctx, np, patch)).To(Succeed())
		np = expectToolServerIsolated(t, ts, w.ns)
		expectSettled(g, np)

		uid := np.UID
		g.Expect(k8sClient.Delete(ctx, np)).To(Succeed())
		np = expectToolServerIsolated(t, ts, w.ns)
		g.Expect(np.UID).NotTo(Equal(uid), "made again")
		expectSettled(g, np)
	})

	t.Run("another policy admitting more is reported", func(t *testing.T) {
		g := NewWithT(t)
		expectToolServerIsolated(t, ts, w.ns)
		// Another Toolset of the same pods has its own policy, which
		// admits the gateway alone: neither widens the other.
		twin := fixtures.Create(t, k8sClient, fixtures.Toolset(w.ns, "ledger-twin", tenant))
		expectToolServerIsolated(t, twin, w.ns)
		expectToolServerIsolated(t, ts, w.ns)

		open := fixtures.Create(t, w.tenant, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "let-everyone-in", Namespace: w.ns},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "ledger-api"}},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
			},
		})
		g.Eventually(func(g Gomega) {
			got := getToolset(g, ts)
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NetworkPolicyWidenedReason,
				"NetworkPolicy let-everyone-in in namespace "+w.ns+" also select(s) the tool server's pods", "reachable wider than custos-toolset-"))
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.NetworkPolicyWidenedReason))
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.NetworkPolicyWidenedReason))
			g.Expect(kstatusOf(g, got)).To(Equal(status.FailedStatus))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		g.Expect(k8sClient.Delete(ctx, open)).To(Succeed())
		expectToolServerIsolated(t, ts, w.ns)

		// A policy that selects some of the tool server's pods by a label
		// the endpoint's selector does not name widens it too.
		fixtures.Create(t, k8sClient, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "ledger-api-", Namespace: w.ns, Labels: map[string]string{"app": "ledger-api", "version": "v2"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "ledger", Image: "registry.example.com/ledger:2"}}},
		})
		canary := fixtures.Create(t, w.tenant, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "open-canary", Namespace: w.ns},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"version": "v2"}},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}}}},
			},
		})
		// Another port of the tool server's pods, opened to everyone,
		// leaves the tool server as it was.
		metrics := fixtures.Create(t, w.tenant, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "scrape-metrics", Namespace: w.ns},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "ledger-api"}},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(9090)}}},
			},
		})
		g.Eventually(func(g Gomega) {
			g.Expect(getToolset(g, ts).Status.Conditions).To(haveCondition(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse,
				custosv1alpha1.NetworkPolicyWidenedReason, "NetworkPolicy open-canary in namespace"))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		g.Expect(k8sClient.Delete(ctx, canary)).To(Succeed())
		expectToolServerIsolated(t, ts, w.ns)
		g.Expect(k8sClient.Delete(ctx, metrics)).To(Succeed())

		// A deleted Toolset's policy goes with it.
		g.Expect(k8sClient.Delete(ctx, twin)).To(Succeed())
		g.Eventually(func(g Gomega) { expectNoToolServerPolicy(g, twin) }).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		expectToolServerIsolated(t, ts, w.ns)
	})

	t.Run("a policy of the same name that Custos did not make is left alone", func(t *testing.T) {
		g := NewWithT(t)
		// Only a cluster admin can make one in a tenant namespace (or one
		// was there before Custos was installed).
		squat := fixtures.Create(t, k8sClient, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "custos-toolset-" + w.ns + ".squatted", Namespace: w.ns, Labels: map[string]string{"team": "ledger"}},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "something-else"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			},
		})
		squatted := fixtures.Create(t, k8sClient, fixtures.Toolset(w.ns, "squatted", tenant))
		g.Eventually(func(g Gomega) {
			got := getToolset(g, squatted)
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
				"NetworkPolicy "+w.ns+"/custos-toolset-"+w.ns+".squatted exists and was not made by Custos for this Toolset"))
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.NameConflictReason))
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		expectSettled(g, squat)
		got := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(squat), got)).To(Succeed())
		g.Expect(got.Spec).To(Equal(squat.Spec))
		g.Expect(got.Labels).To(Equal(map[string]string{"team": "ledger"}))

		// Once its owner removes it, Custos makes its own.
		g.Expect(k8sClient.Delete(ctx, squat)).To(Succeed())
		expectToolServerIsolated(t, squatted, w.ns)
	})

	// A second namespace of the tenant, where a Toolset's endpoint moves.
	ns2 := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	mover := fixtures.Create(t, k8sClient, fixtures.Toolset(w.ns, "mover", tenant))
	t.Run("a policy follows its endpoint", func(t *testing.T) {
		g := NewWithT(t)
		expectToolServerIsolated(t, mover, w.ns)
		g.Eventually(func() error {
			got := &custosv1alpha1.Toolset{}
			if err := k8sClient.Get(ctx, keyOf(mover), got); err != nil {
				return err
			}
			got.Spec.Endpoint.InCluster.Namespace = ns2
			return k8sClient.Update(ctx, got)
		}).WithTimeout(eventually).Should(Succeed())
		expectToolServerIsolated(t, mover, ns2)
		g.Eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: w.ns, Name: "custos-toolset-" + w.ns + ".mover"}, &networkingv1.NetworkPolicy{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the policy at the old endpoint is left: %v", err)
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	})

	t.Run("no policy in a namespace that is not the tenant's", func(t *testing.T) {
		g := NewWithT(t)
		shared := fixtures.Create(t, k8sClient, fixtures.Namespace("shared-tools-", nil)).Name
		updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) { b.Spec.Egress.Namespaces = []string{shared} })
		outside := fixtures.Toolset(w.ns, "outside", tenant)
		outside.Spec.Endpoint.InCluster.Namespace = shared
		// Admission reads the boundary from the manager's cache.
		g.Eventually(func() error { return k8sClient.Create(ctx, outside) }).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, outside) })
		g.Eventually(func(g Gomega) {
			got := getToolset(g, outside)
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.EndpointOutsideTenantReason,
				"Namespace "+shared+" of the tool server is not one of tenant \""+tenant+"\""))
			// A report: the Toolset is usable through the gateway.
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
			g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		var list networkingv1.NetworkPolicyList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(shared))).To(Succeed())
		g.Expect(list.Items).To(BeEmpty())
	})
	if t.Failed() {
		return
	}

	// A crash: a Toolset deleted while no manager runs; the next manager,
	// out of gateway mode, finds its policy and reaps it (the sweeper), and
	// removes those of the Toolsets that remain.
	stopManager()
	g.Expect(k8sClient.Delete(ctx, mover)).To(Succeed())
	restored = true
	g.Expect(startManager()).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectNoToolServerPolicy(g, mover)
		expectNoToolServerPolicy(g, ts)
		got := getToolset(g, ts)
		g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.NetworkIsolatedCondition))
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// Events are written in the background.
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasonsIn(g, ns2)).To(ContainElement("Reaped"), "the sweeper reaped the deleted Toolset's policy")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The agent reaches its Toolset's endpoint itself again.
	g.Eventually(func(g Gomega) {
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, agentPolicy, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(HaveLen(2), "DNS and the Toolset")
		g.Expect(np.Spec.Egress[1].To).To(Equal([]networkingv1.NetworkPolicyPeer{podsPeer(netpol.InClusterPeer{
			Namespace: w.ns, PodSelector: map[string]string{"app": "ledger-api"},
		})}))
		g.Expect(conditionMessage(getAgent(g, w.agent), custosv1alpha1.NetworkIsolatedCondition)).To(Equal(
			"NetworkPolicy agent-held denies all traffic except DNS and 1 Toolset endpoint(s)"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// eventReasonsIn lists the reasons of the Events recorded in namespace ns.
func eventReasonsIn(g Gomega, ns string) []string {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

// TestSetToolsetStatusSummarizesTheNetwork: Ready summarizes
// NetworkIsolated as the Agent's does (a person must fix a name conflict or
// a widening policy: Stalled; a namespace yet to exist: Reconciling), except
// EndpointOutsideTenant, a report; an invalid schema comes first.
func TestSetToolsetStatusSummarizesTheNetwork(t *testing.T) {
	_, invalid := toolschema.Compile([]custosv1alpha1.Tool{testTool("pay", custosv1alpha1.ToolAccessWrite, `{"type": 12}`, "")})
	cases := []struct {
		name          string
		status        metav1.ConditionStatus
		reason        string
		compileErr    error
		wantReady     metav1.ConditionStatus
		wantReason    string
		wantStalled   bool
		wantReconcile bool
	}{
		{name: "isolated", status: metav1.ConditionTrue, reason: custosv1alpha1.SucceededReason,
			wantReady: metav1.ConditionTrue, wantReason: custosv1alpha1.SucceededReason},
		{name: "no condition out of gateway mode",
			wantReady: metav1.ConditionTrue, wantReason: custosv1alpha1.SucceededReason},
		{name: "a name conflict", status: metav1.ConditionFalse, reason: custosv1alpha1.NameConflictReason,
			wantReady: metav1.ConditionFalse, wantReason: custosv1alpha1.NameConflictReason, wantStalled: true},
		{name: "a widening policy", status: metav1.ConditionFalse, reason: custosv1alpha1.NetworkPolicyWidenedReason,
			wantReady: metav1.ConditionFalse, wantReason: custosv1alpha1.NetworkPolicyWidenedReason, wantStalled: true},
		{name: "the namespace does not exist yet", status: metav1.ConditionFalse, reason: custosv1alpha1.DependencyNotFoundReason,
			wantReady: metav1.ConditionFalse, wantReason: custosv1alpha1.DependencyNotFoundReason, wantReconcile: true},
		{name: "outside the tenant: a report", status: metav1.ConditionFalse, reason: custosv1alpha1.EndpointOutsideTenantReason,
			wantReady: metav1.ConditionTrue, wantReason: custosv1alpha1.SucceededReason},
		{name: "an invalid schema first", status: metav1.ConditionFalse, reason: custosv1alpha1.DependencyNotFoundReason, compileErr: invalid,
			wantReady: metav1.ConditionFalse, wantReason: custosv1alpha1.SchemaInvalidReason, wantStalled: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ts := &custosv1alpha1.Toolset{
				ObjectMeta: metav1.ObjectMeta{Generation: 2},
				Spec:       custosv1alpha1.ToolsetSpec{Tools: make([]custosv1alpha1.Tool, 1)},
			}
			if tc.reason != "" {
				setToolsetCondition(ts, custosv1alpha1.NetworkIsolatedCondition, tc.status, tc.reason, "the network")
			}
			setToolsetStatus(ts, toolschema.Result{Tools: 1, Access: custosv1alpha1.ToolsetReadOnly}, tc.compileErr)
			g.Expect(ts.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, tc.wantReady, tc.wantReason))
			if tc.wantStalled {
				g.Expect(ts.Status.Conditions).To(haveCondition(custosv1alpha1.StalledCondition, metav1.ConditionTrue, tc.wantReason))
			} else {
				g.Expect(ts.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))
			}
			if tc.wantReconcile {
				g.Expect(ts.Status.Conditions).To(haveCondition(custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, tc.wantReason, "the network"))
			} else {
				g.Expect(ts.Status.Conditions).To(noCondition(custosv1alpha1.ReconcilingCondition))
			}
			g.Expect(ts.Status.ObservedGeneration).To(Equal(int64(2)))
		})
	}
}
