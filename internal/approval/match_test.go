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
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// policy is an ApprovalPolicy of namespace ns named name, as the API
// server would default it (nothing set: irreversible tools, quorum 1).
func policy(name string, edit func(*custosv1alpha1.ApprovalPolicySpec)) custosv1alpha1.ApprovalPolicy {
	p := custosv1alpha1.ApprovalPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Generation: 1},
	}
	if edit != nil {
		edit(&p.Spec)
	}
	return p
}

func testAgent(labels map[string]string) *custosv1alpha1.Agent {
	return &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "bot", Namespace: "ns", UID: "agent-uid", Labels: labels}}
}

// jsonArgs decodes s as encoding/json does a call's arguments (numbers as
// float64).
func jsonArgs(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRequireIrreversibleByDefault(t *testing.T) {
	var m Matcher
	ps := []custosv1alpha1.ApprovalPolicy{policy("default", nil)}
	call := Call{Tool: "delete", Irreversible: true, Agent: testAgent(nil)}
	req := m.Require(ps, call)
	if req == nil {
		t.Fatal("an irreversible tool's call matched no policy; want the default policy")
	}
	if !slices.Equal(req.Policies, []string{"default"}) || req.Quorum != 1 || req.Timeout != DefaultTimeout || len(req.Errors) != 0 {
		t.Errorf("requirement = %+v; want policy default, quorum 1, timeout %s, no errors", req, DefaultTimeout)
	}
	sod := req.SeparationOfDuties
	if !sod.Person() || !sod.Owners() || !sod.ServiceAccounts() || sod.ExcludePerson == nil || sod.ExcludeOwners == nil || sod.ExcludeServiceAccounts == nil {
		t.Errorf("separation of duties = %+v; want every exclusion set true", sod)
	}
	if r := m.Require(ps, Call{Tool: "read", Access: custosv1alpha1.ToolAccessWrite, Agent: testAgent(nil)}); r != nil {
		t.Errorf("a reversible Write call matched the default policy: %+v", r)
	}
	if r := m.Require(nil, call); r != nil {
		t.Errorf("no policies, requirement %+v; want nil", r)
	}
}

func TestRequireIrreversibleFalse(t *testing.T) {
	var m Matcher
	ps := []custosv1alpha1.ApprovalPolicy{policy("p", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.Match.Irreversible = ptr.To(false)
	})}
	if r := m.Require(ps, Call{Tool: "delete", Irreversible: true, Agent: testAgent(nil)}); r != nil {
		t.Errorf("match.irreversible=false still matched an irreversible call: %+v", r)
	}
}

func TestRequireWrite(t *testing.T) {
	var m Matcher
	ps := []custosv1alpha1.ApprovalPolicy{policy("writes", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.Match.Irreversible = ptr.To(false)
		s.Match.Write = true
	})}
	if r := m.Require(ps, Call{Tool: "update", Access: custosv1alpha1.ToolAccessWrite, Agent: testAgent(nil)}); r == nil || !slices.Equal(r.Policies, []string{"writes"}) {
		t.Errorf("write=true did not match a Write tool: %+v", r)
	}
	if r := m.Require(ps, Call{Tool: "get", Access: custosv1alpha1.ToolAccessRead, Agent: testAgent(nil)}); r != nil {
		t.Errorf("write=true matched a Read tool: %+v", r)
	}
}

