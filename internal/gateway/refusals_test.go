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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/evaluate"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/tooldoubles"
)

const (
	invoiceAgent = "spiffe://cluster.local/ns/finance/sa/agent-invoice"
	idleAgent    = "spiffe://cluster.local/ns/finance/sa/agent-idle"
)

// pinnedLedger is the ledger Toolset as its owner pins it: get_invoice
// (Read), pay (Write, irreversible, requestedBy bound to the person) and
// export_customer (Read, customer bound to the person at their IdP).
func pinnedLedger() *custosv1alpha1.Toolset {
	return fixtures.Toolset("finance", "ledger", "acme", plainHTTP, fixtures.WithTools(
		custosv1alpha1.Tool{Name: "get_invoice", Description: "Fetch one supplier invoice by its number.", Access: custosv1alpha1.ToolAccessRead,
			InputSchema: schema(`{"type":"object","required":["invoiceNumber"],"additionalProperties":false,
				"properties":{"invoiceNumber":{"type":"string","pattern":"^INV-[0-9]{6}$"}}}`),
			OutputSchema: schema(`{"type":"object","required":["invoiceNumber","supplier","amount","currency"],"additionalProperties":false,
				"properties":{"invoiceNumber":{"type":"string"},"supplier":{"type":"string"},"amount":{"type":"number"},"currency":{"type":"string","enum":["EUR","USD"]}}}`)},
		custosv1alpha1.Tool{Name: "pay", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true,
			InputSchema: schema(`{"type":"object","required":["invoice","amount"],"additionalProperties":false,
				"properties":{"invoice":{"type":"string"},"amount":{"type":"number","exclusiveMinimum":0,"maximum":10000},"requestedBy":{"type":"string"}}}`),
			OutputSchema: schema(`{"type":"object","required":["paymentId","status"],"properties":{"paymentId":{"type":"string"},"status":{"type":"string"}}}`),
			Bind:         []custosv1alpha1.ArgumentBinding{{Argument: "requestedBy", Claim: custosv1alpha1.BoundClaimPerson}}},
		custosv1alpha1.Tool{Name: "export_customer", Access: custosv1alpha1.ToolAccessRead,
			InputSchema: schema(`{"type":"object","properties":{"customer":{"type":"string"}}}`),
			Bind:        []custosv1alpha1.ArgumentBinding{{Argument: "customer", Claim: custosv1alpha1.BoundClaimPersonAtIssuer}}},
	))
}

// world is one gateway with everything around it: custos-sts's keys, an
// exchange that mints the Toolset's token, the ledger's MCP server (a
// tooldoubles server that verifies the token it gets), the cluster as
// the gateway reads it, revocation lists and the audit trail.
type world struct {
	now     time.Time
	keys    *stsKeys
	tokens  *exchanger
	ledger  *tooldoubles.Server
	gateway *httptest.Server
	server  *Server

	mu          sync.Mutex
	agents      map[string]*custosv1alpha1.Agent
	revoked     map[string]string // jti, session or agent ID: why
	exchangeErr error
	exchanges   int
	events      []audit.Event
	// driftReports are what the Toolset's Drifted condition was told.
	driftReports []map[string]string
	// spans are the gateway's spans, ended.
	spans *tracetest.SpanRecorder
}

// honestTools is a tool server that serves exactly what ts pins, answering
// as the ledger sample does.
func honestTools(ts *custosv1alpha1.Toolset) []tooldoubles.Tool {
	answers := map[string]func(map[string]any) *mcp.CallToolResult{}
	for _, t := range tooldoubles.Ledger() {
		answers[t.Name] = t.Answer
	}
	var out []tooldoubles.Tool
	for _, p := range ts.Spec.Tools {
		t := tooldoubles.Tool{Name: p.Name, Description: p.Description, InputSchema: objectSchema(rawOf(p.InputSchema)), Answer: answers[p.Name]}
		if raw := rawOf(p.OutputSchema); len(raw) > 0 {
			t.OutputSchema = raw
		}
		out = append(out, t)
	}
	return out
}

type worldOption func(*Server)

