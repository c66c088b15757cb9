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

package boundary

import (
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// The builders start from objects that satisfy every rule of the default
// boundary, so each test case changes only what it is about.

type boundaryOption func(*custosv1alpha1.DataBoundary)

func newBoundary(opts ...boundaryOption) *custosv1alpha1.DataBoundary {
	b := &custosv1alpha1.DataBoundary{
		ObjectMeta: metav1.ObjectMeta{Name: "acme-finance"},
		Spec: custosv1alpha1.DataBoundarySpec{
			Tenant: "acme",
			NamespaceSelector: metav1.LabelSelector{
				MatchLabels: map[string]string{custosv1alpha1.TenantLabel: "acme"},
			},
			Regions: []string{"eu-west-1", "eu-central-1"},
		},
	}
	for _, opt := range opts {
		opt(b)
	}
	return b
}

func withBoundaryName(name string) boundaryOption {
	return func(b *custosv1alpha1.DataBoundary) { b.Name = name }
}

func withSelector(sel metav1.LabelSelector) boundaryOption {
	return func(b *custosv1alpha1.DataBoundary) { b.Spec.NamespaceSelector = sel }
}

func withDeletion() boundaryOption {
	return func(b *custosv1alpha1.DataBoundary) {
		now := metav1.Now()
		b.DeletionTimestamp = &now
		b.Finalizers = []string{"custos.dev/test"}
	}
}

func withCloudRoles(p custosv1alpha1.CloudRolePolicy) boundaryOption {
	return func(b *custosv1alpha1.DataBoundary) { b.Spec.CloudRoles = &p }
}

func withRegistries(registries ...string) boundaryOption {
	return func(b *custosv1alpha1.DataBoundary) {
		b.Spec.Images = &custosv1alpha1.ImagePolicy{Registries: registries}
	}
}

func withEgress(p custosv1alpha1.EgressPolicy) boundaryOption {
	return func(b *custosv1alpha1.DataBoundary) { b.Spec.Egress = &p }
}

func newNamespace(name string, nsLabels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: nsLabels}}
}

// tenantNamespace is a namespace of tenant acme, covered by the default
// boundary.
func tenantNamespace() *corev1.Namespace {
	return newNamespace("acme-payments", map[string]string{custosv1alpha1.TenantLabel: "acme"})
}

type agentOption func(*custosv1alpha1.Agent)

func newAgent(opts ...agentOption) *custosv1alpha1.Agent {
	a := &custosv1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "invoice-bot",
			Namespace: "acme-payments",
			Labels:    map[string]string{custosv1alpha1.TenantLabel: "acme"},
		},
		Spec: custosv1alpha1.AgentSpec{
			Purpose: "Reconciles invoices.",
			Image:   "registry.acme.example/agents/invoice-bot:1.0",
		},
	}
	for _, opt := range opts {
		opt(a)
	}
	return a
}

func withAgentLabels(l map[string]string) agentOption {
	return func(a *custosv1alpha1.Agent) { a.Labels = l }
}

func withImage(image string) agentOption {
	return func(a *custosv1alpha1.Agent) { a.Spec.Image = image }
}

func withAWSRole(arn string) agentOption {
	return func(a *custosv1alpha1.Agent) {
		identity(a).AWS = &custosv1alpha1.AWSIdentity{RoleARN: arn}
	}
}

func withAzureClient(clientID string) agentOption {
	return func(a *custosv1alpha1.Agent) {
		identity(a).Azure = &custosv1alpha1.AzureIdentity{ClientID: clientID, TenantID: "11111111-2222-3333-4444-555555555555"}
	}
}

func withGCPServiceAccount(email string) agentOption {
	return func(a *custosv1alpha1.Agent) {
		identity(a).GCP = &custosv1alpha1.GCPIdentity{ServiceAccount: email}
	}
}

func withIdentityMode(mode custosv1alpha1.IdentityMode) agentOption {
	return func(a *custosv1alpha1.Agent) { identity(a).Mode = mode }
}

func withAmbientIdentity(p custosv1alpha1.AmbientIdentityPolicy) boundaryOption {
	return func(b *custosv1alpha1.DataBoundary) {
		if b.Spec.CloudRoles == nil {
			b.Spec.CloudRoles = &custosv1alpha1.CloudRolePolicy{}
		}
		b.Spec.CloudRoles.AmbientIdentity = p
	}
}

func identity(a *custosv1alpha1.Agent) *custosv1alpha1.IdentityBindings {
	if a.Spec.Identity == nil {
		a.Spec.Identity = &custosv1alpha1.IdentityBindings{}
	}
	return a.Spec.Identity
}

type toolsetOption func(*custosv1alpha1.Toolset)

func newToolset(opts ...toolsetOption) *custosv1alpha1.Toolset {
	t := &custosv1alpha1.Toolset{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "ledger",
			Namespace: "acme-payments",
			Labels:    map[string]string{custosv1alpha1.TenantLabel: "acme"},
		},
		Spec: custosv1alpha1.ToolsetSpec{
			Endpoint: custosv1alpha1.ToolEndpoint{
				InCluster: &custosv1alpha1.InClusterEndpoint{
					Namespace:   "acme-payments",
					PodSelector: map[string]string{"app": "ledger"},
					Port:        8080,
				},
			},
			Tools: []custosv1alpha1.Tool{{Name: "read-ledger", Access: custosv1alpha1.ToolAccessRead}},
		},
	}
	for _, opt := range opts {
		opt(t)
	}
	return t
}

func withToolsetLabels(l map[string]string) toolsetOption {
	return func(t *custosv1alpha1.Toolset) { t.Labels = l }
}

func withRegion(region string) toolsetOption {
	return func(t *custosv1alpha1.Toolset) { t.Spec.Region = region }
}

func withInClusterNamespace(ns string) toolsetOption {
	return func(t *custosv1alpha1.Toolset) { t.Spec.Endpoint.InCluster.Namespace = ns }
}

func withExternal(cidrs ...string) toolsetOption {
	return func(t *custosv1alpha1.Toolset) {
		t.Spec.Endpoint.InCluster = nil
		t.Spec.Endpoint.External = &custosv1alpha1.ExternalEndpoint{Host: "api.example.com", CIDRs: cidrs, Port: 443}
	}
}

// wantError is one expected field error: its exact path and substrings its
// detail must contain.
type wantError struct {
	field  string
	detail []string
}

// expectErrors asserts that errs are exactly want, in order, and all
// Forbidden: the callers turn them into admission denials and conditions, so
// the path and the wording are what a user sees.
func expectErrors(g Gomega, errs field.ErrorList, want []wantError) {
	g.ExpectWithOffset(1, errs).To(HaveLen(len(want)), "errors: %v", errs)
	for i, w := range want {
		g.ExpectWithOffset(1, errs[i].Type).To(Equal(field.ErrorTypeForbidden), "error %d: %v", i, errs[i])
		g.ExpectWithOffset(1, errs[i].Field).To(Equal(w.field), "error %d: %v", i, errs[i])
		for _, s := range w.detail {
			g.ExpectWithOffset(1, errs[i].Detail).To(ContainSubstring(s), "error %d: %v", i, errs[i])
		}
	}
}
