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
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// createTestBoundary creates a DataBoundary for tenant, named after it with
// a generated suffix (a test may make several), covering the namespaces
// labelled with it unless an option says otherwise, and deletes it when
// the test ends.
func createTestBoundary(t *testing.T, tenant string, opts ...fixtures.BoundaryOption) *custosv1alpha1.DataBoundary {
	t.Helper()
	return fixtures.Create(t, k8sClient, fixtures.DataBoundary(tenant,
		append([]fixtures.BoundaryOption{fixtures.WithBoundaryName(tenant + "-")}, opts...)...))
}

func getBoundary(g Gomega, b *custosv1alpha1.DataBoundary) *custosv1alpha1.DataBoundary {
	got := &custosv1alpha1.DataBoundary{}
	g.Expect(k8sClient.Get(context.Background(), keyOf(b), got)).To(Succeed())
	return got
}

// createTestAgent creates an Agent of tenant in ns. A DataBoundary of
// tenant must cover ns, in the manager's cache, for admission to let it
// in.
func createTestAgent(t *testing.T, ns, tenant string) {
	t.Helper()
	fixtures.Create(t, k8sClient, fixtures.Agent(ns, "agent-", tenant))
}

// expectBoundaryReady waits until b is Ready and Current, covering the
// namespaces with the number of agents.
func expectBoundaryReady(g Gomega, b *custosv1alpha1.DataBoundary, namespaces []string, agents int32) {
	slices.Sort(namespaces)
	g.Eventually(func(g Gomega) {
		got := getBoundary(g, b)
		g.Expect(got.Status.Namespaces).To(Equal(namespaces))
		g.Expect(got.Status.Agents).To(Equal(agents))
		g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			fmt.Sprintf("Covers %s with %s", countOf(len(namespaces), "namespace"), countOf(int(agents), "Agent"))))
		g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))
		g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.ReconcilingCondition))
		g.Expect(got.Status.Conditions).To(HaveEach(HaveField("ObservedGeneration", got.Generation)))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(kstatusOf(g, got)).To(Equal(status.CurrentStatus))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())
}

func TestDataBoundaryCoversLabelledNamespacesAndCountsAgents(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("t")
	ns1, ns2 := fixtures.CreateTenantNamespace(t, k8sClient, tenant), fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("t")) // another tenant's, not covered

	// Agents are admitted only where a boundary covers them: the boundary
	// comes first, and reports becoming Ready.
	b := createTestBoundary(t, tenant)
	expectBoundaryReady(g, b, []string{ns1, ns2}, 0)
	g.Eventually(func(g Gomega) {
		g.Expect(eventsRegarding(g, b)).To(haveEvent(corev1.EventTypeNormal, custosv1alpha1.SucceededReason, "Covers 2 namespaces with 0 Agents"))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())

	// New Agents are counted...
	createTestAgent(t, ns1, tenant)
	createTestAgent(t, ns1, tenant)
	createTestAgent(t, ns2, tenant)
	expectBoundaryReady(g, b, []string{ns1, ns2}, 3)
	createTestAgent(t, ns2, tenant)
	expectBoundaryReady(g, b, []string{ns1, ns2}, 4)

	// ...and a new namespace of the tenant is covered.
	ns3 := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	expectBoundaryReady(g, b, []string{ns1, ns2, ns3}, 4)
}

func TestDataBoundaryFollowsNamespaceLabels(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("t")
	ns1 := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	later := fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("t"))
	b := createTestBoundary(t, tenant)
	expectBoundaryReady(g, b, []string{ns1}, 0)

	relabel := func(tenantLabel string) {
		ns := &corev1.Namespace{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: later}, ns)).To(Succeed())
		patch := client.MergeFrom(ns.DeepCopy())
		ns.Labels[custosv1alpha1.TenantLabel] = tenantLabel
		g.Expect(k8sClient.Patch(context.Background(), ns, patch)).To(Succeed())
	}

	// A namespace labelled for the tenant later is picked up...
	relabel(tenant)
	expectBoundaryReady(g, b, []string{ns1, later}, 0)

	// ...and let go when it is labelled for another.
	relabel(fixtures.UniqueTenant("t"))
	expectBoundaryReady(g, b, []string{ns1}, 0)
}

