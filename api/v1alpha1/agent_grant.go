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

package v1alpha1

import (
	"fmt"
	"slices"
	"strings"
)

// RolesOf are the cloud roles of bindings; nil when it binds none.
func RolesOf(bindings *IdentityBindings) *CloudRoles {
	if bindings == nil || (bindings.AWS == nil && bindings.Azure == nil && bindings.GCP == nil) {
		return nil
	}
	return &CloudRoles{AWS: bindings.AWS.DeepCopy(), Azure: bindings.Azure.DeepCopy(), GCP: bindings.GCP.DeepCopy()}
}

// Empty says whether r holds no role.
func (r *CloudRoles) Empty() bool {
	return r == nil || (r.AWS == nil && r.Azure == nil && r.GCP == nil)
}

// GrantedToolsetRefs are the agent's Toolsets in force (status.granted):
// none until Custos has granted them, whatever the spec asks for.
func (a *Agent) GrantedToolsetRefs() []ToolsetReference {
	if a.Status.Granted == nil {
		return nil
	}
	return a.Status.Granted.ToolsetRefs
}

// GrantedWriteTools are the Write tools in force (status.granted) of the
// Toolset namespace/name: none until Custos has granted them, whatever
// the Toolset offers.
func (a *Agent) GrantedWriteTools(namespace, name string) []string {
	if a.Status.Granted == nil {
		return nil
	}
	for _, w := range a.Status.Granted.WriteTools {
		if w.Namespace == namespace && w.Name == name {
			return w.WriteTools
		}
	}
	return nil
}

// ToolsInForce are the tools of ts the agent may call through ref, its
// reference to ts in force (status.granted.toolsetRefs): those ref allows
// (ref.tools, all when it names none), of them the Read tools and the
// Write tools in force (status.granted.writeTools). A Write tool added
// since waits for approval and is not among them.
func (a *Agent) ToolsInForce(ref ToolsetReference, ts *Toolset) []Tool {
	granted := a.GrantedWriteTools(ts.Namespace, ts.Name)
	tools := make([]Tool, 0, len(ts.Spec.Tools))
	for _, t := range ts.Spec.Tools {
		if ref.Allows(t.Name) && (t.Access != ToolAccessWrite || slices.Contains(granted, t.Name)) {
			tools = append(tools, t)
		}
	}
	return tools
}

// GrantedIdentity is spec.identity with the cloud roles in force
// (status.granted) in place of those asked for: nil when none is in
// force. The mode is the spec's.
func (a *Agent) GrantedIdentity() *IdentityBindings {
	if a.Spec.Identity == nil || a.Status.Granted == nil || a.Status.Granted.Identity.Empty() {
		return nil
	}
	g := a.Status.Granted.Identity
	return &IdentityBindings{Mode: a.Spec.Identity.Mode, AWS: g.AWS.DeepCopy(), Azure: g.Azure.DeepCopy(), GCP: g.GCP.DeepCopy()}
}

// Describe says what the change adds, for people: each Toolset with its
// Write tools (irreversible ones marked) and each cloud role.
func (c *AgentChange) Describe() string {
	var parts []string
	for _, t := range c.Toolsets {
		tools := make([]string, 0, len(t.WriteTools))
		for _, w := range t.WriteTools {
			if slices.Contains(t.IrreversibleTools, w) {
				w += " (irreversible)"
			}
			tools = append(tools, w)
		}
		parts = append(parts, fmt.Sprintf("Toolset %s/%s with Write tools %s", t.Namespace, t.Name, strings.Join(tools, ", ")))
	}
	if r := c.Identity; r != nil {
		if r.AWS != nil {
			parts = append(parts, "AWS role "+r.AWS.RoleARN)
		}
		if r.Azure != nil {
			parts = append(parts, fmt.Sprintf("Azure application %s (tenant %s)", r.Azure.ClientID, r.Azure.TenantID))
		}
		if r.GCP != nil {
			parts = append(parts, "Google service account "+r.GCP.ServiceAccount)
		}
	}
	return strings.Join(parts, "; ")
}
