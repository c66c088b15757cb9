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

package cluster

import (
	"context"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestAgentToolsetsBoundaries: custos-gateway reads the DataBoundaries of
// the caller's tenant, with their callChecks as the API server stored
// them, and none of another tenant's; and the called tool's Toolset, if
// it is of the tenant.
func TestAgentToolsetsBoundaries(t *testing.T) {
	ctx := context.Background()
	tenant, other := fixtures.UniqueTenant("gwb"), fixtures.UniqueTenant("gwb")
	callChecks := []custosv1alpha1.PolicyCheck{{Name: "amount-cap", Message: "payments above 1000 need a person",
		Assert: runtime.RawExtension{Raw: []byte("{\"arguments\":{\"((amount || `0`) > `1000`)\":false}}")}}}
	withCallChecks := func(b *custosv1alpha1.DataBoundary) { b.Spec.CallChecks = callChecks }
	fixtures.Create(t, k8sClient, fixtures.DataBoundary(tenant, withCallChecks))
	second := fixtures.Create(t, k8sClient, fixtures.DataBoundary(tenant, fixtures.WithBoundaryName(tenant+"-eu-")))
	fixtures.Create(t, k8sClient, fixtures.DataBoundary(other, withCallChecks))
	src := &AgentToolsets{Reader: k8sClient, TrustDomain: "cluster.local"}

	got, err := src.Boundaries(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range got {
		names = append(names, b.Name)
		if b.Spec.Tenant != tenant {
			t.Errorf("DataBoundary %s of tenant %q", b.Name, b.Spec.Tenant)
		}
		if b.Name == tenant && (len(b.Spec.CallChecks) != 1 || b.Spec.CallChecks[0].Name != "amount-cap" ||
			!strings.Contains(string(b.Spec.CallChecks[0].Assert.Raw), "amount || `0`")) {
			t.Errorf("DataBoundary %s's callChecks: %+v", b.Name, b.Spec.CallChecks)
		}
	}
	slices.Sort(names)
	if want := []string{tenant, second.Name}; !slices.Equal(names, want) {
		t.Errorf("tenant %s's DataBoundaries: %v, want %v", tenant, names, want)
	}
	if got, err := src.Boundaries(ctx, fixtures.UniqueTenant("none")); err != nil || len(got) != 0 {
		t.Errorf("a tenant without a DataBoundary: %v, %v", got, err)
	}

	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant, fixtures.WithToolsetRegion(fixtures.Region),
		func(ts *custosv1alpha1.Toolset) { ts.Spec.DataClassification = custosv1alpha1.ClassificationRestricted }))
	key := types.NamespacedName{Namespace: ns, Name: "ledger"}
	ts, err := src.Toolset(ctx, tenant, key)
	if err != nil || ts.Spec.Region != fixtures.Region || ts.Spec.DataClassification != custosv1alpha1.ClassificationRestricted {
		t.Errorf("the ledger Toolset: %+v, %v", ts, err)
	}
	if _, err := src.Toolset(ctx, other, key); err == nil || !strings.Contains(err.Error(), "is of tenant") {
		t.Errorf("another tenant's Toolset: %v", err)
	}
	if _, err := src.Toolset(ctx, tenant, types.NamespacedName{Namespace: ns, Name: "ghost"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a Toolset that is not there: %v", err)
	}
}
