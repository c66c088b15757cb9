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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// A new object must come back from the API server as kstatus "in progress"
// (observedGeneration -1) with the documented defaults, so that a user's
// minimal manifest means what the API reference says. Dry-run creates show
// what is stored before any reconciler writes a status or the metadata.
func TestAPIDefaults(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := fixtures.CreateTenantNamespace(t, k8sClient, "acme-finance")

	agent := &custosv1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{
			Name: "minimal", Namespace: ns,
			Labels: map[string]string{custosv1alpha1.TenantLabel: "acme-finance"},
		},
		Spec: custosv1alpha1.AgentSpec{
			Owner:   custosv1alpha1.AgentOwner{Team: "finance-platform", Contact: "fp@acme.example"},
			Purpose: "Answer questions about invoices.",
			Image:   "registry.acme.example/agents/qa:1.0.0",
			Credentials: []custosv1alpha1.CredentialSpec{{
				Name:            "ledger-api",
				KubernetesToken: &custosv1alpha1.KubernetesTokenCredential{Audience: "ledger-api"},
			}},
		},
	}
	got := agent.DeepCopy()
	g.Expect(k8sClient.Create(ctx, got, client.DryRunAll)).To(Succeed())
	g.Expect(got.Status.ObservedGeneration).To(Equal(int64(-1)))
	g.Expect(got.Spec.Lifecycle.State).To(Equal(custosv1alpha1.LifecycleActive))
	g.Expect(got.Spec.Runtime.Replicas).To(HaveValue(Equal(int32(1))))
	g.Expect(got.Spec.Credentials[0].TTL.Duration).To(Equal(15 * time.Minute))
	g.Expect(got.Spec.Delegation).To(BeNil(), "without delegation, nobody may have the agent act for them")
	delegating := agent.DeepCopy()
	delegating.Spec.Delegation = &custosv1alpha1.AgentDelegation{Groups: []string{"finance-clerks"}}
	g.Expect(k8sClient.Create(ctx, delegating, client.DryRunAll)).To(Succeed())
	g.Expect(delegating.Spec.Delegation.MaxDepth).To(Equal(int32(2)), "two agent hops by default")
	// The API server itself adds the decommission finalizer
	// (config/crd/policies), next to any the user set, and only once.
	g.Expect(got.Finalizers).To(Equal([]string{custosv1alpha1.DecommissionFinalizer}))
	withOwn := agent.DeepCopy()
	withOwn.Finalizers = []string{"example.com/backup"}
	g.Expect(k8sClient.Create(ctx, withOwn, client.DryRunAll)).To(Succeed())
	g.Expect(withOwn.Finalizers).To(Equal([]string{"example.com/backup", custosv1alpha1.DecommissionFinalizer}))
	already := agent.DeepCopy()
	already.Finalizers = []string{custosv1alpha1.DecommissionFinalizer}
	g.Expect(k8sClient.Create(ctx, already, client.DryRunAll)).To(Succeed())
	g.Expect(already.Finalizers).To(Equal([]string{custosv1alpha1.DecommissionFinalizer}))

	toolset := &custosv1alpha1.Toolset{
		ObjectMeta: metav1.ObjectMeta{
			Name: "minimal", Namespace: ns,
			Labels: map[string]string{custosv1alpha1.TenantLabel: "acme-finance"},
		},
		Spec: custosv1alpha1.ToolsetSpec{
			Endpoint: custosv1alpha1.ToolEndpoint{External: &custosv1alpha1.ExternalEndpoint{
				Host: "ledger.acme.example", CIDRs: []string{"203.0.113.0/24"},
			}},
			Tools: []custosv1alpha1.Tool{{Name: "get_invoice", Access: custosv1alpha1.ToolAccessRead}},
		},
	}
	gotToolset := toolset.DeepCopy()
	g.Expect(k8sClient.Create(ctx, gotToolset, client.DryRunAll)).To(Succeed())
	g.Expect(gotToolset.Status.ObservedGeneration).To(Equal(int64(-1)))
	g.Expect(gotToolset.Spec.DataClassification).To(Equal(custosv1alpha1.ClassificationInternal))
	g.Expect(gotToolset.Spec.Endpoint.External.Port).To(Equal(int32(443)))

	boundary := &custosv1alpha1.DataBoundary{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "minimal-"},
		Spec: custosv1alpha1.DataBoundarySpec{
			Tenant:            "acme-finance",
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.TenantLabel: "acme-finance"}},
			Regions:           []string{"eu-west-1"},
		},
	}
	gotBoundary := boundary.DeepCopy()
	g.Expect(k8sClient.Create(ctx, gotBoundary, client.DryRunAll)).To(Succeed())
	g.Expect(gotBoundary.Status.ObservedGeneration).To(Equal(int64(-1)))
	g.Expect(gotBoundary.Spec.TrustedIssuers).To(BeEmpty(), "without trusted issuers, custos-sts exchanges no token of the tenant's")
	trusting := boundary.DeepCopy()
	trusting.Spec.TrustedIssuers = []custosv1alpha1.TrustedIssuer{{Issuer: "https://idp.acme.example", Audiences: []string{"custos-sts"}}}
	g.Expect(k8sClient.Create(ctx, trusting, client.DryRunAll)).To(Succeed())
	g.Expect(trusting.Spec.TrustedIssuers[0].Claims.Groups).To(Equal("groups"), "people's groups are read from the groups claim by default")
}
