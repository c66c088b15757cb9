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
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Access answers SubjectAccessReviews: may this user do this?
type Access interface {
	Allowed(ctx context.Context, who custosv1alpha1.Approver, attrs authorizationv1.ResourceAttributes) (bool, error)
}

// SubjectAccessReviews asks the API server.
type SubjectAccessReviews struct{ Client client.Client }

// Allowed creates a SubjectAccessReview for who.
func (s SubjectAccessReviews) Allowed(ctx context.Context, who custosv1alpha1.Approver, attrs authorizationv1.ResourceAttributes) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: who.Username, UID: who.UID, Groups: who.Groups, ResourceAttributes: &attrs,
	}}
	if err := s.Client.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("asking the API server whether %s may %s %s/%s: %w", who.Username, attrs.Verb, attrs.Resource, attrs.Name, err)
	}
	return sar.Status.Allowed, nil
}

// VerbApprove is the verb a person needs on a request's Toolset to
// decide it (as cert-manager asks for approve on its signers).
const VerbApprove = "approve"

// Ineligible says why a person may not decide a request; nil when they
// may.
type Ineligible struct{ Rule, Message string }

func (e *Ineligible) Error() string { return e.Message }

// Rules an approver can break.
const (
	RuleNotAuthorized  = "NotAuthorized"
	RulePerson         = "SeparationOfDuties.Person"
	RuleOwner          = "SeparationOfDuties.Owner"
	RuleServiceAccount = "SeparationOfDuties.ServiceAccount"
	RuleNoIdentity     = "NoIdentity"
)

const serviceAccountPrefix = "system:serviceaccount:"

// Eligible says whether who may decide req: a person (not a
// ServiceAccount, unless the policies allow), not the person the agent
// acts for, not one of the agent's owners (whoever may update the Agent,
// so whoever made an Agent change too), and allowed the verb approve on
// the request's Toolset (on the Agent, for an Agent change). An error is
// a failed question, never a yes.
func Eligible(ctx context.Context, access Access, who custosv1alpha1.Approver, req *custosv1alpha1.ApprovalRequest) (*Ineligible, error) {
	sod := req.Spec.SeparationOfDuties
	if who.Username == "" {
		return &Ineligible{RuleNoIdentity, "the decision has no approver: the API server did not say who made it"}, nil
	}
	if sod.ServiceAccounts() && IsServiceAccount(who) {
		return &Ineligible{RuleServiceAccount, fmt.Sprintf("%s is a ServiceAccount: approvals are people's (separationOfDuties.excludeServiceAccounts)", who.Username)}, nil
	}
	if sod.Person() && IsPerson(who.Username, req.Spec.Person) {
		return &Ineligible{RulePerson, fmt.Sprintf("%s is the person the agent acts for: nobody approves their own request (separationOfDuties.excludePerson)", who.Username)}, nil
	}
	// A call is approved on its Toolset; an Agent change on the Agent.
	attrs := authorizationv1.ResourceAttributes{
		Group: custosv1alpha1.GroupVersion.Group, Resource: "agents", Verb: VerbApprove, Namespace: req.Namespace, Name: req.Spec.Agent.Name,
	}
	refused := fmt.Sprintf("%s may not approve changes to Agent %s/%s: RBAC does not grant the verb approve on agents there", who.Username, req.Namespace, req.Spec.Agent.Name)
	if req.Spec.Change == nil {
		attrs.Resource, attrs.Namespace, attrs.Name = "toolsets", req.Spec.Toolset.Namespace, req.Spec.Toolset.Name
		if attrs.Namespace == "" {
			attrs.Namespace = req.Namespace
		}
		refused = fmt.Sprintf("%s may not approve calls to Toolset %s/%s: RBAC does not grant the verb approve on toolsets there", who.Username, attrs.Namespace, attrs.Name)
	}
	ok, err := access.Allowed(ctx, who, attrs)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &Ineligible{RuleNotAuthorized, refused}, nil
	}
	if sod.Owners() {
		owner, err := access.Allowed(ctx, who, authorizationv1.ResourceAttributes{
			Group: custosv1alpha1.GroupVersion.Group, Resource: "agents", Verb: "update", Namespace: req.Namespace, Name: req.Spec.Agent.Name,
		})
		if err != nil {
			return nil, err
		}
		if owner {
			return &Ineligible{RuleOwner, fmt.Sprintf("%s may change Agent %s/%s, so owns it: owners do not approve their agent's calls or changes (separationOfDuties.excludeOwners)", who.Username, req.Namespace, req.Spec.Agent.Name)}, nil
		}
	}
	return nil, nil
}

// IsServiceAccount says whether who is a ServiceAccount (by name or group).
func IsServiceAccount(who custosv1alpha1.Approver) bool {
	if strings.HasPrefix(who.Username, serviceAccountPrefix) {
		return true
	}
	for _, g := range who.Groups {
		if g == "system:serviceaccounts" || strings.HasPrefix(g, "system:serviceaccounts:") {
			return true
		}
	}
	return false
}

// SamePerson says whether a and b are one person: the same UID when both
// have one, else the same username. One decision counts per person.
func SamePerson(a, b custosv1alpha1.Approver) bool {
	if a.UID != "" && b.UID != "" {
		return a.UID == b.UID
	}
	return a.Username == b.Username
}

// IsPerson says whether an API server username is the person a token was
// issued for: the same subject, with or without the prefix an
// authenticator adds (oidc:alice for alice). When unsure it says yes: an
// approver wrongly refused asks someone else; a person approving their
// own request is what separation of duties forbids.
func IsPerson(username, person string) bool {
	if person == "" {
		return false
	}
	if strings.EqualFold(username, person) {
		return true
	}
	u, p := strings.ToLower(username), strings.ToLower(person)
	return strings.HasSuffix(u, ":"+p)
}
