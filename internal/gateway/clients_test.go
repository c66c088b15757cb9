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
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/custos-dev/custos/internal/audit"
)

// eventsSince is the audit records written since the first n.
func (w *world) eventsSince(n int) []audit.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events[n:])
}

func (w *world) eventCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// oneEvent is the one audit record written since the first n.
func (w *world) oneEvent(t *testing.T, n int, what string) audit.Event {
	t.Helper()
	events := w.eventsSince(n)
	if len(events) != 1 {
		t.Fatalf("%s: %d audit records, want 1: %+v", what, len(events), events)
	}
	return events[0]
}

// mcpGoClient is a client of mcp-go, an MCP implementation other than the
// go-sdk the gateway is built on, at acme's endpoint, presenting token
// (none when empty).
func mcpGoClient(t *testing.T, w *world, token string) *mcpclient.Client {
	t.Helper()
	var opts []transport.StreamableHTTPCOption
	if token != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	}
	c, err := mcpclient.NewStreamableHttpClient(w.gateway.URL+"/tenants/acme/mcp", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

func mcpGoText(res *mgo.CallToolResult) string {
	var out []string
	for _, c := range res.Content {
		if text, ok := mgo.AsTextContent(c); ok {
			out = append(out, text.Text)
		}
	}
	return strings.Join(out, "|")
}

// sameSchema says how got, a schema as mcp-go decodes it, differs from the
// pinned one; "" when it does not. mcp-go keeps type, properties, required
// and additionalProperties of a schema; the pinned schemas have no other
// keyword at the top, so nothing of them goes unchecked.
func sameSchema(got mgo.ToolArgumentsSchema, pinned []byte) string {
	var want map[string]any
	if err := json.Unmarshal(pinned, &want); err != nil {
		return err.Error()
	}
	for k := range want {
		if !slices.Contains([]string{"type", "properties", "required", "additionalProperties"}, k) {
			return fmt.Sprintf("the pinned schema has %q, which mcp-go does not keep: the test cannot check it", k)
		}
	}
	var required []any
	for _, r := range got.Required {
		required = append(required, r)
	}
	wantRequired, _ := want["required"].([]any)
	wantProps, _ := want["properties"].(map[string]any)
	if got.Type != want["type"] || !reflect.DeepEqual(got.Properties, wantProps) || !reflect.DeepEqual(required, wantRequired) ||
		!reflect.DeepEqual(got.AdditionalProperties, want["additionalProperties"]) {
		return fmt.Sprintf("got %+v, want %s", got, pinned)
	}
	return ""
}

// sdkBearer presents a bearer token on every request.
type sdkBearer struct{ token string }

func (b sdkBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestSecondMCPImplementation: a client of mcp-go, an MCP implementation
// independent of the go-sdk the gateway serves with, initializes, lists
// the facade with the pinned descriptions, schemas and hints, calls a
// tool and gets its structured content as the go-sdk's client does, is
// refused bad input as a tool error naming the argument, sends a decision
// record in _meta, and is refused at initialize without a token; every
// call is on the audit trail. It does so in both eras of the protocol:
// mcp-go's default, the stateless 2026-07-28 revision it finds with
// server/discover (the version, client info and capabilities in every
// request's _meta), and the initialize handshake of 2025-06-18.
func TestSecondMCPImplementation(t *testing.T) {
	t.Run("2026-07-28 by server/discover", func(t *testing.T) { secondImplementation(t, "") })
	t.Run("2025-06-18 by initialize", func(t *testing.T) { secondImplementation(t, "2025-06-18") })
}

// secondImplementation is TestSecondMCPImplementation with mcp-go asking
// for version, its newest when empty.
func secondImplementation(t *testing.T, version string) {
	w := newWorld(t)
	ctx := t.Context()
	c := mcpGoClient(t, w, w.token(t))
	hello := mgo.InitializeRequest{Params: mgo.InitializeParams{ProtocolVersion: version,
		ClientInfo: mgo.Implementation{Name: "mcp-go-interop", Version: "1.2.1"}}}

	initialized, err := c.Initialize(ctx, hello)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if initialized.ServerInfo.Name != "custos-gateway" || initialized.Capabilities.Tools == nil {
		t.Errorf("initialize: %+v", initialized)
	}
	if got := initialized.ProtocolVersion; (version == "" && !mgo.IsModernProtocol(got)) || (version != "" && got != version) {
		t.Errorf("negotiated protocol version %q, asked for %q", got, version)
	}
	if events := w.eventsSince(0); len(events) != 0 {
		t.Errorf("initialize left audit records: %+v", events)
	}

	// tools/list: the facade, as the Toolset pins it.
	listed, err := c.ListTools(ctx, mgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	tools := map[string]mgo.Tool{}
	for _, tool := range listed.Tools {
		tools[tool.Name] = tool
	}
	if len(tools) != 3 {
		t.Errorf("tools/list: %v, want ledger.get_invoice, ledger.pay and ledger.export_customer", slices.Sorted(maps.Keys(tools)))
	}
	for _, pin := range pinnedLedger().Spec.Tools {
		name := "ledger." + pin.Name
		tool, ok := tools[name]
		if !ok {
			t.Errorf("tools/list has no %s", name)
			continue
		}
		if tool.Description != pin.Description {
			t.Errorf("%s: description %q, want the pinned %q", name, tool.Description, pin.Description)
		}
		if diff := sameSchema(mgo.ToolArgumentsSchema(tool.InputSchema), rawOf(pin.InputSchema)); diff != "" {
			t.Errorf("%s: inputSchema: %s", name, diff)
		}
		if out := rawOf(pin.OutputSchema); len(out) > 0 {
			if diff := sameSchema(mgo.ToolArgumentsSchema(tool.OutputSchema), out); diff != "" {
				t.Errorf("%s: outputSchema: %s", name, diff)
			}
		} else if tool.OutputSchema.Type != "" {
			t.Errorf("%s: an outputSchema %+v the Toolset does not pin", name, tool.OutputSchema)
		}
	}
	if a := tools["ledger.get_invoice"].Annotations; a.ReadOnlyHint == nil || !*a.ReadOnlyHint || a.DestructiveHint == nil || *a.DestructiveHint {
		t.Errorf("get_invoice's annotations %+v, want readOnlyHint and not destructiveHint", a)
	}
	if a := tools["ledger.pay"].Annotations; a.DestructiveHint == nil || !*a.DestructiveHint || (a.ReadOnlyHint != nil && *a.ReadOnlyHint) {
		t.Errorf("pay's annotations %+v, want destructiveHint and not readOnlyHint", a)
	}
	if events := w.eventsSince(0); len(events) != 0 {
		t.Errorf("tools/list left audit records: %+v", events)
	}

	// get_invoice: the structured content, as the go-sdk's client gets it.
	calls, mark := w.ledger.Calls(), w.eventCount()
	res, err := c.CallTool(ctx, mgo.CallToolRequest{Params: mgo.CallToolParams{Name: "ledger.get_invoice", Arguments: okInvoice}})
	if err != nil || res.IsError {
		t.Fatalf("get_invoice: %+v, %v", res, err)
	}
	want := map[string]any{"invoiceNumber": "INV-000001", "supplier": "Acme Paper GmbH", "amount": 120.5, "currency": "EUR"}
	if !reflect.DeepEqual(res.StructuredContent, want) {
		t.Errorf("get_invoice's structured content %#v, want %#v", res.StructuredContent, want)
	}
	if text := mcpGoText(res); text != `{"amount":120.5,"currency":"EUR","invoiceNumber":"INV-000001","supplier":"Acme Paper GmbH"}` {
		t.Errorf("get_invoice's text %q", text)
	}
	e := w.oneEvent(t, mark, "get_invoice")
	if e.Action != audit.ActionToolCalled || e.Decision != audit.DecisionAllow || e.Details["tool"] != "ledger.get_invoice" ||
		e.Details["checks"] != "caller=pass agent=pass tool=pass rate=pass decision=pass input=pass drift=pass upstream=pass output=pass" ||
		e.Details["person"] != "alice" || e.Details["jti"] != "jti-1" || e.Subject.Name != "invoice" ||
		e.Details["argumentsDigest"] != digest([]byte(`{"invoiceNumber":"INV-000001"}`)) {
		t.Errorf("get_invoice's record: %+v", e)
	}

	session, err := mcp.NewClient(&mcp.Implementation{Name: "go-sdk"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: w.gateway.URL + "/tenants/acme/mcp", DisableStandaloneSSE: true, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: sdkBearer{w.token(t)}}}, nil)
	if err != nil {
		t.Fatalf("the go-sdk's client: %v", err)
	}
	defer session.Close()
	sdkRes, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "ledger.get_invoice", Arguments: okInvoice})
	if err != nil || sdkRes.IsError {
		t.Fatalf("get_invoice through the go-sdk: %+v, %v", sdkRes, err)
	}
	if !reflect.DeepEqual(res.StructuredContent, sdkRes.StructuredContent) {
		t.Errorf("mcp-go got %#v, the go-sdk %#v", res.StructuredContent, sdkRes.StructuredContent)
	}

	// Bad input: a tool error naming the argument, not a protocol error.
	calls2, mark := w.ledger.Calls(), w.eventCount()
	res, err = c.CallTool(ctx, mgo.CallToolRequest{Params: mgo.CallToolParams{Name: "ledger.get_invoice", Arguments: map[string]any{"invoiceNumber": 1}}})
	if err != nil || !res.IsError || !strings.Contains(mcpGoText(res), "argument /invoiceNumber: got number, want string") {
		t.Errorf("get_invoice with a number: %+v, %v; want a tool error naming /invoiceNumber", res, err)
	}
	if e := w.oneEvent(t, mark, "the refused call"); e.Action != audit.ActionToolRefused || e.Decision != audit.DecisionDeny ||
		e.Policy != ReasonInvalidInput || !strings.Contains(e.Details["checks"], "input=fail") || !strings.Contains(e.Reason, "/invoiceNumber") {
		t.Errorf("the refused call's record: %+v", e)
	}
	if w.ledger.Calls() != calls2 {
		t.Errorf("the refused call reached the tool server")
	}

	// pay, irreversible: refused without a decision record...
	mark = w.eventCount()
	res, err = c.CallTool(ctx, mgo.CallToolRequest{Params: mgo.CallToolParams{Name: "ledger.pay", Arguments: payArgs()}})
	if err != nil || !res.IsError || !strings.Contains(mcpGoText(res), "a decision record is required") {
		t.Errorf("pay without a decision record: %+v, %v", res, err)
	}
	if e := w.oneEvent(t, mark, "pay without a decision record"); e.Action != audit.ActionToolRefused || e.Policy != ReasonMissingDecisionRecord {
		t.Errorf("pay without a decision record, recorded as %+v", e)
	}
	if w.ledger.Calls() != calls2 {
		t.Errorf("pay without a decision record reached the tool server")
	}
	// ...and called with one, sent in _meta as mcp-go's Meta.AdditionalFields.
	mark = w.eventCount()
	res, err = c.CallTool(ctx, mgo.CallToolRequest{Params: mgo.CallToolParams{Name: "ledger.pay", Arguments: payArgs(),
		Meta: mgo.NewMetaFromMap(decision(0.8))}})
	if err != nil || res.IsError {
		t.Fatalf("pay with a decision record: %+v, %v", res, err)
	}
	if got, _ := res.StructuredContent.(map[string]any); got["status"] != "accepted" || !strings.HasPrefix(fmt.Sprint(got["paymentId"]), "PAY-") {
		t.Errorf("pay's structured content %#v", res.StructuredContent)
	}
	rec, _ := ParseMeta(decision(0.8))
	if e := w.oneEvent(t, mark, "pay"); e.Action != audit.ActionToolCalled || e.Decision != audit.DecisionAllow ||
		e.Details["decisionDigest"] != rec.DecisionDigest ||
		e.Details["argumentsDigest"] != digest([]byte(`{"invoice":"INV-000001","amount":120.5,"requestedBy":"alice"}`)) {
		t.Errorf("pay's record %+v, want the decision record's digest %s and requestedBy alice", e.Details, rec.DecisionDigest)
	}
	if got := w.ledger.Calls() - calls; got != 3 {
		t.Errorf("%d calls reached the tool server, want 3 (get_invoice twice, pay)", got)
	}

	// Without a token: refused at initialize, 401, and recorded.
	mark = w.eventCount()
	_, err = mcpGoClient(t, w, "").Initialize(ctx, hello)
	if !errors.Is(err, transport.ErrAuthorizationRequired) {
		t.Errorf("initialize without a token: %v, want mcp-go's ErrAuthorizationRequired (401)", err)
	}
	// mcp-go tries server/discover first unless asked for an earlier
	// version, then initialize: each request refused and recorded.
	events := w.eventsSince(mark)
	if len(events) == 0 || events[len(events)-1].Details["method"] != "initialize" {
		t.Errorf("initialize without a token recorded as %+v", events)
	}
	for _, e := range events {
		if e.Action != audit.ActionGatewayRefused || e.Decision != audit.DecisionDeny || e.Policy != ReasonInvalidToken ||
			!slices.Contains([]string{"server/discover", "initialize"}, e.Details["method"]) ||
			!strings.Contains(e.Reason, "a bearer token is required") {
			t.Errorf("a request without a token recorded as %+v", e)
		}
	}
}

