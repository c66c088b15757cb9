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
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	freezes "github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/tooldoubles"
)

// capsWorld is a tenant whose DataBoundary caps each agent at 300 records
// a day, a search Toolset (its records at /hits, 50 at most per call), a
// loopback tool server that answers n hits when asked for n, and the
// gateway replicas in front of it, which share one ledger.
type capsWorld struct {
	now      time.Time
	keys     *stsKeys
	server   *tooldoubles.Server
	ledger   freezes.Ledger
	upstream *MCPUpstream
	toolset  *custosv1alpha1.Toolset
	boundary custosv1alpha1.DataBoundary
	answered atomic.Int64 // records the tool server answered with

	// api, when set, makes the freezes through a real API server too.
	api Freezer
	// usage, when set, is the replicas' Usage.
	usage *Usage
	// recreate gives the agents a new UID on every call.
	recreate bool
	uids     int

	mu      sync.Mutex
	frozen  map[string]*custosv1alpha1.AgentFreeze // by agent name
	events  []audit.Event
	nextSeq uint64
}

func newCapsWorld(t *testing.T) *capsWorld {
	w := &capsWorld{now: time.Now(), ledger: &freezes.MemoryLedger{}, frozen: map[string]*custosv1alpha1.AgentFreeze{}}
	w.keys = newSTSKeys(t, w.now)
	in := `{"type":"object","required":["n"],"properties":{"n":{"type":"integer","minimum":0}}}`
	out := `{"type":"object","required":["hits"],"properties":{"hits":{"type":"array"}}}`
	w.toolset = fixtures.Toolset("finance", "search", "acme", plainHTTP, fixtures.WithTools(custosv1alpha1.Tool{
		Name: "search", Access: custosv1alpha1.ToolAccessRead, InputSchema: schema(in), OutputSchema: schema(out),
		RecordsPath: "/hits", MaxRecords: ptr.To[int64](50)}))
	w.server = tooldoubles.New(t, tooldoubles.Options{Tools: []tooldoubles.Tool{{Name: "search", InputSchema: json.RawMessage(in), OutputSchema: json.RawMessage(out),
		Answer: func(args map[string]any) *mcp.CallToolResult {
			n, _ := args["n"].(float64)
			hits := make([]any, int(n))
			for i := range hits {
				hits[i] = map[string]any{"id": fmt.Sprintf("DOC-%04d", i)}
			}
			w.answered.Add(int64(n))
			v := map[string]any{"hits": hits}
			text, _ := json.Marshal(v)
			return &mcp.CallToolResult{StructuredContent: v, Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}}
		}}}})
	w.boundary = *fixtures.DataBoundary("acme")
	w.boundary.Spec.Caps = &custosv1alpha1.AgentCaps{PerDay: &custosv1alpha1.CapLimits{Records: ptr.To[int64](300)}}
	w.upstream = &MCPUpstream{Tokens: &exchanger{keys: w.keys, now: w.now}, Client: resolving(w.server.Addr), Timeout: 5 * time.Second,
		Resource: func(ts types.NamespacedName) string { return "urn:custos:toolset:" + ts.Namespace + ":" + ts.Name }}
	t.Cleanup(w.upstream.Close)
	return w
}

// replica is one gateway replica: its own Meter (what it holds of the
// caps), the shared ledger.
func (w *capsWorld) replica(t *testing.T) *httptest.Server {
	return w.replicaWith(t, nil)
}

