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

package tooldoubles_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/custos-dev/custos/test/tooldoubles"
)

// These tests speak to the doubles as the gateway does: with the SDK's own
// client over streamable HTTP, a bearer token on every request, and raw
// HTTP where the SDK would hide what is on the wire.

// verify accepts the tokens "token-for-<sub>", as an issuer the test trusts
// would, and returns their claims.
func verify(token string) (any, error) {
	sub, ok := strings.CutPrefix(token, "token-for-")
	if !ok {
		return nil, errors.New(`the token is not one of the test issuer's ("token-for-<sub>")`)
	}
	return map[string]string{"sub": sub}, nil
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// connect is an MCP session with s, presenting token, closed when the test
// ends.
func connect(t *testing.T, s *tooldoubles.Server, token string) *mcp.ClientSession {
	t.Helper()
	session, err := dial(s, token, s.Client().Transport)
	if err != nil {
		t.Fatalf("connecting to %s: %v", s.Endpoint(), err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session
}

func dial(s *tooldoubles.Server, token string, rt http.RoundTripper) (*mcp.ClientSession, error) {
	return mcp.NewClient(&mcp.Implementation{Name: "gateway-test"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: s.Endpoint(), DisableStandaloneSSE: true, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearer{token, rt}}}, nil)
}

func call(t *testing.T, session *mcp.ClientSession, tool string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := session.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("calling %s: %v", tool, err)
	}
	return res
}

func listed(t *testing.T, session *mcp.ClientSession) map[string]*mcp.Tool {
	t.Helper()
	res, err := session.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("listing tools: %v", err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tl := range res.Tools {
		tools[tl.Name] = tl
	}
	return tools
}

func texts(res *mcp.CallToolResult) []string {
	var out []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			out = append(out, tc.Text)
		}
	}
	return out
}

// sameJSON says whether a and b encode the same JSON value.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	decode := func(v any) any {
		raw, ok := v.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		var out any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// validate checks v against JSON Schema schema, as the gateway does.
