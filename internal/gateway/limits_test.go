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
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	clocktesting "k8s.io/utils/clock/testing"
)

// allow calls l.Allow and fails the test if the call is refused.
func allow(t *testing.T, l *Limiter, agent, tool string) {
	t.Helper()
	if r := l.Allow(agent, tool); r != nil {
		t.Fatalf("%s calling %s: refused: %s", agent, tool, r.Message)
	}
}

// refused calls l.Allow and fails the test unless the call is refused
// with message.
func refused(t *testing.T, l *Limiter, agent, tool, message string) {
	t.Helper()
	r := l.Allow(agent, tool)
	if r == nil {
		t.Fatalf("%s calling %s: allowed, want refused with %q", agent, tool, message)
	}
	if r.Reason != ReasonRateLimited || r.Message != message {
		t.Fatalf("%s calling %s: refused with %s %q, want %s %q", agent, tool, r.Reason, r.Message, ReasonRateLimited, message)
	}
}

// TestRateLimitPerAgent: an agent's burst is allowed across its tools,
// the call after it is refused with the wait until the next token, and a
// token comes back as the clock moves; another agent has its own bucket.
func TestRateLimitPerAgent(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	l := NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 60, Burst: 5}}, clk)
	for i := range 5 {
		allow(t, l, "agent-a", fmt.Sprintf("ledger.tool%d", i))
	}
	const full = "tool ledger.pay: rate limit of 60 calls per minute per agent reached; retry in 1s"
	refused(t, l, "agent-a", "ledger.pay", full)
	allow(t, l, "agent-b", "ledger.pay")
	clk.Step(500 * time.Millisecond)
	refused(t, l, "agent-a", "ledger.pay", full) // half a token: still 1s, rounded up
	clk.Step(500 * time.Millisecond)
	allow(t, l, "agent-a", "ledger.pay")
	refused(t, l, "agent-a", "ledger.pay", full)
	clk.Step(time.Hour) // refills to the burst, no more
	for range 5 {
		allow(t, l, "agent-a", "ledger.pay")
	}
	refused(t, l, "agent-a", "ledger.pay", full)
}

// TestRateLimitPerTool: the per-tool bucket is the agent's for one tool:
// the agent's other tools, and other agents on that tool, are not held.
func TestRateLimitPerTool(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	l := NewLimiter(RateLimits{PerTool: Rate{PerMinute: 30, Burst: 3}}, clk)
	for range 3 {
		allow(t, l, "agent-a", "ledger.pay")
	}
	const full = "tool ledger.pay: rate limit of 30 calls per minute per agent on this tool reached; retry in 2s"
	refused(t, l, "agent-a", "ledger.pay", full)
	allow(t, l, "agent-a", "ledger.get_invoice")
	allow(t, l, "agent-b", "ledger.pay")
	clk.Step(1999 * time.Millisecond)
	refused(t, l, "agent-a", "ledger.pay", "tool ledger.pay: rate limit of 30 calls per minute per agent on this tool reached; retry in 1s")
	clk.Step(time.Millisecond)
	allow(t, l, "agent-a", "ledger.pay")
	refused(t, l, "agent-a", "ledger.pay", full)
}

// TestRateLimitNoCrossConsumption: a call one bucket refuses takes
// nothing from the other; when both refuse, the longer wait is told.
func TestRateLimitNoCrossConsumption(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	t.Run("refused per tool", func(t *testing.T) {
		clk := clocktesting.NewFakeClock(start)
		// The agent's bucket refills slowly: were the refused calls to
		// take from it, the calls of the other tool would find it empty.
		l := NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 6, Burst: 3}, PerTool: Rate{PerMinute: 60, Burst: 1}}, clk)
		allow(t, l, "agent-a", "ledger.pay")
		for range 10 {
			refused(t, l, "agent-a", "ledger.pay", "tool ledger.pay: rate limit of 60 calls per minute per agent on this tool reached; retry in 1s")
		}
		allow(t, l, "agent-a", "ledger.get_invoice")
		allow(t, l, "agent-a", "ledger.list")
		refused(t, l, "agent-a", "ledger.search", "tool ledger.search: rate limit of 6 calls per minute per agent reached; retry in 10s")
	})
	t.Run("refused per agent", func(t *testing.T) {
		clk := clocktesting.NewFakeClock(start)
		// Now the tool's bucket refills slowly.
		l := NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 60, Burst: 1}, PerTool: Rate{PerMinute: 6, Burst: 2}}, clk)
		allow(t, l, "agent-a", "ledger.get_invoice")
		for range 10 {
			refused(t, l, "agent-a", "ledger.pay", "tool ledger.pay: rate limit of 60 calls per minute per agent reached; retry in 1s")
		}
		clk.Step(time.Second)
		allow(t, l, "agent-a", "ledger.pay")
		clk.Step(time.Second)
		allow(t, l, "agent-a", "ledger.pay")
	})
	t.Run("refused by both", func(t *testing.T) {
		clk := clocktesting.NewFakeClock(start)
		l := NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 60, Burst: 1}, PerTool: Rate{PerMinute: 7, Burst: 1}}, clk)
		allow(t, l, "agent-a", "ledger.pay")
		// 60/7 s = 8.57 s, rounded up.
		refused(t, l, "agent-a", "ledger.pay", "tool ledger.pay: rate limit of 7 calls per minute per agent on this tool reached; retry in 9s")
	})
}

