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
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

func toolset(ns, name string, tools ...custosv1alpha1.Tool) *custosv1alpha1.Toolset {
	return &custosv1alpha1.Toolset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: custosv1alpha1.ToolsetSpec{Tools: tools}}
}

var (
	readTool  = custosv1alpha1.Tool{Name: "get", Access: custosv1alpha1.ToolAccessRead}
	writeTool = custosv1alpha1.Tool{Name: "post", Access: custosv1alpha1.ToolAccessWrite}
	payTool   = custosv1alpha1.Tool{Name: "pay", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true}
	roleA     = &custosv1alpha1.AWSIdentity{RoleARN: "arn:aws:iam::123456789012:role/a"}
	roleB     = &custosv1alpha1.AWSIdentity{RoleARN: "arn:aws:iam::123456789012:role/b"}
)

// refs are references by name, each narrowed to tools when written
// name:tool+tool.
func refs(names ...string) []custosv1alpha1.ToolsetReference {
	var out []custosv1alpha1.ToolsetReference
	for _, n := range names {
		n, tools, narrowed := strings.Cut(n, ":")
		ref := custosv1alpha1.ToolsetReference{Name: n}
		if narrowed {
			ref.Tools = strings.Split(tools, "+")
		}
		out = append(out, ref)
	}
	return out
}

func names(rs []custosv1alpha1.ToolsetReference) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return strings.Join(out, ",")
}