func validate(t *testing.T, schema json.RawMessage, v any) error {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("mem:///schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("mem:///schema.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	value, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(value)
}

func ledgerTool(name string) tooldoubles.Tool {
	for _, tl := range tooldoubles.Ledger() {
		if tl.Name == name {
			return tl
		}
	}
	panic("no ledger tool " + name)
}

// post sends one JSON-RPC message to s as the SDK's client would.
func post(t *testing.T, s *tooldoubles.Server, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.Endpoint(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", s.Endpoint(), err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

const callGetInvoice = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_invoice","arguments":{"invoiceNumber":"INV-000001"}}}`

// TestLedgerMatchesSample: Ledger's tools are the sample Toolset's, name,
// description and schemas, and pay besides.
func TestLedgerMatchesSample(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../config/samples/toolset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var sample struct {
		Spec struct {
			Tools []struct {
				Name, Description         string
				InputSchema, OutputSchema json.RawMessage
			}
		}
	}
	if err := yaml.Unmarshal(data, &sample); err != nil {
		t.Fatalf("config/samples/toolset.yaml: %v", err)
	}
	ledger := map[string]tooldoubles.Tool{}
	for _, tl := range tooldoubles.Ledger() {
		ledger[tl.Name] = tl
	}
	for _, want := range sample.Spec.Tools {
		got, ok := ledger[want.Name]
		if !ok {
			t.Errorf("Ledger has no tool %s of the sample", want.Name)
			continue
		}
		if got.Description != want.Description || !sameJSON(t, got.InputSchema, want.InputSchema) || !sameJSON(t, got.OutputSchema, want.OutputSchema) {
			t.Errorf("Ledger's %s is %q %s %s, the sample's %q %s %s", want.Name, got.Description, got.InputSchema, got.OutputSchema,
				want.Description, want.InputSchema, want.OutputSchema)
		}
		delete(ledger, want.Name)
	}
	if len(ledger) != 1 || ledger["pay"].Name != "pay" {
		t.Errorf("Ledger has %v beyond the sample, want pay alone", ledger)
	}
}

// TestHonest: the tools are listed as given and answer as the book says,
// results valid against their output schemas; every request's claims are
// recorded, concurrent ones too.
func TestHonest(t *testing.T) {
	t.Parallel()
	s := tooldoubles.New(t, tooldoubles.Options{Verify: verify, Tools: tooldoubles.Ledger()})
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || !strings.HasSuffix(s.URL, s.Addr) {
		t.Errorf("URL %s, Addr %s, want http on 127.0.0.1", s.URL, s.Addr)
	}
	session := connect(t, s, "token-for-alice")
	tools := listed(t, session)
	for _, want := range tooldoubles.Ledger() {
		got := tools[want.Name]
		if got == nil || got.Description != want.Description || !sameJSON(t, got.InputSchema, want.InputSchema) || !sameJSON(t, got.OutputSchema, want.OutputSchema) {
			t.Errorf("listed %+v, want %s as Ledger has it", got, want.Name)
		}
	}

	res := call(t, session, "get_invoice", map[string]any{"invoiceNumber": "INV-000001"})
	want := map[string]any{"invoiceNumber": "INV-000001", "supplier": "Acme Paper GmbH", "amount": 120.5, "currency": "EUR"}
	if res.IsError || !sameJSON(t, res.StructuredContent, want) || len(texts(res)) != 1 || !sameJSON(t, json.RawMessage(texts(res)[0]), want) {
		t.Errorf("get_invoice INV-000001: %+v %q, want %v, and as text", res, texts(res), want)
	}
	if err := validate(t, ledgerTool("get_invoice").OutputSchema, res.StructuredContent); err != nil {
		t.Errorf("an honest answer breaks its output schema: %v", err)
	}
	if res := call(t, session, "get_invoice", map[string]any{"invoiceNumber": "INV-999999"}); !res.IsError || strings.Join(texts(res), "|") != tooldoubles.NoSuchInvoice {
		t.Errorf("get_invoice INV-999999: %+v %q, want the tool error %q", res, texts(res), tooldoubles.NoSuchInvoice)
	}
	res = call(t, session, "list_ledger_entries", map[string]any{"supplier": "Acme Paper GmbH", "from": "2026-01-01", "to": "2026-02-28"})
	if entries := []any{map[string]any{"entryID": "LE-1001", "amount": 120.5}}; res.IsError || !sameJSON(t, res.StructuredContent, entries) {
		t.Errorf("list_ledger_entries: %+v, want %v", res, entries)
	}
	if err := validate(t, ledgerTool("list_ledger_entries").OutputSchema, res.StructuredContent); err != nil {
		t.Errorf("an honest answer breaks its output schema: %v", err)
	}
	res = call(t, session, "pay", map[string]any{"invoice": "INV-000002", "amount": 99})
	if want := map[string]any{"paymentId": "PAY-000001", "status": "accepted"}; res.IsError || !sameJSON(t, res.StructuredContent, want) {
		t.Errorf("pay: %+v, want %v", res, want)
	}
	if res := call(t, session, "pay", map[string]any{"invoice": "INV-000002", "amount": 0}); !res.IsError {
		t.Errorf("pay of 0: %+v, want a tool error", res)
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			res, err := session.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_invoice", Arguments: map[string]any{"invoiceNumber": "INV-000002"}})
			if err != nil || res.IsError {
				t.Errorf("concurrent get_invoice: %+v %v", res, err)
			}
		})
	}
	wg.Wait()
	if s.Calls() != 13 {
		t.Errorf("Calls() = %d, want 13", s.Calls())
	}
	seen := s.Seen()
	if len(seen) < 14 { // at least one request to connect, one to list, 13 calls
		t.Errorf("Seen() has %d claims, want one of every request", len(seen))
	}
	for _, c := range seen {
		if !reflect.DeepEqual(c, map[string]string{"sub": "alice"}) {
			t.Errorf("Seen() has %v, want alice's claims alone", c)
		}
	}
}

// TestVerify: a request without a bearer token or with one Verify refuses
// is answered 401 with a challenge, reaches no tool and is not recorded;
// without Verify, anything goes and nothing is recorded.
func TestVerify(t *testing.T) {
	t.Parallel()
	s := tooldoubles.New(t, tooldoubles.Options{Verify: verify, Tools: tooldoubles.Ledger()})
	for token, challenge := range map[string]string{
		"":            `Bearer realm="custos-tooldoubles"`,
		"forged.jwt.": `Bearer realm="custos-tooldoubles", error="invalid_token", error_description="the token is not one of the test issuer's ('token-for-<sub>')"`,
	} {
		resp := post(t, s, token, callGetInvoice)
		if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != challenge {
			t.Errorf("token %q: %s, WWW-Authenticate %s; want 401, %s", token, resp.Status, got, challenge)
		}
	}
	if _, err := dial(s, "forged.jwt.", s.Client().Transport); err == nil {
		t.Error("the SDK's client connected with a forged token")
	}
	if s.Calls() != 0 || len(s.Seen()) != 0 {
		t.Errorf("refused requests: Calls() = %d, Seen() = %v; want none", s.Calls(), s.Seen())
	}
	call(t, connect(t, s, "token-for-bob"), "get_invoice", map[string]any{"invoiceNumber": "INV-000001"})
	if seen := s.Seen(); len(seen) < 2 || !reflect.DeepEqual(seen[len(seen)-1], map[string]string{"sub": "bob"}) {
		t.Errorf("Seen() = %v, want bob's claims", seen)
	}

	open := tooldoubles.New(t, tooldoubles.Options{Tools: tooldoubles.Ledger()})
	if res := call(t, connect(t, open, "anything"), "get_invoice", map[string]any{"invoiceNumber": "INV-000001"}); res.IsError {
		t.Errorf("without Verify: %+v", res)
	}
	if open.Calls() != 1 || len(open.Seen()) != 0 {
		t.Errorf("without Verify: Calls() = %d, Seen() = %v; want 1 call and no claims", open.Calls(), open.Seen())
	}
}

// TestDriftAfterList: the first list is as given, every later one the
// rug pull's, and calls still answer; setting the behaviour again starts
// it afresh.
func TestDriftAfterList(t *testing.T) {
	t.Parallel()
	s := tooldoubles.New(t, tooldoubles.Options{Verify: verify, Tools: tooldoubles.Ledger(), Behaviour: tooldoubles.DriftAfterList})
	session := connect(t, s, "token-for-alice")
	want := ledgerTool("get_invoice")
	honest := func(tl *mcp.Tool) bool {
		return tl.Description == want.Description && sameJSON(t, tl.InputSchema, want.InputSchema)
	}
	drifted := func(tl *mcp.Tool) bool {
		var in struct {
			Properties map[string]any
			Required   []string
		}
		raw, _ := json.Marshal(tl.InputSchema)
		_ = json.Unmarshal(raw, &in)
		return tl.Description == tooldoubles.DriftedDescription && in.Properties[tooldoubles.DriftProperty] != nil &&
			strings.Join(in.Required, ",") == "invoiceNumber,"+tooldoubles.DriftProperty && sameJSON(t, tl.OutputSchema, want.OutputSchema)
	}
	if first := listed(t, session)["get_invoice"]; !honest(first) {
		t.Errorf("first list: %+v, want get_invoice as given", first)
	}
	for i := 2; i <= 3; i++ {
		if later := listed(t, session)["get_invoice"]; !drifted(later) {
			t.Errorf("list %d: %+v, want get_invoice drifted", i, later)
		}
	}
	res := call(t, session, "get_invoice", map[string]any{"invoiceNumber": "INV-000001", tooldoubles.DriftProperty: "approve-all"})
	if res.IsError || s.Calls() != 1 {
		t.Errorf("a call after the drift: %+v, Calls() = %d; want answered", res, s.Calls())
	}
	s.SetBehaviour(tooldoubles.DriftAfterList)
	if first := listed(t, session)["get_invoice"]; !honest(first) {
		t.Errorf("first list after SetBehaviour: %+v, want get_invoice as given", first)
	}
	if later := listed(t, session)["get_invoice"]; !drifted(later) {
		t.Errorf("second list after SetBehaviour: %+v, want get_invoice drifted", later)
	}
}

// TestBreakOutputInjectTextError: the answers of the hostile behaviours
// that answer, each switched at run time.
func TestBreakOutputInjectTextError(t *testing.T) {
	t.Parallel()
	s := tooldoubles.New(t, tooldoubles.Options{Verify: verify, Tools: tooldoubles.Ledger()})
	session := connect(t, s, "token-for-alice")
	args := map[string]any{"invoiceNumber": "INV-000001"}
	out := ledgerTool("get_invoice").OutputSchema

	s.SetBehaviour(tooldoubles.BreakOutput)
	res := call(t, session, "get_invoice", args)
	if err := validate(t, out, res.StructuredContent); err == nil || res.IsError || len(texts(res)) != 1 || !sameJSON(t, json.RawMessage(texts(res)[0]), res.StructuredContent) {
		t.Errorf("BreakOutput: %+v %q, validation %v; want content breaking the output schema, and as text", res, texts(res), err)
	}
	res = call(t, session, "list_ledger_entries", map[string]any{"supplier": "Acme Paper GmbH", "from": "2026-01-01", "to": "2026-12-31"})
	if err := validate(t, ledgerTool("list_ledger_entries").OutputSchema, res.StructuredContent); err == nil {
		t.Errorf("BreakOutput of an array schema: %+v is valid", res.StructuredContent)
	}

	s.SetBehaviour(tooldoubles.InjectText)
	res = call(t, session, "get_invoice", args)
	txt := texts(res)
	if err := validate(t, out, res.StructuredContent); err != nil || res.IsError || len(txt) != 2 || txt[1] != tooldoubles.InjectedText {
		t.Errorf("InjectText: %+v %q, validation %v; want valid content and the injected text", res, txt, err)
	}

	s.SetBehaviour(tooldoubles.Error)
	if res := call(t, session, "get_invoice", args); !res.IsError || strings.Join(texts(res), "|") != tooldoubles.NoSuchInvoice {
		t.Errorf("Error: %+v %q, want the tool error %q", res, texts(res), tooldoubles.NoSuchInvoice)
	}

	s.SetBehaviour(tooldoubles.Honest)
	if res := call(t, session, "get_invoice", args); res.IsError || len(texts(res)) != 1 || validate(t, out, res.StructuredContent) != nil {
		t.Errorf("Honest again: %+v", res)
	}
	if s.Calls() != 5 {
		t.Errorf("Calls() = %d, want 5", s.Calls())
	}
}

// TestHuge: the body is over 10 MiB, a JSON-RPC result of one text of
// HugeTextSize bytes.
func TestHuge(t *testing.T) {
	t.Parallel()
	s := tooldoubles.New(t, tooldoubles.Options{Verify: verify, Tools: tooldoubles.Ledger(), Behaviour: tooldoubles.Huge})
	resp := post(t, s, "token-for-alice", callGetInvoice)
	var body hugeBody
	n, err := io.Copy(&body, resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || resp.ContentLength != -1 || n <= 10<<20 {
		t.Fatalf("Huge: %s, Content-Length %d, body of %d bytes (%v); want 200 streamed, over 10 MiB", resp.Status, resp.ContentLength, n, err)
	}
	if body.text != tooldoubles.HugeTextSize || body.escaped {
		t.Fatalf("Huge: a text of %d bytes (escapes: %v), want %d unescaped", body.text, body.escaped, tooldoubles.HugeTextSize)
	}
	var msg struct {
		JSONRPC string
		ID      int
		Result  mcp.CallToolResult
	}
	rest := slices.Concat(body.head, []byte("x"), body.tail)
	if err := json.Unmarshal(rest, &msg); err != nil {
		t.Fatalf("Huge's answer is no JSON-RPC response: %v", err)
	}
	if txt := texts(&msg.Result); msg.JSONRPC != "2.0" || msg.ID != 7 || msg.Result.IsError || len(txt) != 1 {
		t.Errorf("Huge: %s, want a JSON-RPC result to id 7 of one text", rest)
	}
	if s.Calls() != 1 {
		t.Errorf("Calls() = %d, want 1", s.Calls())
	}
}

// hugeBody takes Huge's answer apart as it streams: the JSON before and
// after the first text, and the text's length. (The SDK's client takes the
// answer whole, but holding 10 MiB takes seconds under -race.)
type hugeBody struct {
	head, tail []byte
	text       int
	escaped    bool
	inText     bool
}

func (b *hugeBody) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		switch {
		case b.tail != nil:
			b.tail, p = append(b.tail, p...), nil
		case b.inText:
			end := bytes.IndexByte(p, '"')
			if end < 0 {
				end = len(p)
			} else {
				b.inText, b.tail = false, []byte{}
			}
			b.text += end
			b.escaped = b.escaped || bytes.IndexByte(p[:end], '\\') >= 0
			p = p[end:]
		default:
			b.head, p = append(b.head, p[0]), p[1:]
			b.inText = bytes.HasSuffix(b.head, []byte(`"text":"`))
			if len(b.head) > 4096 {
				return 0, errors.New("no text in the first 4 KiB")
			}
		}
	}
	return n, nil
}

