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
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestSweeperReapsZombies leaves objects behind as a crash would (made
// for an Agent that no longer exists, and for an earlier Agent of a living
// one's name) next to look-alikes without Custos's labels, and others with
// them but not made by Custos: the zombies go, with an Event and a metric
// each; the look-alikes stay.
func TestSweeperReapsZombies(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sweep")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	living := newAgent(ns, "phoenix", tenant)
	g.Expect(k8sClient.Create(ctx, living)).To(Succeed())
	phoenixSA := client.ObjectKey{Namespace: ns, Name: "agent-phoenix"}
	g.Eventually(func() error {
		return k8sClient.Get(ctx, phoenixSA, &corev1.ServiceAccount{})
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	ghost := map[string]string{
		custosv1alpha1.AgentLabel:     "ghost",
		custosv1alpha1.AgentUIDLabel:  "00000000-0000-0000-0000-000000000000",
		custosv1alpha1.TenantLabel:    tenant,
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
	earlierPhoenix := map[string]string{
		custosv1alpha1.AgentLabel:     "phoenix",
		custosv1alpha1.AgentUIDLabel:  "11111111-1111-1111-1111-111111111111",
		custosv1alpha1.TenantLabel:    tenant,
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
	// Same labels but not Custos's: someone else's objects.
	lookalike := map[string]string{custosv1alpha1.AgentLabel: "ghost", custosv1alpha1.TenantLabel: tenant}
	// Custos's labels, but made by a cluster admin, not by Custos for an
	// Agent (no controller reference): not Custos's to reap either.
	squatter := ghost

	before := map[string]float64{}
	for _, kind := range []string{"Secret", "Deployment", "NetworkPolicy", "ServiceAccount"} {
		before[kind] = testutil.ToFloat64(reapedTotal.WithLabelValues(kind))
	}

	var zombies, keep []client.Object
	for name, l := range map[string]map[string]string{"ghost": ghost, "lookalike": lookalike, "squatter": squatter} {
		objs := []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-lease", Namespace: ns, Labels: l}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name + "-sa", Namespace: ns, Labels: l}},
			&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name + "-np", Namespace: ns, Labels: l}},
			deployment(ns, name+"-deploy", l),
		}
		for _, o := range objs {
			if name == "ghost" {
				o.SetOwnerReferences([]metav1.OwnerReference{agentRef("ghost", ghost[custosv1alpha1.AgentUIDLabel])})
			}
			g.Expect(k8sClient.Create(ctx, o)).To(Succeed())
		}
		if name == "ghost" {
			zombies = append(zombies, objs...)
		} else {
			keep = append(keep, objs...)
		}
	}
	stale := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "phoenix-old-lease", Namespace: ns, Labels: earlierPhoenix,
		OwnerReferences: []metav1.OwnerReference{agentRef("phoenix", earlierPhoenix[custosv1alpha1.AgentUIDLabel])}}}
	g.Expect(k8sClient.Create(ctx, stale)).To(Succeed())
	zombies = append(zombies, stale)

	g.Eventually(func(g Gomega) {
		for _, z := range zombies {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(z), z)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s was not reaped", z, z.GetName())
		}
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	for _, k := range keep {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed(), "%T %s is not Custos's and must stay", k, k.GetName())
	}
	// The living agent's own children are not zombies.
	g.Expect(k8sClient.Get(ctx, phoenixSA, &corev1.ServiceAccount{})).To(Succeed())

	g.Expect(testutil.ToFloat64(reapedTotal.WithLabelValues("Secret")) - before["Secret"]).To(BeNumerically(">=", 2))
	for _, kind := range []string{"Deployment", "NetworkPolicy", "ServiceAccount"} {
		g.Expect(testutil.ToFloat64(reapedTotal.WithLabelValues(kind))-before[kind]).To(BeNumerically(">=", 1), kind)
	}
	g.Eventually(func(g Gomega) {
		for _, z := range zombies {
			g.Expect(eventReasons(g, z)).To(ContainElement("Reaped"), "%T %s", z, z.GetName())
		}
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		reaped := map[string]audit.Record{}
		for _, r := range auditRecords.Events() {
			if r.Action == audit.ActionSweeperReaped {
				reaped[r.Subject.Namespace+"/"+r.Details["name"]] = r
			}
		}
		for _, z := range zombies {
			r, ok := reaped[z.GetNamespace()+"/"+z.GetName()]
			g.Expect(ok).To(BeTrue(), "no sweeper.reaped record for %T %s", z, z.GetName())
			g.Expect(r.Actor).To(HaveValue(Equal(ControllerActor)))
			g.Expect(r.Reason).To(HavePrefix("Reaped "))
		}
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// agentRef is the controller reference Custos puts on what it makes for
// the Agent name with uid.
func agentRef(name, uid string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent", Name: name,
		UID: types.UID(uid), Controller: ptr.To(true)}
}

func deployment(ns, name string, l map[string]string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.acme.example/x:1"}}},
			},
		},
	}
}