func (w *capsWorld) replicaWith(t *testing.T, metrics *Metrics) *httptest.Server {
	s := &Server{
		Usage:    w.usage,
		Metrics:  metrics,
		Verifier: &Verifier{IssuerBase: w.keys.URL, Client: w.keys.Client(), Clock: clocktesting.NewFakeClock(w.now)},
		Source:   sourceFunc(w.caller), Upstream: w.upstream, Audit: w,
		Caps: &Caps{Meter: &freezes.Meter{Ledger: w.ledger}, Boundaries: w, Freezer: w, AuditLogID: "custos-gateway/test"},
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// caller: agents invoice and helper of finance, refused once frozen (as
// sts/cluster refuses an agent an AgentFreeze holds).
func (w *capsWorld) caller(_ context.Context, _, agentID string) (*custosv1alpha1.Agent, []custosv1alpha1.Toolset, error) {
	name := agentID[strings.LastIndex(agentID, "/agent-")+len("/agent-"):]
	w.mu.Lock()
	defer w.mu.Unlock()
	if f, ok := w.frozen[name]; ok {
		return nil, nil, fmt.Errorf("agent finance/%s may not act: it is frozen by AgentFreeze %s (Cap)", name, f.Name)
	}
	a := fixtures.Agent("finance", name, "acme")
	if w.recreate {
		// Deleted and applied again between every two calls: a new UID.
		w.uids++
		a.UID = types.UID(fmt.Sprintf("uid-%d", w.uids))
	}
	return a, []custosv1alpha1.Toolset{*w.toolset}, nil
}

func (w *capsWorld) Boundaries(context.Context, string) ([]custosv1alpha1.DataBoundary, error) {
	return []custosv1alpha1.DataBoundary{w.boundary}, nil
}

func (w *capsWorld) Toolset(context.Context, string, types.NamespacedName) (*custosv1alpha1.Toolset, error) {
	return w.toolset, nil
}

func (w *capsWorld) Freeze(ctx context.Context, f *custosv1alpha1.AgentFreeze) error {
	if w.api != nil {
		if err := w.api.Freeze(ctx, f); err != nil {
			return err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.frozen[f.Spec.Agent]; ok {
		return errors.New("already frozen")
	}
	if f.Name == "" {
		f.Name = f.GenerateName + "x1"
	}
	w.frozen[f.Spec.Agent] = f
	return nil
}

func (w *capsWorld) Record(ctx context.Context, e audit.Event) { w.RecordSeq(ctx, e) }

func (w *capsWorld) RecordSeq(_ context.Context, e audit.Event) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, e)
	w.nextSeq++
	return w.nextSeq, true
}

// search calls search.search for n hits as agent through gw; it returns
// the hits served, or the tool error's text.
func (w *capsWorld) search(t *testing.T, gw *httptest.Server, agent string, n int) (int, string) {
	t.Helper()
	token := w.keys.token(t, "acme", w.now, func(c *sts.Claims) {
		c.Scope, c.Tenant, c.ID = "search.read", "acme", "jti-"+agent
		c.Act = &sts.Actor{Subject: "spiffe://cluster.local/ns/finance/sa/agent-" + agent}
	})
	session, err := mcp.NewClient(&mcp.Implementation{Name: "agent"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: gw.URL + "/tenants/acme/mcp", HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}}, DisableStandaloneSSE: true}, nil)
	if err != nil {
		return 0, err.Error()
	}
	defer session.Close()
	res, err := session.CallTool(context.Background(), &mcp.CallToolParams{Name: "search.search", Arguments: map[string]any{"n": n}})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		return 0, res.Content[0].(*mcp.TextContent).Text
	}
	var got struct{ Hits []any }
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &got); err != nil {
		t.Fatal(err)
	}
	return len(got.Hits), ""
}

