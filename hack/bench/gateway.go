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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/gateway"
	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/toolschema"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/tooldoubles"
)

// The gateway mode's goals, at gatewayGoalConns connections: at least
// gatewayThroughputGoal times the direct calls' throughput, and a p50 at
// most gatewayP50Goal above theirs.
const (
	gatewayGoalConns      = 16
	gatewayThroughputGoal = 0.5
	gatewayP50Goal        = time.Millisecond
	// gatewayFacades is how many agents' facades the memory figure holds.
	gatewayFacades = 1000
)

const (
	gwTenant     = "acme"
	gwAgentID    = "spiffe://cluster.local/ns/finance/sa/agent-invoice"
	gwResource   = "urn:custos:toolset:finance:ledger"
	gwLedgerHost = "ledger-api.finance.svc:8080"
)

// runGateway is `-mode gateway` (`make bench-gateway`): it needs no control
// plane. args are the arguments after the bench's own flags (flag.Args();
// its -concurrency is the onboarding mode's):
//
//	-duration D       length of each side's turn (3s)
//	-turns N          turns of each side at each concurrency (3)
//	-concurrency L    concurrent connections, a list (1,16,64)
//	-cpuprofile FILE  CPU profile of the timed turns, both sides
//
// It times MCP tools/call of ledger.get_invoice through custos-gateway
// (internal/gateway in this process, every check on) against the same
// call made directly to the same tool server (test/tooldoubles) with a
// valid token of its own, taking turns; then the cost of each of the
// gateway's stages, and the heap and RSS of 1,000 agents' facades.
// Missing a goal is a result, not an error.
func runGateway(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	duration := fs.Duration("duration", 3*time.Second, "Length of each side's turn.")
	turns := fs.Int("turns", 3, "Turns of each side at each concurrency.")
	levelList := fs.String("concurrency", "1,16,64", "Concurrent connections (clients), a comma-separated list.")
	cpuProfile := fs.String("cpuprofile", "", "Write a CPU profile of the timed turns (both sides, this process) to this file.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var levels []int
	for f := range strings.SplitSeq(*levelList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("gateway: -concurrency: %q is not a number of connections >= 1", f)
		}
		levels = append(levels, n)
	}
	if *duration <= 0 || *turns < 1 {
		return errors.New("gateway: -duration must be positive and -turns at least 1")
	}

	w, err := newGatewayWorld()
	if err != nil {
		return err
	}
	defer w.close()

	// Memory first, on a heap the load has not grown yet.
	mem, err := facadeMemory()
	if err != nil {
		return err
	}

	sides := []gwSide{
		{name: "direct", url: w.ledger.Endpoint(), token: w.upstreamToken, body: gwCallBody("get_invoice")},
		{name: "gateway", url: w.gateway.URL + "/tenants/" + gwTenant + "/mcp", token: w.callerToken, body: gwCallBody("ledger.get_invoice")},
	}
	for _, s := range sides { // the answer is the ledger's invoice, both ways
		if err := s.check(http.DefaultClient); err != nil {
			return err
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			return fmt.Errorf("gateway: -cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	say("gateway: %d sides × %d turns × %s at %v connections", len(sides), *turns, *duration, levels)
	type result struct {
		lat       []time.Duration
		calls     int
		wall      time.Duration
		upstreams int64
	}
	var report []string
	for _, conns := range levels {
		res := make([]result, len(sides))
		clients := make([][]*http.Client, len(sides))
		for i, s := range sides {
			clients[i] = gwClients(conns)
			for _, c := range clients[i] { // open and warm each connection
				for range 5 {
					if err := s.call(ctx, c); err != nil {
						return err
					}
				}
			}
		}
		for turn := range *turns {
			for i, s := range sides {
				before := w.upstreamRequests.Load()
				lat, took, err := s.turn(ctx, clients[i], *duration)
				if err != nil {
					return fmt.Errorf("%s, %d connections, turn %d: %w", s.name, conns, turn+1, err)
				}
				res[i].lat = append(res[i].lat, lat...)
				res[i].calls += len(lat)
				res[i].wall += took
				res[i].upstreams += w.upstreamRequests.Load() - before
			}
		}
		for _, cs := range clients {
			for _, c := range cs {
				c.CloseIdleConnections()
			}
		}
		var p50, tput [2]float64
		for i, s := range sides {
			slices.Sort(res[i].lat)
			l := latencies{sorted: res[i].lat}
			p50[i] = msf(l.pct(0.5))
			tput[i] = float64(res[i].calls) / res[i].wall.Seconds()
			report = append(report, fmt.Sprintf("  %5d  %-8s %8.3f %8.3f %10.0f %12.2f", conns, s.name, p50[i], msf(l.pct(0.99)), tput[i],
				float64(res[i].upstreams)/float64(res[i].calls)))
		}
		ratio, diff := tput[1]/tput[0], p50[1]-p50[0]
		line := fmt.Sprintf("  %5d  gateway ÷ direct: throughput %.2fx, p50 %+.3f ms", conns, ratio, diff)
		if conns == gatewayGoalConns {
			line += fmt.Sprintf("   goal >= %.1fx and <= +%.0f ms: %s", gatewayThroughputGoal, msf(gatewayP50Goal),
				verdict(ratio >= gatewayThroughputGoal && diff <= msf(gatewayP50Goal)))
		}
		report = append(report, line)
	}
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}

	say("gateway: the stages, each on its own (testing.Benchmark)")
	stages, err := w.stages(ctx)
	if err != nil {
		return err
	}

	fmt.Printf("\nMCP tools/call of ledger.get_invoice over loopback HTTP (127.0.0.1), GOMAXPROCS %d; every client, the gateway and the\n", runtime.GOMAXPROCS(0))
	fmt.Printf("tool server (test/tooldoubles, verifying its token on every request) in this one process.\n")
	fmt.Printf("Clients: one http.Client per connection, kept alive, posting raw JSON-RPC (stateless streamable HTTP, JSON answers),\n")
	fmt.Printf("the same for both sides. direct: the same call straight to the tool server with a valid token for it. gateway: every\n")
	fmt.Printf("check on (token, revocations, agent, rate limits, _meta decision record, input schema, drift every %s, breaker,\n", gateway.DefaultDriftEvery)
	fmt.Printf("output schema, audit records marshalled to JSON and dropped); its token exchange is IN-PROCESS (verify the caller's\n")
	fmt.Printf("token, mint the Toolset's with the tenant's sts.Issuer), not an HTTP custos-sts. Sides take turns of %s, %d each.\n", *duration, *turns)
	fmt.Printf("  %5s  %-8s %8s %8s %10s %12s\n", "conns", "side", "p50 ms", "p99 ms", "calls/s", "upstream req")
	for _, l := range report {
		fmt.Println(l)
	}
	fmt.Printf("(upstream req: HTTP requests the tool server got per call.)\n")
	fmt.Printf("Anchor: agentgateway's plain forwarding is 0.37-0.48x direct throughput, +0.4-0.9 ms mean, at 16-32 connections.\n")

	fmt.Printf("\nThe gateway's stages for one call, each alone (µs and allocations per op):\n")
	for _, s := range stages {
		fmt.Printf("  %-68s %8.1f µs %6d allocs\n", s.name, s.us, s.allocs)
	}
	fmt.Printf("  (* not a check: what serving the call over MCP costs; the session open includes the tool server's side)\n")
	fmt.Printf("\n%d agents' facades (each agent its own 3-tool ledger Toolset, schemas compiled), built and held:\n", gatewayFacades)
	fmt.Printf("  Go heap in use (runtime.MemStats.HeapInuse, after GC) %+.1f MiB (%.1f KiB per facade); process RSS (VmRSS) %+.1f MiB\n",
		mem.heap/(1<<20), mem.heap/1024/gatewayFacades, mem.rss/(1<<20))
	fmt.Printf("  (the gateway keeps a facade per Toolsets' generations and scope, shared by every caller with the same,\n")
	fmt.Printf("  at most %d: agents with their own Toolsets each hold one)\n\n", gateway.DefaultMaxFacades)
	return nil
}

// gatewayWorld is custos-gateway with everything around it, in this
// process: custos-sts's keys served as JWKS, an in-process exchange, the
// ledger's tool server, the Agent and Toolset it reads.
type gatewayWorld struct {
	jwks    *httptest.Server
	issuer  *sts.Issuer
	ledger  *tooldoubles.Server
	gateway *httptest.Server
	server  *gateway.Server
	toolset *custosv1alpha1.Toolset
	tokens  *gwExchanger
	audit   *gwRecorder

	callerToken, upstreamToken string
	upstreamRequests           atomic.Int64
}

func newGatewayWorld() (*gatewayWorld, error) {
	now := time.Now()
	w := &gatewayWorld{}
	keys, err := sts.NewKeySet(now)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tenants/{tenant}/jwks", func(rw http.ResponseWriter, r *http.Request) {
		if r.PathValue("tenant") != gwTenant {
			http.NotFound(rw, r)
			return
		}
		_ = json.NewEncoder(rw).Encode(keys.JWKS())
	})
	w.jwks = httptest.NewTLSServer(mux)
	w.issuer = &sts.Issuer{URL: w.jwks.URL + "/tenants/" + gwTenant, Tenant: gwTenant, Keys: keys}
	w.toolset = gwLedger("finance", "ledger")

	w.ledger, err = tooldoubles.Serve("127.0.0.1:0", tooldoubles.Options{Tools: gwHonestTools(w.toolset),
		Verify: func(tok string) (any, error) {
			w.upstreamRequests.Add(1)
			_, err := w.issuer.Verify(tok, gwResource, time.Now())
			return nil, err // nothing kept: Seen would grow by a Claims a request
		}})
	if err != nil {
		w.close()
		return nil, err
	}

	person := func(aud, jti string) sts.Claims {
		return sts.Claims{Subject: "alice", Audience: aud, Expiry: now.Add(2 * time.Hour).Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(),
			ID: jti, Session: "sid-1", OriginalSubject: "alice@idp", Scope: "ledger.read ledger.write", Act: &sts.Actor{Subject: gwAgentID}}
	}
	if w.callerToken, err = w.issuer.Mint(person(sts.GatewayAudience(gwTenant), "jti-1")); err != nil {
		w.close()
		return nil, err
	}
	if w.upstreamToken, err = w.issuer.Mint(person(gwResource, "")); err != nil {
		w.close()
		return nil, err
	}

	agent := fixtures.Agent("finance", "invoice", gwTenant)
	agent.Spec.RequireDecisionRecord = custosv1alpha1.DecisionRecordIrreversible
	// As cmd/custos-gateway's upstream client: a kept pool of 64 idle
	// connections per host, answers capped at 1 MiB.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	transport.DialContext = gateway.Dialer(map[string]string{gwLedgerHost: w.ledger.Addr})
	clk := clock.RealClock{}
	drift := &gateway.DriftChecks{Clock: clk} // every DefaultDriftEvery
	w.tokens = &gwExchanger{issuer: w.issuer}
	w.audit = &gwRecorder{}
	w.server = &gateway.Server{
		Drift:       drift,
		Verifier:    &gateway.Verifier{IssuerBase: w.jwks.URL, Client: w.jwks.Client(), Clock: clk},
		Source:      &gwSource{agents: map[string]*custosv1alpha1.Agent{gwAgentID: agent}, toolsets: []custosv1alpha1.Toolset{*w.toolset}},
		Revocations: &gwRevocations{revoked: map[string]string{"jti-0": "revoked by the bench"}},
		Upstream: &gateway.MCPUpstream{Tokens: w.tokens, Client: &http.Client{Timeout: 30 * time.Second, Transport: gateway.LimitBody(transport, 1<<20)},
			Timeout: 30 * time.Second, Breakers: gateway.NewBreakers(gateway.BreakerSettings{}), Drift: drift,
			Resource: func(ts types.NamespacedName) string { return "urn:custos:toolset:" + ts.Namespace + ":" + ts.Name }},
		Limits: gateway.NewLimiter(gateway.RateLimits{PerAgent: gateway.Rate{PerMinute: 1 << 30, Burst: 1 << 20},
			PerTool: gateway.Rate{PerMinute: 1 << 30, Burst: 1 << 20}}, clk),
		Audit: w.audit,
		Clock: clk,
	}
	w.gateway = httptest.NewServer(w.server.Handler())
	return w, nil
}

