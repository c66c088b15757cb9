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

package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/policy"
)

// ReasonPolicyDenied: a check of the tenant's DataBoundary
// (spec.callChecks) failed, or could not be evaluated.
const ReasonPolicyDenied = "PolicyDenied"

// callChecksPath is where a DataBoundary's call checks are.
var callChecksPath = field.NewPath("spec", "callChecks")

// Boundaries is what the policy over a call reads of the cluster besides
// the caller's Agent and Toolsets (sts/cluster.AgentToolsets). What it
// returns is shared with the cache it reads: read, never changed.
type Boundaries interface {
	// Boundaries returns the DataBoundaries of tenant (spec.tenant).
	Boundaries(ctx context.Context, tenant string) ([]custosv1alpha1.DataBoundary, error)
	// Toolset returns the Toolset key, if it is of tenant.
	Toolset(ctx context.Context, tenant string, key types.NamespacedName) (*custosv1alpha1.Toolset, error)
}

// CallPolicy runs the callChecks of the tenant's DataBoundaries over every
// tools/call, after the call's input passed and before its server is
// called: the same kyverno-json engine as admission (internal/policy),
// over the payload {agent, person, chain, tool, arguments, recent, time}.
// A tenant with several DataBoundaries has the callChecks of each run.
// Each boundary's checks are compiled once per generation.
type CallPolicy struct {
	Boundaries Boundaries
	// Recent is what each agent did lately, the payload's recent; zero
	// counts when nil.
	Recent *Recent

	mu   sync.Mutex
	sets map[types.UID]compiledCallChecks
}

type compiledCallChecks struct {
	generation int64
	set        *policy.Set
	errs       field.ErrorList
}

// compiled is b's callChecks, compiled, or why they do not compile (a
// boundary stored before they were validated).
func (p *CallPolicy) compiled(b *custosv1alpha1.DataBoundary) (*policy.Set, field.ErrorList) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.sets[b.UID]; ok && c.generation == b.Generation {
		return c.set, c.errs
	}
	set, errs := policy.CompileAt(callChecksPath, b.Spec.CallChecks)
	if p.sets == nil {
		p.sets = map[types.UID]compiledCallChecks{}
	}
	p.sets[b.UID] = compiledCallChecks{generation: b.Generation, set: set, errs: errs}
	return set, errs
}

// checkPolicy runs the tenant's callChecks over a call of tool with args
// (decoded, bound ones filled). applies is false when there are none to
// run: the call's record then names no policy check. Whatever keeps the
// checks from running (a read that fails, checks that do not compile)
// refuses the call: the policy fails closed.
func (s *Server) checkPolicy(ctx context.Context, sess *session, tool *Tool, args map[string]any) (refused *Refusal, applies bool) {
	p := s.Policy
	if p == nil || p.Boundaries == nil {
		return nil, false
	}
	deny := func(format string, a ...any) (*Refusal, bool) {
		return &Refusal{Reason: ReasonPolicyDenied, Message: fmt.Sprintf("tool %s: ", tool.Name) + fmt.Sprintf(format, a...)}, true
	}
	boundaries, err := p.Boundaries.Boundaries(ctx, sess.tenant)
	if err != nil {
		return deny("the call cannot be checked against the tenant's DataBoundaries: %v", err)
	}
	type run struct {
		name string
		set  *policy.Set
	}
	var runs []run
	for i := range boundaries {
		b := &boundaries[i]
		// A boundary on its way out holds nothing, as at admission.
		if len(b.Spec.CallChecks) == 0 || !b.DeletionTimestamp.IsZero() {
			continue
		}
		set, errs := p.compiled(b)
		if len(errs) > 0 {
			return deny("DataBoundary %q has callChecks that do not compile, so no call of its tenant passes: %s", b.Name, errs.ToAggregate())
		}
		runs = append(runs, run{name: b.Name, set: set})
	}
	if len(runs) == 0 {
		return nil, false
	}
	slices.SortFunc(runs, func(a, b run) int { return strings.Compare(a.name, b.name) })

	ts, err := p.Boundaries.Toolset(ctx, sess.tenant, tool.Toolset)
	if err != nil {
		return deny("the call cannot be checked: its Toolset %s: %v", tool.Toolset, err)
	}
	payload, err := policy.NewCallPayload(sess.agent, personOf(sess), chainOf(sess), policy.ToolInfo{
		Name: tool.Name, Toolset: tool.Toolset.Name, Namespace: tool.Toolset.Namespace,
		Access: string(tool.Spec.Access), Irreversible: tool.Spec.Irreversible,
		Classification: string(ts.Spec.DataClassification), Region: ts.Spec.Region,
	}, args, p.Recent.Counts(sess.tenant, sess.caller.ClientID), s.now())
	if err != nil {
		return deny("the call cannot be checked: %v", err)
	}
	var denials, failed []string
	for _, r := range runs {
		for _, f := range r.set.Check(ctx, payload, r.name) {
			denials = append(denials, f.Message)
			failed = append(failed, r.name+"/"+f.Check)
		}
	}
	if len(denials) == 0 {
		return nil, true
	}
	return &Refusal{Reason: ReasonPolicyDenied, Message: strings.Join(denials, "; "),
		Detail: "failed callChecks: " + strings.Join(failed, ", ")}, true
}

// personOf is the person the session's token is for.
func personOf(sess *session) policy.PersonInfo {
	return policy.PersonInfo{Sub: sess.caller.Subject, Issuer: sess.caller.OriginalIssuer, Groups: sess.caller.Groups}
}

// chainOf is the token's actor chain, the acting agent first.
func chainOf(sess *session) []policy.ActorInfo {
	chain := sess.caller.Chain()
	out := make([]policy.ActorInfo, len(chain))
	for i, a := range chain {
		out[i] = policy.ActorInfo{Sub: a.Subject}
	}
	return out
}