func TestDataBoundaryConflictOnASharedNamespace(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("t")
	shared, own := fixtures.CreateTenantNamespace(t, k8sClient, tenant), fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	// The Agent is admitted while one boundary covers its namespace.
	first := createTestBoundary(t, tenant)
	expectBoundaryReady(g, first, []string{shared, own}, 0)
	createTestAgent(t, shared, tenant)
	expectBoundaryReady(g, first, []string{shared, own}, 1)

	// A second boundary also covers one of the first one's namespaces:
	// neither can be the namespace's boundary. Boundaries do not check each
	// other at admission; their status says what is wrong.
	second := createTestBoundary(t, tenant, fixtures.WithNamespaceNames(shared))
	for _, tc := range []struct {
		b, other   *custosv1alpha1.DataBoundary
		namespaces []string
	}{
		{b: first, other: second, namespaces: []string{shared, own}},
		{b: second, other: first, namespaces: []string{shared}},
	} {
		wantInMessage := []string{"namespace " + shared + " is also covered by DataBoundary " + fmt.Sprintf("%q", tc.other.Name)}
		g.Eventually(func(g Gomega) {
			got := getBoundary(g, tc.b)
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.BoundaryConflictReason, wantInMessage...))
			g.Expect(got.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryConflictReason, wantInMessage...))
			g.Expect(got.Status.Conditions).To(noCondition(custosv1alpha1.ReconcilingCondition))
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, custosv1alpha1.StalledCondition).Message).
				NotTo(ContainSubstring("namespace "+own+" "), "only the shared namespace conflicts")
			g.Expect(got.Status.Namespaces).To(Equal(slices.Sorted(slices.Values(tc.namespaces))))
			g.Expect(got.Status.Agents).To(Equal(int32(1)))
			g.Expect(kstatusOf(g, got)).To(Equal(status.FailedStatus))
		}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(eventsRegarding(g, tc.b)).To(haveEvent(corev1.EventTypeWarning, custosv1alpha1.BoundaryConflictReason, wantInMessage...))
		}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())
	}

	// Meanwhile no new Agent is admitted to the shared namespace.
	err := k8sClient.Create(context.Background(), fixtures.Agent(shared, "agent-", tenant))
	expectInvalidField(g, err, "metadata.namespace", "covered by 2 DataBoundaries", fmt.Sprintf("%q", first.Name), fmt.Sprintf("%q", second.Name))

	// Deleting the second boundary resolves the conflict.
	g.Expect(k8sClient.Delete(context.Background(), second)).To(Succeed())
	expectBoundaryReady(g, first, []string{shared, own}, 1)
}

// TestAgentStopsOnAnotherTenantsBoundary: a DataBoundary of another tenant
// that also covers an Agent's namespace makes that Agent stop on the
// conflict, and its deletion lets the Agent go on, although neither
// boundary's spec nor the Agent changed.
func TestAgentStopsOnAnotherTenantsBoundary(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	tenant, other := fixtures.UniqueTenant("t"), fixtures.UniqueTenant("t")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	first := createTestBoundary(t, tenant)
	expectBoundaryReady(g, first, []string{ns}, 0)
	agent := fixtures.Agent(ns, "agent-", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), agent) })
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())

	second := createTestBoundary(t, other, fixtures.WithNamespaceNames(ns))
	g.Eventually(func(g Gomega) {
		got := getAgent(g, agent)
		expectCondition(g, got, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryConflictReason)
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, custosv1alpha1.BoundaryCompliantCondition).Message).To(ContainSubstring(second.Name))
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())

	g.Expect(k8sClient.Delete(ctx, second)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(statusTimeout).WithPolling(statusPoll).Should(Succeed())
}

// A selector operator other than In, NotIn, Exists or DoesNotExist is
// refused by the API, on creation and on update, so no boundary with an
// invalid selector is ever stored. How the reconciler reports one anyway
// (an object stored before the rule) is setBoundaryInvalid's.
func TestDataBoundaryWithAnInvalidSelectorIsRefused(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("t")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	const (
		wantField = "spec.namespaceSelector"
		wantMsg   = "operators must be In, NotIn, Exists or DoesNotExist"
	)
	near := func(b *custosv1alpha1.DataBoundary) {
		b.Spec.NamespaceSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: custosv1alpha1.TenantLabel, Operator: "Near", Values: []string{tenant},
		}}}
	}

	invalid := &custosv1alpha1.DataBoundary{
		ObjectMeta: metav1.ObjectMeta{Name: tenant},
		Spec:       custosv1alpha1.DataBoundarySpec{Tenant: tenant, Regions: []string{"eu-west-1"}},
	}
	near(invalid)
	err := k8sClient.Create(ctx, invalid)
	if err == nil {
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, invalid) })
	}
	expectInvalidField(g, err, wantField, wantMsg)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(invalid), &custosv1alpha1.DataBoundary{}))).
		To(BeTrue(), "the refused boundary must not be stored")

	// The same selector with a valid operator is Ready; editing it back to
	// the invalid one is refused and leaves the boundary as it was.
	b := createTestBoundary(t, tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.NamespaceSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: custosv1alpha1.TenantLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{tenant},
		}}}
	})
	expectBoundaryReady(g, b, []string{ns}, 0)
	ready := getBoundary(g, b)
	edited := ready.DeepCopy()
	near(edited)
	expectInvalidField(g, k8sClient.Patch(ctx, edited, client.MergeFrom(ready)), wantField, wantMsg)
	got := getBoundary(g, b)
	g.Expect(got.Generation).To(Equal(ready.Generation))
	g.Expect(got.Spec.NamespaceSelector).To(Equal(ready.Spec.NamespaceSelector))
	expectBoundaryReady(g, b, []string{ns}, 0)
}