func (w *gatewayWorld) close() {
	if w.gateway != nil {
		w.gateway.Close()
	}
	if w.ledger != nil {
		w.ledger.Close()
	}
	w.jwks.Close()
}

// gwLedger is the ledger Toolset as the gateway's tests pin it: get_invoice
// (Read, input and output schemas), pay (Write, irreversible, requestedBy
// bound to the person) and export_customer, served over plain http.
func gwLedger(ns, name string) *custosv1alpha1.Toolset {
	raw := func(s string) *k8sruntime.RawExtension { return &k8sruntime.RawExtension{Raw: []byte(s)} }
	ts := fixtures.Toolset(ns, name, gwTenant, fixtures.WithTools(
		custosv1alpha1.Tool{Name: "get_invoice", Description: "Fetch one supplier invoice by its number.", Access: custosv1alpha1.ToolAccessRead,
			InputSchema: raw(`{"type":"object","required":["invoiceNumber"],"additionalProperties":false,"properties":{"invoiceNumber":{"type":"string","pattern":"^INV-[0-9]{6}$"}}}`),
			OutputSchema: raw(`{"type":"object","required":["invoiceNumber","supplier","amount","currency"],"additionalProperties":false,` +
				`"properties":{"invoiceNumber":{"type":"string"},"supplier":{"type":"string"},"amount":{"type":"number"},"currency":{"type":"string","enum":["EUR","USD"]}}}`)},
		custosv1alpha1.Tool{Name: "pay", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true,
			InputSchema: raw(`{"type":"object","required":["invoice","amount"],"additionalProperties":false,` +
				`"properties":{"invoice":{"type":"string"},"amount":{"type":"number","exclusiveMinimum":0,"maximum":10000},"requestedBy":{"type":"string"}}}`),
			OutputSchema: raw(`{"type":"object","required":["paymentId","status"],"properties":{"paymentId":{"type":"string"},"status":{"type":"string"}}}`),
			Bind:         []custosv1alpha1.ArgumentBinding{{Argument: "requestedBy", Claim: custosv1alpha1.BoundClaimPerson}}},
		custosv1alpha1.Tool{Name: "export_customer", Access: custosv1alpha1.ToolAccessRead,
			InputSchema: raw(`{"type":"object","properties":{"customer":{"type":"string"}}}`),
			Bind:        []custosv1alpha1.ArgumentBinding{{Argument: "customer", Claim: custosv1alpha1.BoundClaimPersonAtIssuer}}},
	))
	ts.Spec.Endpoint.InCluster.Scheme = "http"
	return ts
}

