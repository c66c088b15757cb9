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

// Package breaker freezes agents that stop behaving like themselves and
// says who may let them run again: AgentFreezes, made by Custos's own
// components when a cap or the breaker trips (or by a person), hold an
// agent Frozen until a person who may unfreeze it, and does not own it,
// lifts the freeze with an AgentUnfreeze.
package breaker

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
)

// MayFreeze says whether who may make freeze: a trip with evidence (Cap,
// Trend, Ratio) needs verb trip on the Agent, which the chart gives
// Custos's own components alone; a Manual freeze needs verb freeze (the
// agent's owners and risk owners hold it: freezing only takes access
// away). An error is a failed question, never a yes.
func MayFreeze(ctx context.Context, access approval.Access, who custosv1alpha1.Approver, freeze *custosv1alpha1.AgentFreeze) (*approval.Ineligible, error) {
	if who.Username == "" {
		return &approval.Ineligible{Rule: approval.RuleNoIdentity, Message: "the freeze has no author: the API server did not say who made it"}, nil
	}
	verb := custosv1alpha1.VerbFreeze
	refused := fmt.Sprintf("%s may not freeze Agent %s/%s: RBAC does not grant the verb freeze on agents there", who.Username, freeze.Namespace, freeze.Spec.Agent)
	if freeze.Spec.Trigger != custosv1alpha1.FreezeManual {
		verb = custosv1alpha1.VerbTrip
		refused = fmt.Sprintf("a %s freeze is a trip Custos's components make with their evidence; %s may not (RBAC does not grant the verb trip on agents): "+
			"a person freezes an agent with trigger Manual (kubectl custos freeze)", freeze.Spec.Trigger, who.Username)
	}
	ok, err := access.Allowed(ctx, who, authorizationv1.ResourceAttributes{
		Group: custosv1alpha1.GroupVersion.Group, Resource: "agents", Verb: verb, Namespace: freeze.Namespace, Name: freeze.Spec.Agent,
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return &approval.Ineligible{Rule: approval.RuleNotAuthorized, Message: refused}, nil
	}
	return nil, nil
}

// MayLift says whether who may lift a freeze of Agent namespace/agent: a
// person (not a ServiceAccount, so not the agent itself nor a Custos
// component), not one of the agent's owners (whoever may update the Agent:
// the team being watched does not switch its watch off), and allowed the
// verb unfreeze on the Agent. An error is a failed question, never a yes.
func MayLift(ctx context.Context, access approval.Access, who custosv1alpha1.Approver, namespace, agent string) (*approval.Ineligible, error) {
	if no, err := mayUnfreeze(ctx, access, who, namespace, agent, "the unfreeze", "lifting a freeze"); no != nil || err != nil {
		return no, err
	}
	owner, err := access.Allowed(ctx, who, agentVerb(namespace, agent, "update"))
	if err != nil {
		return nil, err
	}
	if owner {
		return &approval.Ineligible{Rule: approval.RuleOwner,
			Message: fmt.Sprintf("%s may change Agent %s/%s, so owns it: an agent's owners do not lift its freeze", who.Username, namespace, agent)}, nil
	}
	return nil, nil
}

// MayLoosen says whether who may loosen the breaker's watch of Agent
// namespace/agent (Observe, an allowance: its spec.breaker): a person, not
// a ServiceAccount (so not the agent itself nor a GitOps controller),
// allowed the verb unfreeze on the Agent, which its owners do not hold.
// Writing the Agent takes update besides, so this is a platform
// administrator's, or whoever is granted both.
func MayLoosen(ctx context.Context, access approval.Access, who custosv1alpha1.Approver, namespace, agent string) (*approval.Ineligible, error) {
	return mayUnfreeze(ctx, access, who, namespace, agent, "the change", "loosening the breaker's watch")
}

func mayUnfreeze(ctx context.Context, access approval.Access, who custosv1alpha1.Approver, namespace, agent, what, decision string) (*approval.Ineligible, error) {
	if who.Username == "" {
		return &approval.Ineligible{Rule: approval.RuleNoIdentity, Message: what + " has no author: the API server did not say who made it"}, nil
	}
	if approval.IsServiceAccount(who) {
		return &approval.Ineligible{Rule: approval.RuleServiceAccount,
			Message: fmt.Sprintf("%s is a ServiceAccount: %s is a person's decision", who.Username, decision)}, nil
	}
	ok, err := access.Allowed(ctx, who, agentVerb(namespace, agent, custosv1alpha1.VerbUnfreeze))
	if err != nil {
		return nil, err
	}
	if !ok {
		return &approval.Ineligible{Rule: approval.RuleNotAuthorized,
			Message: fmt.Sprintf("%s may not unfreeze Agent %s/%s: RBAC does not grant the verb unfreeze on agents there", who.Username, namespace, agent)}, nil
	}
	return nil, nil
}

func agentVerb(namespace, agent, verb string) authorizationv1.ResourceAttributes {
	return authorizationv1.ResourceAttributes{Group: custosv1alpha1.GroupVersion.Group, Resource: "agents", Verb: verb, Namespace: namespace, Name: agent}
}

// GenerateName is the generated-name prefix of a freeze Custos trips on
// agent: <agent>-<trigger>-, the agent's name cut to keep within the 253
// bytes of a name.
func GenerateName(agent string, trigger custosv1alpha1.FreezeTrigger) string {
	if len(agent) > 200 {
		agent = agent[:200]
	}
	return strings.TrimSuffix(agent, "-") + "-" + strings.ToLower(string(trigger)) + "-"
}
