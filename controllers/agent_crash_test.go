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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// holdFinalizer keeps an object from going away, to stop a decommission at
// a chosen step.
const holdFinalizer = "test.custos.dev/hold"

// TestDecommissionResumesAfterCrash stops the manager in the middle of each
// decommission step, lets the step's object go while no manager runs, starts
// a new manager, and expects it to finish the job with nothing left behind.
// Half the cases decommission by state, half by deletion.
func TestDecommissionResumesAfterCrash(t *testing.T) {
	steps := []struct {
		reason string
		obj    func(ns string) client.Object
	}{
		{custosv1alpha1.RevokingLeasesReason, func(ns string) client.Object {
			// The lease Secret of the agent's one credential.
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: leaseSecretName("crashy", "ledger-api")}}
		}},
		{custosv1alpha1.RemovingWorkloadReason, func(ns string) client.Object {
			return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent-crashy"}}
		}},
		{custosv1alpha1.RemovingNetworkPolicyReason, func(ns string) client.Object {
			return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent-crashy"}}
		}},
		{custosv1alpha1.RemovingIdentityReason, func(ns string) client.Object {
			return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent-crashy"}}
		}},
	}
	for i, step := range steps {
		byDeletion := i%2 == 1
		t.Run(step.reason, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			tenant := fixtures.UniqueTenant("crash")
			createBoundary(t, tenant, "eu-west-1")
			ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
			agent := newAgent(ns, "crashy", tenant)
			g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
			g.Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-crashy"}, &appsv1.Deployment{})).To(Succeed())
				g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaseSecretName("crashy", "ledger-api")}, &corev1.Secret{})).To(Succeed())
			}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
			a := getAgent(g, agent)

			held := step.obj(ns)
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(held), held)).To(Succeed())
			patch := client.MergeFrom(held.DeepCopyObject().(client.Object))
			controllerutil.AddFinalizer(held, holdFinalizer)
			g.Expect(k8sClient.Patch(ctx, held, patch)).To(Succeed())

			if byDeletion {
				g.Expect(k8sClient.Delete(ctx, a)).To(Succeed())
			} else {
				updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleDecommissioned })
			}
			g.Eventually(func(g Gomega) {
				a := getAgent(g, agent)
				c := meta.FindStatusCondition(a.Status.Conditions, custosv1alpha1.ReadyCondition)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(step.reason), c.Message)
				g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseDecommissioning))
			}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

			// Crash; the held object finishes going while no manager runs.
			stopManager()
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(held), held)).To(Succeed())
			patch = client.MergeFrom(held.DeepCopyObject().(client.Object))
			controllerutil.RemoveFinalizer(held, holdFinalizer)
			g.Expect(k8sClient.Patch(ctx, held, patch)).To(Succeed())
			g.Expect(startManager()).To(Succeed())

			g.Eventually(func(g Gomega) {
				got := &custosv1alpha1.Agent{}
				err := k8sClient.Get(ctx, keyOf(agent), got)
				if byDeletion {
					g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the deleted agent must be released")
					return
				}
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseDecommissioned))
				g.Expect(got.Finalizers).To(BeEmpty())
			}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
			expectNoChildren(g, ns, "crashy")
		})
	}
}