// gwHonestTools is a tool server serving exactly what ts pins, answering
// as the ledger sample does.
func gwHonestTools(ts *custosv1alpha1.Toolset) []tooldoubles.Tool {
	answers := map[string]func(map[string]any) *mcp.CallToolResult{}
	for _, t := range tooldoubles.Ledger() {
		answers[t.Name] = t.Answer
	}
	var out []tooldoubles.Tool
	for _, p := range ts.Spec.Tools {
		t := tooldoubles.Tool{Name: p.Name, Description: p.Description, InputSchema: p.InputSchema.Raw, Answer: answers[p.Name]}
		if p.OutputSchema != nil {
			t.OutputSchema = p.OutputSchema.Raw
		}
		out = append(out, t)
	}
	return out
}

// gwExchanger stands in for custos-sts's exchange, in process: it
// verifies the caller's token for the gateway and mints the Toolset's
// token from it with the tenant's issuer, keeping sub, act and scope.
type gwExchanger struct{ issuer *sts.Issuer }

func (e *gwExchanger) ExchangeForToolset(_ context.Context, tenant, callerToken, resource string) (string, error) {
	c, err := e.issuer.Verify(callerToken, sts.GatewayAudience(tenant), time.Now())
	if err != nil {
		return "", err
	}
	c.Audience, c.Parent, c.ID = resource, c.ID, ""
	return e.issuer.Mint(*c)
}

