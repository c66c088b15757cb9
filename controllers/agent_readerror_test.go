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

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// flakyReader is the API server as a reconciler sees it during a blip:
// every read of one kind fails (a timeout, not a NotFound), every other
// read and every write goes through.
type flakyReader struct {
	client.Client
	failList func(client.ObjectList) bool
	failGet  func(client.Object) bool
}

var errBlip = apierrors.NewTimeoutError("the server was too busy to answer (injected by the test)", 1)

func (f *flakyReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if f.failGet != nil && f.failGet(obj) {
		return errBlip
	}
	return f.Client.Get(ctx, key, obj, opts...)
}

func (f *flakyReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if f.failList != nil && f.failList(list) {
		return errBlip
	}
	return f.Client.List(ctx, list, opts...)
}

// TestReadErrorChangesNothingThatRuns: a read that fails is not a verdict.
// A running agent whose DataBoundary or Toolset cannot be read for a moment
// keeps its leases, its Deployment's replicas and its NetworkPolicy; Ready
// stays as it was; the pass fails, to be retried with backoff. Only an
// observed absence (no DataBoundary places the agent) tears it down, which
// TestAgentWithoutBoundary and the lifecycle tests cover.
func TestReadErrorChangesNothingThatRuns(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("blip")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger-readonly", tenant))
	agent := fixtures.Create(t, k8sClient, newAgent(ns, "steady", tenant, fixtures.WithToolsets("ledger-readonly")))
	child := client.ObjectKey{Namespace: ns, Name: "agent-steady"}
	leaseKey := client.ObjectKey{Namespace: ns, Name: "agent-steady.ledger-api"}
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, child.Name) }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// What runs, as the running manager left it.
	type running struct {
		lease      *corev1.Secret
		deployment *appsv1.Deployment
		policy     *networkingv1.NetworkPolicy
	}
	read := func(g Gomega) running {
		r := running{&corev1.Secret{}, &appsv1.Deployment{}, &networkingv1.NetworkPolicy{}}
		g.Expect(k8sClient.Get(ctx, leaseKey, r.lease)).To(Succeed())
		g.Expect(k8sClient.Get(ctx, child, r.deployment)).To(Succeed())
		g.Expect(k8sClient.Get(ctx, child, r.policy)).To(Succeed())
		return r
	}
	before := read(g)
	// The name cache, as the manager has one.
	names, err := cache.New(cp.Config, cache.Options{Scheme: testScheme})
	g.Expect(err).NotTo(HaveOccurred())
	namesCtx, stopNames := context.WithCancel(ctx)
	defer stopNames()
	go func() { _ = names.Start(namesCtx) }()
	g.Expect(before.lease.Data).To(HaveKey("token"))
	g.Expect(before.deployment.Spec.Replicas).To(HaveValue(BeNumerically(">", 0)))
	g.Expect(before.policy.Spec.Egress).To(HaveLen(2), "DNS and the Toolset")

	for _, tc := range []struct {
		name     string
		failList func(client.ObjectList) bool
		failGet  func(client.Object) bool
		says     string
	}{{
		name:     "the DataBoundaries cannot be listed",
		failList: func(l client.ObjectList) bool { _, ok := l.(*custosv1alpha1.DataBoundaryList); return ok },
		says:     "DataBoundar",
	}, {
		name:    "the agent's Toolset cannot be read",
		failGet: func(o client.Object) bool { _, ok := o.(*custosv1alpha1.Toolset); return ok },
		says:    "Toolset",
	}, {
		name:    "the agent's namespace cannot be read",
		failGet: func(o client.Object) bool { _, ok := o.(*corev1.Namespace); return ok },
		says:    "amespace",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			recorder := events.NewFakeRecorder(100)
			opts := testOptions()
			opts.defaults()
			// A second reconciler, reading through the blip; the suite's
			// manager keeps running beside it and has nothing to do.
			r := &AgentReconciler{
				Client:        &flakyReader{Client: k8sClient, failList: tc.failList, failGet: tc.failGet},
				APIReader:     k8sClient,
				ChildNames:    names,
				Recorder:      recorder,
				Options:       opts,
				imagePolicies: newImagePolicies(k8sClient, opts.Clock, opts.Images.PolicyTTL),
			}
			auditBefore := len(auditTrail(agent.UID))

			_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: keyOf(agent)})
			g.Expect(err).To(HaveOccurred(), "a pass that could not read its inputs must fail, to be retried with backoff")
			g.Expect(apierrors.IsTimeout(err)).To(BeTrue(), "the error is the read's: %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.says))

			after := read(g)
			g.Expect(after.lease.UID).To(Equal(before.lease.UID), "the lease Secret was deleted and made again")
			g.Expect(after.lease.ResourceVersion).To(Equal(before.lease.ResourceVersion), "the lease was written")
			g.Expect(after.lease.Data).To(Equal(before.lease.Data))
			g.Expect(after.deployment.ResourceVersion).To(Equal(before.deployment.ResourceVersion), "the Deployment was written")
			g.Expect(after.deployment.Spec.Replicas).To(Equal(before.deployment.Spec.Replicas))
			g.Expect(after.policy.ResourceVersion).To(Equal(before.policy.ResourceVersion), "the NetworkPolicy was written")
			g.Expect(after.policy.Spec).To(Equal(before.policy.Spec))

			a := getAgent(g, agent)
			expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
			expectCondition(g, a, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
			g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseActive))
			for _, rec := range auditTrail(agent.UID)[auditBefore:] {
				g.Expect(rec.Action).NotTo(BeElementOf(audit.ActionLeaseRevoked, audit.ActionAgentSuspended,
					audit.ActionWorkloadRemoved, audit.ActionNetworkRemoved), "recorded after the failed read: %+v", rec)
			}
			close(recorder.Events)
			for e := range recorder.Events {
				g.Expect(e).NotTo(Or(ContainSubstring("Revoked"), ContainSubstring("Suspended"), ContainSubstring("BoundaryNotFound")),
					"an Event told of a verdict after a failed read")
			}
		})
	}

	// The blip over, the running manager's next pass finds everything in
	// place and leaves it so.
	poke(g, agent)
	g.Consistently(func(g Gomega) {
		now := read(g)
		g.Expect(now.lease.UID).To(Equal(before.lease.UID))
		g.Expect(now.deployment.Spec.Replicas).To(Equal(before.deployment.Spec.Replicas))
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(2 * eventually / 10).WithPolling(poll).Should(Succeed())
}