// Two replicas serve an agent's searches, one of them restarted mid-day
// (what it held of the cap is lost with it): not one record past the
// day's cap reaches the agent; the result that would cross it is withheld,
// recorded (cap.exceeded, its sequence number the freeze's evidence) and
// the agent frozen, after which nothing of it reaches the tool server.
func TestCapsWithholdAndFreeze(t *testing.T) {
	w := newCapsWorld(t)
	a, b := w.replica(t), w.replica(t)
	delivered, refusal := 0, ""
	for i := 0; refusal == "" && i < 100; i++ {
		if i == 4 {
			a.Close()
			a = w.replica(t) // restarted: a new Meter, the same ledger
		}
		gw := a
		if i%2 == 1 {
			gw = b
		}
		var n int
		n, refusal = w.search(t, gw, "invoice", 40)
		delivered += n
	}
	if delivered > 300 {
		t.Fatalf("%d records delivered, over the day's cap of 300", delivered)
	}
	if delivered < 300-300/16-40 {
		t.Errorf("%d records delivered: the cap was reached too early (the restarted replica held at most %d)", delivered, 300/16+1)
	}
	for _, want := range []string{"search.search: its result is withheld", "records this day, over the cap of 300 a day",
		"the agent is frozen until a person lifts it (kubectl custos unfreeze invoice -n finance)"} {
		if !strings.Contains(refusal, want) {
			t.Errorf("the refusal %q does not say %q", refusal, want)
		}
	}
	w.mu.Lock()
	f := w.frozen["invoice"]
	var capRecord, refused *audit.Event
	var capSeq int64
	for i := range w.events {
		e := &w.events[i]
		switch {
		case e.Action == audit.ActionCapExceeded:
			capRecord, capSeq = e, int64(i+1)
		case e.Action == audit.ActionToolRefused && e.Policy == ReasonCapExceeded:
			refused = e
		}
	}
	w.mu.Unlock()
	if f == nil {
		t.Fatal("no AgentFreeze was made")
	}
	if f.Namespace != "finance" || f.Spec.Agent != "invoice" || f.Spec.Trigger != custosv1alpha1.FreezeCap || f.Spec.Signal != freezes.SignalRecords || !strings.Contains(f.Spec.Reason, "records this day, over the cap of 300 a day") ||
		*f.Spec.Limit != 300 || *f.Spec.Observed <= 300 || f.Spec.Evidence == nil || f.Spec.Evidence.AuditLogID != "custos-gateway/test" {
		t.Errorf("the freeze: %+v", f.Spec)
	}
	if capRecord == nil || refused == nil {
		t.Fatalf("the trail has no cap.exceeded (%v) or no tool.refused CapExceeded (%v)", capRecord, refused)
	}
	if capRecord.Details["signal"] != "records" || capRecord.Details["window"] != "day" || capRecord.Details["limit"] != "300" || capRecord.Subject.Name != "invoice" {
		t.Errorf("cap.exceeded: %+v", capRecord)
	}
	if len(f.Spec.Evidence.Sequences) != 1 || f.Spec.Evidence.Sequences[0] != capSeq || len(f.Spec.Evidence.TraceIDs) != 1 || f.Spec.Evidence.TraceIDs[0] != capRecord.TraceID {
		t.Errorf("the freeze's evidence %+v does not cite the cap.exceeded record (seq %d, trace %s)", f.Spec.Evidence, capSeq, capRecord.TraceID)
	}
	if refused.Details["freeze"] != f.Name || !strings.HasSuffix(refused.Details["checks"], "caps=pass upstream=pass output=pass caps.result=fail") {
		t.Errorf("tool.refused: %+v", refused.Details)
	}

	// Frozen: refused before anything reaches the tool server, on every
	// replica.
	before := w.answered.Load()
	for _, gw := range []*httptest.Server{a, b} {
		if _, refusal := w.search(t, gw, "invoice", 1); !strings.Contains(refusal, "Forbidden") {
			t.Errorf("a frozen agent's call: %q", refusal)
		}
		w.mu.Lock()
		last := w.events[len(w.events)-1]
		w.mu.Unlock()
		if last.Action != audit.ActionGatewayRefused || !strings.Contains(last.Reason, "frozen by AgentFreeze "+f.Name) {
			t.Errorf("the refusal's record: %s %q", last.Action, last.Reason)
		}
	}
	if w.answered.Load() != before {
		t.Error("a frozen agent's call reached the tool server")
	}
}

// One result over the tool's maxRecords is withheld and freezes the agent
// whatever its caps for the day.
func TestCapsMaxRecordsPerCall(t *testing.T) {
	w := newCapsWorld(t)
	gw := w.replica(t)
	if n, refusal := w.search(t, gw, "helper", 50); n != 50 || refusal != "" {
		t.Fatalf("50 records, the tool's maxRecords: %d, %q", n, refusal)
	}
	_, refusal := w.search(t, gw, "helper", 51)
	if !strings.Contains(refusal, "51 records in one call, over the tool's maxRecords 50") {
		t.Errorf("51 records: %q", refusal)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if f := w.frozen["helper"]; f == nil || f.Spec.Signal != freezes.SignalRecords || *f.Spec.Limit != 50 || *f.Spec.Observed != 51 {
		t.Errorf("the freeze: %+v", f)
	}
}

// What a result counts as: records where the tool's recordsPath says, an
// array result without one, else one record; bytes are the text served.
func TestMeasure(t *testing.T) {
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	structured := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{StructuredContent: json.RawMessage(s), Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	for _, tc := range []struct {
		name    string
		path    string
		res     *mcp.CallToolResult
		records int64
	}{
		{"records at the path", "/hits", structured(`{"hits":[1,2,3],"total":3}`), 3},
		{"an escaped path", "/a~1b/c~0d", structured(`{"a/b":{"c~d":[1,2]}}`), 2},
		{"an index in the path", "/pages/1", structured(`{"pages":[[1],[1,2,3,4]]}`), 4},
		{"nothing at the path", "/hits", structured(`{"total":3}`), 1},
		{"not an array at the path", "/hits", structured(`{"hits":{"a":1}}`), 1},
		{"an array result, no path", "", text(`[{"id":1},{"id":2}]`), 2},
		{"an object result, no path", "", structured(`{"hits":[1,2,3]}`), 1},
		{"text that is not JSON", "/hits", text(`three hits`), 1},
		{"records in every text block", "/hits", &mcp.CallToolResult{Content: []mcp.Content{
			&mcp.TextContent{Text: `{"hits":[1,2,3]}`}, &mcp.TextContent{Text: `{"hits":[4,5]}`}}}, 5},
		{"a tool error", "/hits", &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: `{"hits":[1,2]}`}}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tool := &Tool{Spec: custosv1alpha1.Tool{Name: "t", RecordsPath: tc.path}}
			records, bytes := measure(tool, tc.res)
			if records != tc.records {
				t.Errorf("records %d, want %d", records, tc.records)
			}
			want := int64(0)
			for _, c := range tc.res.Content {
				want += int64(len(c.(*mcp.TextContent).Text))
			}
			if bytes != want {
				t.Errorf("bytes %d, want %d", bytes, want)
			}
		})
	}
}

