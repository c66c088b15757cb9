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
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestAgentToolsets: custos-gateway gets the acting agent's Toolsets of
// its own tenant while it may act, and why not otherwise.
func TestAgentToolsets(t *testing.T) {
	ctx := context.Background()
	tenant, other := fixtures.UniqueTenant("gw"), fixtures.UniqueTenant("gw")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	otherNS := fixtures.CreateTenantNamespace(t, k8sClient, other)
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant))
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "crm", tenant, fixtures.WithTools(
		custosv1alpha1.Tool{Name: "find_contact", Access: custosv1alpha1.ToolAccessRead},
		custosv1alpha1.Tool{Name: "update_contact", Access: custosv1alpha1.ToolAccessWrite},
		custosv1alpha1.Tool{Name: "delete_contact", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true})))
	fixtures.Create(t, k8sClient, fixtures.Toolset(otherNS, "payroll", other))
	invoice, _, _ := agentWithPod(t, ns, tenant, "invoice", nil, fixtures.WithToolsets("ledger", "crm"),
		func(a *custosv1alpha1.Agent) {
			a.Spec.ToolsetRefs = append(a.Spec.ToolsetRefs, custosv1alpha1.ToolsetReference{Name: "payroll", Namespace: otherNS})
		})
	src := &AgentToolsets{Reader: k8sClient, TrustDomain: "cluster.local"}
	id := "spiffe://cluster.local/ns/" + ns + "/sa/agent-invoice"

	agent, sets, err := src.Caller(ctx, tenant, id)
	if err == nil && agent.UID != invoice.UID {
		t.Errorf("the caller's Agent is %s/%s (%s), want invoice", agent.Namespace, agent.Name, agent.UID)
	}
	var names []string
	for _, ts := range sets {
		names = append(names, ts.Name)
	}
	if err != nil || strings.Join(names, ",") != "ledger,crm" {
		t.Errorf("invoice's Toolsets: %v, %v; want ledger and crm, not another tenant's payroll", names, err)
	}

	// The Toolsets and Write tools in force, not those asked for: crm
	// waiting for approval is not served, nor a Write tool its owner added
	// since its Write tools were approved (nor crm's write scope while
	// none of them is in force); nothing is before Custos granted anything.
	crm := []custosv1alpha1.ToolsetReference{{Name: "ledger"}, {Name: "crm"}}
	for _, tc := range []struct {
		grant       *custosv1alpha1.AgentGrant
		want, scope string
	}{
		{&custosv1alpha1.AgentGrant{Generation: 1, ToolsetRefs: []custosv1alpha1.ToolsetReference{{Name: "ledger"}}}, "ledger[get_invoice]", "ledger.read"},
		{&custosv1alpha1.AgentGrant{Generation: 1, ToolsetRefs: crm}, "ledger[get_invoice] crm[find_contact]", "ledger.read crm.read"},
		{&custosv1alpha1.AgentGrant{Generation: 1, ToolsetRefs: crm, WriteTools: []custosv1alpha1.WriteToolset{
			{Namespace: ns, Name: "crm", WriteTools: []string{"update_contact"}}}},
			"ledger[get_invoice] crm[find_contact update_contact]", "ledger.read crm.read crm.write"},
		{&custosv1alpha1.AgentGrant{Generation: 1, ToolsetRefs: crm, WriteTools: []custosv1alpha1.WriteToolset{
			{Namespace: "elsewhere", Name: "crm", WriteTools: []string{"update_contact", "delete_contact"}}}},
			"ledger[get_invoice] crm[find_contact]", "ledger.read crm.read"},
		{&custosv1alpha1.AgentGrant{Generation: 1, ToolsetRefs: crm, WriteTools: []custosv1alpha1.WriteToolset{
			{Namespace: ns, Name: "crm", WriteTools: []string{"update_contact", "delete_contact"}}}},
			"ledger[get_invoice] crm[find_contact update_contact delete_contact]", "ledger.read crm.read crm.write"},
		// Narrowed to some of its tools (spec.toolsetRefs[].tools, as in
		// force): only those are served, and crm's write scope only with
		// a Write tool among them.
		{&custosv1alpha1.AgentGrant{Generation: 1, ToolsetRefs: []custosv1alpha1.ToolsetReference{{Name: "ledger"}, {Name: "crm", Tools: []string{"find_contact"}}},
			WriteTools: []custosv1alpha1.WriteToolset{{Namespace: ns, Name: "crm", WriteTools: []string{"update_contact", "delete_contact"}}}},
			"ledger[get_invoice] crm[find_contact]", "ledger.read crm.read"},
		{&custosv1alpha1.AgentGrant{Generation: 1, ToolsetRefs: []custosv1alpha1.ToolsetReference{{Name: "crm", Tools: []string{"update_contact", "no_such_tool"}}},
			WriteTools: []custosv1alpha1.WriteToolset{{Namespace: ns, Name: "crm", WriteTools: []string{"update_contact", "delete_contact"}}}},
			"crm[update_contact]", "crm.write"},
		{nil, "", ""},
	} {
		invoice.Status.Granted = tc.grant
		if err := k8sClient.Status().Update(ctx, invoice); err != nil {
			t.Fatal(err)
		}
		_, sets, err := src.Caller(ctx, tenant, id)
		names = nil
		for _, ts := range sets {
			var tools []string
			for _, tool := range ts.Spec.Tools {
				tools = append(tools, tool.Name)
			}
			names = append(names, ts.Name+"["+strings.Join(tools, " ")+"]")
		}
		if err != nil || strings.Join(names, " ") != tc.want {
			t.Errorf("invoice's Toolsets granted %+v: %v, %v; want %q", tc.grant, names, err, tc.want)
		}
		targets := &Targets{Reader: k8sClient, TrustDomain: "cluster.local"}
		target, err := targets.ResolveTarget(ctx, &sts.Agent{Namespace: ns, Name: "invoice", Tenant: tenant}, sts.GatewayAudience(tenant))
		if err != nil || strings.Join(target.Scopes, " ") != tc.scope {
			t.Errorf("the gateway's scopes for invoice granted %+v: %+v, %v; want %q", tc.grant, target, err, tc.scope)
		}
	}
	for name, tc := range map[string]struct{ tenant, id, says string }{
		"another tenant's endpoint":  {other, id, "is of tenant"},
		"not an agent":               {tenant, "spiffe://cluster.local/ns/" + ns + "/sa/builder", "is no agent"},
		"an agent that is not there": {tenant, "spiffe://cluster.local/ns/" + ns + "/sa/agent-ghost", "not found"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := src.Caller(ctx, tc.tenant, tc.id); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%v, want refused saying %q", err, tc.says)
			}
		})
	}
	// A freeze refuses the agent the moment it exists, before the manager
	// moves it to Frozen, until it is lifted; one made for an earlier Agent
	// of the same name too (a freeze holds the name: deleting and applying
	// the agent again does not lift it).
	for _, uid := range []string{"an-earlier-invoice", string(invoice.UID)} {
		f := fixtures.Create(t, k8sClient, &custosv1alpha1.AgentFreeze{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "invoice-"},
			Spec: custosv1alpha1.AgentFreezeSpec{Agent: "invoice", AgentUID: uid, Trigger: custosv1alpha1.FreezeCap, Reason: "a cap"}})
		_, _, err := src.Caller(ctx, tenant, id)
		reason, refused := (&Revocations{Reader: k8sClient, TrustDomain: "cluster.local", Namespace: ns}).Revoked(tenant, "", "", id)
		want := "may not act: it is frozen by AgentFreeze " + f.Name + " (Cap)"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a frozen agent's toolsets: %v, want %q", err, want)
		}
		if !refused || !strings.Contains(reason, "frozen by AgentFreeze "+f.Name) {
			t.Errorf("a frozen agent's tokens: %q, %v; want refused", reason, refused)
		}
		f.Status.Phase = custosv1alpha1.FreezeLifted
		if err := k8sClient.Status().Update(ctx, f); err != nil {
			t.Fatal(err)
		}
		if _, _, err := src.Caller(ctx, tenant, id); err != nil {
			t.Errorf("lifted, still refused: %v", err)
		}
	}
	invoice.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended
	if err := k8sClient.Update(ctx, invoice); err != nil {
		t.Fatal(err)
	}
	if _, _, err := src.Caller(ctx, tenant, id); err == nil || !strings.Contains(err.Error(), "may not act: spec.lifecycle.state is Suspended") {
		t.Errorf("a suspended agent: %v", err)
	}
}