// fuzzHeaders are the headers w.post sends.
var fuzzHeaders = map[string]string{
	"Content-Type":         "application/json",
	"Accept":               "application/json, text/event-stream",
	"Mcp-Protocol-Version": "2025-06-18",
}

// fuzzStatuses are the answers the gateway may give a request with a
// valid token.
var fuzzStatuses = []int{200, 202, 400, 401, 403, 404, 405, 406, 413, 415}

var invoicePattern = regexp.MustCompile(`^INV-[0-9]{6}$`)

// fuzzEnvelope is what of a JSON-RPC message mayReach looks at.
type fuzzEnvelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
		Meta      json.RawMessage `json:"_meta"`
	} `json:"params"`
}

// decodeEnvelopes reads body as the go-sdk does, the first JSON value of
// it whatever follows, in both ways a decoder may take member names:
// exactly (as the go-sdk does), and as encoding/json does, without regard
// to case; the last of duplicates wins either way.
func decodeEnvelopes(body []byte) []fuzzEnvelope {
	var out []fuzzEnvelope
	var loose fuzzEnvelope
	if json.NewDecoder(bytes.NewReader(body)).Decode(&loose) == nil {
		out = append(out, loose)
	}
	var top, params map[string]json.RawMessage
	if json.NewDecoder(bytes.NewReader(body)).Decode(&top) == nil {
		var exact fuzzEnvelope
		exact.ID = top["id"]
		if json.Unmarshal(top["method"], &exact.Method) == nil && json.Unmarshal(top["params"], &params) == nil &&
			json.Unmarshal(params["name"], &exact.Params.Name) == nil {
			exact.Params.Arguments, exact.Params.Meta = params["arguments"], params["_meta"]
			out = append(out, exact)
		}
	}
	return out
}

