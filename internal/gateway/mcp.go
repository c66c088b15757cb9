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
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/sts"
)

// Source is what the gateway reads of the cluster for a caller: the Agent
// acting, while it may act, and its Toolsets of the tenant
// (sts/cluster.AgentToolsets).
type Source interface {
	Caller(ctx context.Context, tenant, agentID string) (*custosv1alpha1.Agent, []custosv1alpha1.Toolset, error)
}

// Revocations says whether a token, its session or an agent of its chain
// may no longer be used (sts/cluster.Revocations, the lists kubectl custos
// revoke writes). A read that fails says revoked.
type Revocations interface {
	Revoked(tenant, jti, session, agentID string) (string, bool)
}

// Upstream calls a tool's server for a caller, with a token of its own,
// and checks the answer on the way out. A refusal says why nothing of the
// answer is passed on.
type Upstream interface {
	Call(ctx context.Context, caller *sts.Claims, token string, tool *Tool, args json.RawMessage) (*mcp.CallToolResult, *Refusal)
}

// DefaultMaxRequestBytes bounds a request's body.
const DefaultMaxRequestBytes = 1 << 20

// Server is custos-gateway's MCP endpoint, one per tenant at
// /tenants/<tenant>/mcp.
type Server struct {
	Verifier *Verifier
	Source   Source
	// Revocations, when set, refuses revoked tokens and sessions and
	// chains through an agent that may not act, before anything is
	// called; custos-sts refuses to exchange them in any case.
	Revocations Revocations
	Upstream    Upstream
	// Drift, when set, hides and refuses the tools found drifted (the
	// same DriftChecks as the upstream's).
	Drift *DriftChecks
	// Limits, when set, are the rate limits per agent and per tool.
	Limits *Limiter
	// Policy, when set, runs the tenant's DataBoundary callChecks over
	// every call whose input passed (callpolicy.go).
	Policy *CallPolicy
	// Credentials gives the leases of the agents' gateway-only
	// credentials, set on the calls to their Toolset; a call that needs
	// one is refused (CredentialUnavailable) when nil.
	Credentials Credentials
	// Approvals, when set, holds the calls ApprovalPolicies match until
	// people approve them (approval.go); none are held when nil.
	Approvals Approvals
	// Caps, when set, enforces the agents' caps (caps.go): the call or
	// result that would cross one is withheld and the agent frozen.
	Caps *Caps
	// Usage, when set, counts what each agent took, for the manager's
	// breaker (usage.go).
	Usage *Usage
	// Metrics, when set, counts every call per agent (metrics.go).
	Metrics *Metrics
	// Audit records every call; none when nil.
	Audit audit.Recorder
	// Clock is the real clock when nil.
	Clock clock.PassiveClock
	// MaxRequestBytes is DefaultMaxRequestBytes when 0.
	MaxRequestBytes int64
	// MaxFacades bounds the facades kept (DefaultMaxFacades when 0).
	MaxFacades int
	// Tracing makes the spans of every request and call (the global
	// provider when nil: tracing.Setup's).
	Tracing trace.TracerProvider

	facades facadeCache
}

func (s *Server) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

func (s *Server) record(ctx context.Context, e audit.Event) {
	if s.Audit != nil {
		s.Audit.Record(ctx, e)
	}
}

// Handler serves /tenants/{tenant}/mcp.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/tenants/{tenant}/mcp", s.serveMCP)
	return mux
}

// session is what every call of one request is checked with.
type session struct {
	tenant string
	caller *sts.Claims
	token  string
	agent  *custosv1alpha1.Agent
	facade *Facade
	// calls counts the tools/call messages the gateway answered.
	calls atomic.Int32
}

// sessionKey carries a request's session to the MCP server's middleware.
type sessionKey struct{}

// ReasonInvalidRequest: the request is not one the gateway can read: a
// body over the size limit, or a tools/call whose params are not what
// MCP defines (answered by the MCP SDK before any check).
const ReasonInvalidRequest = "InvalidRequest"

