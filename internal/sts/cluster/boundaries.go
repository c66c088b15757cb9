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
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Boundaries returns the DataBoundaries of tenant (spec.tenant), whose
// callChecks custos-gateway runs over every call of the tenant's agents
// (its gateway.Boundaries). They are read without a copy: the caller reads
// them and changes nothing.
func (a *AgentToolsets) Boundaries(ctx context.Context, tenant string) ([]custosv1alpha1.DataBoundary, error) {
	var list custosv1alpha1.DataBoundaryList
	if err := a.Reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("reading DataBoundaries: %w", err)
	}
	var out []custosv1alpha1.DataBoundary
	for _, b := range list.Items {
		if b.Spec.Tenant == tenant {
			out = append(out, b)
		}
	}
	return out, nil
}

// Toolset returns the Toolset key if it is of tenant: what the callChecks
// read of a called tool's Toolset (its data classification and region).
// It is read without a copy, as Boundaries.
func (a *AgentToolsets) Toolset(ctx context.Context, tenant string, key types.NamespacedName) (*custosv1alpha1.Toolset, error) {
	ts := &custosv1alpha1.Toolset{}
	if err := a.Reader.Get(ctx, key, ts, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("reading Toolset %s: %w", key, err)
	}
	if got := ts.Labels[custosv1alpha1.TenantLabel]; got != tenant {
		return nil, fmt.Errorf("Toolset %s is of tenant %q, not %q", key, got, tenant)
	}
	return ts, nil
}
