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
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
)

func (w *world) exchanged() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.exchanges
}

// TestUpstreamLinks: the calls of one caller's token to one Toolset share
// the token custos-sts exchanged for it (and the session opened with it);
// another caller's token gets its own; a revoked token is refused before
// what was kept for it is used; an expired link is exchanged again.
func TestUpstreamLinks(t *testing.T) {
	w := newWorld(t)
	upstream := w.server.Upstream.(*MCPUpstream)
	clk := clocktesting.NewFakeClock(w.now)
	upstream.Clock = clk
	for range 3 {
		if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
			t.Fatalf("get_invoice: %s", got.body)
		}
	}
	if n := w.exchanged(); n != 1 {
		t.Errorf("three calls of one token made %d exchanges, want 1", n)
	}
	seen := map[string]bool{}
	for _, c := range w.ledger.Seen() {
		seen[c.(*sts.Claims).ID] = true
	}
	if len(seen) != 1 {
		t.Errorf("the tool server saw %d tokens, want the one exchanged: %v", len(seen), seen)
	}

	other := w.token(t, func(c *sts.Claims) { c.ID = "jti-2" })
	if got := w.call(t, "acme", other, "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
		t.Fatalf("get_invoice with another token: %s", got.body)
	}
	if n := w.exchanged(); n != 2 {
		t.Errorf("another caller's token made %d exchanges in all, want 2: nothing is shared across callers", n)
	}

	w.mu.Lock()
	w.revoked["jti-1"] = "token jti-1 revoked by oncall"
	w.mu.Unlock()
	calls := w.ledger.Calls()
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.status != http.StatusUnauthorized {
		t.Errorf("a revoked token with a link kept: HTTP %d %s, want 401", got.status, got.body)
	}
	if w.ledger.Calls() != calls || w.exchanged() != 2 {
		t.Errorf("a revoked token reached the tool server (%d calls) or custos-sts (%d exchanges)", w.ledger.Calls()-calls, w.exchanged())
	}
	w.mu.Lock()
	delete(w.revoked, "jti-1")
	w.mu.Unlock()

	clk.Step(24 * time.Hour)
	if got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil); got.result == nil || got.result.IsError {
		t.Fatalf("get_invoice after the link expired: %s", got.body)
	}
	if n := w.exchanged(); n != 3 {
		t.Errorf("%d exchanges, want a third once the kept token expired", n)
	}
}

