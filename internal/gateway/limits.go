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
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// Reasons a call is refused on account of the gateway's limits or of its
// upstream, on the audit record.
const (
	// ReasonRateLimited: the agent called more often than its rate allows.
	ReasonRateLimited = "RateLimited"
	// ReasonUpstreamUnavailable: the tool's server failed, or failed so
	// often that its circuit is open and it is not called for a while.
	ReasonUpstreamUnavailable = "UpstreamUnavailable"
	// ReasonUpstreamTooLarge: the tool's server answered more than the
	// gateway takes (--max-response-bytes).
	ReasonUpstreamTooLarge = "UpstreamTooLarge"
	// ReasonUpstreamTimeout: the tool's server did not answer in time
	// (--upstream-timeout).
	ReasonUpstreamTimeout = "UpstreamTimeout"
)

// Rate is a token bucket: PerMinute calls a minute on average, Burst at
// once. PerMinute 0 (or less) is no limit. Burst 0 (or less) is PerMinute,
// so that "60 a minute" lets 60 through in a minute from rest.
type Rate struct {
	PerMinute int
	Burst     int
}

func (r Rate) limited() bool { return r.PerMinute > 0 }

func (r Rate) burst() int {
	if r.Burst <= 0 {
		return r.PerMinute
	}
	return r.Burst
}

func (r Rate) bucket() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(r.PerMinute)/60), r.burst())
}

// RateLimits are the gateway's rates: PerAgent for all of an agent's calls
// together, PerTool for an agent's calls of one tool.
type RateLimits struct {
	PerAgent, PerTool Rate
}

// sweepEvery is how often, at most, Allow looks for buckets to drop.
const sweepEvery = time.Minute

type agentTool struct{ agent, tool string }

// Limiter keeps a token bucket per agent and one per agent and tool.
//
// One mutex guards both maps and the buckets in them: a call must find
// room in both of its buckets before it takes from either, and that check
// and take must be one step, or two calls could each see the last token.
// What is done under the lock is a map lookup and some arithmetic, which
// is small beside the upstream call that follows; a sharded map would
// buy little and make the sweep harder to reason about.
//
// Memory stays bounded by dropping full buckets: a full bucket is the same
// as the new one the next call would make, so dropping it loses nothing,
// and a bucket is full once it has been idle for its refill time. The
// sweep runs on the call path, under the lock, at most once a minute, so
// that its cost (a pass over the maps) is spread thin and no goroutine
// needs stopping. Between sweeps the maps hold the buckets of the agents
// (and agent, tool pairs) seen in the last minute plus their refill time.
type Limiter struct {
	limits RateLimits
	clk    clock.PassiveClock

	mu        sync.Mutex
	agents    map[string]*rate.Limiter
	tools     map[agentTool]*rate.Limiter
	nextSweep time.Time
}

// NewLimiter keeps the rates l, telling time by clk.
func NewLimiter(l RateLimits, clk clock.PassiveClock) *Limiter {
	return &Limiter{limits: l, clk: clk, agents: map[string]*rate.Limiter{}, tools: map[agentTool]*rate.Limiter{},
		nextSweep: clk.Now().Add(sweepEvery)}
}

// Allow takes a token for a call of tool by agentID from the agent's
// bucket and from the agent's bucket for tool, or refuses the call, and
// takes none, if either is empty. tool should be a tool of the agent's
// facade (Lookup first): each name makes a bucket, for a while.
func (l *Limiter) Allow(agentID, tool string) *Refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Read under the lock, so that the buckets see time only go forward.
	now := l.clk.Now()
	if !now.Before(l.nextSweep) {
		l.sweep(now)
	}
	var agent, perTool *rate.Limiter
	if l.limits.PerAgent.limited() {
		agent = l.agents[agentID]
		if agent == nil {
			agent = l.limits.PerAgent.bucket()
			l.agents[agentID] = agent
		}
	}
	if l.limits.PerTool.limited() {
		key := agentTool{agentID, tool}
		perTool = l.tools[key]
		if perTool == nil {
			perTool = l.limits.PerTool.bucket()
			l.tools[key] = perTool
		}
	}
	// Both are looked at before either is taken from, so that a call one
	// bucket refuses costs the other nothing. The longer wait is the one
	// told: retrying after the shorter would be refused again.
	agentWait, toolWait := wait(agent, now), wait(perTool, now)
	if agentWait == 0 && toolWait == 0 {
		if agent != nil {
			agent.AllowN(now, 1)
		}
		if perTool != nil {
			perTool.AllowN(now, 1)
		}
		return nil
	}
	r, which, retry := l.limits.PerAgent, "per agent", agentWait
	if toolWait > agentWait {
		r, which, retry = l.limits.PerTool, "per agent on this tool", toolWait
	}
	return &Refusal{Reason: ReasonRateLimited,
		Message: fmt.Sprintf("tool %s: rate limit of %d calls per minute %s reached; retry in %ds", tool, r.PerMinute, which, retry),
		Detail:  fmt.Sprintf("agent %s: bucket %s empty (%d a minute, burst %d)", agentID, which, r.PerMinute, r.burst())}
}

