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
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/toolschema"
	"github.com/custos-dev/custos/internal/tracing"
)

// Exchanger gets, from custos-sts, the token for one Toolset that the
// caller's token for the gateway is exchanged for (step 3 of docs/sts.md's
// "Who calls whom").
type Exchanger interface {
	ExchangeForToolset(ctx context.Context, tenant, callerToken, resource string) (string, error)
}

// STSClient exchanges at custos-sts's token endpoint over HTTPS, with the
// gateway pod's own ServiceAccount token as the actor token.
type STSClient struct {
	// IssuerBase is custos-sts's --issuer-base.
	IssuerBase string
	Client     *http.Client
	// ActorToken reads the gateway pod's projected token (audience
	// custos-sts), fresh for each exchange: the kubelet rotates it.
	ActorToken func() (string, error)
}

// ExchangeForToolset asks custos-sts for callerToken's token for resource.
func (c *STSClient) ExchangeForToolset(ctx context.Context, tenant, callerToken, resource string) (string, error) {
	actor, err := c.ActorToken()
	if err != nil {
		return "", fmt.Errorf("the gateway's own token: %w", err)
	}
	form := url.Values{"grant_type": {sts.GrantTypeTokenExchange}, "subject_token": {callerToken},
		"subject_token_type": {sts.TokenTypeAccessToken}, "actor_token": {actor}, "actor_token_type": {sts.TokenTypeJWT},
		"resource": {resource}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.IssuerBase+"/tenants/"+tenant+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tracing.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("custos-sts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e sts.Error
		_ = json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(&e)
		return "", fmt.Errorf("custos-sts refused the exchange for %s: %d %s: %s", resource, resp.StatusCode, e.Code, e.Description)
	}
	var tok sts.TokenResponse
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("custos-sts answered no token: %v", err)
	}
	return tok.AccessToken, nil
}

// Reasons a call is refused on its way to the tool server and back (see
// limits.go for the upstream's size, time and breaker).
const (
	// ReasonTokenExchange: custos-sts would not exchange the caller's
	// token for the Toolset's (revoked, the agent may not act, the scope).
	ReasonTokenExchange = "TokenExchangeRefused"
	// ReasonInvalidOutput: the answer breaks the tool's output schema, or
	// has no structured content where the schema wants it.
	ReasonInvalidOutput = "InvalidOutput"
)

// ReasonUpstreamError: the tool's server answered the call with a
// JSON-RPC error (it refused the request, as opposed to the tool failing,
// which is a tool result with isError). The server is up: its breaker
// does not count it.
const ReasonUpstreamError = "UpstreamError"

// MCPUpstream calls a tool's server over MCP with the token custos-sts
// exchanged for its Toolset (never the caller's), and lets out only what
// the Toolset's output schema allows.
//
// The token exchanged for a caller's token and a Toolset is kept until
// shortly before it expires, with one MCP session with the tool server
// opened with it: the calls the same caller's token makes to the same
// Toolset reuse both. Nothing is kept across callers. A caller whose
// token is revoked, or whose agent may no longer act, is refused before
// Call is reached (Server), so what is kept for it is never used again.
type MCPUpstream struct {
	Tokens Exchanger
	// Client calls the tool servers; its transport bounds their answers'
	// size (LimitBody).
	Client *http.Client
	// Timeout bounds a whole call: connecting, the call and the answer.
	Timeout time.Duration
	// Breakers, when set, stop calling a tool server that keeps failing.
	Breakers *Breakers
	// Resource is the resource (RFC 8707) custos-sts knows a Toolset by.
	Resource func(toolset types.NamespacedName) string
	// Drift, when set, compares the server's tools with the pinned ones
	// before a call, when due, and refuses a drifted tool.
	Drift *DriftChecks
	// Clock is the real clock when nil.
	Clock clock.PassiveClock
	// Tracing makes the spans of the calls upstream and of the token
	// exchanges (the global provider when nil); the call's trace context
	// goes upstream in its _meta and its HTTP headers.
	Tracing trace.TracerProvider
	// MaxLinks bounds the exchanged tokens and sessions kept
	// (DefaultMaxLinks when 0); IdleFor closes those unused for that
	// long (DefaultLinkIdle when 0).
	MaxLinks int
	IdleFor  time.Duration

	mu        sync.Mutex
	links     map[linkKey]*link
	lastSweep time.Time
}