// TestStall: a stalled call ends when its client gives up, and Close ends
// one still waiting at once.
func TestStall(t *testing.T) {
	t.Parallel()
	s := tooldoubles.New(t, tooldoubles.Options{Verify: verify, Tools: tooldoubles.Ledger(), Behaviour: tooldoubles.Stall})
	session := connect(t, s, "token-for-alice")
	if _, err := session.ListTools(context.Background(), nil); err != nil {
		t.Fatalf("Stall holds calls alone, but listing failed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "get_invoice", Arguments: map[string]any{"invoiceNumber": "INV-000001"}})
	if took := time.Since(start); err == nil || took > 2*time.Second {
		t.Errorf("a stalled call with a 200ms timeout: %v after %v, want an error at the timeout", err, took)
	}
	for deadline := time.Now().Add(2 * time.Second); s.Stalled() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server still holds %d calls after their client gave up", s.Stalled())
		}
	}

	other := connect(t, s, "token-for-alice")
	ended := make(chan error, 1)
	go func() {
		_, err := other.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_invoice", Arguments: map[string]any{"invoiceNumber": "INV-000002"}})
		ended <- err
	}()
	for deadline := time.Now().Add(2 * time.Second); s.Stalled() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second call was never stalled (Calls() = %d)", s.Calls())
		}
	}
	start = time.Now()
	s.Close()
	if took := time.Since(start); took > time.Second || s.Stalled() != 0 {
		t.Errorf("Close with a stalled call took %v and left %d stalled", took, s.Stalled())
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Error("a call stalled until Close succeeded")
		}
	case <-time.After(2 * time.Second):
		t.Error("a call stalled until Close did not end with it")
	}
}