// TestGrant: removals take effect at once, Toolsets without Write tools
// go in at once, Write Toolsets and cloud roles (added or replaced) wait,
// a Toolset that does not exist is neither.
func TestGrant(t *testing.T) {
	sets := map[types.NamespacedName]*custosv1alpha1.Toolset{}
	for _, ts := range []*custosv1alpha1.Toolset{
		toolset("ns", "docs", readTool), toolset("ns", "crm", readTool, writeTool), toolset("ns", "ledger", readTool, payTool), toolset("ns", "bank", writeTool, payTool),
	} {
		sets[types.NamespacedName{Namespace: ts.Namespace, Name: ts.Name}] = ts
	}
	for _, tc := range []struct {
		name      string
		prev      *custosv1alpha1.AgentGrant
		toolsets  []string
		identity  *custosv1alpha1.IdentityBindings
		wantIn    string
		wantRole  string
		wantHeld  string
		wantGen   int64
		wantNoChg bool
		wantWrite string // the Write tools in force without approval
	}{
		{name: "a new agent with a read Toolset", toolsets: []string{"docs"}, wantIn: "docs", wantGen: 3, wantNoChg: true},
		{name: "a new agent with Write Toolsets and a role", toolsets: []string{"docs", "crm", "ledger"},
			identity: &custosv1alpha1.IdentityBindings{AWS: roleA}, wantIn: "docs",
			wantHeld: "Toolset ns/crm with Write tools post; Toolset ns/ledger with Write tools pay (irreversible); AWS role " + roleA.RoleARN},
		{name: "a Write Toolset added to one in force", prev: &custosv1alpha1.AgentGrant{Generation: 2, ToolsetRefs: refs("docs")},
			toolsets: []string{"docs", "crm"}, wantIn: "docs", wantGen: 2, wantHeld: "Toolset ns/crm with Write tools post"},
		{name: "a Toolset removed, another added, none Write", prev: &custosv1alpha1.AgentGrant{Generation: 2, ToolsetRefs: refs("crm", "ledger"),
			WriteTools: []custosv1alpha1.WriteToolset{{Namespace: "ns", Name: "crm", WriteTools: []string{"post"}}, {Namespace: "ns", Name: "ledger", WriteTools: []string{"pay"}}}},
			toolsets: []string{"ledger", "docs"}, wantIn: "ledger,docs", wantGen: 3, wantNoChg: true, wantWrite: "ledger:pay"},
		{name: "a Toolset in force that gained a Write tool", prev: &custosv1alpha1.AgentGrant{Generation: 3, ToolsetRefs: refs("docs", "bank"),
			WriteTools: []custosv1alpha1.WriteToolset{{Namespace: "ns", Name: "bank", WriteTools: []string{"post"}}}},
			toolsets: []string{"docs", "bank"}, wantIn: "docs,bank", wantGen: 3, wantHeld: "Toolset ns/bank with Write tools pay (irreversible)",
			wantWrite: "bank:post"},
		{name: "a Toolset that does not exist", prev: &custosv1alpha1.AgentGrant{Generation: 2}, toolsets: []string{"ghost"}, wantGen: 3, wantNoChg: true},
		{name: "a Toolset in force that is gone for now", prev: &custosv1alpha1.AgentGrant{Generation: 2, ToolsetRefs: refs("ghost"),
			WriteTools: []custosv1alpha1.WriteToolset{{Namespace: "ns", Name: "ghost", WriteTools: []string{"post"}}}},
			toolsets: []string{"ghost"}, wantIn: "ghost", wantGen: 3, wantNoChg: true, wantWrite: "ghost:post"},
		{name: "a new agent with a Write Toolset narrowed to its Read tool", toolsets: []string{"crm:get"}, wantIn: "crm", wantGen: 3, wantNoChg: true},
		{name: "a Toolset in force narrowed to its Read tool", prev: &custosv1alpha1.AgentGrant{Generation: 2, ToolsetRefs: refs("crm"),
			WriteTools: []custosv1alpha1.WriteToolset{{Namespace: "ns", Name: "crm", WriteTools: []string{"post"}}}},
			toolsets: []string{"crm:get"}, wantIn: "crm", wantGen: 3, wantNoChg: true},
		{name: "a narrowed Toolset widened again", prev: &custosv1alpha1.AgentGrant{Generation: 2, ToolsetRefs: refs("crm:get")},
			toolsets: []string{"crm"}, wantIn: "crm", wantGen: 2, wantHeld: "Toolset ns/crm with Write tools post"},
		{name: "a Toolset narrowed to one of its Write tools", prev: &custosv1alpha1.AgentGrant{Generation: 2, ToolsetRefs: refs("bank"),
			WriteTools: []custosv1alpha1.WriteToolset{{Namespace: "ns", Name: "bank", WriteTools: []string{"post", "pay"}, IrreversibleTools: []string{"pay"}}}},
			toolsets: []string{"bank:post"}, wantIn: "bank", wantGen: 3, wantNoChg: true, wantWrite: "bank:post"},
		{name: "a role replaced", prev: &custosv1alpha1.AgentGrant{Generation: 2, Identity: &custosv1alpha1.CloudRoles{AWS: roleA}},
			identity: &custosv1alpha1.IdentityBindings{AWS: roleB}, wantRole: roleA.RoleARN, wantGen: 2, wantHeld: "AWS role " + roleB.RoleARN},
		{name: "the role in force kept", prev: &custosv1alpha1.AgentGrant{Generation: 2, Identity: &custosv1alpha1.CloudRoles{AWS: roleA}},
			identity: &custosv1alpha1.IdentityBindings{AWS: roleA}, wantRole: roleA.RoleARN, wantGen: 3, wantNoChg: true},
		{name: "a role removed", prev: &custosv1alpha1.AgentGrant{Generation: 2, Identity: &custosv1alpha1.CloudRoles{AWS: roleA}},
			wantGen: 3, wantNoChg: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testAgent(nil)
			a.Generation = 3
			a.Spec.ToolsetRefs = refs(tc.toolsets...)
			a.Spec.Identity = tc.identity
			a.Status.Granted = tc.prev
			grant, change := Grant(a, sets)
			if got := names(grant.ToolsetRefs); got != tc.wantIn {
				t.Errorf("in force %q, want %q", got, tc.wantIn)
			}
			role := ""
			if grant.Identity != nil && grant.Identity.AWS != nil {
				role = grant.Identity.AWS.RoleARN
			}
			if role != tc.wantRole {
				t.Errorf("role in force %q, want %q", role, tc.wantRole)
			}
			var write []string
			for _, w := range grant.WriteTools {
				write = append(write, w.Name+":"+strings.Join(w.WriteTools, "+"))
			}
			if got := strings.Join(write, ","); got != tc.wantWrite {
				t.Errorf("Write tools in force %q, want %q", got, tc.wantWrite)
			}
			if grant.Generation != tc.wantGen {
				t.Errorf("generation in force %d, want %d", grant.Generation, tc.wantGen)
			}
			if tc.wantNoChg {
				if change != nil {
					t.Fatalf("held %s, want nothing", change.AgentChange.Describe())
				}
				return
			}
			if change == nil {
				t.Fatalf("nothing held, want %s", tc.wantHeld)
			}
			if got := change.AgentChange.Describe(); got != tc.wantHeld {
				t.Errorf("held %q, want %q", got, tc.wantHeld)
			}
			if change.Generation != 3 || change.InForce != grant.Generation {
				t.Errorf("change of generation %d over %d, want 3 over %d", change.Generation, change.InForce, grant.Generation)
			}
			// Approved, the whole generation is in force, in spec order.
			all := Apply(a, grant, change, "req")
			if got := names(all.ToolsetRefs); got != names(existing(a.Spec.ToolsetRefs, sets)) {
				t.Errorf("approved: in force %q, want every Toolset that exists %q", got, names(existing(a.Spec.ToolsetRefs, sets)))
			}
			for _, held := range change.Toolsets {
				got := writeToolsOf(all.WriteTools, types.NamespacedName{Namespace: held.Namespace, Name: held.Name})
				for _, tool := range held.WriteTools {
					if got == nil || !slices.Contains(got.WriteTools, tool) {
						t.Errorf("approved: %s/%s's Write tools in force %v, want %s among them", held.Namespace, held.Name, got, tool)
					}
				}
			}
			// The next pass holds nothing more.
			a.Status.Granted = &all
			if _, again := Grant(a, sets); again != nil {
				t.Errorf("approved, then held again: %s", again.AgentChange.Describe())
			}
			if all.Generation != 3 || all.ApprovalRequest != "req" {
				t.Errorf("approved: generation %d by %q, want 3 by req", all.Generation, all.ApprovalRequest)
			}
			if want := custosv1alpha1.RolesOf(a.Spec.Identity); (want == nil) != (all.Identity == nil) || (want != nil && *want.AWS != *all.Identity.AWS) {
				t.Errorf("approved: roles %+v, want %+v", all.Identity, want)
			}
		})
	}
}