// TestRateLimitDefaults: PerMinute 0 is no limit and keeps no bucket;
// Burst 0 is a minute's worth.
func TestRateLimitDefaults(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	l := NewLimiter(RateLimits{}, clk)
	for range 1000 {
		allow(t, l, "agent-a", "ledger.pay")
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("Len() = %d with no limit, want 0", n)
	}
	l = NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 10}}, clk)
	for range 10 {
		allow(t, l, "agent-a", "ledger.pay")
	}
	refused(t, l, "agent-a", "ledger.pay", "tool ledger.pay: rate limit of 10 calls per minute per agent reached; retry in 6s")
}

// TestRateLimitEviction: buckets back to full are dropped at the next
// sweep, a minute at most after the last; one still refilling is kept.
func TestRateLimitEviction(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	l := NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 60, Burst: 60}, PerTool: Rate{PerMinute: 60, Burst: 60}}, clk)
	for i := range 10000 {
		allow(t, l, fmt.Sprintf("agent-%d", i), "ledger.pay")
	}
	if n := l.Len(); n != 20000 {
		t.Fatalf("Len() = %d after 10000 agents' calls, want 20000", n)
	}
	clk.SetTime(start.Add(50 * time.Second))
	for range 60 {
		allow(t, l, "busy", "ledger.pay")
	}
	clk.SetTime(start.Add(61 * time.Second))
	allow(t, l, "agent-x", "ledger.pay")
	// busy's buckets hold 11 tokens of 60, agent-x's were made after the
	// sweep: 4 buckets.
	if n := l.Len(); n != 4 {
		t.Fatalf("Len() = %d after the sweep, want 4 (busy's and agent-x's)", n)
	}
	clk.SetTime(start.Add(90 * time.Second))
	allow(t, l, "agent-y", "ledger.pay")
	if n := l.Len(); n != 6 {
		t.Fatalf("Len() = %d before a minute has passed since the sweep, want 6", n)
	}
	clk.SetTime(start.Add(122 * time.Second))
	allow(t, l, "agent-x", "ledger.pay")
	if n := l.Len(); n != 2 {
		t.Fatalf("Len() = %d after the second sweep, want 2 (agent-x's anew)", n)
	}
}

// TestRateLimitConcurrent: under -race, agents calling at once get their
// burst exactly, never more.
func TestRateLimitConcurrent(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	l := NewLimiter(RateLimits{PerAgent: Rate{PerMinute: 60, Burst: 100}, PerTool: Rate{PerMinute: 60, Burst: 50}}, clk)
	const agents, workers = 8, 4
	var allowed [agents]atomic.Int64
	var wg sync.WaitGroup
	for a := range agents {
		for range workers {
			wg.Go(func() {
				for i := range 100 {
					tool := []string{"ledger.pay", "ledger.get_invoice"}[i%2]
					if l.Allow(fmt.Sprintf("agent-%d", a), tool) == nil {
						allowed[a].Add(1)
					}
					_ = l.Len()
				}
			})
		}
	}
	wg.Wait()
	for a := range agents {
		if n := allowed[a].Load(); n != 100 {
			t.Errorf("agent-%d: %d calls allowed, want 100 (its burst, two tools of 50)", a, n)
		}
	}
}

var errDown = errors.New("connection refused")

