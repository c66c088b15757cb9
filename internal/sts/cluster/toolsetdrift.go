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
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// ConditionDrifted is the Toolset condition custos-gateway writes: True
// while its server serves a tool otherwise than the Toolset pins it (the
// tool is hidden from agents and refused), False once it serves them all
// as pinned.
const ConditionDrifted = "Drifted"

// DriftFieldOwner is the field manager of the Drifted condition: the
// gateway owns that condition alone, the manager the others.
const DriftFieldOwner = "custos-gateway"

// ToolsetDrift writes a Toolset's Drifted condition (server-side apply of
// that one condition, so the manager's conditions are not touched).
type ToolsetDrift struct {
	Client client.Client
	Log    logr.Logger
}

// Report is gateway.DriftChecks's Report: drifted maps each drifted tool
// to why; empty, none is.
func (d *ToolsetDrift) Report(ctx context.Context, toolset types.NamespacedName, drifted map[string]string) {
	status, reason, message := "False", "AsPinned", "its server serves every tool as the Toolset pins it"
	if len(drifted) > 0 {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(drifted)) {
			parts = append(parts, name+": "+drifted[name])
		}
		status, reason = "True", "DefinitionChanged"
		message = "hidden from agents and refused by custos-gateway: " + strings.Join(parts, "; ")
		if len(message) > 32768 {
			message = message[:32768]
		}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": custosv1alpha1.GroupVersion.String(), "kind": "Toolset",
		"metadata": map[string]any{"name": toolset.Name, "namespace": toolset.Namespace},
		"status": map[string]any{"conditions": []any{map[string]any{
			"type": ConditionDrifted, "status": status, "reason": reason, "message": message,
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		}}},
	}}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(DriftFieldOwner), client.ForceOwnership); err != nil {
		d.Log.Error(fmt.Errorf("writing Toolset %s's %s condition: %w", toolset, ConditionDrifted, err), "The Toolset does not say its tools drifted",
			"toolset", toolset.String(), "drifted", len(drifted))
	}
}