// The defaults of MCPUpstream's links.
const (
	DefaultMaxLinks = 10000
	DefaultLinkIdle = 2 * time.Minute
	// linkMargin is how long before its token expires a link is dropped.
	linkMargin = 30 * time.Second
)

// linkKey is one caller's token (its jti) and one tool server.
type linkKey struct {
	jti, resource, endpoint string
}

// link is what is kept for a linkKey: the token custos-sts exchanged for
// it, and the session opened with that token, once one is.
type link struct {
	ready   chan struct{} // closed once token or err is set
	token   string
	expires time.Time
	err     error
	used    atomic.Int64 // unix nanoseconds of the last use
	busy    atomic.Int32 // calls under way
	// kept: the link is in MCPUpstream.links (a token without a jti is
	// not kept: its link is dropped after its call).
	kept bool

	mu      sync.Mutex
	session *mcp.ClientSession
}

// Call makes the call upstream. The upstream's answer is checked on the
// way out: with an output schema, its structured content must validate,
// and the text the caller gets is rebuilt from it, so nothing passes as
// free text beside the schema; without one, only its text passes. A
// server that cannot be reached, is too slow, answers too much or breaks
// the schema counts against its breaker; the tool's own error (isError),
// a JSON-RPC error the server answers with, and a drifted tool do not.
func (u *MCPUpstream) Call(ctx context.Context, caller *sts.Claims, token string, tool *Tool, args json.RawMessage) (*mcp.CallToolResult, *Refusal) {
	ctx, span := tracing.Tracer(u.Tracing, tracerName).Start(ctx, "upstream tools/call "+tool.Spec.Name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String(attrMCPMethod, "tools/call"), attribute.String(attrTool, tool.Spec.Name),
			attribute.String(attrToolset, tool.Toolset.String()), attribute.String("server.address", tool.Endpoint)))
	defer span.End()
	res, refused := u.linkAndCall(ctx, caller, token, tool, args)
	if refused != nil {
		span.SetAttributes(attribute.String(attrReason, refused.Reason))
		span.SetStatus(codes.Error, refused.Reason)
	}
	return res, refused
}

func (u *MCPUpstream) linkAndCall(ctx context.Context, caller *sts.Claims, token string, tool *Tool, args json.RawMessage) (*mcp.CallToolResult, *Refusal) {
	l, err := u.link(ctx, caller, token, tool)
	if err != nil {
		return nil, &Refusal{Reason: ReasonTokenExchange, Message: fmt.Sprintf("tool %s: %v", tool.Name, err)}
	}
	defer func() {
		l.busy.Add(-1)
		if !l.kept {
			u.dropLater(l)
		}
	}()
	var res *mcp.CallToolResult
	var refused *Refusal
	call := func() error {
		res, refused = u.call(ctx, l, tool, args)
		if refused != nil && upstreamFailed(refused.Reason) {
			return refused
		}
		return nil
	}
	if u.Breakers == nil {
		_ = call()
		return res, refused
	}
	if err := u.Breakers.Do(tool.Toolset.String(), call); err != nil && refused == nil {
		return nil, UpstreamRefusal(tool.Name, u.Timeout, err)
	}
	return res, refused
}

// upstreamFailed says whether a refusal for reason is the tool server's
// failure, which its breaker counts.
func upstreamFailed(reason string) bool {
	switch reason {
	case ReasonUpstreamUnavailable, ReasonUpstreamTimeout, ReasonUpstreamTooLarge, ReasonInvalidOutput:
		return true
	}
	return false
}

func (u *MCPUpstream) now() time.Time {
	if u.Clock == nil {
		return time.Now()
	}
	return u.Clock.Now()
}