// TestBreakerOpens: Failures calls in a row open the circuit, a success
// between them starts the count again, the call's own error comes back
// as is, an open circuit refuses without calling and says until when,
// and another upstream is not held.
func TestBreakerOpens(t *testing.T) {
	b := NewBreakers(BreakerSettings{Failures: 3, OpenFor: 30 * time.Second})
	fail := func() error { return errDown }
	for _, call := range []func() error{fail, fail, func() error { return nil }, fail, fail} {
		if err, want := b.Do("finance/ledger", call), call(); err != want {
			t.Fatalf("Do returned %v, want the call's own %v", err, want)
		}
	}
	if s := b.State("finance/ledger"); s != "closed" {
		t.Fatalf("State after 2 failures in a row = %s, want closed", s)
	}
	opened := time.Now()
	if err := b.Do("finance/ledger", fail); err != errDown {
		t.Fatalf("third failure in a row: Do returned %v, want %v", err, errDown)
	}
	if s := b.State("finance/ledger"); s != "open" {
		t.Fatalf("State after 3 failures in a row = %s, want open", s)
	}
	called := false
	err := b.Do("finance/ledger", func() error { called = true; return nil })
	if called {
		t.Fatal("an open circuit let the call through")
	}
	var r *Refusal
	if !errors.As(err, &r) || r.Reason != ReasonUpstreamUnavailable {
		t.Fatalf("open circuit: Do returned %#v, want a *Refusal %s", err, ReasonUpstreamUnavailable)
	}
	const prefix, suffix = "tool server of Toolset finance/ledger: 3 calls in a row failed; not called again until ", " UTC (circuit open)"
	until, ok := strings.CutPrefix(r.Message, prefix)
	if until, ok = strings.CutSuffix(until, suffix); !ok {
		t.Fatalf("open circuit: message %q, want %q<time>%q", r.Message, prefix, suffix)
	}
	want := opened.Add(30 * time.Second).UTC()
	at, err := time.Parse("15:04:05", until)
	if err != nil {
		t.Fatal(err)
	}
	at = time.Date(want.Year(), want.Month(), want.Day(), at.Hour(), at.Minute(), at.Second(), 0, time.UTC)
	if d := at.Sub(want); d < -2*time.Second || d > 2*time.Second {
		t.Fatalf("open circuit: not called until %s, want about %s", until, want.Format("15:04:05"))
	}
	if err := b.Do("finance/payroll", func() error { called = true; return nil }); err != nil || !called {
		t.Fatalf("another upstream: Do returned %v, called %v; want it called", err, called)
	}
	if s := b.State("finance/payroll"); s != "closed" {
		t.Fatalf("another upstream's State = %s, want closed", s)
	}
}

