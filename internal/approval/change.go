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

package approval

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// A Change is what one generation of an Agent adds to the Toolsets and
// cloud roles in force that needs approval: Toolsets with Write tools and
// cloud roles, added or replaced.
type Change struct {
	Agent *custosv1alpha1.Agent
	custosv1alpha1.AgentChange
	// all are the held Toolsets' Write tools, those in force before
	// included: what is in force once approved.
	all map[types.NamespacedName]custosv1alpha1.WriteToolset
}

// Grant says, for agent's generation, what is in force without approval:
// the Toolsets and roles in force (status.granted) that the spec still
// asks for (removals take effect at once), and what the spec adds that
// needs none (a Toolset without Write tools); and what it adds that needs
// approval, nil when nothing does (the grant is then the whole
// generation). A Toolset in force that has gained Write tools since its
// were approved (its owner edited it) stays in force with those it had
// (status.granted.writeTools: custos-gateway and custos-sts serve no
// other), and its new ones are held. toolsets are the agent's Toolsets
// that exist and are placed, by key: one that is not is neither put in
// force nor held until it is, and one in force keeps its grant meanwhile.
func Grant(agent *custosv1alpha1.Agent, toolsets map[types.NamespacedName]*custosv1alpha1.Toolset) (custosv1alpha1.AgentGrant, *Change) {
	prev := custosv1alpha1.AgentGrant{}
	if agent.Status.Granted != nil {
		prev = *agent.Status.Granted.DeepCopy()
	}
	granted := func(key types.NamespacedName) bool {
		return slices.ContainsFunc(prev.ToolsetRefs, func(r custosv1alpha1.ToolsetReference) bool { return r.Key(agent.Namespace) == key })
	}
	grant := custosv1alpha1.AgentGrant{Generation: prev.Generation, ApprovalRequest: prev.ApprovalRequest}
	change := &Change{Agent: agent, AgentChange: custosv1alpha1.AgentChange{Generation: agent.Generation, InForce: prev.Generation},
		all: map[types.NamespacedName]custosv1alpha1.WriteToolset{}}
	for _, ref := range agent.Spec.ToolsetRefs {
		key := ref.Key(agent.Namespace)
		ts := toolsets[key]
		had, inForce := writeToolsOf(prev.WriteTools, key), granted(key)
		switch {
		case ts == nil && inForce:
			// In force, though gone or out of reach for now: it serves
			// nothing, and keeps the Write tools approved for it.
			grant.ToolsetRefs = append(grant.ToolsetRefs, ref)
			if had != nil {
				grant.WriteTools = append(grant.WriteTools, *had.DeepCopy())
			}
		case ts == nil:
		default:
			write, irreversible := writeTools(ts, ref)
			var approved []string
			if inForce && had != nil {
				approved = had.WriteTools
			}
			added := slices.DeleteFunc(slices.Clone(write), func(t string) bool { return slices.Contains(approved, t) })
			if inForce {
				// Still in force with the Write tools it had (those it
				// still offers): custos-gateway and custos-sts serve no
				// other until approved.
				grant.ToolsetRefs = append(grant.ToolsetRefs, ref)
				if kept := slices.DeleteFunc(slices.Clone(write), func(t string) bool { return !slices.Contains(approved, t) }); len(kept) > 0 {
					grant.WriteTools = append(grant.WriteTools, custosv1alpha1.WriteToolset{Name: key.Name, Namespace: key.Namespace, WriteTools: kept,
						IrreversibleTools: slices.DeleteFunc(slices.Clone(irreversible), func(t string) bool { return !slices.Contains(kept, t) })})
				}
			}
			if len(added) == 0 {
				if !inForce {
					grant.ToolsetRefs = append(grant.ToolsetRefs, ref)
				}
				continue
			}
			change.all[key] = custosv1alpha1.WriteToolset{Name: key.Name, Namespace: key.Namespace, WriteTools: write, IrreversibleTools: irreversible}
			change.Toolsets = append(change.Toolsets, custosv1alpha1.WriteToolset{
				Name: key.Name, Namespace: key.Namespace, WriteTools: added,
				IrreversibleTools: slices.DeleteFunc(slices.Clone(irreversible), func(t string) bool { return !slices.Contains(added, t) }),
			})
		}
	}
	asked := custosv1alpha1.RolesOf(agent.Spec.Identity)
	in, added := &custosv1alpha1.CloudRoles{}, &custosv1alpha1.CloudRoles{}
	if asked != nil {
		had := prev.Identity
		if had == nil {
			had = &custosv1alpha1.CloudRoles{}
		}
		in.AWS, added.AWS = split(asked.AWS, had.AWS)
		in.Azure, added.Azure = split(asked.Azure, had.Azure)
		in.GCP, added.GCP = split(asked.GCP, had.GCP)
	}
	if !in.Empty() {
		grant.Identity = in
	}
	if !added.Empty() {
		change.Identity = added
	}
	if len(change.Toolsets) == 0 && change.Identity == nil {
		grant.Generation = agent.Generation
		return grant, nil
	}
	return grant, change
}

// writeToolsOf is the Toolset key's entry among the Write tools in force;
// nil when none of its Write tools is.
func writeToolsOf(in []custosv1alpha1.WriteToolset, key types.NamespacedName) *custosv1alpha1.WriteToolset {
	for i := range in {
		if in[i].Namespace == key.Namespace && in[i].Name == key.Name {
			return &in[i]
		}
	}
	return nil
}