// wait is how many whole seconds, rounded up, until b holds a token; 0 if
// it holds one now (or there is no bucket).
func wait(b *rate.Limiter, now time.Time) int {
	if b == nil {
		return 0
	}
	tokens := b.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return max(1, int(math.Ceil((1-tokens)/float64(b.Limit()))))
}

// sweep drops the full buckets. l.mu is held.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.agents {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.agents, k)
		}
	}
	for k, b := range l.tools {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.tools, k)
		}
	}
	l.nextSweep = now.Add(sweepEvery)
}

// Len is how many buckets the limiter holds, per agent and per agent and
// tool together.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.agents) + len(l.tools)
}

// BreakerSettings configure the circuit breaker of each upstream. Zero
// values take the defaults.
type BreakerSettings struct {
	// Failures is how many calls in a row must fail for the circuit to
	// open; 5 by default.
	Failures uint32
	// OpenFor is how long an open circuit refuses calls before it lets
	// some through to try the upstream again; 30s by default.
	OpenFor time.Duration
	// HalfOpenCalls is how many calls are let through then, and must all
	// succeed for the circuit to close again; 1 by default. Any that fails
	// opens it again for OpenFor.
	HalfOpenCalls uint32
}

// Breakers keep a circuit breaker per upstream, so that a tool server
// that keeps failing is left alone for a while rather than called, and
// waited for, by every agent. Breakers are made on first use and kept:
// there is one per Toolset called through this gateway.
type Breakers struct {
	settings BreakerSettings

	mu       sync.Mutex
	breakers map[string]*breaker
}

type breaker struct {
	cb *gobreaker.CircuitBreaker[struct{}]

	// gobreaker does not say when an open circuit will let calls through
	// again, nor can its clock be set: openUntil is noted when it opens,
	// by the same time.Now and OpenFor, for the caller to be told.
	mu        sync.Mutex
	openUntil time.Time
	why       string
}

// NewBreakers makes an empty set of breakers with settings s.
func NewBreakers(s BreakerSettings) *Breakers {
	if s.Failures == 0 {
		s.Failures = 5
	}
	if s.OpenFor <= 0 {
		s.OpenFor = 30 * time.Second
	}
	if s.HalfOpenCalls == 0 {
		s.HalfOpenCalls = 1
	}
	return &Breakers{settings: s, breakers: map[string]*breaker{}}
}

func (bs *Breakers) get(upstream string, create bool) *breaker {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.breakers[upstream]
	if b != nil || !create {
		return b
	}
	s := bs.settings
	b = &breaker{}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        upstream,
		MaxRequests: s.HalfOpenCalls,
		Timeout:     s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= s.Failures },
		// A call the agent gave up on says nothing of the upstream.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to != gobreaker.StateOpen {
				return
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			b.openUntil = time.Now().Add(s.OpenFor)
			if from == gobreaker.StateHalfOpen {
				b.why = "it failed again when tried after its circuit opened"
			} else {
				b.why = fmt.Sprintf("%d calls in a row failed", s.Failures)
			}
		},
	})
	bs.breakers[upstream] = b
	return b
}

// Do runs call through upstream's breaker. upstream names the tool server,
// as "<namespace>/<name>" of its Toolset. call fails by returning an
// error, which Do returns as is; what is a failure is the caller's to
// say (a tool result with isError is the tool's answer, not a failure,
// and should come back as nil). An error wrapping context.Canceled is
// counted neither way. When the circuit is open, or half-open with its
// trial calls under way, call is not run and Do returns a *Refusal.
func (bs *Breakers) Do(upstream string, call func() error) error {
	b := bs.get(upstream, true)
	ran := false
	_, err := b.cb.Execute(func() (struct{}, error) {
		ran = true
		return struct{}{}, call()
	})
	if ran {
		return err
	}
	b.mu.Lock()
	until, why := b.openUntil.UTC().Format("15:04:05 MST"), b.why
	b.mu.Unlock()
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &Refusal{Reason: ReasonUpstreamUnavailable,
			Message: fmt.Sprintf("tool server of Toolset %s: %s, and it is being tried again; retry once that trial has answered (circuit half-open)", upstream, why),
			Detail:  "circuit half-open: its trial calls are under way"}
	}
	return &Refusal{Reason: ReasonUpstreamUnavailable,
		Message: fmt.Sprintf("tool server of Toolset %s: %s; not called again until %s (circuit open)", upstream, why, until),
		Detail:  "circuit open"}
}