// link is the link for caller's token and tool's server, exchanging the
// token for it when none is kept (one exchange for concurrent calls).
// The link is marked busy until the caller is done with it.
func (u *MCPUpstream) link(ctx context.Context, caller *sts.Claims, token string, tool *Tool) (*link, error) {
	resource := u.Resource(tool.Toolset)
	key := linkKey{jti: caller.ID, resource: resource, endpoint: tool.Endpoint}
	now := u.now()
	u.mu.Lock()
	if u.links == nil {
		u.links = map[linkKey]*link{}
	}
	l, ok := u.links[key]
	if ok {
		select {
		case <-l.ready:
			if l.err != nil || !now.Before(l.expires) {
				delete(u.links, key)
				u.dropLater(l)
				ok = false
			}
		default:
		}
	}
	created := !ok || caller.ID == ""
	if created {
		l = &link{ready: make(chan struct{})}
		if caller.ID != "" {
			l.kept = true
			u.links[key] = l
			u.sweep(now)
		}
	}
	l.busy.Add(1)
	l.used.Store(now.UnixNano())
	u.mu.Unlock()

	if created {
		xctx, span := tracing.Tracer(u.Tracing, tracerName).Start(ctx, "token exchange", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String(attrToolset, tool.Toolset.String())))
		l.token, l.err = u.Tokens.ExchangeForToolset(xctx, caller.Tenant, token, resource)
		if l.err != nil {
			span.SetStatus(codes.Error, l.err.Error())
		}
		span.End()
		l.expires = keepUntil(l.token, caller, now)
		close(l.ready)
	}
	select {
	case <-l.ready:
	case <-ctx.Done():
		l.busy.Add(-1)
		return nil, ctx.Err()
	}
	if l.err != nil {
		l.busy.Add(-1)
		return nil, l.err
	}
	return l, nil
}

// keepUntil is when a link holding token, exchanged for caller at now,
// is dropped: linkMargin before the first of the two tokens expires, or
// at once when its expiry cannot be read.
func keepUntil(token string, caller *sts.Claims, now time.Time) time.Time {
	exp := expiryOf(token)
	if caller.Expiry > 0 && (exp.IsZero() || time.Unix(caller.Expiry, 0).Before(exp)) {
		exp = time.Unix(caller.Expiry, 0)
	}
	if exp.IsZero() {
		return now
	}
	margin := min(linkMargin, exp.Sub(now)/2)
	return exp.Add(-margin)
}

// expiryOf reads a JWT's exp, unverified: the token is custos-sts's
// answer to the gateway, only its lifetime is read here.
func expiryOf(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		return time.Time{}
	}
	return time.Unix(claims.Exp, 0)
}

// sweep drops, at most every IdleFor/2 or when over MaxLinks, the links
// that expired or went unused for IdleFor, and, over MaxLinks, idle ones
// until under it. u.mu is held.
func (u *MCPUpstream) sweep(now time.Time) {
	idle, max := u.IdleFor, u.MaxLinks
	if idle == 0 {
		idle = DefaultLinkIdle
	}
	if max == 0 {
		max = DefaultMaxLinks
	}
	if len(u.links) <= max && now.Sub(u.lastSweep) < idle/2 {
		return
	}
	u.lastSweep = now
	for k, l := range u.links {
		select {
		case <-l.ready:
		default:
			continue
		}
		stale := l.err != nil || !now.Before(l.expires) || now.Sub(time.Unix(0, l.used.Load())) >= idle
		if (stale || len(u.links) > max) && l.busy.Load() == 0 {
			delete(u.links, k)
			u.dropLater(l)
		}
	}
}

// dropLater closes a link's session, if it has one, away from the
// caller, once no call uses it.
func (u *MCPUpstream) dropLater(l *link) {
	go func() {
		<-l.ready
		for l.busy.Load() > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		l.mu.Lock()
		s := l.session
		l.session = nil
		l.mu.Unlock()
		if s != nil {
			_ = s.Close()
		}
	}()
}

// Close closes every session kept with tool servers.
func (u *MCPUpstream) Close() {
	u.mu.Lock()
	links := u.links
	u.links = nil
	u.mu.Unlock()
	for _, l := range links {
		u.dropLater(l)
	}
}