func TestBoundaryConflictMessage(t *testing.T) {
	many := map[string][]string{}
	for i := range 12 {
		many[fmt.Sprintf("ns-%02d", i)] = []string{"other"}
	}
	cases := []struct {
		name      string
		conflicts map[string][]string
		want      []string
		wantNot   []string
	}{
		{name: "no conflict", conflicts: map[string][]string{}},
		{
			name:      "one namespace, one other boundary",
			conflicts: map[string][]string{"finance": {"acme"}},
			want:      []string{`namespace finance is also covered by DataBoundary "acme". A namespace must be covered by exactly one DataBoundary`},
		},
		{
			name:      "one namespace, two other boundaries",
			conflicts: map[string][]string{"finance": {"acme", "globex"}},
			want:      []string{`namespace finance is also covered by DataBoundaries "acme", "globex"`},
		},
		{
			name:      "many namespaces are listed up to a limit",
			conflicts: many,
			want:      []string{"namespace ns-00 is also", "namespace ns-09 is also", "; and 2 more namespaces"},
			wantNot:   []string{"ns-10", "ns-11"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			msg := boundaryConflictMessage(tc.conflicts)
			if len(tc.want) == 0 {
				g.Expect(msg).To(BeEmpty())
			}
			for _, w := range tc.want {
				g.Expect(msg).To(ContainSubstring(w))
			}
			for _, w := range tc.wantNot {
				g.Expect(msg).NotTo(ContainSubstring(w))
			}
		})
	}
}

func TestSetBoundaryStatus(t *testing.T) {
	g := NewWithT(t)
	db := &custosv1alpha1.DataBoundary{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	db.Status.Conditions = []metav1.Condition{{Type: custosv1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.ProgressingReason}}

	// More namespaces than status.namespaces can hold are cut, and the
	// message says so.
	var namespaces []string
	for i := range maxBoundaryNamespaces + 6 {
		namespaces = append(namespaces, fmt.Sprintf("ns-%04d", i))
	}
	setBoundaryStatus(db, boundaryCoverage{namespaces: namespaces, agents: 1}, nil)
	g.Expect(db.Status.Namespaces).To(HaveLen(maxBoundaryNamespaces))
	g.Expect(db.Status.Agents).To(Equal(int32(1)))
	g.Expect(db.Status.ObservedGeneration).To(Equal(int64(2)))
	g.Expect(db.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
		"Covers 1030 namespaces with 1 Agent", "status.namespaces lists the first 1024"))
	g.Expect(db.Status.Conditions).To(noCondition(custosv1alpha1.ReconcilingCondition))
	g.Expect(db.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))

	// A conflict stalls the boundary; resolving it removes Stalled.
	setBoundaryStatus(db, boundaryCoverage{namespaces: []string{"a"}, conflicts: map[string][]string{"a": {"other"}}}, nil)
	g.Expect(db.Status.Conditions).To(haveCondition(custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.BoundaryConflictReason, `"other"`))
	g.Expect(db.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryConflictReason))
	setBoundaryStatus(db, boundaryCoverage{namespaces: []string{"a"}}, nil)
	g.Expect(db.Status.Conditions).To(noCondition(custosv1alpha1.StalledCondition))
	g.Expect(db.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, "Covers 1 namespace with 0 Agents"))

	// A transient error leaves Ready as it was and says work is under way.
	setBoundaryProgressing(db, fmt.Errorf("the cache is not synced"))
	g.Expect(db.Status.Conditions).To(haveCondition(custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, custosv1alpha1.ProgressingReason, "the cache is not synced"))
	g.Expect(db.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason))
}

// TestSetBoundaryInvalid: a selector the API no longer admits can still be
// stored by an older CRD; the reconciler stalls such a boundary, covering
// nothing, until it is edited.
func TestSetBoundaryInvalid(t *testing.T) {
	g := NewWithT(t)
	db := &custosv1alpha1.DataBoundary{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	db.Spec.NamespaceSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: custosv1alpha1.TenantLabel, Operator: "Near", Values: []string{"acme"},
	}}}
	db.Status = custosv1alpha1.DataBoundaryStatus{
		Namespaces: []string{"a", "b"},
		Agents:     2,
		Conditions: []metav1.Condition{
			{Type: custosv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.SucceededReason},
			{Type: custosv1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.ProgressingReason},
		},
	}
	_, err := metav1.LabelSelectorAsSelector(&db.Spec.NamespaceSelector)
	g.Expect(err).To(HaveOccurred())

	setBoundaryInvalid(db, fmt.Errorf("spec.namespaceSelector: %w", err))
	wantInMessage := []string{"spec.namespaceSelector", `"Near"`}
	g.Expect(db.Status.Conditions).To(haveCondition(custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.InvalidSpecReason, wantInMessage...))
	g.Expect(db.Status.Conditions).To(haveCondition(custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.InvalidSpecReason, wantInMessage...))
	g.Expect(db.Status.Conditions).To(noCondition(custosv1alpha1.ReconcilingCondition))
	g.Expect(db.Status.Conditions).To(HaveEach(HaveField("ObservedGeneration", int64(3))))
	g.Expect(db.Status.Namespaces).To(BeEmpty())
	g.Expect(db.Status.Agents).To(BeZero())
	g.Expect(db.Status.ObservedGeneration).To(Equal(int64(3)))
	g.Expect(kstatusOf(g, db)).To(Equal(status.FailedStatus))
}
