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
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/custos-dev/custos/internal/sts"
	"github.com/custos-dev/custos/internal/toolschema"
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

// MCPUpstream calls a tool's server over MCP with the token custos-sts
// exchanged for its Toolset (never the caller's), and lets out only what
// the Toolset's output schema allows.
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
}

// Call makes the call upstream. The upstream's answer is checked on the
// way out: with an output schema, its structured content must validate,
// and the text the caller gets is rebuilt from it, so nothing passes as
// free text beside the schema; without one, only its text passes. A
// server that cannot be reached, is too slow, answers too much or breaks
// the schema counts against its breaker; the tool's own error (isError)
// does not.
func (u *MCPUpstream) Call(ctx context.Context, caller *sts.Claims, token string, tool *Tool, args json.RawMessage) (*mcp.CallToolResult, *Refusal) {
	upstreamToken, err := u.Tokens.ExchangeForToolset(ctx, caller.Tenant, token, u.Resource(tool.Toolset))
	if err != nil {
		return nil, &Refusal{Reason: ReasonTokenExchange, Message: fmt.Sprintf("tool %s: %v", tool.Name, err)}
	}
	var res *mcp.CallToolResult
	var refused *Refusal
	call := func() error {
		res, refused = u.call(ctx, upstreamToken, tool, args)
		if refused != nil {
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

// call is one call of the tool server, within the timeout.
func (u *MCPUpstream) call(ctx context.Context, upstreamToken string, tool *Tool, args json.RawMessage) (*mcp.CallToolResult, *Refusal) {
	if u.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.Timeout)
		defer cancel()
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "custos-gateway"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tool.Endpoint, DisableStandaloneSSE: true, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearer{token: upstreamToken, next: transportOf(u.Client)}}}, nil)
	if err != nil {
		return nil, UpstreamRefusal(tool.Name, u.Timeout, err)
	}
	defer session.Close()
	if u.Drift != nil && u.Drift.due(tool) {
		why, drifted, err := u.Drift.check(ctx, session, tool)
		if err != nil {
			return nil, UpstreamRefusal(tool.Name, u.Timeout, err)
		}
		if drifted {
			return nil, driftRefusal(tool, why)
		}
	}
	// An answer cut off for its size mid-body reaches the SDK's caller as
	// some other error; the watch tells it apart.
	ctx, tooLarge := WatchBodyLimit(ctx)
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: tool.Spec.Name, Arguments: args})
	if e := tooLarge(); e != nil {
		err = e
	}
	if err != nil {
		return nil, UpstreamRefusal(tool.Name, u.Timeout, err)
	}
	return out(tool, res)
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
