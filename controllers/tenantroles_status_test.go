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
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/custos-dev/custos/test/fixtures"
)

// TestTenantRolesWriteNoStatus: what Custos and custos-gateway say of an
// Agent, a Toolset or a DataBoundary (Ready, NetworkIsolated, Drifted, the
// RBAC report) is theirs: the chart's agent-owner writes Agents and
// Toolsets but none of their status, and no DataBoundary; asked of the
// API server's own authorizer (SubjectAccessReview).
func TestTenantRolesWriteNoStatus(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("st")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	cr := chartTenantRole(t, "agent-owner", tenant+"-agent-owner")
	g.Expect(k8sClient.Create(ctx, cr)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), cr) })
	owner := "olga@" + tenant + ".example"
	bindInNamespace(t, ns, "olga-owner", cr.Name, owner)

	allowed := func(g Gomega, verb, resource, sub string) bool {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: owner,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: "custos.dev", Resource: resource, Subresource: sub, Name: "x"}}}
		g.Expect(k8sClient.Create(ctx, sar)).To(Succeed())
		return sar.Status.Allowed
	}
	// RoleBindings reach the authorizer's cache a moment after they exist.
	g.Eventually(func(g Gomega) { g.Expect(allowed(g, "patch", "toolsets", "")).To(BeTrue()) }).WithTimeout(statusTimeout).Should(Succeed())
	for _, resource := range []string{"toolsets", "agents", "databoundaries"} {
		for _, verb := range []string{"update", "patch"} {
			g.Expect(allowed(g, verb, resource, "status")).To(BeFalse(), "%s %s/status", verb, resource)
		}
	}
	g.Expect(allowed(g, "create", "databoundaries", "")).To(BeFalse(), "create databoundaries")
}
