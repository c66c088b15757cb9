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
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	clocktesting "k8s.io/utils/clock/testing"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
)

// source: agent invoice has the ledger and crm Toolsets; agent idle is
// suspended.
type source struct{}

func (source) Caller(_ context.Context, tenant, agentID string) (*custosv1alpha1.Agent, []custosv1alpha1.Toolset, error) {
	switch {
	case tenant == "acme" && agentID == "spiffe://cluster.local/ns/finance/sa/agent-invoice":
		return fixtures.Agent("finance", "invoice", "acme"), toolsets(), nil
	case strings.HasSuffix(agentID, "/sa/agent-idle"):
		return nil, nil, errors.New("it is Suspended")
	}
	return nil, nil, errors.New("no such agent")
}

// echo is the upstream: it says which tool it was asked for, for whom.
type echo struct{ calls []string }

func (e *echo) Call(_ context.Context, caller *sts.Claims, _ string, tool *Tool, args json.RawMessage) (*mcp.CallToolResult, *Refusal) {
	e.calls = append(e.calls, tool.Name)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: tool.Toolset.String() + " " + tool.Spec.Name + " for " + caller.Subject + " " + string(args)}}}, nil
}

// TestMCPFacade: an MCP client (the SDK's own) holding the token an agent
// was given for the gateway lists the facade its scope allows, served as
// the Toolset pins it, calls a tool, and is refused for a tool outside its
// scope and for bad arguments before anything reaches the upstream; no
// token, another tenant's, or a suspended agent's gets no MCP session.
func TestMCPFacade(t *testing.T) {
	now := time.Now()
	keys := newSTSKeys(t, now)
	up := &echo{}
	gw := &Server{Verifier: &Verifier{IssuerBase: keys.URL, Client: keys.Client(), Clock: clocktesting.NewFakeClock(now)}, Source: source{}, Upstream: up}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	connect := func(token, tenant string) (*mcp.ClientSession, error) {
		client := mcp.NewClient(&mcp.Implementation{Name: "agent"}, nil)
		return client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL + "/tenants/" + tenant + "/mcp",
			HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}}, DisableStandaloneSSE: true}, nil)
	}
	readOnly := keys.token(t, "acme", now, func(c *sts.Claims) { c.Scope = "ledger.read crm.read" })
	session, err := connect(readOnly, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	list, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
		if tool.Name == "ledger.get_invoice" && (tool.Description != "Reads one invoice, as the Toolset pins it." || !tool.Annotations.ReadOnlyHint ||
			!strings.Contains(mustJSON(t, tool.InputSchema), `"pattern":"^INV-[0-9]+$"`)) {
			t.Errorf("ledger.get_invoice as listed: %+v", tool)
		}
	}
	if !slices.Equal(names, []string{"crm.find_customer", "ledger.get_invoice"}) {
		t.Errorf("tools/list: %v, want the read tools alone", names)
	}

	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "ledger.get_invoice", Arguments: map[string]any{"id": "INV-7"}})
	if err != nil || res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, `finance/ledger get_invoice for alice {"id":"INV-7"}`) {
		t.Errorf("a valid call: %+v, %v", res, err)
	}
	for _, tc := range []struct {
		tool string
		args map[string]any
		says string
	}{
		{"ledger.pay", map[string]any{"amount": 5}, `no tool "ledger.pay" here`},
		{"ledger.get_invoice", map[string]any{"id": 7}, "argument /id: got number, want string"},
	} {
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
		if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, tc.says) {
			t.Errorf("%s %v: %+v, %v; want a tool error saying %q", tc.tool, tc.args, res, err, tc.says)
		}
	}
	if !slices.Equal(up.calls, []string{"ledger.get_invoice"}) {
		t.Errorf("the upstream saw %v, want the valid call alone", up.calls)
	}

	for name, tc := range map[string]struct{ token, tenant, says string }{
		"no token":                    {"", "acme", "Unauthorized"},
		"another tenant's token":      {keys.token(t, "globex", now), "acme", "Unauthorized"},
		"a token for a tool server":   {keys.token(t, "acme", now, func(c *sts.Claims) { c.Audience = "urn:custos:toolset:finance:ledger" }), "acme", "Unauthorized"},
		"a suspended agent's token":   {keys.token(t, "acme", now, func(c *sts.Claims) { c.Act = &sts.Actor{Subject: "spiffe://cluster.local/ns/finance/sa/agent-idle"} }), "acme", "Forbidden"},
		"a token of another endpoint": {keys.token(t, "acme", now), "globex", "Unauthorized"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := connect(tc.token, tc.tenant)
			if err == nil {
				s.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("refused with %v, want %s", err, tc.says)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