// split is one cloud's role: the one asked for is in force when it is
// the one in force; another is added, and the one in force stays until
// it is approved (a role replaced keeps running); none asked for removes
// it at once.
func split[T any](asked, had *T) (in, added *T) {
	switch {
	case asked == nil:
		return nil, nil
	case had != nil && equality.Semantic.DeepEqual(asked, had):
		return asked, nil
	default:
		return had, asked
	}
}

// writeTools are ts's Write tools the agent's reference to it allows
// (its tools), and those of them marked irreversible.
func writeTools(ts *custosv1alpha1.Toolset, ref custosv1alpha1.ToolsetReference) (write, irreversible []string) {
	for _, t := range ts.Spec.Tools {
		if t.Access != custosv1alpha1.ToolAccessWrite && !t.Irreversible || !ref.Allows(t.Name) {
			continue
		}
		write = append(write, t.Name)
		if t.Irreversible {
			irreversible = append(irreversible, t.Name)
		}
	}
	return write, irreversible
}

// Apply is grant with change approved by the request named approvedBy:
// the whole generation, in the spec's order.
func Apply(agent *custosv1alpha1.Agent, grant custosv1alpha1.AgentGrant, change *Change, approvedBy string) custosv1alpha1.AgentGrant {
	out := custosv1alpha1.AgentGrant{Generation: agent.Generation, ApprovalRequest: approvedBy}
	for _, ref := range agent.Spec.ToolsetRefs {
		key := ref.Key(agent.Namespace)
		inForce := slices.ContainsFunc(grant.ToolsetRefs, func(r custosv1alpha1.ToolsetReference) bool { return r.Key(agent.Namespace) == key })
		i := slices.IndexFunc(change.Toolsets, func(t custosv1alpha1.WriteToolset) bool { return t.Namespace == key.Namespace && t.Name == key.Name })
		if !inForce && i < 0 {
			continue
		}
		out.ToolsetRefs = append(out.ToolsetRefs, ref)
		// Its Write tools in force: the Toolset's whole, once approved.
		for _, w := range grant.WriteTools {
			if i < 0 && w.Namespace == key.Namespace && w.Name == key.Name {
				out.WriteTools = append(out.WriteTools, *w.DeepCopy())
			}
		}
		if w, ok := change.all[key]; ok && i >= 0 {
			out.WriteTools = append(out.WriteTools, *w.DeepCopy())
		}
	}
	roles := grant.Identity.DeepCopy()
	if roles == nil {
		roles = &custosv1alpha1.CloudRoles{}
	}
	if a := change.Identity; a != nil {
		if a.AWS != nil {
			roles.AWS = a.AWS.DeepCopy()
		}
		if a.Azure != nil {
			roles.Azure = a.Azure.DeepCopy()
		}
		if a.GCP != nil {
			roles.GCP = a.GCP.DeepCopy()
		}
	}
	if !roles.Empty() {
		out.Identity = roles
	}
	return out
}

// Digest binds a change request to this change: sha256 over the
// canonical JSON of the agent's UID, the generation and what it adds.
func (c *Change) Digest() string {
	doc := map[string]any{
		"agentUID":   string(c.Agent.UID),
		"generation": fmt.Sprint(c.Generation),
		"change":     c.Describe(),
	}
	b, err := audit.CanonicalValue(doc)
	if err != nil {
		// Strings only: cannot fail.
		panic(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// RequireChange says what approval an Agent change needs under policies
// (those of the agent's namespace): the strictest of those that select
// the agent and hold its changes (agentChanges); nil when none does.
func RequireChange(policies []custosv1alpha1.ApprovalPolicy, agent *custosv1alpha1.Agent) *Requirement {
	var req *Requirement
	for i := range policies {
		p := &policies[i]
		if !p.Spec.AgentChanges || !Selects(p, agent) {
			continue
		}
		if req == nil {
			req = &Requirement{}
		}
		req.add(p)
	}
	if req != nil {
		slices.Sort(req.Policies)
	}
	return req
}

// ChangeRequestName is the name of the request for a change: the agent's
// name, its generation and 8 hex digits of the change's digest. A change
// is asked for once per generation.
func ChangeRequestName(agent string, generation int64, digest string) string {
	if len(agent) > 200 {
		agent = strings.TrimRight(agent[:200], "-.")
	}
	return fmt.Sprintf("%s-g%d-%s", agent, generation, DigestLabel(digest)[:8])
}

// ChangeRequest is the ApprovalRequest for c under req, created at now.
func ChangeRequest(c *Change, req *Requirement, now time.Time) *custosv1alpha1.ApprovalRequest {
	digest := c.Digest()
	a := c.Agent
	change := c.AgentChange
	return &custosv1alpha1.ApprovalRequest{
		ObjectMeta: requestMeta(a, ChangeRequestName(a.Name, c.Generation, digest), digest),
		Spec: custosv1alpha1.ApprovalRequestSpec{
			Agent:              custosv1alpha1.ApprovalAgent{Name: a.Name, UID: string(a.UID)},
			Change:             &change,
			CallDigest:         digest,
			Policies:           req.Policies,
			Quorum:             req.Quorum,
			SeparationOfDuties: req.SeparationOfDuties,
			ExpiresAt:          metav1.NewTime(now.Add(req.Timeout).Truncate(time.Second)),
		},
	}
}

// IsChangeOf says whether ar is the request for c: the same agent (by
// UID), generation and digest.
func IsChangeOf(ar *custosv1alpha1.ApprovalRequest, c *Change) bool {
	return ar.Spec.Change != nil && ar.Spec.Agent.UID == string(c.Agent.UID) &&
		ar.Spec.Change.Generation == c.Generation && ar.Spec.CallDigest == c.Digest()
}