func newWorld(t *testing.T, opts ...worldOption) *world {
	t.Helper()
	w := &world{now: time.Now(), agents: map[string]*custosv1alpha1.Agent{}, revoked: map[string]string{}}
	w.keys = newSTSKeys(t, w.now)
	w.tokens = &exchanger{keys: w.keys, now: w.now}
	w.ledger = tooldoubles.New(t, tooldoubles.Options{Tools: honestTools(pinnedLedger()),
		Verify: func(tok string) (any, error) { return w.keys.issuers["acme"].Verify(tok, ledgerResource, w.now) }})
	invoice := fixtures.Agent("finance", "invoice", "acme")
	invoice.Spec.RequireDecisionRecord = custosv1alpha1.DecisionRecordIrreversible
	w.agents[invoiceAgent] = invoice
	w.agents["spiffe://cluster.local/ns/finance/sa/agent-helper"] = fixtures.Agent("finance", "helper", "acme")
	client := resolving(w.ledger.Addr)
	client.Transport = LimitBody(client.Transport, 1<<20)
	drift := &DriftChecks{Every: time.Nanosecond, Report: func(_ context.Context, ts types.NamespacedName, drifted map[string]string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.driftReports = append(w.driftReports, drifted)
	}}
	w.server = &Server{Drift: drift,
		Verifier: &Verifier{IssuerBase: w.keys.URL, Client: w.keys.Client(), Clock: clocktesting.NewFakeClock(w.now)},
		Source:   sourceFunc(w.caller), Revocations: w, Audit: w,
		Upstream: &MCPUpstream{Tokens: w, Client: client, Timeout: 500 * time.Millisecond,
			Breakers: NewBreakers(BreakerSettings{Failures: 3, OpenFor: time.Minute}), Drift: drift,
			Resource: func(ts types.NamespacedName) string { return "urn:custos:toolset:" + ts.Namespace + ":" + ts.Name }},
		Limits: NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 600, Burst: 100}, PerTool: Rate{PerMinute: 600, Burst: 100}}, clocktesting.NewFakeClock(w.now)),
	}
	w.spans = tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(w.spans))
	w.server.Tracing = tp
	w.server.Upstream.(*MCPUpstream).Tracing = tp
	for _, o := range opts {
		o(w.server)
	}
	w.gateway = httptest.NewServer(w.server.Handler())
	t.Cleanup(w.gateway.Close)
	return w
}

func (w *world) caller(_ context.Context, tenant, agentID string) (*custosv1alpha1.Agent, []custosv1alpha1.Toolset, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.agents[agentID]
	switch {
	case !ok:
		return nil, nil, fmt.Errorf("%s is no agent", agentID)
	case a.Labels[custosv1alpha1.TenantLabel] != tenant:
		return nil, nil, fmt.Errorf("agent %s/%s is of tenant %q, not %q", a.Namespace, a.Name, a.Labels[custosv1alpha1.TenantLabel], tenant)
	case a.Spec.Lifecycle.State == custosv1alpha1.LifecycleSuspended:
		return nil, nil, fmt.Errorf("agent %s/%s may not act: spec.lifecycle.state is Suspended", a.Namespace, a.Name)
	}
	return a, []custosv1alpha1.Toolset{*pinnedLedger()}, nil
}

func (w *world) Revoked(_, jti, session, agentID string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range []string{jti, session, agentID} {
		if why, ok := w.revoked[k]; ok && k != "" {
			return why, true
		}
	}
	return "", false
}

func (w *world) Record(_ context.Context, e audit.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, e)
}

func (w *world) ExchangeForToolset(ctx context.Context, tenant, callerToken, resource string) (string, error) {
	w.mu.Lock()
	w.exchanges++
	w.mu.Unlock()
	if w.exchangeErr != nil {
		return "", w.exchangeErr
	}
	return w.tokens.ExchangeForToolset(ctx, tenant, callerToken, resource)
}

func (w *world) lastEvent() (audit.Event, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) == 0 {
		return audit.Event{}, false
	}
	return w.events[len(w.events)-1], true
}

// token is alice's token for acme's gateway, agent invoice acting, with
// both of the ledger's scopes, a session and her name at her IdP.
func (w *world) token(t *testing.T, change ...func(*sts.Claims)) string {
	t.Helper()
	return w.keys.token(t, "acme", w.now, append([]func(*sts.Claims){func(c *sts.Claims) {
		c.Scope, c.ID, c.Session, c.Tenant = "ledger.read ledger.write", "jti-1", "sid-1", "acme"
		c.OriginalSubject = "alice@idp"
	}}, change...)...)
}

// rpcResult is a JSON-RPC answer to tools/call.
type rpcResult struct {
	status int
	header http.Header
	body   string
	result *mcp.CallToolResult
}

func (r rpcResult) text() string {
	if r.result == nil {
		return r.body
	}
	var out []string
	for _, c := range r.result.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			out = append(out, t.Text)
		}
	}
	return strings.Join(out, "|")
}