// mayReach says whether body may reach the tool server: a tools/call of a
// facade tool whose arguments the pinned schema takes, with a decision
// record for pay, however its member names are read. It is what must
// hold, not all that must: the gateway may refuse more (bind, rate, the
// record's members), never less.
func mayReach(body []byte) (string, bool) {
	why := "not a tools/call"
	for _, msg := range decodeEnvelopes(body) {
		var may bool
		if why, may = mayReachAs(msg); may {
			return why, true
		}
	}
	return why, false
}

func mayReachAs(msg fuzzEnvelope) (string, bool) {
	if msg.Method != "tools/call" {
		return "not a tools/call", false
	}
	args := map[string]any{}
	if raw := bytes.TrimSpace(msg.Params.Arguments); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &args); err != nil {
			return "arguments not an object", false
		}
	}
	only := func(keys ...string) bool {
		for k := range args {
			if !slices.Contains(keys, k) {
				return false
			}
		}
		return true
	}
	switch msg.Params.Name {
	case "ledger.get_invoice":
		number, _ := args["invoiceNumber"].(string)
		return "get_invoice", only("invoiceNumber") && invoicePattern.MatchString(number)
	case "ledger.pay":
		var meta map[string]any
		_ = json.Unmarshal(msg.Params.Meta, &meta)
		_, hasRecord := meta["custos.dev/decision"].(map[string]any)
		_, hasInvoice := args["invoice"].(string)
		amount, isNumber := args["amount"].(float64)
		_, isString := args["requestedBy"].(string)
		return "pay", only("invoice", "amount", "requestedBy") && hasInvoice && hasRecord &&
			isNumber && amount > 0 && amount <= 10000 && (args["requestedBy"] == nil || isString)
	case "ledger.export_customer":
		_, isString := args["customer"].(string)
		return "export_customer", args["customer"] == nil || isString
	}
	return "not a facade tool", false
}