// TestFail: a server down answers 503 to everything, checks no token and
// reaches no tool, until it is back.
func TestFail(t *testing.T) {
	t.Parallel()
	s := tooldoubles.New(t, tooldoubles.Options{Verify: verify, Tools: tooldoubles.Ledger(), Behaviour: tooldoubles.Fail})
	for _, token := range []string{"token-for-alice", "forged.jwt."} {
		if resp := post(t, s, token, callGetInvoice); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("token %q: %s, want 503", token, resp.Status)
		}
	}
	if resp, err := s.Client().Get(s.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz: %v %v, want 503", resp, err)
	} else {
		_ = resp.Body.Close()
	}
	if _, err := dial(s, "token-for-alice", s.Client().Transport); err == nil {
		t.Error("the SDK's client connected to a server down")
	}
	if s.Calls() != 0 || len(s.Seen()) != 0 {
		t.Errorf("Calls() = %d, Seen() = %v; want none", s.Calls(), s.Seen())
	}
	s.SetBehaviour(tooldoubles.Honest)
	if res := call(t, connect(t, s, "token-for-alice"), "get_invoice", map[string]any{"invoiceNumber": "INV-000001"}); res.IsError {
		t.Errorf("back up: %+v", res)
	}
}

// TestTLS: over https, trusted through Client or CertPool, and by nothing
// else.
func TestTLS(t *testing.T) {
	t.Parallel()
	s := tooldoubles.New(t, tooldoubles.Options{Verify: verify, Tools: tooldoubles.Ledger(), TLS: true})
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") {
		t.Errorf("URL %s, want https on 127.0.0.1", s.URL)
	}
	if res := call(t, connect(t, s, "token-for-alice"), "get_invoice", map[string]any{"invoiceNumber": "INV-000001"}); res.IsError {
		t.Errorf("over TLS: %+v", res)
	}
	own := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}}
	defer own.CloseIdleConnections()
	session, err := dial(s, "token-for-alice", own)
	if err != nil {
		t.Fatalf("trusting CertPool: %v", err)
	}
	_ = session.Close()
	if _, err := dial(s, "token-for-alice", &http.Transport{}); err == nil {
		t.Error("a client trusting the system's roots alone connected")
	}
	if plain := tooldoubles.New(t, tooldoubles.Options{}); plain.CertPool() != nil {
		t.Error("CertPool of a plain http server is not nil")
	}
}

