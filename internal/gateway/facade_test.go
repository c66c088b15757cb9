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
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

func schema(s string) *runtime.RawExtension { return &runtime.RawExtension{Raw: []byte(s)} }

// toolsets: ledger (a read and a write tool, the write one irreversible,
// both with input schemas) and crm (a read tool without a schema).
func toolsets() []custosv1alpha1.Toolset {
	ledger := fixtures.Toolset("finance", "ledger", "acme", fixtures.WithTools(
		custosv1alpha1.Tool{Name: "get_invoice", Description: "Reads one invoice, as the Toolset pins it.", Access: custosv1alpha1.ToolAccessRead,
			InputSchema: schema(`{"type":"object","properties":{"id":{"type":"string","pattern":"^INV-[0-9]+$"}},"required":["id"],"additionalProperties":false}`)},
		custosv1alpha1.Tool{Name: "pay", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true,
			InputSchema: schema(`{"type":"object","properties":{"amount":{"type":"number","exclusiveMinimum":0,"maximum":10000}},"required":["amount"]}`)},
	))
	crm := fixtures.Toolset("sales", "crm", "acme", fixtures.WithTools(custosv1alpha1.Tool{Name: "find_customer", Access: custosv1alpha1.ToolAccessRead}))
	return []custosv1alpha1.Toolset{*ledger, *crm}
}

func names(tools []*Tool) []string {
	var out []string
	for _, t := range tools {
		out = append(out, t.Name)
	}
	return out
}

// TestFacadeFollowsTheScope: tools are named <toolset>.<tool>, served as
// the Toolset pins them, and listed only when the token's scope reaches
// them: a read-only token sees no write tool.
func TestFacadeFollowsTheScope(t *testing.T) {
	for _, tc := range []struct {
		scopes []string
		want   []string
	}{
		{[]string{"ledger.read", "ledger.write", "crm.read"}, []string{"crm.find_customer", "ledger.get_invoice", "ledger.pay"}},
		{[]string{"ledger.read"}, []string{"ledger.get_invoice"}},
		{[]string{"ledger.write"}, []string{"ledger.pay"}},
		{[]string{"payments.execute"}, nil},
		{nil, nil},
	} {
		f, errs := NewFacade(toolsets(), tc.scopes)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if got := names(f.List()); !slices.Equal(got, tc.want) {
			t.Errorf("scopes %v: tools/list %v, want %v", tc.scopes, got, tc.want)
		}
	}
	f, _ := NewFacade(toolsets(), []string{"ledger.read", "ledger.write"})
	get := f.List()[0]
	if get.Spec.Description != "Reads one invoice, as the Toolset pins it." || get.Scope != "ledger.read" || get.Toolset.String() != "finance/ledger" ||
		get.Schemas.Input == nil {
		t.Errorf("ledger.get_invoice: %+v", get)
	}
	if pay := f.List()[1]; !pay.Spec.Irreversible || pay.Scope != "ledger.write" {
		t.Errorf("ledger.pay: %+v", pay)
	}
}

// TestCheck: a call is refused, with its own reason on the record, for a
// tool that does not exist, one outside the token's scope (told to the
// caller in the same words), and arguments that break the pinned schema,
// named by field and rule.
func TestCheck(t *testing.T) {
	f, _ := NewFacade(toolsets(), []string{"ledger.read", "crm.read"})
	for _, tc := range []struct {
		name, tool, args string
		reason, says     string
	}{
		{"a valid call", "ledger.get_invoice", `{"id":"INV-42"}`, "", ""},
		{"no arguments to a tool without a schema", "crm.find_customer", ``, "", ""},
		{"a tool no Toolset has", "ledger.delete_all", `{}`, ReasonUnknownTool, `no tool "ledger.delete_all" here`},
		{"the upstream's own name, not the facade's", "get_invoice", `{}`, ReasonUnknownTool, `no tool "get_invoice" here`},
		{"a write tool under a read-only token", "ledger.pay", `{"amount":5}`, ReasonOutOfScope, `no tool "ledger.pay" here`},
		{"a missing required argument", "ledger.get_invoice", `{}`, ReasonInvalidInput, "missing property 'id'"},
		{"an argument of the wrong type", "ledger.get_invoice", `{"id":42}`, ReasonInvalidInput, "argument /id: got number, want string"},
		{"an argument breaking a pattern", "ledger.get_invoice", `{"id":"INV-42; DROP TABLE"}`, ReasonInvalidInput, "argument /id: '"},
		{"an argument the schema does not allow", "ledger.get_invoice", `{"id":"INV-1","as_admin":true}`, ReasonInvalidInput, "additional properties 'as_admin' not allowed"},
		{"arguments that are not an object", "crm.find_customer", `["x"]`, ReasonInvalidInput, "must be a JSON object"},
		{"arguments that are not JSON", "crm.find_customer", `{"id":`, ReasonInvalidInput, "not JSON"},
		{"two JSON values", "crm.find_customer", `{} {}`, ReasonInvalidInput, "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tool, r := f.Check(tc.tool, json.RawMessage(tc.args))
			switch {
			case tc.reason == "" && r != nil:
				t.Fatalf("refused: %+v", r)
			case tc.reason == "":
				if tool == nil || tool.Name != tc.tool {
					t.Errorf("checked %+v, want %s", tool, tc.tool)
				}
			case r == nil:
				t.Fatalf("admitted %s %s", tc.tool, tc.args)
			case r.Reason != tc.reason || !strings.Contains(r.Message, tc.says):
				t.Errorf("refused %s: %q (%s), want %s saying %q", tc.tool, r.Message, r.Reason, tc.reason, tc.says)
			}
		})
	}
	// The record, not the caller, tells an unknown tool from one out of scope.
	_, unknown := f.Check("ledger.delete_all", nil)
	_, hidden := f.Check("ledger.pay", nil)
	if strings.ReplaceAll(unknown.Message, "ledger.delete_all", "X") != strings.ReplaceAll(hidden.Message, "ledger.pay", "X") ||
		!strings.Contains(hidden.Detail, "needs scope ledger.write") {
		t.Errorf("unknown %+v and out of scope %+v", unknown, hidden)
	}
}

// TestFacadeLeavesOutWhatCannotBeServed: a Toolset whose schema does not
// compile gives no tool, nor does a second Toolset of the same name (its
// tools would collide), and each says why.
func TestFacadeLeavesOutWhatCannotBeServed(t *testing.T) {
	sets := toolsets()
	broken := fixtures.Toolset("finance", "payroll", "acme", fixtures.WithTools(custosv1alpha1.Tool{Name: "run", Access: custosv1alpha1.ToolAccessWrite,
		InputSchema: schema(`{"type":"object","properties":{"n":{"type":"nonsense"}}}`)}))
	twin := fixtures.Toolset("other", "crm", "acme", fixtures.WithTools(custosv1alpha1.Tool{Name: "export_all", Access: custosv1alpha1.ToolAccessRead}))
	sets = append(sets, *broken, *twin)
	f, errs := NewFacade(sets, []string{"ledger.read", "crm.read", "payroll.write"})
	if got := names(f.List()); !slices.Equal(got, []string{"crm.find_customer", "ledger.get_invoice"}) {
		t.Errorf("tools/list %v", got)
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "Toolset finance/payroll: tool \"run\": spec.tools[0].inputSchema is not a valid JSON Schema") ||
		!strings.Contains(errs[1].Error(), "Toolset other/crm: its tools would be named as those of Toolset sales/crm") {
		t.Errorf("errors: %v", errs)
	}
}