// The freeze a crossed cap makes is one the API server takes (its CRD's
// rules), and ClientFreezer returns once its cache has it.
func TestCapsFreezeThroughTheAPIServer(t *testing.T) {
	c := approvalCluster(t)
	w := newCapsWorld(t)
	w.api = ClientFreezer{Client: c, Reader: c}
	gw := w.replica(t)
	_, refusal := w.search(t, gw, "invoice", 51)
	if !strings.Contains(refusal, "the agent is frozen until a person lifts it") {
		t.Fatalf("51 records: %q", refusal)
	}
	var list custosv1alpha1.AgentFreezeList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d AgentFreezes, want 1", len(list.Items))
	}
	f := list.Items[0]
	if f.Namespace != "finance" || !strings.HasPrefix(f.Name, "invoice-cap-") || f.Spec.Trigger != custosv1alpha1.FreezeCap || f.Spec.Signal != "records" ||
		*f.Spec.Observed != 51 || *f.Spec.Limit != 50 || f.Spec.Evidence == nil || len(f.Spec.Evidence.TraceIDs) != 1 || len(f.Spec.Evidence.Sequences) != 1 {
		t.Errorf("the freeze as stored: %+v", f.Spec)
	}
}

// A replica's usage report, as the manager's breaker reads it: written on
// its tick and once more on the way out, counts since the process began,
// when it was made and when the process began; owned by nobody (an owner
// in another namespace would have the garbage collector delete it).
func TestUsageReporter(t *testing.T) {
	c := approvalCluster(t)
	ctx, stop := context.WithCancel(context.Background())
	started := time.Now().Add(-time.Minute)
	u := &Usage{Started: started}
	agent := types.NamespacedName{Namespace: "finance", Name: "invoice"}
	u.Add(agent, 10, time.Now())
	r := &UsageReporter{Usage: u, Client: c, Namespace: "finance", Replica: "custos-gateway-7d9c-x2k4p", Every: 50 * time.Millisecond}
	done := make(chan error)
	go func() { done <- r.Start(ctx) }()
	read := func() map[string]string {
		cm := &corev1.ConfigMap{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "finance", Name: "custos-usage-custos-gateway-7d9c-x2k4p"}, cm); err != nil {
			return nil
		}
		if len(cm.OwnerReferences) != 0 || cm.Labels[UsageLabel] != "gateway" {
			t.Errorf("the report's metadata: %+v", cm.ObjectMeta)
		}
		return cm.Data
	}
	deadline := time.Now().Add(10 * time.Second)
	for read()["finance.invoice"] == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	data := read()
	if data["finance.invoice"] != "10 1 "+strconv.FormatFloat(math.Log1p(10), 'f', 6, 64) || data[UsageStartedAt] != strconv.FormatInt(started.UnixMilli(), 10) || data[UsageReportedAt] == "" {
		t.Fatalf("the report: %v", data)
	}
	// Served just before the replica stops: reported on the way out.
	u.Add(agent, 5, time.Now())
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := read()["finance.invoice"]; !strings.HasPrefix(got, "15 2 ") {
		t.Errorf("the last report: %q", got)
	}
}

// An owner who deletes the Agent and applies it again (a new UID) does not
// get its day's caps back: they are kept by the agent's name.
func TestCapsOutliveTheAgentsRecreation(t *testing.T) {
	w := newCapsWorld(t)
	w.recreate = true
	w.boundary.Spec.Caps = &custosv1alpha1.AgentCaps{PerDay: &custosv1alpha1.CapLimits{Calls: ptr.To[int64](3)}}
	gw := w.replica(t)
	for i := range 3 {
		if n, refusal := w.search(t, gw, "invoice", 1); n != 1 {
			t.Fatalf("call %d: %q", i+1, refusal)
		}
	}
	if _, refusal := w.search(t, gw, "invoice", 1); !strings.Contains(refusal, "4 calls this day, over the cap of 3 a day") {
		t.Errorf("the fourth call, by the Agent applied again: %q", refusal)
	}
}