// TestServe: make dev's entry takes loopback addresses alone and invalid
// tools not at all, and serves as New does until closed.
func TestServe(t *testing.T) {
	t.Parallel()
	for addr, says := range map[string]string{
		":0":           "not a loopback address",
		"0.0.0.0:0":    "not a loopback address",
		"10.0.0.1:80":  "not a loopback address",
		"127.0.0.1":    "missing port",
		"example.com:": "not a loopback address",
	} {
		if s, err := tooldoubles.Serve(addr, tooldoubles.Options{}); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("Serve(%q): %v, want an error saying %q", addr, err, says)
			if s != nil {
				s.Close()
			}
		}
	}
	for name, tools := range map[string][]tooldoubles.Tool{
		`input schema of tool "bad"`:  {{Name: "bad", InputSchema: json.RawMessage(`{"type":"array"}`)}},
		`output schema of tool "bad"`: {{Name: "bad", OutputSchema: json.RawMessage(`{`)}},
		`two tools are named "pay"`:   {{Name: "pay"}, {Name: "pay"}},
		`tool 0 has no name`:          {{}},
	} {
		if _, err := tooldoubles.Serve("127.0.0.1:0", tooldoubles.Options{Tools: tools}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Serve with %+v: %v, want an error saying %s", tools, err, name)
		}
	}
	s, err := tooldoubles.Serve("127.0.0.1:0", tooldoubles.Options{Tools: []tooldoubles.Tool{{Name: "echo"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	session := connect(t, s, "anything")
	if echo := listed(t, session)["echo"]; echo == nil || !sameJSON(t, echo.InputSchema, json.RawMessage(`{"type":"object"}`)) || echo.OutputSchema != nil {
		t.Errorf("listed %+v, want echo taking any object, with no output schema", echo)
	}
	if res := call(t, session, "echo", nil); res.IsError || fmt.Sprint(texts(res)) != "[ok]" {
		t.Errorf("a tool without Answer: %+v %q, want ok", res, texts(res))
	}
}
