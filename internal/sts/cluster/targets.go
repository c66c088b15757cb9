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
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/sts"
)

// ToolsetResource is a Toolset's resource identifier (RFC 8707): what the
// gateway asks a token for when it calls the Toolset's server.
func ToolsetResource(namespace, name string) string {
	return "urn:custos:toolset:" + namespace + ":" + name
}

// externalResource is an external Toolset's other name: its https URL.
func externalResource(e *custosv1alpha1.ExternalEndpoint) []string {
	out := []string{"https://" + e.Host + ":" + strconv.Itoa(int(e.Port))}
	if e.Port == 443 || e.Port == 0 {
		out = append(out, "https://"+e.Host)
	}
	return out
}

// ToolsetScopes are the scopes a Toolset offers: <name>.read when it has a
// Read tool, <name>.write when it has a Write tool.
func ToolsetScopes(ts *custosv1alpha1.Toolset) []string {
	var out []string
	for _, t := range ts.Spec.Tools {
		s := sts.ToolScope(ts.Name, t.Access == custosv1alpha1.ToolAccessWrite)
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// toolsets reads the agent's Toolsets in force (status.granted, which
// lags spec.toolsetRefs while a change waits for approval); one that
// cannot be found is left out (the Agent is then not Ready anyway).
func toolsets(ctx context.Context, r client.Reader, agent *custosv1alpha1.Agent) ([]custosv1alpha1.Toolset, error) {
	var out []custosv1alpha1.Toolset
	for _, ref := range agent.GrantedToolsetRefs() {
		ts := custosv1alpha1.Toolset{}
		err := r.Get(ctx, ref.Key(agent.Namespace), &ts, client.UnsafeDisableDeepCopy)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("reading Toolset %s: %w", ref.Key(agent.Namespace), err)
		}
		if err == nil && ts.Labels[custosv1alpha1.TenantLabel] == agent.Labels[custosv1alpha1.TenantLabel] {
			out = append(out, inForce(agent, ref, ts))
		}
	}
	return out, nil
}

// inForce is ts as agent may use it through ref (Agent.ToolsInForce): a
// Write tool its owner added since waits for approval (ChangesApproved)
// and is not served meanwhile, nor is its Toolset's write scope when none
// of its Write tools is in force. ts is not modified (it may be the
// cache's).
func inForce(agent *custosv1alpha1.Agent, ref custosv1alpha1.ToolsetReference, ts custosv1alpha1.Toolset) custosv1alpha1.Toolset {
	tools := agent.ToolsInForce(ref, &ts)
	if len(tools) == len(ts.Spec.Tools) {
		return ts
	}
	ts.Spec.Tools = tools
	// Not the Toolset of this generation any more: custos-gateway keys
	// its facade by the tools served instead (facadeKey).
	ts.Generation = 0
	return ts
}

// scopesOf is the union of the scopes of an agent's Toolsets.
func scopesOf(sets []custosv1alpha1.Toolset) []string {
	var out []string
	for i := range sets {
		for _, s := range ToolsetScopes(&sets[i]) {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// Targets resolves where an actor asks a token for: one of its Toolsets
// (by ToolsetResource, or an external one's https URL), or an agent of its
// tenant that takes calls from it (by SPIFFE ID).
type Targets struct {
	Reader      client.Reader
	TrustDomain string
}

var _ sts.TargetResolver = (*Targets)(nil)

// ResolveTarget finds target among what actor may call: its tenant's
// gateway, one of its Toolsets, or an agent that takes its calls.
func (t *Targets) ResolveTarget(ctx context.Context, actor *sts.Agent, target string) (*sts.Target, error) {
	agent, err := getAgent(ctx, t.Reader, types.NamespacedName{Namespace: actor.Namespace, Name: actor.Name})
	if err != nil {
		return nil, fmt.Errorf("reading Agent %s/%s: %w", actor.Namespace, actor.Name, err)
	}
	sets, err := toolsets(ctx, t.Reader, agent)
	if err != nil {
		return nil, err
	}
	if target == sts.GatewayAudience(actor.Tenant) {
		// The gateway calls the agent's Toolsets for it, each with a token
		// of its own: the agent's Toolsets' scopes, no more.
		return &sts.Target{Audience: target, Scopes: scopesOf(sets), Kind: sts.TargetGateway}, nil
	}
	for i := range sets {
		ts := &sets[i]
		names := []string{ToolsetResource(ts.Namespace, ts.Name)}
		if e := ts.Spec.Endpoint.External; e != nil {
			names = append(names, externalResource(e)...)
		}
		if slices.Contains(names, target) {
			return &sts.Target{Audience: target, Scopes: ToolsetScopes(ts), Kind: sts.TargetToolset}, nil
		}
	}
	if callee, ok := t.agentOf(target); ok {
		return t.resolveAgent(ctx, actor, callee, target)
	}
	return nil, fmt.Errorf("%s is none of agent %s/%s's Toolsets in force (status.granted) nor an agent", target, actor.Namespace, actor.Name)
}

// agentOf reads an agent's SPIFFE ID of this trust domain.
func (t *Targets) agentOf(id string) (types.NamespacedName, bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://"+t.TrustDomain+"/ns/")
	if !ok {
		return types.NamespacedName{}, false
	}
	ns, sa, ok := strings.Cut(rest, "/sa/")
	name, isAgent := strings.CutPrefix(sa, identity.ChildPrefix)
	return types.NamespacedName{Namespace: ns, Name: name}, ok && isAgent && ns != "" && name != ""
}

// resolveAgent: another agent of the tenant, whose delegation takes calls
// from actor; the token is for it, and within its Toolsets' scopes.
func (t *Targets) resolveAgent(ctx context.Context, actor *sts.Agent, key types.NamespacedName, target string) (*sts.Target, error) {
	callee, err := getAgent(ctx, t.Reader, key)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("no agent %s", key)
	} else if err != nil {
		return nil, fmt.Errorf("reading agent %s: %w", key, err)
	}
	if callee.Labels[custosv1alpha1.TenantLabel] != actor.Tenant {
		return nil, fmt.Errorf("agent %s is not of tenant %q", key, actor.Tenant)
	}
	takes := false
	if d := callee.Spec.Delegation; d != nil {
		for _, ref := range d.Agents {
			takes = takes || ref.Key(callee.Namespace) == types.NamespacedName{Namespace: actor.Namespace, Name: actor.Name}
		}
	}
	if !takes {
		return nil, fmt.Errorf("agent %s takes no calls from %s/%s (its spec.delegation.agents)", key, actor.Namespace, actor.Name)
	}
	sets, err := toolsets(ctx, t.Reader, callee)
	if err != nil {
		return nil, err
	}
	return &sts.Target{Audience: target, Scopes: scopesOf(sets), Kind: sts.TargetAgent}, nil
}

// AgentToolsets is what custos-gateway reads of the cluster for a caller
// (its gateway.Source): the Toolsets of the agent acting, while it may act,
// by the same reads and rules as custos-sts's exchange.
type AgentToolsets struct {
	Reader      client.Reader
	TrustDomain string
}

// Caller returns the Agent with SPIFFE ID agentID in tenant and its
// Toolsets of the tenant, or why it may not call any now.
func (a *AgentToolsets) Caller(ctx context.Context, tenant, agentID string) (*custosv1alpha1.Agent, []custosv1alpha1.Toolset, error) {
	key, ok := (&Targets{TrustDomain: a.TrustDomain}).agentOf(agentID)
	if !ok {
		return nil, nil, fmt.Errorf("%s is no agent of trust domain %s", agentID, a.TrustDomain)
	}
	agent, err := getAgent(ctx, a.Reader, key)
	if err != nil {
		return nil, nil, fmt.Errorf("its Agent %s: %w", key, err)
	}
	if got := agent.Labels[custosv1alpha1.TenantLabel]; got != tenant {
		return nil, nil, fmt.Errorf("agent %s is of tenant %q, not %q", key, got, tenant)
	}
	if ok, why := runnable(ctx, a.Reader, agent); !ok {
		return nil, nil, fmt.Errorf("agent %s may not act: %s", key, why)
	}
	sets, err := toolsets(ctx, a.Reader, agent)
	if err != nil {
		return nil, nil, err
	}
	return agent, sets, nil
}