func TestRequireExpression(t *testing.T) {
	expr := func(e string) []custosv1alpha1.ApprovalPolicy {
		return []custosv1alpha1.ApprovalPolicy{policy("expr", func(s *custosv1alpha1.ApprovalPolicySpec) {
			s.Match.Irreversible = ptr.To(false)
			s.Match.Expression = e
		})}
	}
	for _, tc := range []struct {
		name, expr string
		call       Call
		want       bool
	}{
		{"amount over", "tool.name == 'pay' && arguments.amount > 1000", Call{Tool: "pay", Arguments: jsonArgs(t, `{"amount": 1500}`)}, true},
		{"amount under", "tool.name == 'pay' && arguments.amount > 1000", Call{Tool: "pay", Arguments: jsonArgs(t, `{"amount": 999.5}`)}, false},
		{"amount equal", "tool.name == 'pay' && arguments.amount > 1000", Call{Tool: "pay", Arguments: jsonArgs(t, `{"amount": 1000}`)}, false},
		{"other tool", "tool.name == 'pay' && arguments.amount > 1000", Call{Tool: "refund", Arguments: jsonArgs(t, `{"amount": 5000}`)}, false},
		{"int equality", "arguments.count == 3", Call{Tool: "x", Arguments: jsonArgs(t, `{"count": 3}`)}, true},
		{"nested", "arguments.payee.country != 'FR'", Call{Tool: "x", Arguments: jsonArgs(t, `{"payee": {"country": "US"}}`)}, true},
		{"group in", "'contractors' in person.groups", Call{Tool: "x", Groups: []string{"staff", "contractors"}}, true},
		{"group not in", "'contractors' in person.groups", Call{Tool: "x", Groups: []string{"staff"}}, false},
		{"no groups", "'contractors' in person.groups", Call{Tool: "x"}, false},
		{"person subject", "person.subject == 'alice'", Call{Tool: "x", Person: "alice"}, true},
		{"agent label", "agent.labels['tier'] == 'prod'", Call{Tool: "x", Agent: testAgent(map[string]string{"tier": "prod"})}, true},
		{"agent label other", "agent.labels['tier'] == 'prod'", Call{Tool: "x", Agent: testAgent(map[string]string{"tier": "dev"})}, false},
		{"agent label has", "has(agent.labels.tier)", Call{Tool: "x", Agent: testAgent(nil)}, false},
		{"toolset", "toolset.name == 'payments' && toolset.namespace == 'finance'", Call{Tool: "x", Toolset: custosv1alpha1.ToolsetReference{Name: "payments", Namespace: "finance"}}, true},
		{"tool access", "tool.access == 'Write' && !tool.irreversible", Call{Tool: "x", Access: custosv1alpha1.ToolAccessWrite}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Matcher
			if tc.call.Agent == nil {
				tc.call.Agent = testAgent(nil)
			}
			r := m.Require(expr(tc.expr), tc.call)
			if got := r != nil; got != tc.want {
				t.Fatalf("%s on %+v: matched %v (%+v); want %v", tc.expr, tc.call, got, r, tc.want)
			}
			if r != nil && len(r.Errors) != 0 {
				t.Errorf("errors %v; want none", r.Errors)
			}
		})
	}
}

func TestRequireAgentSelector(t *testing.T) {
	var m Matcher
	ps := []custosv1alpha1.ApprovalPolicy{policy("prod", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.AgentSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}
	})}
	call := Call{Tool: "delete", Irreversible: true}
	call.Agent = testAgent(map[string]string{"tier": "prod"})
	if r := m.Require(ps, call); r == nil {
		t.Error("the selector did not select an agent it matches")
	}
	call.Agent = testAgent(map[string]string{"tier": "dev"})
	if r := m.Require(ps, call); r != nil {
		t.Errorf("the selector selected an agent it does not match: %+v", r)
	}
	call.Agent = testAgent(nil)
	if r := m.Require(ps, call); r != nil {
		t.Errorf("the selector selected an unlabelled agent: %+v", r)
	}
	// A selector that cannot be read selects everything: fails closed.
	bad := []custosv1alpha1.ApprovalPolicy{policy("bad", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.AgentSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Bogus"}}}
	})}
	if r := m.Require(bad, call); r == nil {
		t.Error("an unreadable selector selected nothing; want everything (fail closed)")
	}
}

