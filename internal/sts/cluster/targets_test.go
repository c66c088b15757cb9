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
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestTargetsAndScopes: an agent asks tokens for its own Toolsets and for
// agents that take its calls, with the scopes those offer; nothing else.
func TestTargetsAndScopes(t *testing.T) {
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sts")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	otherTenant := fixtures.UniqueTenant("sts")
	otherNS := fixtures.CreateTenantNamespace(t, k8sClient, otherTenant)
	read := custosv1alpha1.Tool{Name: "get_invoice", Access: custosv1alpha1.ToolAccessRead}
	write := custosv1alpha1.Tool{Name: "post_entry", Access: custosv1alpha1.ToolAccessWrite}
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "ledger", tenant, fixtures.WithTools(read, write)))
	fixtures.Create(t, k8sClient, fixtures.Toolset(ns, "bank", tenant, fixtures.WithExternal("203.0.113.0/24"),
		fixtures.WithTools(custosv1alpha1.Tool{Name: "pay", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true})))
	_, _, invoiceToken := agentWithPod(t, ns, tenant, "invoice", nil, fixtures.WithToolsets("ledger"))
	agentWithPod(t, ns, tenant, "payments", &custosv1alpha1.AgentDelegation{Agents: []custosv1alpha1.AgentReference{{Name: "invoice"}}},
		fixtures.WithToolsets("bank"))
	agentWithPod(t, ns, tenant, "crm", nil)
	agentWithPod(t, otherNS, otherTenant, "spy", &custosv1alpha1.AgentDelegation{Agents: []custosv1alpha1.AgentReference{{Name: "invoice", Namespace: ns}}})

	actors := newActors(clocktesting.NewFakePassiveClock(time.Now()))
	invoice, err := actors.ResolveActor(ctx, tenant, invoiceToken)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(invoice.Scopes, []string{"ledger.read", "ledger.write"}) {
		t.Errorf("the invoice agent's scopes: %v, want its Toolset's", invoice.Scopes)
	}
	targets := &Targets{Reader: k8sClient, TrustDomain: "cluster.local"}
	id := func(ns, name string) string { return "spiffe://cluster.local/ns/" + ns + "/sa/agent-" + name }

	got, err := targets.ResolveTarget(ctx, invoice, ToolsetResource(ns, "ledger"))
	if err != nil || got.Audience != ToolsetResource(ns, "ledger") || !slices.Equal(got.Scopes, []string{"ledger.read", "ledger.write"}) {
		t.Errorf("its own Toolset: %+v, %v", got, err)
	}
	got, err = targets.ResolveTarget(ctx, invoice, id(ns, "payments"))
	if err != nil || !slices.Equal(got.Scopes, []string{"bank.write"}) {
		t.Errorf("an agent that takes its calls: %+v, %v", got, err)
	}
	payments := *invoice
	payments.Name, payments.ID = "payments", id(ns, "payments")
	for _, url := range []string{"https://api.example.com", "https://api.example.com:443"} {
		if got, err := targets.ResolveTarget(ctx, &payments, url); err != nil || !slices.Equal(got.Scopes, []string{"bank.write"}) {
			t.Errorf("an external Toolset by its URL %s: %+v, %v", url, got, err)
		}
	}
	for name, tc := range map[string]struct{ target, says string }{
		"another agent's Toolset":                     {ToolsetResource(ns, "bank"), "none of agent"},
		"an agent that takes no calls from it":        {id(ns, "crm"), "takes no calls"},
		"an agent of another tenant, however it says": {id(otherNS, "spy"), "is not of tenant"},
		"an agent that does not exist":                {id(ns, "ghost"), "no agent"},
		"anything else":                               {"https://evil.example", "none of agent"},
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := targets.ResolveTarget(ctx, invoice, tc.target); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("resolved %+v, %v; want a refusal saying %q", got, err, tc.says)
			}
		})
	}

}