// session is l's session with tool's server, opened when it has none.
func (u *MCPUpstream) session(ctx context.Context, l *link, tool *Tool) (*mcp.ClientSession, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.session != nil {
		return l.session, nil
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "custos-gateway"}, nil)
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tool.Endpoint, DisableStandaloneSSE: true, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: headersOf{next: bearer{token: l.token, next: tracing.Transport(transportOf(u.Client))}}}}, nil)
	if err != nil {
		return nil, err
	}
	l.session = s
	return s, nil
}

// forget closes s and takes it off l after a call in it failed: a broken
// session is not used again, the next call opens another.
func (l *link) forget(s *mcp.ClientSession) {
	l.mu.Lock()
	if l.session == s {
		l.session = nil
	}
	l.mu.Unlock()
	go s.Close()
}

// call is one call of the tool server, within the timeout.
func (u *MCPUpstream) call(ctx context.Context, l *link, tool *Tool, args json.RawMessage) (*mcp.CallToolResult, *Refusal) {
	if u.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.Timeout)
		defer cancel()
	}
	session, err := u.session(ctx, l, tool)
	if err != nil {
		return nil, UpstreamRefusal(tool.Name, u.Timeout, err)
	}
	if u.Drift != nil && u.Drift.due(tool) {
		why, drifted, err := u.Drift.check(ctx, session, tool)
		if err != nil {
			l.forget(session)
			return nil, UpstreamRefusal(tool.Name, u.Timeout, err)
		}
		if drifted {
			return nil, driftRefusal(tool, why)
		}
	}
	// An answer cut off for its size mid-body reaches the SDK's caller as
	// some other error; the watch tells it apart.
	ctx, tooLarge := WatchBodyLimit(ctx)
	// The trace goes on upstream: the call's _meta carries it (MCP's
	// place for it), as its HTTP request's headers do.
	meta := mcp.Meta{}
	tracing.ToMeta(ctx, meta)
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: tool.Spec.Name, Arguments: args, Meta: meta})
	if e := tooLarge(); e != nil {
		err = e
	}
	var rpcErr *jsonrpc.Error
	switch {
	case err == nil:
		return out(tool, res)
	case errors.As(err, &rpcErr) && tooLarge() == nil:
		return nil, &Refusal{Reason: ReasonUpstreamError,
			Message: fmt.Sprintf("tool %s: its server refused the call: %s", tool.Name, rpcErr.Message),
			Detail:  fmt.Sprintf("JSON-RPC error %d", rpcErr.Code)}
	}
	l.forget(session)
	return nil, UpstreamRefusal(tool.Name, u.Timeout, err)
}

// out is what of the upstream's answer reaches the caller.
func out(tool *Tool, res *mcp.CallToolResult) (*mcp.CallToolResult, *Refusal) {
	if res.IsError || tool.Schemas.Output == nil {
		var texts []mcp.Content
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				texts = append(texts, &mcp.TextContent{Text: t.Text})
			}
		}
		return &mcp.CallToolResult{IsError: res.IsError, Content: texts}, nil
	}
	invalid := func(format string, args ...any) *Refusal {
		return &Refusal{Reason: ReasonInvalidOutput, Message: fmt.Sprintf("tool %s: ", tool.Name) + fmt.Sprintf(format, args...)}
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil || res.StructuredContent == nil {
		return nil, invalid("its server returned no structured content, and its Toolset's outputSchema requires it")
	}
	value, err := toolschema.DecodeValue(raw)
	if err != nil {
		return nil, invalid("its server's result is not JSON: %v", err)
	}
	if verr := toolschema.Validate(tool.Schemas.Output, value); verr != nil {
		where := "result"
		if verr.Pointer != "" {
			where = "result " + verr.Pointer
		}
		return nil, invalid("its server's %s: %s (its Toolset's outputSchema); nothing of it is passed on", where, verr.Message)
	}
	return &mcp.CallToolResult{StructuredContent: json.RawMessage(raw), Content: []mcp.Content{&mcp.TextContent{Text: string(raw)}}}, nil
}

func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}
