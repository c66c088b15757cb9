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
	"fmt"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/apimachinery/pkg/runtime"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/sts"
)

// Source is what the gateway reads of the cluster for a caller: the
// Toolsets of the agent acting (by SPIFFE ID) in tenant, or an error when
// that agent may not act now.
type Source interface {
	Toolsets(ctx context.Context, tenant, agentID string) ([]custosv1alpha1.Toolset, error)
}

// Upstream makes a call that passed the checks on the way in: tool's
// server, for the caller (whose token for the gateway is token), with
// args.
type Upstream interface {
	Call(ctx context.Context, caller *sts.Claims, token string, tool *Tool, args json.RawMessage) (*mcp.CallToolResult, error)
}

// Server is custos-gateway's MCP endpoint, one per tenant at
// /tenants/<tenant>/mcp (streamable HTTP, stateless): each request is
// served the facade its bearer token allows.
type Server struct {
	Verifier *Verifier
	Source   Source
	Upstream Upstream
}

// Handler serves the tenants' MCP endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/tenants/{tenant}/mcp", s.serveMCP)
	return mux
}

func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		unauthorized(w, "a bearer token is required: the token the agent was given for this gateway by custos-sts")
		return
	}
	caller, err := s.Verifier.Verify(r.Context(), tenant, token)
	if err != nil {
		unauthorized(w, err.Error())
		return
	}
	toolsets, err := s.Source.Toolsets(r.Context(), tenant, caller.ClientID)
	if err != nil {
		http.Error(w, fmt.Sprintf("agent %s may not call tools: %v", caller.ClientID, err), http.StatusForbidden)
		return
	}
	// A Toolset that cannot be served is left out; it is not Ready, and
	// its status says why.
	facade, _ := NewFacade(toolsets, sts.Scopes(caller.Scope))
	server := mcp.NewServer(&mcp.Implementation{Name: "custos-gateway"}, nil)
	for _, t := range facade.List() {
		server.AddTool(t.mcpTool(), s.handler(facade, caller, token))
	}
	// Every tools/call is checked here, before the SDK looks the tool up:
	// a tool outside the facade is refused with the gateway's own answer
	// and reason, whether it exists or not.
	server.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if call, ok := req.(*mcp.CallToolRequest); ok && call.Params != nil {
				if _, refused := facade.Check(call.Params.Name, call.Params.Arguments); refused != nil {
					return toolError(refused.Message), nil
				}
			}
			return next(ctx, method, req)
		}
	})
	mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}).ServeHTTP(w, r)
}

// unauthorized answers 401 as RFC 6750 §3 says.
func unauthorized(w http.ResponseWriter, why string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="custos-gateway", error="invalid_token"`)
	http.Error(w, why, http.StatusUnauthorized)
}

// handler hands a call that passed the checks (the middleware's) to the
// upstream; it checks again, so that no path reaches the upstream
// unchecked.
func (s *Server) handler(f *Facade, caller *sts.Claims, token string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		tool, refused := f.Check(req.Params.Name, req.Params.Arguments)
		if refused != nil {
			return toolError(refused.Message), nil
		}
		return s.Upstream.Call(ctx, caller, token, tool, req.Params.Arguments)
	}
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