// FuzzGatewayRPC: whatever body comes through the gateway's door with a
// valid token, the gateway does not panic, answers with a status of the
// streamable HTTP transport and JSON when 200, lets a call reach the tool
// server only if it is a tools/call of a facade tool whose arguments
// validate, and leaves exactly one audit record for every tools/call it
// answered.
func FuzzGatewayRPC(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-999999"},"_meta":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}`,
		`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":120.5},"_meta":{"custos.dev/decision":{"goal":"settle INV-000001","reasoning":"it matches","alternatives":["wait"],"confidence":0.8}}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":120.5}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ledger.export_customer","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ledger.list_ledger_entries","arguments":{"supplier":"x","from":"2026-01-01","to":"2026-12-31"}}}`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fuzz","version":"0"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		// Batches.
		`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}]`,
		`[]`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}},{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}]`,
		// A tools/call without an id: a notification.
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		// Ids.
		`{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":-1.5,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":[1],"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":true,"method":"tools/list"}`,
		// Wrong types and shapes.
		`{"jsonrpc":"1.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":2,"id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":1,"method":7}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"ledger.get_invoice"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7,"arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":{"invoiceNumber":"INV-000001"}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000002","invoiceNumber":"x"}}}`,
		`{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","Params":{"Name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":1e400},"_meta":{"custos.dev/decision":{"goal":"g"}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":10000.0000000000001},"_meta":{"custos.dev/decision":{"goal":"g"}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":5,"requestedBy":"bob"},"_meta":{"custos.dev/decision":{"goal":"g"}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.export_customer","arguments":{"x":1e400}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001\n"}}}`,
		// Arguments of every type.
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.export_customer","arguments":"{}"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.export_customer","arguments":[]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.export_customer","arguments":null}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.export_customer","arguments":7}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.export_customer","arguments":true}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.export_customer"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.export_customer","ARguments":[]}}`,
		// _meta of every type.
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"},"_meta":null}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"},"_meta":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"},"_meta":7}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"},"_meta":[]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"},"_meta":false}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice","arguments":{"invoiceNumber":"INV-000001"},"_meta":{"progressToken":{"a":[1]}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":1},"_meta":{"custos.dev/decision":null}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":1},"_meta":{"custos.dev/decision":[{"goal":"g"}]}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":1},"_meta":{"custos.dev/decision":{"goal":"g","confidence":1e400}}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.pay","arguments":{"invoice":"INV-000001","amount":1},"_meta":{"traceparent":7,"custos.dev/decision":{"goal":"g","alternatives":"x"}}}}`,
		// Not JSON-RPC, not JSON.
		``, `null`, `{}`, `"tools/call"`, `7`, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}{"jsonrpc":"2.0"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"`, "\xff\xfe{}", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ledger.get_invoice\u0000"}}`,
	} {
		f.Add([]byte(seed))
	}

	w := fuzzWorld(f)
	token := w.token(new(testing.T))
	handler := w.server.Handler()

	f.Fuzz(func(t *testing.T, body []byte) {
		// The world outlives the inputs: keep what it gathers small.
		w.mu.Lock()
		w.events = w.events[:0]
		w.mu.Unlock()
		w.tokens.issued = nil
		calls := w.ledger.Calls()

		req := httptest.NewRequest(http.MethodPost, "/tenants/acme/mcp", bytes.NewReader(body))
		for k, v := range fuzzHeaders {
			req.Header.Set(k, v)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)

		status, answer := rec.Code, rec.Body.Bytes()
		if !slices.Contains(fuzzStatuses, status) {
			t.Fatalf("HTTP %d %q", status, answer)
		}
		if status == http.StatusOK && !json.Valid(answer) {
			t.Fatalf("HTTP 200 with a body that is not JSON: %q", answer)
		}
		events := w.eventsSince(0)
		reached := w.ledger.Calls() - calls
		what, may := mayReach(body)
		if reached > 0 && !may {
			t.Fatalf("%d calls reached the tool server (%s): %q", reached, what, answer)
		}
		if reached > 1 {
			t.Fatalf("one request, %d calls at the tool server", reached)
		}
		if reached == 1 && (len(events) != 1 || events[0].Action != audit.ActionToolCalled ||
			!strings.Contains(events[0].Details["checks"], "decision=pass") || !strings.Contains(events[0].Details["checks"], "input=pass") ||
			strings.Contains(events[0].Details["checks"], "=fail")) {
			t.Fatalf("a call reached the tool server, recorded as %+v", events)
		}
		if len(events) > 1 {
			t.Fatalf("%d audit records for one request: %+v", len(events), events)
		}
		// A record says which check refused, alone, or that all passed.
		if len(events) == 1 && events[0].Action != audit.ActionGatewayRefused {
			fails := strings.Count(events[0].Details["checks"], "=fail")
			if refused := events[0].Action == audit.ActionToolRefused; refused != (fails == 1) || fails > 1 {
				t.Fatalf("recorded %s with checks %q: %+v", events[0].Action, events[0].Details["checks"], events[0])
			}
		}
		// A tools/call answered with a result: one record of it.
		var msg struct {
			Result *struct {
				Content json.RawMessage `json:"content"`
			} `json:"result"`
			Error *struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		if status != http.StatusOK || json.Unmarshal(answer, &msg) != nil {
			return
		}
		if msg.Result != nil && msg.Result.Content != nil &&
			(len(events) != 1 || (events[0].Action != audit.ActionToolCalled && events[0].Action != audit.ActionToolRefused)) {
			t.Fatalf("a tools/call answered %q, recorded as %+v", answer, events)
		}
		// A tools/call whose params the go-sdk cannot decode (not an
		// object, a name that is no string, a _meta that is no object) is
		// answered with its JSON-RPC error before the gateway's checks,
		// and is on the record all the same.
		isCall := slices.ContainsFunc(decodeEnvelopes(body), func(e fuzzEnvelope) bool { return e.Method == "tools/call" })
		if msg.Error != nil && isCall && len(events) != 1 {
			t.Fatalf("a tools/call answered %q, recorded as %+v", answer, events)
		}
	})
}

// fuzzWorld is a world for a fuzz target, built once and reused by every
// input: newWorld wants a *testing.T and a fuzz target has none that
// outlives one input, so it gets one of its own, whose cleanups are done
// here. Rates are not limited (the world's clock stands still, so a
// bucket once empty would refuse every later call), the circuit never
// opens (no input should make the tool server fail, but one that did
// would shut the circuit on every later input and hide what follows),
// and drift is checked once an hour, so that an input costs a request or
// two on loopback.
func fuzzWorld(f *testing.F) (w *world) {
	f.Helper()
	defer func() {
		if r := recover(); r != nil {
			f.Fatalf("building the world: %v", r)
		}
	}()
	w = newWorld(new(testing.T), func(s *Server) {
		s.Limits = nil
		s.Upstream.(*MCPUpstream).Breakers = NewBreakers(BreakerSettings{Failures: math.MaxUint32})
	})
	w.server.Drift.Every = time.Hour
	f.Cleanup(func() {
		w.gateway.Close()
		w.ledger.Close()
		w.keys.Close()
	})
	return w
}