// waitState polls until upstream's circuit is in state, for at most 5s.
func waitState(t *testing.T, b *Breakers, upstream, state string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.State(upstream) != state {
		if time.Now().After(deadline) {
			t.Fatalf("%s's circuit still %s after 5s, want %s", upstream, b.State(upstream), state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBreakerHalfOpen: after OpenFor a trial call goes through, and the
// others wait for it; its success closes the circuit, its failure opens
// it again. gobreaker's clock cannot be set: OpenFor is short, and the
// test polls; short, but long enough that the circuit, opened again, is
// still open for the check that follows on a slow machine.
func TestBreakerHalfOpen(t *testing.T) {
	b := NewBreakers(BreakerSettings{Failures: 2, OpenFor: 500 * time.Millisecond})
	for range 2 {
		_ = b.Do("finance/ledger", func() error { return errDown })
	}
	if s := b.State("finance/ledger"); s != "open" {
		t.Fatalf("State = %s, want open", s)
	}
	waitState(t, b, "finance/ledger", "half-open")

	release, started := make(chan struct{}), make(chan struct{})
	trial := make(chan error)
	go func() {
		trial <- b.Do("finance/ledger", func() error { close(started); <-release; return nil })
	}()
	<-started
	called := false
	err := b.Do("finance/ledger", func() error { called = true; return nil })
	var r *Refusal
	if called || !errors.As(err, &r) || r.Reason != ReasonUpstreamUnavailable {
		t.Fatalf("during the trial call: Do returned %v, called %v; want refused uncalled", err, called)
	}
	if want := "tool server of Toolset finance/ledger: 2 calls in a row failed, and it is being tried again; retry once that trial has answered (circuit half-open)"; r.Message != want {
		t.Fatalf("during the trial call: message %q, want %q", r.Message, want)
	}
	close(release)
	if err := <-trial; err != nil {
		t.Fatalf("trial call: %v", err)
	}
	if s := b.State("finance/ledger"); s != "closed" {
		t.Fatalf("State after the trial call succeeded = %s, want closed", s)
	}

	for range 2 {
		_ = b.Do("finance/ledger", func() error { return errDown })
	}
	waitState(t, b, "finance/ledger", "half-open")
	if err := b.Do("finance/ledger", func() error { return errDown }); err != errDown {
		t.Fatalf("failed trial call: Do returned %v, want %v", err, errDown)
	}
	if s := b.State("finance/ledger"); s != "open" {
		t.Fatalf("State after the trial call failed = %s, want open", s)
	}
	err = b.Do("finance/ledger", func() error { return nil })
	if !errors.As(err, &r) || !strings.HasPrefix(r.Message, "tool server of Toolset finance/ledger: it failed again when tried after its circuit opened; not called again until ") {
		t.Fatalf("open again: Do returned %v", err)
	}
}

// TestBreakerFailures: only errors count, and not the caller's giving up;
// an upstream never called is closed and has no breaker made for it.
func TestBreakerFailures(t *testing.T) {
	b := NewBreakers(BreakerSettings{Failures: 1})
	for range 10 {
		// A tool result with isError: the caller returns nil.
		if err := b.Do("finance/ledger", func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	canceled := fmt.Errorf("calling tools/call: %w", context.Canceled)
	if err := b.Do("finance/ledger", func() error { return canceled }); err != canceled {
		t.Fatalf("Do returned %v, want %v", err, canceled)
	}
	if s := b.State("finance/ledger"); s != "closed" {
		t.Fatalf("State after a cancelled call = %s, want closed", s)
	}
	if s := b.State("finance/unknown"); s != "closed" || len(b.breakers) != 1 {
		t.Fatalf("never called: State = %s with %d breakers, want closed and 1", s, len(b.breakers))
	}
}

// countingTransport counts the body bytes read through it.
type countingTransport struct{ read atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		resp.Body = countingBody{resp.Body, &c.read}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	read *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read.Add(int64(n))
	return n, err
}

// TestLimitBody: an answer of exactly max bytes passes, one byte more
// fails with a *TooLargeError, at once when Content-Length says so (no
// byte of the body read), while reading when the answer is chunked.
func TestLimitBody(t *testing.T) {
	const limit = 10 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		chunk := []byte(strings.Repeat("x", 32<<10))
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		for size > 0 {
			n := min(size, len(chunk))
			if _, err := w.Write(chunk[:n]); err != nil {
				return
			}
			size -= n
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	const message = "the tool server's answer exceeds 10 MiB (the gateway's --max-response-bytes); nothing of it is passed on"
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			get := func(size int) (*http.Response, *countingTransport, error) {
				counting := &countingTransport{}
				client := &http.Client{Transport: LimitBody(counting, limit)}
				q := url.Values{"size": {strconv.Itoa(size)}}
				if chunked {
					q.Set("chunked", "1")
				}
				resp, err := client.Get(srv.URL + "?" + q.Encode())
				return resp, counting, err
			}

			resp, _, err := get(limit)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || len(body) != limit {
				t.Fatalf("exactly the limit: read %d bytes, %v; want %d, no error", len(body), err, limit)
			}
			if chunked == (resp.ContentLength >= 0) {
				t.Fatalf("Content-Length %d, chunked %v", resp.ContentLength, chunked)
			}

			resp, counting, err := get(limit + 1)
			if !chunked {
				var tl *TooLargeError
				if !errors.As(err, &tl) || tl.Max != limit || tl.Error() != message {
					t.Fatalf("Content-Length over the limit: %v, want a *TooLargeError: %s", err, message)
				}
				if n := counting.read.Load(); n != 0 {
					t.Fatalf("Content-Length over the limit: %d bytes of the body read, want none", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, err = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			var tl *TooLargeError
			if !errors.As(err, &tl) || tl.Error() != message {
				t.Fatalf("chunked over the limit: read %d bytes, %v; want a *TooLargeError: %s", len(body), err, message)
			}
			if len(body) > limit {
				t.Fatalf("chunked over the limit: %d bytes read, want no more than %d", len(body), limit)
			}
			if _, err := resp.Body.Read(make([]byte, 1)); !errors.As(err, &tl) {
				t.Fatalf("reading on after the limit: %v, want the *TooLargeError again", err)
			}
		})
	}
}

// TestLimitBodyMCP: through the MCP SDK, whose errors do not carry the
// *TooLargeError, WatchBodyLimit still tells the answer was cut, with a
// JSON answer and with an event stream; a small answer is not.
func TestLimitBodyMCP(t *testing.T) {
	for _, jsonResponse := range []bool{true, false} {
		t.Run(fmt.Sprintf("json=%v", jsonResponse), func(t *testing.T) {
			server := mcp.NewServer(&mcp.Implementation{Name: "reports"}, nil)
			server.AddTool(&mcp.Tool{Name: "report", InputSchema: json.RawMessage(`{"type":"object"}`)},
				func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					var args struct{ Size int }
					_ = json.Unmarshal(req.Params.Arguments, &args)
					return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", args.Size)}}}, nil
				})
			srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
				&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: jsonResponse}))
			t.Cleanup(srv.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			session, err := mcp.NewClient(&mcp.Implementation{Name: "custos-gateway"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
				Endpoint: srv.URL, DisableStandaloneSSE: true, HTTPClient: &http.Client{Transport: LimitBody(nil, 1<<20)}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer session.Close()

			callCtx, tooLarge := WatchBodyLimit(ctx)
			if _, err := session.CallTool(callCtx, &mcp.CallToolParams{Name: "report", Arguments: map[string]any{"size": 1000}}); err != nil {
				t.Fatal(err)
			}
			if err := tooLarge(); err != nil {
				t.Fatalf("small answer: WatchBodyLimit says %v", err)
			}

			callCtx, tooLarge = WatchBodyLimit(ctx)
			_, err = session.CallTool(callCtx, &mcp.CallToolParams{Name: "report", Arguments: map[string]any{"size": 2 << 20}})
			if err == nil {
				t.Fatal("an answer over the limit came through")
			}
			r := UpstreamRefusal("reports.report", 10*time.Second, tooLarge())
			want := "tool reports.report: the tool server's answer exceeds 1 MiB (the gateway's --max-response-bytes); nothing of it is passed on"
			if r == nil || r.Reason != ReasonUpstreamTooLarge || r.Message != want {
				t.Fatalf("answer over the limit (SDK error %q): refusal %+v, want %s %q", err, r, ReasonUpstreamTooLarge, want)
			}
		})
	}
}

// TestLimitBodySizes: the limit reads as a person would write it.
func TestLimitBodySizes(t *testing.T) {
	for n, want := range map[int64]string{10 << 20: "10 MiB", 512 << 10: "512 KiB", 3 << 19: "1.5 MiB",
		1536: "1.5 KiB", 1000: "1000 bytes", 1025: "1.0 KiB (1025 bytes)", 100: "100 bytes", 10<<20 + 1: "10.0 MiB (10485761 bytes)"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// timeoutError is a net.Error that timed out, as a dial's.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestUpstreamRefusal: what an upstream call's error is refused as.
func TestUpstreamRefusal(t *testing.T) {
	const tool = "ledger.get_invoice"
	if r := UpstreamRefusal(tool, 10*time.Second, nil); r != nil {
		t.Fatalf("no error: %+v", r)
	}
	open := &Refusal{Reason: ReasonUpstreamUnavailable, Message: "circuit open"}
	if r := UpstreamRefusal(tool, 10*time.Second, fmt.Errorf("calling: %w", open)); r != open {
		t.Fatalf("a *Refusal: %+v, want it passed through", r)
	}

	// A real client timeout, against a server that does not answer.
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	_, clientTimeout := (&http.Client{Timeout: 50 * time.Millisecond}).Get(hang.URL)

	timedOut := "tool ledger.get_invoice: its server did not answer within 10s (the gateway's --upstream-timeout)"
	for _, c := range []struct {
		name    string
		timeout time.Duration
		err     error
		reason  string
		message string
	}{
		{"too large", 10 * time.Second, &url.Error{Op: "Post", URL: "https://ledger", Err: &TooLargeError{Max: 10 << 20}}, ReasonUpstreamTooLarge,
			"tool ledger.get_invoice: the tool server's answer exceeds 10 MiB (the gateway's --max-response-bytes); nothing of it is passed on"},
		{"deadline", 10 * time.Second, fmt.Errorf("calling \"tools/call\": %w", context.DeadlineExceeded), ReasonUpstreamTimeout, timedOut},
		{"client timeout", 10 * time.Second, clientTimeout, ReasonUpstreamTimeout, timedOut},
		{"net timeout", 10 * time.Second, &url.Error{Op: "Post", URL: "https://ledger", Err: timeoutError{}}, ReasonUpstreamTimeout, timedOut},
		{"no timeout given", 0, context.DeadlineExceeded, ReasonUpstreamTimeout,
			"tool ledger.get_invoice: its server did not answer in time (the gateway's --upstream-timeout)"},
		{"other", 10 * time.Second, errDown, ReasonUpstreamUnavailable, "tool ledger.get_invoice: its server: connection refused"},
	} {
		r := UpstreamRefusal(tool, c.timeout, c.err)
		if r == nil || r.Reason != c.reason || r.Message != c.message {
			t.Errorf("%s (%v): %+v, want %s %q", c.name, c.err, r, c.reason, c.message)
		}
	}
}