// State is the state of upstream's circuit: "closed", "open" or
// "half-open". An upstream never called is closed.
func (bs *Breakers) State(upstream string) string {
	b := bs.get(upstream, false)
	if b == nil {
		return gobreaker.StateClosed.String()
	}
	return b.cb.State().String()
}

// TooLargeError is an upstream's answer larger than Max bytes.
type TooLargeError struct {
	Max int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the tool server's answer exceeds %s (the gateway's --max-response-bytes); nothing of it is passed on", byteSize(e.Max))
}

// byteSize writes n bytes as a reader would: 10 MiB, 1.5 MiB, 512 KiB,
// 100 bytes; with the exact count when a tenth of a unit does not say it
// (10.0 MiB (10485761 bytes)).
func byteSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n < u.size {
			continue
		}
		if (n*10)%u.size == 0 {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', -1, 64) + " " + u.name
		}
		return fmt.Sprintf("%.1f %s (%d bytes)", float64(n)/float64(u.size), u.name, n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// LimitBody caps the answers next gets at limit bytes: one that says it
// is larger (Content-Length) fails at once with a *TooLargeError, nothing
// of it read, and reading past limit of one that does not fails with the
// same. The caller must then drop what it read, so that nothing of it is
// passed on. limit 0 (or less) is no cap.
func LimitBody(next http.RoundTripper, limit int64) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	if limit <= 0 {
		return next
	}
	return bodyLimit{next: next, max: limit}
}

type bodyLimit struct {
	next http.RoundTripper
	max  int64
}

func (l bodyLimit) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	watch, _ := r.Context().Value(bodyWatchKey{}).(*atomic.Pointer[TooLargeError])
	if resp.ContentLength > l.max {
		_ = resp.Body.Close()
		return nil, tooLarge(watch, l.max)
	}
	resp.Body = &limitedBody{body: resp.Body, left: l.max, max: l.max, watch: watch}
	return resp, nil
}

func tooLarge(watch *atomic.Pointer[TooLargeError], limit int64) *TooLargeError {
	err := &TooLargeError{Max: limit}
	if watch != nil {
		watch.CompareAndSwap(nil, err)
	}
	return err
}

type bodyWatchKey struct{}

// WatchBodyLimit returns a context for the requests of one upstream call,
// and a func that returns the *TooLargeError of the first of their answers
// that LimitBody cut, or nil. It is there because an error met reading a
// body does not always come back from a client as itself: the MCP SDK
// (v1.8) passes it on as text when it reads a JSON answer, and drops it
// when it reads an event stream ("request terminated without response"),
// so errors.As cannot find it in what session.CallTool returns.
func WatchBodyLimit(ctx context.Context) (context.Context, func() error) {
	watch := &atomic.Pointer[TooLargeError]{}
	return context.WithValue(ctx, bodyWatchKey{}, watch), func() error {
		if err := watch.Load(); err != nil {
			return err
		}
		return nil
	}
}

type limitedBody struct {
	body      io.ReadCloser
	left, max int64
	err       error
	watch     *atomic.Pointer[TooLargeError]
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	// One byte more than is left is asked for, so that an answer of
	// exactly max bytes ends in io.EOF and one a byte longer fails.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.body.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), 0
		b.err = tooLarge(b.watch, b.max)
		return n, b.err
	}
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.body.Close() }

// UpstreamRefusal is the refusal of a call of tool toolName whose upstream
// call failed with err; nil for no error. timeout is what the gateway gave
// the tool server to answer (--upstream-timeout), which the caller is told
// when it did not: a parameter, since the gateway, not err, knows it; 0
// leaves it out. A *Refusal (such as an open circuit's) passes through.
func UpstreamRefusal(toolName string, timeout time.Duration, err error) *Refusal {
	if err == nil {
		return nil
	}
	var refused *Refusal
	if errors.As(err, &refused) {
		return refused
	}
	var tooLarge *TooLargeError
	if errors.As(err, &tooLarge) {
		return &Refusal{Reason: ReasonUpstreamTooLarge, Message: fmt.Sprintf("tool %s: %v", toolName, tooLarge),
			Detail: fmt.Sprintf("answer over %d bytes", tooLarge.Max)}
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() {
		within := "in time"
		if timeout > 0 {
			within = "within " + timeout.String()
		}
		return &Refusal{Reason: ReasonUpstreamTimeout,
			Message: fmt.Sprintf("tool %s: its server did not answer %s (the gateway's --upstream-timeout)", toolName, within),
			Detail:  err.Error()}
	}
	return &Refusal{Reason: ReasonUpstreamUnavailable, Message: fmt.Sprintf("tool %s: its server: %v", toolName, err)}
}
