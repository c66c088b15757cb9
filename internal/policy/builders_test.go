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

package policy

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// The builders start from a request every check in the tests admits: a
// confidential invoice agent of finance-platform, created by a platform
// admin on a Monday morning, so each case changes only what it is about.

// monday10 is Monday 2 March 2026, 10:00 UTC: office hours.
var monday10 = time.Date(2026, time.March, 2, 10, 0, 0, 0, time.UTC)

type agentOption func(*custosv1alpha1.Agent)

func newAgent(opts ...agentOption) *custosv1alpha1.Agent {
	replicas := int32(2)
	a := &custosv1alpha1.Agent{
		TypeMeta: metav1.TypeMeta{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      "invoice-reconciler",
			Namespace: "acme-finance",
			Labels: map[string]string{
				custosv1alpha1.TenantLabel:       "acme",
				"custos.dev/data-classification": "confidential",
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
		},
		Spec: custosv1alpha1.AgentSpec{
			Owner:   custosv1alpha1.AgentOwner{Team: "finance-platform", Contact: "finance-platform@acme.example"},
			Purpose: "Reconciles supplier invoices against the ledger.",
			Image:   "registry.acme.example/agents/invoice-reconciler:1.4.2",
			Runtime: custosv1alpha1.AgentRuntime{Replicas: &replicas},
			ToolsetRefs: []custosv1alpha1.ToolsetReference{
				{Name: "ledger"},
				{Name: "fx-rates", Namespace: "shared-tools"},
			},
		},
		Status: custosv1alpha1.AgentStatus{ObservedGeneration: 3},
	}
	for _, opt := range opts {
		opt(a)
	}
	return a
}

func withOwnerTeam(team string) agentOption {
	return func(a *custosv1alpha1.Agent) { a.Spec.Owner.Team = team }
}

func withLabel(key, value string) agentOption {
	return func(a *custosv1alpha1.Agent) { a.Labels[key] = value }
}

func withoutLabel(key string) agentOption {
	return func(a *custosv1alpha1.Agent) { delete(a.Labels, key) }
}

func withToolsets(refs ...custosv1alpha1.ToolsetReference) agentOption {
	return func(a *custosv1alpha1.Agent) { a.Spec.ToolsetRefs = refs }
}

func newNamespace(tenant string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   "acme-finance",
		Labels: map[string]string{custosv1alpha1.TenantLabel: tenant, "kubernetes.io/metadata.name": "acme-finance"},
	}}
}

func newBoundary(checks ...custosv1alpha1.PolicyCheck) *custosv1alpha1.DataBoundary {
	return &custosv1alpha1.DataBoundary{
		TypeMeta:   metav1.TypeMeta{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "DataBoundary"},
		ObjectMeta: metav1.ObjectMeta{Name: "acme-finance"},
		Spec: custosv1alpha1.DataBoundarySpec{
			Tenant:            "acme",
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.TenantLabel: "acme"}},
			Regions:           []string{"eu-west-1"},
			Checks:            checks,
		},
		Status: custosv1alpha1.DataBoundaryStatus{Agents: 4},
	}
}

func check(name, message, assert string) custosv1alpha1.PolicyCheck {
	return custosv1alpha1.PolicyCheck{Name: name, Message: message, Assert: runtime.RawExtension{Raw: []byte(assert)}}
}

// request is one admission request, as the webhook sees it.
type request struct {
	agent     *custosv1alpha1.Agent
	ns        *corev1.Namespace
	groups    []string
	operation string
	now       time.Time
}

type requestOption func(*request)

func newRequest(opts ...requestOption) request {
	r := request{
		agent:     newAgent(),
		ns:        newNamespace("acme"),
		groups:    []string{"system:authenticated", "platform-admins"},
		operation: "CREATE",
		now:       monday10,
	}
	for _, opt := range opts {
		opt(&r)
	}
	return r
}

func withAgent(opts ...agentOption) requestOption {
	return func(r *request) { r.agent = newAgent(opts...) }
}

func withGroups(groups ...string) requestOption {
	return func(r *request) { r.groups = groups }
}

func withOperation(op string) requestOption {
	return func(r *request) { r.operation = op }
}

func at(now time.Time) requestOption {
	return func(r *request) { r.now = now }
}

func inNamespaceOf(tenant string) requestOption {
	return func(r *request) { r.ns = newNamespace(tenant) }
}

func (r request) payload(b *custosv1alpha1.DataBoundary) (Payload, error) {
	return NewPayload(r.agent, r.ns, b, "alice@acme.example", r.groups, r.operation, r.now)
}