func TestRequireFoldsToStrictest(t *testing.T) {
	a := policy("a", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.Quorum = 2
		s.Timeout = &metav1.Duration{Duration: time.Hour}
		s.SeparationOfDuties = custosv1alpha1.SeparationOfDuties{ExcludePerson: ptr.To(false), ExcludeOwners: ptr.To(false), ExcludeServiceAccounts: ptr.To(true)}
	})
	b := policy("b", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.Quorum = 3
		s.Timeout = &metav1.Duration{Duration: 10 * time.Minute}
		s.SeparationOfDuties = custosv1alpha1.SeparationOfDuties{ExcludePerson: ptr.To(true), ExcludeOwners: ptr.To(false), ExcludeServiceAccounts: ptr.To(false)}
	})
	c := policy("c", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.Quorum = 1
		s.Timeout = &metav1.Duration{Duration: 30 * time.Minute}
		s.SeparationOfDuties = custosv1alpha1.SeparationOfDuties{ExcludePerson: ptr.To(false), ExcludeOwners: ptr.To(false), ExcludeServiceAccounts: ptr.To(false)}
	})
	call := Call{Tool: "delete", Irreversible: true, Agent: testAgent(nil)}
	for _, order := range [][]custosv1alpha1.ApprovalPolicy{{a, b, c}, {c, b, a}, {b, c, a}} {
		var m Matcher
		r := m.Require(order, call)
		if r == nil {
			t.Fatal("no requirement")
		}
		if !slices.Equal(r.Policies, []string{"a", "b", "c"}) {
			t.Errorf("policies %v; want [a b c], sorted", r.Policies)
		}
		if r.Quorum != 3 {
			t.Errorf("quorum %d; want the largest, 3", r.Quorum)
		}
		if r.Timeout != 10*time.Minute {
			t.Errorf("timeout %s; want the shortest, 10m", r.Timeout)
		}
		sod := r.SeparationOfDuties
		if !sod.Person() || sod.Owners() || !sod.ServiceAccounts() {
			t.Errorf("separation of duties person=%v owners=%v serviceAccounts=%v; want true false true (any policy's true)", sod.Person(), sod.Owners(), sod.ServiceAccounts())
		}
	}
	// An unset exclusion is true, and wins over another policy's false.
	d := policy("d", nil)
	var m Matcher
	r := m.Require([]custosv1alpha1.ApprovalPolicy{c, d}, call)
	if sod := r.SeparationOfDuties; !sod.Person() || !sod.Owners() || !sod.ServiceAccounts() {
		t.Errorf("a policy with the exclusions unset beside one with them false: %+v; want all true", sod)
	}
	// Only the policies that match fold in.
	e := policy("e", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.Quorum = 9
		s.Match.Irreversible = ptr.To(false)
		s.Match.Expression = "tool.name == 'other'"
	})
	r = m.Require([]custosv1alpha1.ApprovalPolicy{c, e}, call)
	if r.Quorum != 1 || !slices.Equal(r.Policies, []string{"c"}) {
		t.Errorf("a policy that does not match folded in: %+v", r)
	}
}

func TestRequireExpressionErrorFailsClosed(t *testing.T) {
	for _, expr := range []string{
		"arguments.missing > 1000", // no such key
		"arguments.amount",         // not a bool at evaluation
		"arguments.amount / 0 > 1", // division by zero (ints)
	} {
		t.Run(expr, func(t *testing.T) {
			var m Matcher
			ps := []custosv1alpha1.ApprovalPolicy{
				policy("broken", func(s *custosv1alpha1.ApprovalPolicySpec) {
					s.Match.Irreversible = ptr.To(false)
					s.Match.Expression = expr
					s.Quorum = 2
				}),
				policy("quiet", func(s *custosv1alpha1.ApprovalPolicySpec) {
					s.Match.Irreversible = ptr.To(false)
					s.Match.Expression = "false"
				}),
			}
			r := m.Require(ps, Call{Tool: "pay", Arguments: map[string]any{"amount": int64(5)}, Agent: testAgent(nil)})
			if r == nil {
				t.Fatal("an expression that failed matched nothing; want a match (fail closed)")
			}
			if !slices.Equal(r.Policies, []string{"broken"}) || r.Quorum != 2 {
				t.Errorf("requirement %+v; want policy broken with its quorum 2", r)
			}
			if len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0], "broken: ") {
				t.Errorf("errors %q; want one naming policy broken", r.Errors)
			}
		})
	}
}

func TestCompile(t *testing.T) {
	for _, ok := range []string{
		"true",
		"tool.name == 'pay' && arguments.amount > 1000",
		"'admins' in person.groups",
		"agent.labels['tier'] == 'prod'",
		// Values of a map(string, dyn) are dyn: accepted at compile time;
		// a non-bool fails closed when evaluated.
		"arguments.flag",
		"tool.name",
	} {
		if _, err := Compile(ok); err != nil {
			t.Errorf("Compile(%q): %v; want it accepted", ok, err)
		}
	}
	for _, bad := range []string{
		"1 + 2",          // int
		"'yes'",          // string
		"toolset.name",   // string: toolset is map(string, string)
		"tool.name ==",   // unparsable
		"arguments.a &&", // unparsable
		"unknown == 1",   // undeclared
	} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("Compile(%q) accepted it; want it refused", bad)
		}
	}
}

func TestMatcherRecompilesOnNewGeneration(t *testing.T) {
	var m Matcher
	p := policy("p", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.Match.Irreversible = ptr.To(false)
		s.Match.Expression = "tool.name == 'a'"
	})
	call := Call{Tool: "b", Agent: testAgent(nil)}
	if r := m.Require([]custosv1alpha1.ApprovalPolicy{p}, call); r != nil {
		t.Fatalf("matched %+v", r)
	}
	p.Spec.Match.Expression = "tool.name == 'b'"
	p.Generation = 2
	if r := m.Require([]custosv1alpha1.ApprovalPolicy{p}, call); r == nil {
		t.Error("the policy's new generation was not recompiled")
	}
}