// TestUpstreamRefusingIsNotFailing: a tool server that answers calls with
// a JSON-RPC error is up: the caller is told what it said, and its
// breaker stays closed however often it happens.
func TestUpstreamRefusingIsNotFailing(t *testing.T) {
	empty := mcp.NewServer(&mcp.Implementation{Name: "no-tools"}, nil)
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return empty },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}))
	t.Cleanup(srv.Close)
	facade, errs := NewFacade([]custosv1alpha1.Toolset{*pinnedLedger()}, []string{"ledger.read"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tool, refused := facade.Lookup("ledger.get_invoice")
	if refused != nil {
		t.Fatal(refused)
	}
	tool.Endpoint = srv.URL
	breakers := NewBreakers(BreakerSettings{Failures: 2, OpenFor: time.Minute})
	u := &MCPUpstream{Tokens: exchangeFunc(func() (string, error) { return "opaque", nil }), Client: srv.Client(), Timeout: time.Second,
		Breakers: breakers, Resource: func(types.NamespacedName) string { return ledgerResource }}
	t.Cleanup(u.Close)
	for range 5 {
		_, refused := u.Call(context.Background(), &sts.Claims{Tenant: "acme"}, "caller", tool, []byte(`{"invoiceNumber":"INV-000001"}`))
		if refused == nil || refused.Reason != ReasonUpstreamError || !strings.Contains(refused.Message, "its server refused the call") {
			t.Fatalf("refused %+v, want %s", refused, ReasonUpstreamError)
		}
	}
	if got := breakers.State(tool.Toolset.String()); got != "closed" {
		t.Errorf("the breaker is %s after five JSON-RPC errors, want closed", got)
	}
}

type exchangeFunc func() (string, error)

func (f exchangeFunc) ExchangeForToolset(context.Context, string, string, string) (string, error) {
	return f()
}

// TestRequestsTheSDKAnswers: a tools/call whose params the MCP SDK cannot
// decode, and a body over the size limit, are answered before any check,
// and are on the record all the same.
func TestRequestsTheSDKAnswers(t *testing.T) {
	w := newWorld(t, func(s *Server) { s.MaxRequestBytes = 4 << 10 })
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["ledger.get_invoice"]}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","_meta":"decided"}}`,
	} {
		n := w.eventCount()
		got := w.post(t, "acme", w.token(t), []byte(body))
		if got.status != http.StatusOK || !strings.Contains(string(got.body), `"error"`) {
			t.Errorf("%s: HTTP %d %s, want a JSON-RPC error", body, got.status, got.body)
		}
		e := w.oneEvent(t, n, body)
		if e.Action != audit.ActionToolRefused || e.Policy != ReasonInvalidRequest || e.Details["checks"] != "caller=pass agent=pass request=fail" ||
			e.Details["person"] != "alice" || e.Subject.Name != "invoice" {
			t.Errorf("%s: recorded %+v", body, e)
		}
	}
	n := w.eventCount()
	huge := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"` + strings.Repeat("9", 8<<10) + `"}}}`
	if got := w.post(t, "acme", w.token(t), []byte(huge)); got.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(got.body), "over 4096 bytes") {
		t.Errorf("a body over the limit: HTTP %d %s, want 413", got.status, got.body)
	}
	if e := w.oneEvent(t, n, "the body over the limit"); e.Action != audit.ActionGatewayRefused || e.Policy != ReasonInvalidRequest {
		t.Errorf("recorded %+v", e)
	}
}

// TestFacadesAreShared: a facade is built once for the same Toolsets and
// scope, whoever calls; another scope, another generation of a Toolset or
// another drift finding is another facade.
func TestFacadesAreShared(t *testing.T) {
	w := newWorld(t)
	for _, tok := range []string{w.token(t), w.token(t, func(c *sts.Claims) { c.ID, c.Subject = "jti-2", "bob" })} {
		w.call(t, "acme", tok, "ledger.get_invoice", okInvoice, nil)
	}
	if n := w.server.facades.Len(); n != 1 {
		t.Errorf("%d facades for two callers with one scope, want 1", n)
	}
	w.call(t, "acme", w.token(t, func(c *sts.Claims) { c.Scope = "ledger.read" }), "ledger.get_invoice", okInvoice, nil)
	if n := w.server.facades.Len(); n != 2 {
		t.Errorf("%d facades after a narrower scope, want 2", n)
	}

	ts := *pinnedLedger()
	ts.UID, ts.Generation = "uid-1", 3
	key := facadeKey([]custosv1alpha1.Toolset{ts}, "ledger.read ledger.write", 0)
	if facadeKey([]custosv1alpha1.Toolset{ts}, "ledger.write ledger.read", 0) != key {
		t.Error("the scopes' order changed the key")
	}
	changed := ts
	changed.Generation = 4
	for what, other := range map[string]string{
		"another generation": facadeKey([]custosv1alpha1.Toolset{changed}, "ledger.read ledger.write", 0),
		"another scope":      facadeKey([]custosv1alpha1.Toolset{ts}, "ledger.read", 0),
		"a drift finding":    facadeKey([]custosv1alpha1.Toolset{ts}, "ledger.read ledger.write", 1),
	} {
		if other == key {
			t.Errorf("%s kept the key", what)
		}
	}
	noGen := *pinnedLedger()
	edited := *pinnedLedger()
	edited.Spec.Tools[0].Description = "changed"
	if facadeKey([]custosv1alpha1.Toolset{noGen}, "s", 0) == facadeKey([]custosv1alpha1.Toolset{edited}, "s", 0) {
		t.Error("a Toolset without a generation: an edited spec kept the key")
	}
}

// TestTraceGoesOn: a call's span is a child of the caller's (its _meta's
// traceparent, else its HTTP headers'), the exchange and the upstream
// call are its children, and the tool server gets the trace in the
// call's _meta: one trace ID from the agent to the tool server, the
// audit record's.
func TestTraceGoesOn(t *testing.T) {
	w := newWorld(t)
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	got := w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, map[string]any{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
	if got.result == nil || got.result.IsError {
		t.Fatalf("get_invoice: %s", got.body)
	}
	e, _ := w.lastEvent()
	if e.TraceID != callerTrace {
		t.Errorf("the record's trace ID %s, want the caller's %s", e.TraceID, callerTrace)
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range w.spans.Ended() {
		if sp.SpanContext().TraceID().String() != callerTrace {
			t.Errorf("span %s in trace %s, not the caller's", sp.Name(), sp.SpanContext().TraceID())
		}
		byName[sp.Name()] = sp
	}
	call, exchange, upstream := byName["tools/call ledger.get_invoice"], byName["token exchange"], byName["upstream tools/call get_invoice"]
	if call == nil || exchange == nil || upstream == nil {
		t.Fatalf("spans %v, want the call's, the exchange's and the upstream call's", slices.Collect(maps.Keys(byName)))
	}
	if call.Parent().SpanID().String() != callerSpan || !call.Parent().IsRemote() || call.SpanKind() != trace.SpanKindServer {
		t.Errorf("the call's span: parent %v, kind %v; want the caller's span, remote", call.Parent(), call.SpanKind())
	}
	if upstream.Parent().SpanID() != call.SpanContext().SpanID() || upstream.SpanKind() != trace.SpanKindClient {
		t.Errorf("the upstream span's parent %v, want the call's span", upstream.Parent())
	}
	if exchange.Parent().SpanID() != upstream.SpanContext().SpanID() {
		t.Errorf("the exchange's parent %v, want the upstream call's span", exchange.Parent())
	}
	parents := w.ledger.TraceParents()
	if len(parents) != 1 || parents[0] != "00-"+callerTrace+"-"+upstream.SpanContext().SpanID().String()+"-01" {
		t.Errorf("the tool server got traceparents %q, want the upstream span's in the caller's trace", parents)
	}

	// Without _meta, the HTTP request's traceparent header is the parent.
	req := w.request(t, "acme", w.token(t), "ledger.get_invoice", okInvoice)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if e, _ := w.lastEvent(); e.TraceID != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("a traceparent header: the record's trace ID %s", e.TraceID)
	}
	// With neither, the gateway starts a trace; the record carries it.
	w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil)
	if e, _ := w.lastEvent(); len(e.TraceID) != 32 || e.TraceID == callerTrace || e.TraceID == "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("no traceparent: the record's trace ID %q, want a new one", e.TraceID)
	}
}

// TestTraceIDWithoutTracing: with OpenTelemetry's no-op provider (a
// gateway whose tracing was never set up), the record still carries a
// trace ID of its own, never the all-zero one.
func TestTraceIDWithoutTracing(t *testing.T) {
	w := newWorld(t, func(s *Server) { s.Tracing = noop.NewTracerProvider() })
	w.call(t, "acme", w.token(t), "ledger.get_invoice", okInvoice, nil)
	if e, _ := w.lastEvent(); len(e.TraceID) != 32 || e.TraceID == strings.Repeat("0", 32) {
		t.Errorf("the record's trace ID %q, want one of its own", e.TraceID)
	}
}