// call posts one JSON-RPC tools/call, as any MCP client would, to
// tenant's endpoint with token.
func (w *world) call(t *testing.T, tenant, token, tool string, args, meta map[string]any) rpcResult {
	t.Helper()
	params := map[string]any{"name": tool, "arguments": args}
	if meta != nil {
		params["_meta"] = meta
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
	return w.post(t, tenant, token, body)
}

// request is the HTTP request of a tools/call, not sent.
func (w *world) request(t *testing.T, tenant, token, tool string, args map[string]any) *http.Request {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": tool, "arguments": args}})
	req, _ := http.NewRequest(http.MethodPost, w.gateway.URL+"/tenants/"+tenant+"/mcp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

func (w *world) post(t *testing.T, tenant, token string, body []byte) rpcResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.gateway.URL+"/tenants/"+tenant+"/mcp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := rpcResult{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	var msg struct {
		Result json.RawMessage `json:"result"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(raw, &msg) == nil && len(msg.Result) > 0 {
		out.result = &mcp.CallToolResult{}
		if err := json.Unmarshal(msg.Result, out.result); err != nil {
			t.Fatalf("the result %s: %v", msg.Result, err)
		}
	}
	return out
}

func decision(confidence any) map[string]any {
	return map[string]any{"custos.dev/decision": map[string]any{"goal": "settle INV-000001 as approved in the ticket", "reasoning": "the invoice matches the order",
		"alternatives": []any{"wait for the next run"}, "confidence": confidence}}
}

var errExchange = errors.New("custos-sts refused the exchange for urn:custos:toolset:finance:ledger: 400 invalid_request: session sid-1 is revoked")

// refusal is one way a call must not get through, and what must show.
type refusal struct {
	name   string
	setup  func(t *testing.T, w *world)
	tenant string                              // acme unless set
	token  func(t *testing.T, w *world) string // w.token(t) unless set
	tool   string
	args   map[string]any
	meta   map[string]any
	// status is the HTTP status (200: a tool error in a JSON-RPC result).
	status int
	// says is in what the caller is told; reason is the record's policy,
	// check the check that failed.
	says, reason, check string
	// reached: the call reached the tool server (refused on the way out).
	reached bool
}

var okInvoice = map[string]any{"invoiceNumber": "INV-000001"}

func payArgs(extra ...any) map[string]any {
	args := map[string]any{"invoice": "INV-000001", "amount": 120.5}
	for i := 0; i+1 < len(extra); i += 2 {
		args[extra[i].(string)] = extra[i+1]
	}
	return args
}

// TestRefusals: every way in the refusal table is refused, says why to
// the caller in words that name the rule, never reaches the tool server
// (or, refused on the way out, passes nothing of its answer on), and is
// on the audit trail with its reason and the check that refused it.
func TestRefusals(t *testing.T) {
	withClaims := func(change func(*sts.Claims)) func(*testing.T, *world) string {
		return func(t *testing.T, w *world) string { return w.token(t, change) }
	}
	behave := func(b tooldoubles.Behaviour) func(*testing.T, *world) {
		return func(_ *testing.T, w *world) { w.ledger.SetBehaviour(b) }
	}
	cases := []refusal{
		// The token.
		{name: "no token", token: func(*testing.T, *world) string { return "" }, tool: "ledger.get_invoice", args: okInvoice,
			status: 401, says: "a bearer token is required", reason: ReasonInvalidToken, check: "caller"},
		{name: "not a JWT", token: func(*testing.T, *world) string { return "opaque-session-cookie" }, tool: "ledger.get_invoice", args: okInvoice,
			status: 401, says: "", reason: ReasonInvalidToken, check: "caller"},
		{name: "another tenant's token", token: func(t *testing.T, w *world) string { return w.keys.token(t, "globex", w.now) },
			tool: "ledger.get_invoice", args: okInvoice, status: 401, says: sts.ReasonUnknownKey, reason: ReasonInvalidToken, check: "caller"},
		{name: "a token for another tenant's gateway, at that gateway's own endpoint", tenant: "globex",
			tool: "ledger.get_invoice", args: okInvoice, status: 401, reason: ReasonInvalidToken, check: "caller"},
		{name: "wrong audience: a token for the tool server", token: withClaims(func(c *sts.Claims) { c.Audience = ledgerResource }),
			tool: "ledger.get_invoice", args: okInvoice, status: 401, says: sts.ReasonWrongAud, reason: ReasonInvalidToken, check: "caller"},
		{name: "token passthrough: the person's own token, no agent acting", token: withClaims(func(c *sts.Claims) { c.Act = nil }),
			tool: "ledger.get_invoice", args: okInvoice, status: 401, says: "no agent acts in the token", reason: ReasonInvalidToken, check: "caller"},
		{name: "expired token", token: withClaims(func(c *sts.Claims) { c.Expiry = c.IssuedAt - 1 }),
			tool: "ledger.get_invoice", args: okInvoice, status: 401, says: sts.ReasonExpired, reason: ReasonInvalidToken, check: "caller"},
		{name: "token not valid yet", token: withClaims(func(c *sts.Claims) { c.NotBefore = c.IssuedAt + 3600; c.Expiry = c.IssuedAt + 7200 }),
			tool: "ledger.get_invoice", args: okInvoice, status: 401, reason: ReasonInvalidToken, check: "caller"},
		{name: "revoked session", setup: func(_ *testing.T, w *world) { w.revoked["sid-1"] = "session sid-1 revoked by oncall: laptop stolen" },
			tool: "ledger.get_invoice", args: okInvoice, status: 401, says: "laptop stolen", reason: ReasonRevoked, check: "agent"},
		{name: "revoked token", setup: func(_ *testing.T, w *world) { w.revoked["jti-1"] = "token jti-1 revoked by oncall: leaked in a log" },
			tool: "ledger.get_invoice", args: okInvoice, status: 401, says: "leaked in a log", reason: ReasonRevoked, check: "agent"},
		{name: "a chain through an agent that may not act (confused deputy)",
			setup: func(_ *testing.T, w *world) {
				w.revoked["spiffe://cluster.local/ns/finance/sa/agent-helper"] = "spec.lifecycle.state is Suspended"
			},
			token: withClaims(func(c *sts.Claims) {
				c.Act = &sts.Actor{Subject: invoiceAgent, Act: &sts.Actor{Subject: "spiffe://cluster.local/ns/finance/sa/agent-helper"}}
			}),
			tool: "ledger.get_invoice", args: okInvoice, status: 401, says: "earlier in the token's actor chain, may not act", reason: ReasonRevoked, check: "agent"},

		// The agent.
		{name: "suspended agent", token: withClaims(func(c *sts.Claims) { c.Act = &sts.Actor{Subject: idleAgent} }),
			setup: func(_ *testing.T, w *world) {
				idle := fixtures.Agent("finance", "idle", "acme")
				idle.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended
				w.agents[idleAgent] = idle
			},
			tool: "ledger.get_invoice", args: okInvoice, status: 403, says: "spec.lifecycle.state is Suspended", reason: ReasonAgentInactive, check: "agent"},
		{name: "suspended between two requests", setup: func(_ *testing.T, w *world) {
			w.agents[invoiceAgent].Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended
		},
			tool: "ledger.get_invoice", args: okInvoice, status: 403, says: "may not act", reason: ReasonAgentInactive, check: "agent"},
		{name: "an agent of another tenant", token: withClaims(func(c *sts.Claims) { c.Act = &sts.Actor{Subject: "spiffe://cluster.local/ns/sales/sa/agent-crm"} }),
			setup: func(_ *testing.T, w *world) {
				w.agents["spiffe://cluster.local/ns/sales/sa/agent-crm"] = fixtures.Agent("sales", "crm", "globex")
			},
			tool: "ledger.get_invoice", args: okInvoice, status: 403, says: `is of tenant "globex"`, reason: ReasonAgentInactive, check: "agent"},
		{name: "a ServiceAccount that is no agent", token: withClaims(func(c *sts.Claims) {
			c.Act = &sts.Actor{Subject: "spiffe://cluster.local/ns/finance/sa/custos-gateway"}
		}),
			tool: "ledger.get_invoice", args: okInvoice, status: 403, says: "is no agent", reason: ReasonAgentInactive, check: "agent"},

		// The tool.
		{name: "unknown tool", tool: "ledger.delete_everything", args: map[string]any{},
			says: `no tool "ledger.delete_everything" here`, reason: ReasonUnknownTool, check: "tool"},
		{name: "a tool the upstream has but the Toolset does not declare", tool: "ledger.list_ledger_entries", args: map[string]any{},
			says: `no tool "ledger.list_ledger_entries" here`, reason: ReasonUnknownTool, check: "tool"},
		{name: "the upstream's own name, without the Toolset", tool: "get_invoice", args: okInvoice,
			says: `no tool "get_invoice" here`, reason: ReasonUnknownTool, check: "tool"},
		{name: "a write tool with a read-only token: told as if it did not exist",
			token: withClaims(func(c *sts.Claims) { c.Scope = "ledger.read" }), tool: "ledger.pay", args: payArgs(), meta: decision(0.9),
			says: `no tool "ledger.pay" here`, reason: ReasonOutOfScope, check: "tool"},

		// The arguments.
		{name: "arguments that are not an object", tool: "ledger.get_invoice", args: nil,
			says: "argument", reason: ReasonInvalidInput, check: "input"},
		{name: "a number where a string is pinned", tool: "ledger.get_invoice", args: map[string]any{"invoiceNumber": 1},
			says: "argument /invoiceNumber: got number, want string", reason: ReasonInvalidInput, check: "input"},
		{name: "an injection in an argument", tool: "ledger.get_invoice", args: map[string]any{"invoiceNumber": "INV-000001' OR 1=1 --"},
			says: "does not match pattern", reason: ReasonInvalidInput, check: "input"},
		{name: "a required argument left out", tool: "ledger.get_invoice", args: map[string]any{},
			says: "invoiceNumber", reason: ReasonInvalidInput, check: "input"},
		{name: "an argument the schema does not have", tool: "ledger.get_invoice", args: map[string]any{"invoiceNumber": "INV-000001", "as": "admin"},
			says: "additional", reason: ReasonInvalidInput, check: "input"},
		{name: "an amount above the pinned maximum", tool: "ledger.pay", args: payArgs("amount", 20000), meta: decision(0.9),
			says: "argument /amount", reason: ReasonInvalidInput, check: "input"},
		{name: "a negative amount", tool: "ledger.pay", args: payArgs("amount", -5), meta: decision(0.9),
			says: "argument /amount", reason: ReasonInvalidInput, check: "input"},
		{name: "spoofed bound argument: paying as someone else", tool: "ledger.pay", args: payArgs("requestedBy", "bob"), meta: decision(0.9),
			says: "argument requestedBy is set from the token (Person)", reason: ReasonSpoofedArgument, check: "bind"},
		{name: "a number beyond a 64-bit float in an open argument", tool: "ledger.export_customer",
			args: map[string]any{"limit": json.Number("1e400")}, says: "argument /limit: number 1e400 is beyond what a 64-bit float holds",
			reason: ReasonInvalidInput, check: "input"},
		{name: "a bound argument the token cannot fill", token: withClaims(func(c *sts.Claims) { c.OriginalSubject = "" }),
			tool: "ledger.export_customer", args: map[string]any{}, says: "which this token does not carry", reason: ReasonInvalidInput, check: "bind"},

		// The decision record.
		{name: "missing decision record on an irreversible call", tool: "ledger.pay", args: payArgs(),
			says: "a decision record is required", reason: ReasonMissingDecisionRecord, check: "decision"},
		{name: "a decision record with a confidence above 1", tool: "ledger.pay", args: payArgs(), meta: decision(1.5),
			says: "confidence", reason: ReasonInvalidDecisionRecord, check: "decision"},
		{name: "a decision record with a confidence that is not a number", tool: "ledger.pay", args: payArgs(), meta: decision("high"),
			says: "confidence", reason: ReasonInvalidDecisionRecord, check: "decision"},
		{name: "a decision record with a member the gateway does not know", tool: "ledger.pay", args: payArgs(),
			meta: map[string]any{"custos.dev/decision": map[string]any{"goal": "pay", "approvedBy": "the CFO"}},
			says: "approvedBy", reason: ReasonInvalidDecisionRecord, check: "decision"},
		{name: "a decision record without a goal", tool: "ledger.pay", args: payArgs(),
			meta: map[string]any{"custos.dev/decision": map[string]any{"reasoning": "because"}},
			says: "goal", reason: ReasonInvalidDecisionRecord, check: "decision"},
		{name: "a decision record that is not an object, on a read call", tool: "ledger.get_invoice", args: okInvoice,
			meta: map[string]any{"custos.dev/decision": "trust me"}, reason: ReasonInvalidDecisionRecord, check: "decision"},
		{name: "an oversized _meta", tool: "ledger.get_invoice", args: okInvoice,
			meta: map[string]any{"padding": strings.Repeat("x", 70<<10)}, reason: ReasonInvalidMeta, check: "decision"},

		// On the way out.
		{name: "output that breaks the pinned schema", setup: behave(tooldoubles.BreakOutput), tool: "ledger.get_invoice", args: okInvoice,
			says: "(its Toolset's outputSchema); nothing of it is passed on", reason: ReasonInvalidOutput, check: "output", reached: true},
		{name: "an answer of 10 MiB", setup: behave(tooldoubles.Huge), tool: "ledger.get_invoice", args: okInvoice,
			says: "answer exceeds 1 MiB (the gateway's --max-response-bytes); nothing of it is passed on", reason: ReasonUpstreamTooLarge, check: "upstream", reached: true},
		{name: "an upstream that stalls", setup: behave(tooldoubles.Stall), tool: "ledger.get_invoice", args: okInvoice,
			says: "did not answer within 500ms", reason: ReasonUpstreamTimeout, check: "upstream", reached: true},
		{name: "an upstream that is down", setup: behave(tooldoubles.Fail), tool: "ledger.get_invoice", args: okInvoice,
			says: "its server", reason: ReasonUpstreamUnavailable, check: "upstream"},
		{name: "custos-sts refuses the Toolset's token", setup: func(_ *testing.T, w *world) { w.exchangeErr = errExchange },
			tool: "ledger.get_invoice", args: okInvoice, says: "session sid-1 is revoked", reason: ReasonTokenExchange, check: "upstream"},
		{name: "an open circuit: the upstream is not called again",
			setup: func(t *testing.T, w *world) {
				w.ledger.SetBehaviour(tooldoubles.Fail)
				for range 3 {
					w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil)
				}
				w.ledger.SetBehaviour(tooldoubles.Honest)
			},
			tool: "ledger.get_invoice", args: okInvoice, says: "(circuit open)", reason: ReasonUpstreamUnavailable, check: "upstream"},

		{name: "a tool whose server changed its schema after it was listed (rug pull)",
			setup: func(t *testing.T, w *world) {
				w.ledger.SetBehaviour(tooldoubles.DriftAfterList)
				if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
					t.Fatalf("the call before the drift: %s", got.body)
				}
			},
			tool: "ledger.get_invoice", args: okInvoice, says: "its server's inputSchema differ from the ones its Toolset pins", reason: ReasonDrifted, check: "drift"},

		// Rate limits.
		{name: "rate limit per agent", setup: func(t *testing.T, w *world) {
			w.server.Limits = NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 2, Burst: 2}}, clocktesting.NewFakeClock(w.now))
			for range 2 {
				w.call(t, "acme", w.token(t), "ledger.get_invoice", map[string]any{"invoiceNumber": 1}, nil)
			}
		}, tool: "ledger.get_invoice", args: okInvoice, says: "rate limit of 2 calls per minute per agent reached", reason: ReasonRateLimited, check: "rate"},
		{name: "rate limit per tool", setup: func(t *testing.T, w *world) {
			w.server.Limits = NewLimiter(RateLimits{PerTool: Rate{PerMinute: 1, Burst: 1}}, clocktesting.NewFakeClock(w.now))
			w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil)
		}, tool: "ledger.get_invoice", args: okInvoice, says: "on this tool reached", reason: ReasonRateLimited, check: "rate"},
	}
	// The policy over the call: the DataBoundary's callChecks.
	cases = append(cases, policyRefusals()...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if tc.setup != nil {
				tc.setup(t, w)
			}
			tenant := tc.tenant
			if tenant == "" {
				tenant = "acme"
			}
			token := w.token(t)
			if tc.tenant != "" {
				token = w.keys.token(t, "globex", w.now, func(c *sts.Claims) { c.Audience = sts.GatewayAudience("acme") })
			}
			if tc.token != nil {
				token = tc.token(t, w)
			}
			callsBefore := w.ledger.Calls()
			w.mu.Lock()
			recorded := len(w.events)
			w.mu.Unlock()
			got := w.call(t, tenant, token, tc.tool, tc.args, tc.meta)

			status := tc.status
			if status == 0 {
				status = http.StatusOK
			}
			if got.status != status {
				t.Fatalf("HTTP %d %s, want %d", got.status, got.body, status)
			}
			if status == http.StatusOK && (got.result == nil || !got.result.IsError) {
				t.Fatalf("%s: want a tool error", got.body)
			}
			if status == http.StatusUnauthorized && !strings.Contains(got.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("401 without the RFC 6750 challenge: %v", got.header)
			}
			if !strings.Contains(got.text(), tc.says) {
				t.Errorf("the caller was told %q, want it to say %q", got.text(), tc.says)
			}
			if tc.reached == (w.ledger.Calls() == callsBefore) {
				t.Errorf("the tool server got %d calls; reached should be %v", w.ledger.Calls()-callsBefore, tc.reached)
			}
			if tc.reached && strings.Contains(got.text(), "Ignore") {
				t.Errorf("the upstream's text passed: %q", got.text())
			}

			w.mu.Lock()
			events := w.events[recorded:]
			w.mu.Unlock()
			if len(events) != 1 {
				t.Fatalf("%d audit records for the call, want 1: %+v", len(events), events)
			}
			e := events[0]
			if e.Action != audit.ActionToolRefused || e.Decision != audit.DecisionDeny || e.Policy != tc.reason {
				t.Errorf("recorded %s %s %s, want tool.refused deny %s (%s)", e.Action, e.Decision, e.Policy, tc.reason, e.Reason)
			}
			if !strings.Contains(" "+e.Details["checks"], " "+tc.check+"=fail") || strings.Count(e.Details["checks"], "=fail") != 1 {
				t.Errorf("checks %q, want %s to have failed, alone", e.Details["checks"], tc.check)
			}
			if e.Details["tool"] != tc.tool || e.TraceID == "" || e.Details["latencyMicros"] == "" {
				t.Errorf("the record %+v, want the tool %s, a trace ID and the latency", e, tc.tool)
			}
			if e.Reason == "" || (tc.says != "" && !strings.Contains(e.Reason, tc.says)) {
				t.Errorf("the record's reason %q, want what the caller was told (%q)", e.Reason, tc.says)
			}
			// And its span: one of the gateway's, in the record's trace,
			// saying the same.
			var spans []sdktrace.ReadOnlySpan
			for _, sp := range w.spans.Ended() {
				if sp.SpanKind() == trace.SpanKindServer && sp.SpanContext().TraceID().String() == e.TraceID {
					spans = append(spans, sp)
				}
			}
			if len(spans) != 1 {
				t.Fatalf("%d gateway spans in the record's trace %s, want 1", len(spans), e.TraceID)
			}
			if sp := spans[0]; sp.Status().Code != codes.Error || !slices.Contains(sp.Attributes(), attribute.String(attrReason, tc.reason)) ||
				!slices.Contains(sp.Attributes(), attribute.String(attrChecks, e.Details["checks"])) {
				t.Errorf("span %s: status %v, attributes %v; want an error saying %s and the record's checks", sp.Name(), sp.Status(), sp.Attributes(), tc.reason)
			}
			if got.status == http.StatusOK && (e.Details["person"] != "alice" || e.Details["jti"] != "jti-1" || e.Subject.Name != "invoice" ||
				!strings.Contains(e.Details["chain"], invoiceAgent)) {
				t.Errorf("the record %+v, want alice, the jti, agent invoice and the chain", e)
			}
		})
	}
	if len(cases) < 40 {
		t.Errorf("%d cases; the table has at least 40", len(cases))
	}
}

// TestAllowedCalls: a call that passes every check reaches the tool server
// with the Toolset's own token and the bound arguments filled from the
// caller's token, the caller gets the validated answer alone, and the
// record says every check passed, with the digests of the arguments and
// of the decision record (never they).
func TestAllowedCalls(t *testing.T) {
	w := newWorld(t)
	got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, map[string]any{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if got.result == nil || got.result.IsError || got.text() != `{"amount":120.5,"currency":"EUR","invoiceNumber":"INV-000001","supplier":"Acme Paper GmbH"}` {
		t.Fatalf("get_invoice: %s", got.body)
	}
	e, _ := w.lastEvent()
	if e.Action != audit.ActionToolCalled || e.Decision != audit.DecisionAllow || e.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		e.Details["checks"] != "caller=pass agent=pass tool=pass rate=pass decision=pass input=pass drift=pass upstream=pass output=pass" ||
		e.Details["argumentsDigest"] != digest([]byte(`{"invoiceNumber":"INV-000001"}`)) || e.Details["toolset"] != "finance/ledger" || e.Details["outcome"] != "ok" {
		t.Errorf("the record: %+v", e)
	}
	for _, c := range w.ledger.Seen() {
		if c := c.(*sts.Claims); c.Audience != ledgerResource || c.Subject != "alice" || c.Act == nil || c.Act.Subject != invoiceAgent {
			t.Errorf("the tool server saw %+v, want alice's token for the ledger, invoice acting", c)
		}
	}

	// Text an upstream writes beside valid structured content never passes.
	w.ledger.SetBehaviour(tooldoubles.InjectText)
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); strings.Contains(got.text(), "Ignore") || got.result.IsError {
		t.Errorf("an injected text passed: %q", got.text())
	}
	// The tool's own error is its answer, passed on, not a refusal.
	w.ledger.SetBehaviour(tooldoubles.Error)
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.text() != tooldoubles.NoSuchInvoice || !got.result.IsError {
		t.Errorf("the tool's error: %q", got.text())
	} else if e, _ := w.lastEvent(); e.Action != audit.ActionToolCalled || e.Details["outcome"] != "toolError" {
		t.Errorf("the tool's error recorded as %+v", e)
	}
	w.ledger.SetBehaviour(tooldoubles.Honest)

	// pay, with its decision record; requestedBy is the token's person.
	got = w.call(t, "acme", w.token(t), "ledger.pay", payArgs(), decision(0.8))
	if got.result == nil || got.result.IsError {
		t.Fatalf("pay: %s", got.body)
	}
	e, _ = w.lastEvent()
	rec, _ := ParseMeta(decision(0.8))
	if e.Details["decisionDigest"] != rec.DecisionDigest || e.Details["argumentsDigest"] != digest([]byte(`{"invoice":"INV-000001","amount":120.5,"requestedBy":"alice"}`)) {
		t.Errorf("pay's record: %+v, want the decision record's digest and that of the arguments with requestedBy alice", e.Details)
	}
	// What an evaluator reads of it on the trail alone: an irreversible
	// Write, the stated confidence, and never the decision's text.
	if e.Details["access"] != "Write" || e.Details["irreversible"] != "true" || e.Details["decision.confidence"] != "0.8" {
		t.Errorf("pay's record: %+v, want access Write, irreversible and the decision's confidence", e.Details)
	}
	for k, v := range e.Details {
		if strings.Contains(v, "settle INV-000001") || strings.Contains(v, "the invoice matches the order") {
			t.Errorf("the decision record's text is on the record (%s)", k)
		}
	}
	if _, ok := e.Details["decision.intentTool"]; ok {
		t.Errorf("pay's record names an intent its decision record has not: %+v", e.Details)
	}
	// With a stated intent: its tool, and its arguments' digest, which
	// is the call's when they are the arguments sent.
	stated := decision(0.9)
	stated["custos.dev/decision"].(map[string]any)["intent"] = map[string]any{"tool": "ledger.pay",
		"arguments": map[string]any{"requestedBy": "alice", "amount": 120.5, "invoice": "INV-000001"}}
	if got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs("requestedBy", "alice"), stated); got.result == nil || got.result.IsError {
		t.Fatalf("pay with an intent: %s", got.body)
	}
	e, _ = w.lastEvent()
	if e.Details["decision.intentTool"] != "ledger.pay" || e.Details["decision.intentArgumentsDigest"] != e.Details["argumentsDigest"] {
		t.Errorf("pay's record with an intent: %+v, want its tool and its arguments' digest equal to the call's", e.Details)
	}
	// An intent's tool is kept on the record only so long.
	long := map[string]string{}
	recordDecision(long, &DecisionRecord{Intent: &DecisionIntent{Tool: strings.Repeat("x", 100_000)}})
	if n := len(long["decision.intentTool"]); n == 0 || n > maxRecordedIntentTool+len("…") {
		t.Errorf("a 100,000-character intent tool is kept as %d bytes", n)
	}
	// A read's record says so, and has no decision's.
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
		t.Fatalf("get_invoice: %s", got.body)
	}
	e, _ = w.lastEvent()
	if e.Details["access"] != "Read" || e.Details["irreversible"] != "" || e.Details["decision.confidence"] != "" {
		t.Errorf("get_invoice's record: %+v", e.Details)
	}

	// The evaluators' rubrics read these records alone: a payment made
	// with a confidence of 0.3, and one that is not the call its decision
	// record stated, are raised; the calls above are not.
	before := w.eventCount()
	if got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs("requestedBy", "alice"), decision(0.3)); got.result == nil || got.result.IsError {
		t.Fatalf("pay with a confidence of 0.3: %s", got.body)
	}
	other := decision(0.9)
	other["custos.dev/decision"].(map[string]any)["intent"] = map[string]any{"tool": "ledger.pay",
		"arguments": map[string]any{"requestedBy": "alice", "amount": 12000, "invoice": "INV-000001"}}
	if got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs("requestedBy", "alice"), other); got.result == nil || got.result.IsError {
		t.Fatalf("pay with other arguments than stated: %s", got.body)
	}
	var records []audit.Record
	for i, e := range w.eventsSince(0) {
		records = append(records, audit.Record{Seq: uint64(i), Time: w.now, Type: audit.TypeEvent, Action: e.Action, Actor: &e.Actor,
			Subject: &e.Subject, Decision: e.Decision, Reason: e.Reason, Policy: e.Policy, TraceID: e.TraceID, Details: e.Details})
	}
	var raised []string
	for _, h := range evaluate.Evaluate(records, evaluate.Fixed(evaluate.DefaultThresholds)) {
		if h.Seqs[0] < uint64(before) {
			t.Errorf("a call before the two raised %s: %s", h.Rubric, h.Why)
			continue
		}
		raised = append(raised, fmt.Sprintf("%d %s", h.Seqs[0]-uint64(before), h.Rubric))
	}
	if want := []string{"0 " + evaluate.RubricLowConfidence, "1 " + evaluate.RubricIntentMismatch}; !slices.Equal(raised, want) {
		t.Errorf("the rubrics over the gateway's own records raised %q, want %q", raised, want)
	}
	// Sent with the token's own value, a bound argument is taken as it is.
	if got := w.call(t, "acme", w.token(t), "ledger.pay", payArgs("requestedBy", "alice"), decision(0.8)); got.result == nil || got.result.IsError {
		t.Errorf("pay with requestedBy alice: %s", got.body)
	}
}

// listTools is what tools/list gives the caller, by name.
func (w *world) listTools(t *testing.T) []string {
	t.Helper()
	got := w.post(t, "acme", w.token(t), []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`))
	var msg struct {
		Result struct {
			Tools []struct{ Name string } `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(got.body), &msg); err != nil {
		t.Fatalf("tools/list: %s", got.body)
	}
	var names []string
	for _, tool := range msg.Result.Tools {
		names = append(names, tool.Name)
	}
	return names
}

// TestDrift: a tool server that changes a tool after it was listed gets
// that tool hidden and refused, the Toolset told (its Drifted condition),
// and the tool back once the server serves the pinned definition again.
func TestDrift(t *testing.T) {
	w := newWorld(t)
	w.server.Drift.Every = time.Hour
	if got := w.listTools(t); !slices.Contains(got, "ledger.get_invoice") {
		t.Fatalf("tools/list before: %v", got)
	}
	w.ledger.SetBehaviour(tooldoubles.DriftAfterList)
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
		t.Fatalf("the first call, checked against the first listing: %s", got.body)
	}
	w.server.Drift.Every = time.Nanosecond
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); !strings.Contains(got.text(), "is not served: its server's inputSchema differ") {
		t.Fatalf("the call after the drift: %s", got.body)
	}
	w.server.Drift.Every = time.Hour
	// The double changes every tool's schema: each is hidden.
	if got := w.listTools(t); len(got) != 0 {
		t.Errorf("tools/list after the drift: %v, want every drifted tool hidden", got)
	}
	calls := w.ledger.Calls()
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); !strings.Contains(got.text(), "is not served") || w.ledger.Calls() != calls {
		t.Errorf("a call of the hidden tool: %s, %d calls reached its server", got.body, w.ledger.Calls()-calls)
	}
	w.mu.Lock()
	reports := slices.Clone(w.driftReports)
	w.mu.Unlock()
	if len(reports) != 2 || len(reports[0]) != 0 || !strings.Contains(reports[1]["get_invoice"], "inputSchema") {
		t.Errorf("the Toolset was told %v, want nothing drifted, then get_invoice", reports)
	}

	// The server reverts: at the next check the tool is back.
	w.ledger.SetBehaviour(tooldoubles.Honest)
	w.server.Drift.Every = time.Nanosecond
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
		t.Errorf("after the server reverted: %s", got.body)
	}
	if got := w.listTools(t); !slices.Contains(got, "ledger.get_invoice") {
		t.Errorf("tools/list after the revert: %v", got)
	}
}
