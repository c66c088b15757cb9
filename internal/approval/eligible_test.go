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
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// fakeAccess decides SubjectAccessReviews with a func, recording every
// question.
type fakeAccess struct {
	decide func(who custosv1alpha1.Approver, attrs authorizationv1.ResourceAttributes) (bool, error)

	mu    sync.Mutex
	asked []authorizationv1.ResourceAttributes
}

func (f *fakeAccess) Allowed(_ context.Context, who custosv1alpha1.Approver, attrs authorizationv1.ResourceAttributes) (bool, error) {
	f.mu.Lock()
	f.asked = append(f.asked, attrs)
	f.mu.Unlock()
	return f.decide(who, attrs)
}

// rbac is a fakeAccess granting approve on toolsets to approvers and
// update on agents to owners (usernames).
func rbac(approvers, owners []string) *fakeAccess {
	return &fakeAccess{decide: func(who custosv1alpha1.Approver, a authorizationv1.ResourceAttributes) (bool, error) {
		switch {
		case a.Resource == "toolsets" && a.Verb == VerbApprove:
			return slices.Contains(approvers, who.Username), nil
		case a.Resource == "agents" && a.Verb == "update":
			return slices.Contains(owners, who.Username), nil
		}
		return false, nil
	}}
}

// approvalRequest is a request of agent bot in ns, for alice, on Toolset
// payments of namespace toolsetNS, under the default separation of
// duties, expiring an hour after t0.
func approvalRequest(toolsetNS string, quorum int32) *custosv1alpha1.ApprovalRequest {
	return &custosv1alpha1.ApprovalRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "bot-0123456789abcdef-1", Namespace: "ns"},
		Spec: custosv1alpha1.ApprovalRequestSpec{
			Agent:     custosv1alpha1.ApprovalAgent{Name: "bot", UID: "agent-uid"},
			Toolset:   custosv1alpha1.ToolsetReference{Name: "payments", Namespace: toolsetNS},
			Tool:      "pay",
			Person:    "alice",
			Quorum:    quorum,
			Policies:  []string{"p"},
			ExpiresAt: metav1.NewTime(t0.Add(time.Hour)),
		},
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestEligible(t *testing.T) {
	ctx := context.Background()
	access := rbac([]string{"bob", "carol", "owner", "oidc:alice", "alice", "system:serviceaccount:ns:approver", "robot"}, []string{"owner"})
	req := approvalRequest("", 1)
	for _, tc := range []struct {
		name string
		who  custosv1alpha1.Approver
		rule string // "" when eligible
	}{
		{"eligible", custosv1alpha1.Approver{Username: "bob", UID: "u-bob", Groups: []string{"system:authenticated"}}, ""},
		{"no identity", custosv1alpha1.Approver{}, RuleNoIdentity},
		{"service account by name", custosv1alpha1.Approver{Username: "system:serviceaccount:ns:approver"}, RuleServiceAccount},
		{"service account by group", custosv1alpha1.Approver{Username: "robot", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ns"}}, RuleServiceAccount},
		{"service account by namespace group", custosv1alpha1.Approver{Username: "robot", Groups: []string{"system:serviceaccounts:ns"}}, RuleServiceAccount},
		{"the person", custosv1alpha1.Approver{Username: "alice"}, RulePerson},
		{"the person, other case", custosv1alpha1.Approver{Username: "Alice"}, RulePerson},
		{"the person with an authenticator prefix", custosv1alpha1.Approver{Username: "oidc:alice"}, RulePerson},
		{"an owner", custosv1alpha1.Approver{Username: "owner"}, RuleOwner},
		{"not authorized", custosv1alpha1.Approver{Username: "mallory"}, RuleNotAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			why, err := Eligible(ctx, access, tc.who, req)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.rule == "" && why != nil:
				t.Errorf("refused (%s: %s); want eligible", why.Rule, why.Message)
			case tc.rule != "" && why == nil:
				t.Errorf("eligible; want refused by %s", tc.rule)
			case tc.rule != "" && why.Rule != tc.rule:
				t.Errorf("refused by %s (%s); want %s", why.Rule, why.Message, tc.rule)
			case why != nil && why.Message == "":
				t.Error("refused without a message")
			}
		})
	}
}

func TestIsPerson(t *testing.T) {
	for _, tc := range []struct {
		username, person string
		want             bool
	}{
		{"alice", "alice", true},
		{"ALICE", "alice", true},
		{"oidc:alice", "alice", true},
		{"https://idp#alice", "alice", false},
		{"malice", "alice", false},
		{"oidc:malice", "alice", false},
		{"alice", "", false},
		{"bob", "alice", false},
	} {
		if got := IsPerson(tc.username, tc.person); got != tc.want {
			t.Errorf("IsPerson(%q, %q) = %v; want %v", tc.username, tc.person, got, tc.want)
		}
	}
}

func TestEligibleSeparationOfDutiesOff(t *testing.T) {
	ctx := context.Background()
	access := rbac([]string{"alice", "owner", "system:serviceaccount:ns:approver"}, []string{"owner"})
	req := approvalRequest("", 1)
	req.Spec.SeparationOfDuties = custosv1alpha1.SeparationOfDuties{ExcludePerson: ptr.To(false), ExcludeOwners: ptr.To(false), ExcludeServiceAccounts: ptr.To(false)}
	for _, who := range []string{"alice", "owner", "system:serviceaccount:ns:approver"} {
		why, err := Eligible(ctx, access, custosv1alpha1.Approver{Username: who}, req)
		if err != nil || why != nil {
			t.Errorf("%s with every exclusion off: %v, %v; want eligible", who, why, err)
		}
	}
	for _, a := range access.asked {
		if a.Resource == "agents" {
			t.Errorf("asked %+v with excludeOwners false", a)
		}
	}
	// RBAC still decides.
	why, err := Eligible(ctx, access, custosv1alpha1.Approver{Username: "mallory"}, req)
	if err != nil || why == nil || why.Rule != RuleNotAuthorized {
		t.Errorf("mallory with every exclusion off: %v, %v; want NotAuthorized", why, err)
	}
}

func TestEligibleAsksApproveOnTheToolset(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ toolsetNS, want string }{{"", "ns"}, {"shared", "shared"}} {
		access := rbac([]string{"bob"}, nil)
		req := approvalRequest(tc.toolsetNS, 1)
		if why, err := Eligible(ctx, access, custosv1alpha1.Approver{Username: "bob"}, req); err != nil || why != nil {
			t.Fatalf("bob: %v, %v", why, err)
		}
		want := []authorizationv1.ResourceAttributes{
			{Group: custosv1alpha1.GroupVersion.Group, Resource: "toolsets", Verb: VerbApprove, Namespace: tc.want, Name: "payments"},
			{Group: custosv1alpha1.GroupVersion.Group, Resource: "agents", Verb: "update", Namespace: "ns", Name: "bot"},
		}
		if !slices.Equal(access.asked, want) {
			t.Errorf("toolset namespace %q: asked %+v; want %+v", tc.toolsetNS, access.asked, want)
		}
	}
}

func TestEligibleErrorIsNoYes(t *testing.T) {
	boom := errors.New("the API server is away")
	access := &fakeAccess{decide: func(custosv1alpha1.Approver, authorizationv1.ResourceAttributes) (bool, error) { return true, boom }}
	why, err := Eligible(context.Background(), access, custosv1alpha1.Approver{Username: "bob"}, approvalRequest("", 1))
	if !errors.Is(err, boom) || why != nil {
		t.Errorf("Eligible with a failing SAR: %v, %v; want the error", why, err)
	}
}
