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
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// The package's tests build their objects with test/fixtures, from
// objects that satisfy every rule of the default boundary, so each test
// case changes only what it is about. The defaults here are the package's
// world: tenant acme, its boundary acme-finance over two EU regions, its
// namespace acme-payments.

// newBoundary is acme's DataBoundary, acme-finance, in eu-west-1 and
// eu-central-1.
func newBoundary(opts ...fixtures.BoundaryOption) *custosv1alpha1.DataBoundary {
	return fixtures.DataBoundary("acme", append([]fixtures.BoundaryOption{
		fixtures.WithBoundaryName("acme-finance"),
		fixtures.WithRegions("eu-west-1", "eu-central-1"),
	}, opts...)...)
}

// tenantNamespace is a namespace of tenant acme, covered by the default
// boundary.
func tenantNamespace() *corev1.Namespace {
	return fixtures.TenantNamespace("acme-payments", "acme")
}

// newAgent is an Agent of acme in its namespace.
func newAgent(opts ...fixtures.AgentOption) *custosv1alpha1.Agent {
	return fixtures.Agent("acme-payments", "invoice-bot", "acme", opts...)
}

// newToolset is a Toolset of acme in its namespace, served there.
func newToolset(opts ...fixtures.ToolsetOption) *custosv1alpha1.Toolset {
	return fixtures.Toolset("acme-payments", "ledger", "acme", opts...)
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