// serveMCP authenticates the request, reads the caller's Agent and
// Toolsets, and serves the facade built from them (stateless: every
// request stands alone, so a suspension or a Toolset change holds from
// the next request on). Facades are kept per Toolsets' generation and
// scope (facadeCache), never per caller: what a call may do is checked
// with this request's session.
func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	tenant := r.PathValue("tenant")
	max := s.MaxRequestBytes
	if max == 0 {
		max = DefaultMaxRequestBytes
	}
	r.Body = http.MaxBytesReader(w, r.Body, max)
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		s.refuseRequest(w, r, tenant, nil, start, http.StatusUnauthorized, &Refusal{Reason: ReasonInvalidToken,
			Message: "a bearer token is required: the token the agent was given for this gateway by custos-sts"})
		return
	}
	caller, err := s.Verifier.Verify(r.Context(), tenant, token)
	if err != nil {
		s.refuseRequest(w, r, tenant, nil, start, http.StatusUnauthorized, &Refusal{Reason: ReasonInvalidToken, Message: err.Error()})
		return
	}
	if refused := s.revoked(tenant, caller); refused != nil {
		s.refuseRequest(w, r, tenant, caller, start, http.StatusUnauthorized, refused)
		return
	}
	agent, toolsets, err := s.Source.Caller(r.Context(), tenant, caller.ClientID)
	if err != nil {
		s.refuseRequest(w, r, tenant, caller, start, http.StatusForbidden, &Refusal{Reason: ReasonAgentInactive,
			Message: fmt.Sprintf("agent %s may not call tools: %v", caller.ClientID, err)})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		status, refused := http.StatusBadRequest, &Refusal{Reason: ReasonInvalidRequest, Message: "reading the request: " + err.Error()}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			status, refused.Message = http.StatusRequestEntityTooLarge, fmt.Sprintf("the request is over %d bytes (the gateway's --max-request-bytes)", tooLarge.Limit)
		}
		s.recordUnreadRequest(r, start, tenant, caller, agent, false, "", refused)
		http.Error(w, refused.Message, status)
		return
	}
	served := s.facades.get(toolsets, caller.Scope, s.Drift, s.MaxFacades, s.serve)
	sess := &session{tenant: tenant, caller: caller, token: token, agent: agent, facade: served.facade}
	r = r.WithContext(context.WithValue(remoteParent(r.Context(), nil, r.Header), sessionKey{}, sess))
	r.Body = io.NopCloser(bytes.NewReader(body))
	served.handler.ServeHTTP(w, r)
	// A tools/call the MCP SDK could not decode was answered before the
	// gateway saw it: it is on the record all the same.
	if sess.calls.Load() == 0 {
		if name, why, isCall := undecodedCall(body); isCall {
			s.recordUnreadRequest(r, start, tenant, caller, agent, true, name,
				&Refusal{Reason: ReasonInvalidRequest, Message: "the tools/call's params are not what MCP defines: " + why})
		}
	}
}

// recordUnreadRequest records, with its span, a request of a caller who
// passed the caller and agent checks that the gateway could not read:
// a body it refused (gateway.refused), or a tools/call (of tool, when
// its name could be read) the MCP SDK answered before any check
// (tool.refused).
func (s *Server) recordUnreadRequest(r *http.Request, start time.Time, tenant string, caller *sts.Claims, agent *custosv1alpha1.Agent,
	call bool, tool string, refused *Refusal) {
	name, action := "request refused", audit.ActionGatewayRefused
	attrs := []attribute.KeyValue{attribute.String(attrTenant, tenant)}
	if call {
		name, action = "tools/call "+tool, audit.ActionToolRefused
		attrs = append(attrs, attribute.String(attrMCPMethod, "tools/call"), attribute.String(attrTool, tool))
	}
	_, span := s.startSpan(remoteParent(r.Context(), nil, r.Header), name, attrs...)
	rec := newCallRecord(start, tenant, caller, agent)
	rec.traceID = traceIDOf(span)
	rec.tool = tool
	rec.check("caller", true)
	rec.check("agent", true)
	rec.check("request", false)
	s.record(r.Context(), rec.event(action, refused, s.now()))
	endSpan(span, rec, refused)
}

// serve builds the MCP server of a facade: its tools, but those found
// drifted, and the middleware that answers every tools/call, with the
// session of the request it comes in.
func (s *Server) serve(facade *Facade) http.Handler {
	server := mcp.NewServer(&mcp.Implementation{Name: "custos-gateway"}, nil)
	for _, t := range facade.List() {
		if _, drifted := s.Drift.Drifted(t); !drifted {
			server.AddTool(t.mcpTool(), unreachable)
		}
	}
	// Every tools/call is answered here, before the SDK looks the tool up:
	// checked on the way in, called, checked on the way out and recorded.
	// A tool outside the facade gets the gateway's own answer, whether it
	// exists or not.
	server.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if call, ok := req.(*mcp.CallToolRequest); ok && call.Params != nil {
				sess, ok := ctx.Value(sessionKey{}).(*session)
				if !ok {
					return nil, errors.New("custos-gateway: a tools/call without its request's session")
				}
				sess.calls.Add(1)
				return s.call(ctx, sess, call.Params), nil
			}
			return next(ctx, method, req)
		}
	})
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
}

// undecodedCall says whether body is (or, batched, holds) a tools/call,
// with its tool's name and why its params do not decode as MCP's.
func undecodedCall(body []byte) (name, why string, isCall bool) {
	var msgs []json.RawMessage
	if err := json.Unmarshal(body, &msgs); err != nil {
		msgs = []json.RawMessage{body}
	}
	for _, m := range msgs {
		var msg struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(m, &msg) != nil || msg.Method != "tools/call" {
			continue
		}
		var params mcp.CallToolParamsRaw
		why := "the MCP SDK refused them"
		if err := json.Unmarshal(msg.Params, &params); err != nil {
			why = err.Error()
		}
		return params.Name, why, true
	}
	return "", "", false
}

