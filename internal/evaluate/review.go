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

package evaluate

import (
	"context"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
)

// RuleClosed: the Finding was closed already (Confirmed or Dismissed).
const RuleClosed = "FindingClosed"

// MayReview says whether who may review a Finding on Agent
// namespace/agent with verdict, as the API server's RBAC says now: a
// person (not a ServiceAccount, so neither the agent itself nor a GitOps
// controller) allowed the verb review on the Agent, which the tenant roles
// give its owners and approvers. Dismissing a Finding, saying it was
// nothing, is not for the agent's owners (whoever may update the Agent):
// they acknowledge it or confirm it, and someone else dismisses it (an
// owner is whoever may update or patch the Agent). The manager asks again
// when it counts a review, whatever admission said.
func MayReview(ctx context.Context, access approval.Access, who custosv1alpha1.Approver, namespace, agent string, verdict custosv1alpha1.FindingPhase) (*approval.Ineligible, error) {
	if who.Username == "" {
		return &approval.Ineligible{Rule: approval.RuleNoIdentity, Message: "the review has no author: the API server did not say who made it"}, nil
	}
	if approval.IsServiceAccount(who) {
		return &approval.Ineligible{Rule: approval.RuleServiceAccount,
			Message: fmt.Sprintf("%s is a ServiceAccount: reviewing a Finding is a person's decision", who.Username)}, nil
	}
	ok, err := access.Allowed(ctx, who, agentAttributes(namespace, agent, custosv1alpha1.VerbReview))
	if err != nil {
		return nil, err
	}
	if !ok {
		return &approval.Ineligible{Rule: approval.RuleNotAuthorized,
			Message: fmt.Sprintf("%s may not review the Findings of Agent %s/%s: RBAC does not grant the verb review on agents there", who.Username, namespace, agent)}, nil
	}
	if verdict != custosv1alpha1.FindingDismissed {
		return nil, nil
	}
	// Who may change the Agent owns it: update or patch.
	owner := false
	for _, verb := range []string{"update", "patch"} {
		ok, err := access.Allowed(ctx, who, agentAttributes(namespace, agent, verb))
		if err != nil {
			return nil, err
		}
		owner = owner || ok
	}
	if owner {
		return &approval.Ineligible{Rule: approval.RuleOwner,
			Message: fmt.Sprintf("%s may change Agent %s/%s, so owns it: an agent's owners acknowledge or confirm its Findings, and someone else dismisses them", who.Username, namespace, agent)}, nil
	}
	return nil, nil
}

// MayFollow says whether a review of verdict may follow phase: an open
// Finding (Open or Acknowledged) takes any verdict but Acknowledged
// twice; a closed one none.
func MayFollow(phase, verdict custosv1alpha1.FindingPhase) *approval.Ineligible {
	switch {
	case phase.Closed():
		return &approval.Ineligible{Rule: RuleClosed, Message: fmt.Sprintf("the Finding was %s already: it is closed", phase)}
	case phase == custosv1alpha1.FindingAcknowledged && verdict == custosv1alpha1.FindingAcknowledged:
		return &approval.Ineligible{Rule: RuleClosed, Message: "the Finding was Acknowledged already: confirm or dismiss it"}
	}
	return nil
}

func agentAttributes(namespace, agent, verb string) authorizationv1.ResourceAttributes {
	return authorizationv1.ResourceAttributes{Group: custosv1alpha1.GroupVersion.Group, Resource: "agents", Verb: verb, Namespace: namespace, Name: agent}
}
