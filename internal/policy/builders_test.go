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
	"github.com/custos-dev/custos/test/fixtures"
)

// The builders start from a request every check in the tests admits: a
// confidential invoice agent of finance-platform, created by a platform
// admin on a Monday morning, so each case changes only what it is about.

// monday10 is Monday 2 March 2026, 10:00 UTC: office hours.
var monday10 = time.Date(2026, time.March, 2, 10, 0, 0, 0, time.UTC)

// newAgent is the agent as the webhook receives it: applied by kubectl,
// with its kind, at its third generation.
func newAgent(opts ...fixtures.AgentOption) *custosv1alpha1.Agent {
	return fixtures.Agent("acme-finance", "invoice-reconciler", "acme", append([]fixtures.AgentOption{
		fixtures.WithReplicas(2),
		fixtures.WithToolsetRefs(
			custosv1alpha1.ToolsetReference{Name: "ledger"},
			custosv1alpha1.ToolsetReference{Name: "fx-rates", Namespace: "shared-tools"}),
		func(a *custosv1alpha1.Agent) {
			a.TypeMeta = metav1.TypeMeta{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent"}
			a.Labels["custos.dev/data-classification"] = "confidential"
			a.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
			a.Status.ObservedGeneration = 3
		},
	}, opts...)...)
}

func withOwnerTeam(team string) fixtures.AgentOption {
	return func(a *custosv1alpha1.Agent) { a.Spec.Owner.Team = team }
}

func withLabel(key, value string) fixtures.AgentOption {
	return func(a *custosv1alpha1.Agent) { a.Labels[key] = value }
}

func withoutLabel(key string) fixtures.AgentOption {
	return func(a *custosv1alpha1.Agent) { delete(a.Labels, key) }
}

// newNamespace is the agent's namespace, labelled for tenant, and with its
// name as the API server labels every namespace.
func newNamespace(tenant string) *corev1.Namespace {
	ns := fixtures.TenantNamespace("acme-finance", tenant)
	ns.Labels[corev1.LabelMetadataName] = ns.Name
	return ns
}

// newBoundary is acme's boundary with checks, covering four agents.
func newBoundary(checks ...custosv1alpha1.PolicyCheck) *custosv1alpha1.DataBoundary {
	return fixtures.DataBoundary("acme",
		fixtures.WithBoundaryName("acme-finance"),
		fixtures.WithChecks(checks...),
		func(b *custosv1alpha1.DataBoundary) {
			b.TypeMeta = metav1.TypeMeta{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "DataBoundary"}
			b.Status.Agents = 4
		})
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

func withAgent(opts ...fixtures.AgentOption) requestOption {
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