// gwSource is the cluster as the gateway reads it, in memory.
type gwSource struct {
	mu       sync.RWMutex
	agents   map[string]*custosv1alpha1.Agent
	toolsets []custosv1alpha1.Toolset
}

func (s *gwSource) Caller(_ context.Context, tenant, agentID string) (*custosv1alpha1.Agent, []custosv1alpha1.Toolset, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.agents[agentID]
	if !ok || a.Labels[custosv1alpha1.TenantLabel] != tenant {
		return nil, nil, fmt.Errorf("%s is no agent of tenant %s", agentID, tenant)
	}
	return a, s.toolsets, nil
}

// gwRevocations are revocation lists in memory.
type gwRevocations struct {
	mu      sync.RWMutex
	revoked map[string]string
}

func (r *gwRevocations) Revoked(_, jti, session, agentID string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range []string{jti, session, agentID} {
		if why, ok := r.revoked[k]; ok && k != "" {
			return why, true
		}
	}
	return "", false
}

// gwRecorder marshals every event to JSON, as a record costs, and drops
// it; it keeps the last one for the stage figures.
type gwRecorder struct {
	bytes atomic.Int64
	last  atomic.Pointer[audit.Event]
}

func (r *gwRecorder) Record(_ context.Context, e audit.Event) {
	line, err := json.Marshal(e)
	if err == nil {
		r.bytes.Add(int64(len(line)))
	}
	r.last.Store(&e)
}