func existing(rs []custosv1alpha1.ToolsetReference, sets map[types.NamespacedName]*custosv1alpha1.Toolset) []custosv1alpha1.ToolsetReference {
	var out []custosv1alpha1.ToolsetReference
	for _, r := range rs {
		if sets[r.Key("ns")] != nil {
			out = append(out, r)
		}
	}
	return out
}

// TestChangeRequest: bound to the agent's UID, its generation and what it
// adds; held only by policies that ask for it, at their strictest.
func TestChangeRequest(t *testing.T) {
	a := testAgent(map[string]string{"team": "pay"})
	a.Generation = 4
	c := &Change{Agent: a, AgentChange: custosv1alpha1.AgentChange{Generation: 4, InForce: 3,
		Toolsets: []custosv1alpha1.WriteToolset{{Namespace: "ns", Name: "ledger", WriteTools: []string{"pay"}}}}}
	if RequireChange([]custosv1alpha1.ApprovalPolicy{policy("calls", nil)}, a) != nil {
		t.Error("a policy without agentChanges holds a change")
	}
	other := policy("other", func(s *custosv1alpha1.ApprovalPolicySpec) {
		s.AgentChanges = true
		s.AgentSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "hr"}}
	})
	if RequireChange([]custosv1alpha1.ApprovalPolicy{other}, a) != nil {
		t.Error("a policy selecting other agents holds a change")
	}
	req := RequireChange([]custosv1alpha1.ApprovalPolicy{
		policy("b", func(s *custosv1alpha1.ApprovalPolicySpec) {
			s.AgentChanges, s.Quorum, s.Timeout = true, 2, &metav1.Duration{Duration: 2 * time.Hour}
		}),
		policy("a", func(s *custosv1alpha1.ApprovalPolicySpec) {
			s.AgentChanges, s.Timeout = true, &metav1.Duration{Duration: time.Hour}
		}),
		other,
	}, a)
	if req == nil || strings.Join(req.Policies, ",") != "a,b" || req.Quorum != 2 || req.Timeout != time.Hour {
		t.Fatalf("requirement %+v, want policies a and b, quorum 2, 1h", req)
	}
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	ar := ChangeRequest(c, req, now)
	if !IsChangeOf(ar, c) || ar.Spec.Tool != "" || ar.Spec.Change.Generation != 4 || !ar.Spec.ExpiresAt.Equal(&metav1.Time{Time: now.Add(time.Hour)}) {
		t.Errorf("request %+v", ar.Spec)
	}
	if !strings.HasPrefix(ar.Name, "bot-g4-") || ar.Labels[custosv1alpha1.AgentUIDLabel] != "agent-uid" {
		t.Errorf("request %s labelled %v", ar.Name, ar.Labels)
	}
	// Another agent of the same name, another generation or another
	// addition is another change.
	for name, edit := range map[string]func(*Change){
		"another agent of the same name": func(c *Change) { c.Agent = testAgent(nil); c.Agent.UID = "other-uid" },
		"another generation":             func(c *Change) { c.Generation = 5 },
		"another addition":               func(c *Change) { c.Toolsets = nil; c.Identity = &custosv1alpha1.CloudRoles{AWS: roleA} },
	} {
		o := &Change{Agent: a, AgentChange: *c.AgentChange.DeepCopy()}
		edit(o)
		if IsChangeOf(ar, o) {
			t.Errorf("%s: the request for generation 4 counts for it", name)
		}
	}
}