// unreachable is the SDK's handler of every facade tool: the middleware
// answers every tools/call before the SDK would call it.
func unreachable(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return nil, errors.New("custos-gateway: a tools/call reached no check")
}

// revoked refuses a token revoked by jti or session, or whose chain passes
// through an agent that may not act now. The acting agent itself is
// checked by Source.
func (s *Server) revoked(tenant string, c *sts.Claims) *Refusal {
	if s.Revocations == nil {
		return nil
	}
	if why, revoked := s.Revocations.Revoked(tenant, c.ID, c.Session, ""); revoked {
		return &Refusal{Reason: ReasonRevoked, Message: "the token is revoked: " + why}
	}
	for _, a := range c.Chain()[1:] {
		if why, revoked := s.Revocations.Revoked(tenant, "", "", a.Subject); revoked {
			return &Refusal{Reason: ReasonRevoked, Message: fmt.Sprintf("agent %s, earlier in the token's actor chain, may not act: %s", a.Subject, why)}
		}
	}
	return nil
}

// refuseRequest answers a request refused before any MCP session: 401
// with a WWW-Authenticate challenge (RFC 6750) or 403, and records it.
func (s *Server) refuseRequest(w http.ResponseWriter, r *http.Request, tenant string, caller *sts.Claims, start time.Time, status int, refused *Refusal) {
	method, tool, meta := peekRPC(r.Body)
	rec := newCallRecord(start, tenant, caller, nil)
	rec.tool = tool
	name := "request refused"
	if method != "" {
		name = method + " " + tool
	}
	_, span := s.startSpan(remoteParent(r.Context(), meta, r.Header), strings.TrimSpace(name),
		attribute.String(attrMCPMethod, method), attribute.String(attrTool, tool), attribute.String(attrTenant, tenant))
	rec.traceID = traceIDOf(span)
	defer func() { endSpan(span, rec, refused) }()
	rec.check("caller", refused.Reason != ReasonInvalidToken)
	if refused.Reason != ReasonInvalidToken {
		rec.check("agent", false)
	}
	action := audit.ActionGatewayRefused
	if method == "tools/call" {
		action = audit.ActionToolRefused
	}
	rec.details["method"] = method
	s.record(r.Context(), rec.event(action, refused, s.now()))
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="custos-gateway", error="invalid_token"`)
	}
	http.Error(w, refused.Message, status)
}

// peekRPC reads the JSON-RPC method and, for tools/call, the tool's name
// and _meta of a refused request, for its record and span.
func peekRPC(body io.Reader) (method, tool string, meta map[string]any) {
	raw, _ := io.ReadAll(body)
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string         `json:"name"`
			Meta map[string]any `json:"_meta"`
		} `json:"params"`
	}
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&msg) != nil {
		return "", "", nil
	}
	if msg.Method != "tools/call" {
		return msg.Method, "", nil
	}
	return msg.Method, msg.Params.Name, msg.Params.Meta
}

func toolError(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// mcpTool is t as tools/list serves it: the Toolset's description and
// schemas, and hints from its access. MCP wants an input schema of type
// object; a pinned schema that says nothing of the type is served inside
// one (arguments are an object anyway), and a tool without a schema takes
// any object.
func (t *Tool) mcpTool() *mcp.Tool {
	readOnly := t.Spec.Access == custosv1alpha1.ToolAccessRead
	destructive := t.Spec.Irreversible
	out := &mcp.Tool{Name: t.Name, Description: t.Spec.Description, InputSchema: objectSchema(rawOf(t.Spec.InputSchema)),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: readOnly, DestructiveHint: &destructive}}
	if raw := rawOf(t.Spec.OutputSchema); len(raw) > 0 {
		out.OutputSchema = json.RawMessage(raw)
	}
	return out
}

// rawOf is a pinned schema's JSON, nil when there is none.
func rawOf(ext *runtime.RawExtension) []byte {
	if ext == nil {
		return nil
	}
	if len(ext.Raw) == 0 && ext.Object != nil {
		raw, _ := json.Marshal(ext.Object)
		return raw
	}
	return ext.Raw
}

// objectSchema is a pinned input schema as MCP wants it: of type object.
func objectSchema(raw []byte) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(`{"type":"object"}`)
	}
	var head struct {
		Type any `json:"type"`
	}
	if json.Unmarshal(raw, &head) == nil && head.Type == "object" {
		return raw
	}
	return json.RawMessage(`{"type":"object","allOf":[` + string(raw) + `]}`)
}