// gwMeta is every call's _meta: a decision record and a W3C traceparent.
func gwMeta() map[string]any {
	return map[string]any{
		gateway.DecisionMetaKey: map[string]any{"goal": "check INV-000001 against the purchase order", "reasoning": "the ticket asks for its amount",
			"alternatives": []any{"ask the requester"}, "confidence": 0.9},
		gateway.TraceParentMetaKey: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

var gwArgs = map[string]any{"invoiceNumber": "INV-000001"}

// gwCallBody is one JSON-RPC tools/call of tool, with gwArgs and gwMeta.
func gwCallBody(tool string) []byte {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": gwArgs, "_meta": gwMeta()}})
	return body
}

// gwSide is one of the two endpoints the clients call.
type gwSide struct {
	name, url, token string
	body             []byte
}

// gwClients are n clients, each with a transport of its own: one
// connection each, kept alive.
func gwClients(n int) []*http.Client {
	out := make([]*http.Client, n)
	for i := range out {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 1
		out[i] = &http.Client{Transport: t, Timeout: time.Minute}
	}
	return out
}

var isError = []byte(`"isError":true`)

// call makes one call and fails unless it is answered with a result that
// is no error.
func (s gwSide) call(ctx context.Context, c *http.Client) error {
	_, err := s.do(ctx, c)
	return err
}

func (s gwSide) do(ctx context.Context, c *http.Client) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, isError) || !bytes.Contains(body, []byte(`"result"`)) {
		return nil, fmt.Errorf("%s: %d %s", s.name, resp.StatusCode, body)
	}
	return body, nil
}

// check fails unless the answer is the ledger's invoice INV-000001.
func (s gwSide) check(c *http.Client) error {
	body, err := s.do(context.Background(), c)
	if err != nil {
		return err
	}
	var msg struct {
		Result mcp.CallToolResult `json:"result"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		return fmt.Errorf("%s: %w: %s", s.name, err, body)
	}
	var text []string
	for _, c := range msg.Result.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			text = append(text, t.Text)
		}
	}
	if got := strings.Join(text, "|"); got != `{"amount":120.5,"currency":"EUR","invoiceNumber":"INV-000001","supplier":"Acme Paper GmbH"}` {
		return fmt.Errorf("%s answered %q", s.name, got)
	}
	return nil
}

// turn has every client call, one call after the other, for d, and
// returns the calls' latencies and the turn's wall time.
func (s gwSide) turn(ctx context.Context, clients []*http.Client, d time.Duration) ([]time.Duration, time.Duration, error) {
	lats := make([][]time.Duration, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i, c := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				if t.After(end) {
					return
				}
				if err := s.call(ctx, c); err != nil {
					errs[i] = err
					return
				}
				lats[i] = append(lats[i], time.Since(t))
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	return slices.Concat(lats...), took, nil
}

// gwStage is one stage's cost alone.
type gwStage struct {
	name   string
	us     float64
	allocs int64
}

// stages times each stage of a call on its own, with what a real call
// of ledger.get_invoice gives it.
func (w *gatewayWorld) stages(ctx context.Context) ([]gwStage, error) {
	verifier := w.server.Verifier
	scopes := sts.Scopes("ledger.read ledger.write")
	toolsets := []custosv1alpha1.Toolset{*w.toolset}
	facade, errs := gateway.NewFacade(toolsets, scopes)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	tool, refused := facade.Lookup("ledger.get_invoice")
	if refused != nil {
		return nil, refused
	}
	// _meta and the arguments as they arrive: decoded from the wire.
	var params struct {
		Params struct {
			Arguments json.RawMessage `json:"arguments"`
			Meta      map[string]any  `json:"_meta"`
		} `json:"params"`
	}
	if err := json.Unmarshal(gwCallBody("ledger.get_invoice"), &params); err != nil {
		return nil, err
	}
	structured := tooldoubles.Ledger()[0].Answer(gwArgs).StructuredContent
	raw, _ := json.Marshal(structured)
	var upstreamContent any // as the SDK's client decodes it
	_ = json.Unmarshal(raw, &upstreamContent)
	event := w.audit.last.Load()
	if event == nil {
		return nil, errors.New("no audit event was recorded")
	}
	caller, err := verifier.Verify(ctx, gwTenant, w.callerToken)
	if err != nil {
		return nil, err
	}
	// A verifier that keeps nothing (1 ns): every token is a first use.
	fresh := &gateway.Verifier{IssuerBase: verifier.IssuerBase, Client: verifier.Client, Clock: verifier.Clock, VerifiedFor: time.Nanosecond}
	claims := *caller
	claims.Audience, claims.Parent, claims.ID = gwResource, claims.ID, ""

	var failed error
	fail := func(b *testing.B, err error) {
		if err != nil && failed == nil {
			failed = err
			b.SkipNow()
		}
	}
	type stage struct {
		name string
		fn   func(b *testing.B)
	}
	list := []stage{
		{"token verify, first use (Verifier.Verify, ES256, keys fetched)", func(b *testing.B) {
			_, err := fresh.Verify(ctx, gwTenant, w.callerToken)
			fail(b, err)
		}},
		{"token verify, again (Verifier.Verify, kept for VerifiedFor)", func(b *testing.B) {
			_, err := verifier.Verify(ctx, gwTenant, w.callerToken)
			fail(b, err)
		}},
		{"revocations + agent lookup (in memory)", func(b *testing.B) {
			w.server.Revocations.Revoked(gwTenant, caller.ID, caller.Session, "")
			_, _, err := w.server.Source.Caller(ctx, gwTenant, caller.ClientID)
			fail(b, err)
		}},
		{"facade build (NewFacade, 3 tools, schemas compiled; kept per Toolsets+scope)", func(b *testing.B) {
			_, errs := gateway.NewFacade(toolsets, scopes)
			fail(b, errors.Join(errs...))
		}},
		{"MCP server of a facade (NewServer, AddTool×3, handler; kept with it) *", func(b *testing.B) {
			s := mcp.NewServer(&mcp.Implementation{Name: "custos-gateway"}, nil)
			for _, t := range facade.List() {
				s.AddTool(gwMCPTool(t), func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) { return nil, nil })
			}
			_ = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
		}},
		{"rate limits (Limiter.Allow)", func(b *testing.B) {
			fail(b, refusalErr(w.server.Limits.Allow(gwAgentID, tool.Name)))
		}},
		{"ParseMeta (decision record + traceparent)", func(b *testing.B) {
			_, refused := gateway.ParseMeta(params.Params.Meta)
			fail(b, refusalErr(refused))
		}},
		{"input validation (DecodeArgs + Validate)", func(b *testing.B) {
			_, refused := tool.CheckInput(params.Params.Arguments)
			fail(b, refusalErr(refused))
		}},
		{"exchange, in process (verify + mint; once per token+Toolset)", func(b *testing.B) {
			_, err := w.tokens.ExchangeForToolset(ctx, gwTenant, w.callerToken, gwResource)
			fail(b, err)
		}},
		{"  of which mint (Issuer.Mint, ES256)", func(b *testing.B) {
			_, err := w.issuer.Mint(claims)
			fail(b, err)
		}},
		{"upstream session open+close (Connect, Close; once per token+Toolset) *", func(b *testing.B) {
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "custos-gateway"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
				Endpoint: w.ledger.Endpoint(), DisableStandaloneSSE: true, MaxRetries: -1,
				HTTPClient: &http.Client{Transport: gwBearer{w.upstreamToken, w.upstreamTransport()}}}, nil)
			if err == nil {
				err = cs.Close()
			}
			fail(b, err)
		}},
		{"upstream leg whole (MCPUpstream.Call: kept token and session, call, out) *", func(b *testing.B) {
			res, refused := w.server.Upstream.Call(ctx, caller, w.callerToken, tool, params.Params.Arguments)
			if refused == nil && res.IsError {
				refused = &gateway.Refusal{Message: "the tool answered an error"}
			}
			fail(b, refusalErr(refused))
		}},
		{"output validation (marshal, DecodeValue, Validate)", func(b *testing.B) {
			raw, err := json.Marshal(upstreamContent)
			if err == nil {
				var v any
				if v, err = toolschema.DecodeValue(raw); err == nil {
					if verr := toolschema.Validate(tool.Schemas.Output, v); verr != nil {
						err = errors.New(verr.Message)
					}
				}
			}
			fail(b, err)
		}},
		{"audit event JSON (json.Marshal of the call's record)", func(b *testing.B) {
			_, err := json.Marshal(event)
			fail(b, err)
		}},
	}
	var out []gwStage
	for _, s := range list {
		r := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.fn(b)
			}
		})
		if failed != nil {
			return nil, fmt.Errorf("stage %s: %w", s.name, failed)
		}
		out = append(out, gwStage{name: s.name, us: float64(r.NsPerOp()) / 1e3, allocs: r.AllocsPerOp()})
	}
	return out, nil
}

func (w *gatewayWorld) upstreamTransport() http.RoundTripper {
	return w.server.Upstream.(*gateway.MCPUpstream).Client.Transport
}

// gwBearer adds a bearer token to every request.
type gwBearer struct {
	token string
	next  http.RoundTripper
}

func (b gwBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// gwMCPTool is t as the gateway serves it in tools/list.
func gwMCPTool(t *gateway.Tool) *mcp.Tool {
	destructive := t.Spec.Irreversible
	out := &mcp.Tool{Name: t.Name, Description: t.Spec.Description, InputSchema: json.RawMessage(`{"type":"object"}`),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: t.Spec.Access == custosv1alpha1.ToolAccessRead, DestructiveHint: &destructive}}
	if t.Spec.InputSchema != nil {
		out.InputSchema = json.RawMessage(t.Spec.InputSchema.Raw)
	}
	if t.Spec.OutputSchema != nil {
		out.OutputSchema = json.RawMessage(t.Spec.OutputSchema.Raw)
	}
	return out
}

func refusalErr(r *gateway.Refusal) error {
	if r == nil {
		return nil
	}
	return r
}

// gwMemory is what holding the facades added.
type gwMemory struct{ heap, rss float64 }

// facadeMemory builds the facades of gatewayFacades agents, each with a
// Toolset of its own, and measures the Go heap in use and the process's
// RSS before and after, the Toolsets already built on both.
func facadeMemory() (gwMemory, error) {
	toolsets := make([][]custosv1alpha1.Toolset, gatewayFacades)
	for i := range toolsets {
		toolsets[i] = []custosv1alpha1.Toolset{*gwLedger(fmt.Sprintf("team-%04d", i), "ledger")}
	}
	scopes := sts.Scopes("ledger.read ledger.write")
	heap0, rss0, err := gwMemNow()
	if err != nil {
		return gwMemory{}, err
	}
	facades := make([]*gateway.Facade, gatewayFacades)
	for i, ts := range toolsets {
		f, errs := gateway.NewFacade(ts, scopes)
		if len(errs) > 0 {
			return gwMemory{}, errors.Join(errs...)
		}
		facades[i] = f
	}
	heap1, rss1, err := gwMemNow()
	runtime.KeepAlive(facades)
	runtime.KeepAlive(toolsets)
	return gwMemory{heap: float64(heap1) - float64(heap0), rss: float64(rss1) - float64(rss0)}, err
}

// gwMemNow is the Go heap in use after a GC, and VmRSS, in bytes.
func gwMemNow() (uint64, uint64, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	for l := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return ms.HeapInuse, kb << 10, err
		}
	}
	return 0, 0, errors.New("/proc/self/status has no VmRSS")
}

// msf is d in milliseconds.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
