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
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/types"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// ReasonCredentialUnavailable: the agent has a gateway-only credential for
// the tool's Toolset, and its lease cannot be had now (not issued yet,
// expired, unreadable): the call is refused before the tool server.
const ReasonCredentialUnavailable = "CredentialUnavailable"

// Credentials gives custos-gateway the leases of agents' gateway-only
// credentials (spec.credentials[].gateway), which the agents never hold.
type Credentials interface {
	// Lease is the value of the current lease of agent's credential, and
	// when it expires; an error when there is none it may use.
	Lease(ctx context.Context, agent *custosv1alpha1.Agent, credential string) (value string, expires time.Time, err error)
}

// credentialHeaders are the headers of an agent's gateway-only
// credentials for toolset, with their leases' values; nil when it has
// none. A credential whose lease cannot be had refuses the call. Neither
// the values nor the errors' text of a lease go on a record: only names.
func (s *Server) credentialHeaders(ctx context.Context, agent *custosv1alpha1.Agent, toolset types.NamespacedName, tool string) (http.Header, *Refusal) {
	var h http.Header
	for _, c := range agent.Spec.Credentials {
		g := c.Gateway
		if g == nil {
			continue
		}
		ns := g.ToolsetNamespace
		if ns == "" {
			ns = agent.Namespace
		}
		if (types.NamespacedName{Namespace: ns, Name: g.Toolset}) != toolset {
			continue
		}
		unavailable := func(why string) *Refusal {
			return &Refusal{Reason: ReasonCredentialUnavailable, Message: fmt.Sprintf(
				"tool %s: credential %s of agent %s/%s is %s; the call was not made", tool, c.Name, agent.Namespace, agent.Name, why)}
		}
		if s.Credentials == nil {
			return nil, unavailable("kept by no one at this gateway")
		}
		value, expires, err := s.Credentials.Lease(ctx, agent, c.Name)
		switch {
		case err != nil:
			return nil, unavailable("not available")
		case !s.now().Before(expires):
			return nil, unavailable("expired")
		case value == "":
			return nil, unavailable("empty")
		}
		if h == nil {
			h = http.Header{}
		}
		h.Set(g.Header, value)
	}
	return h, nil
}

// callHeaders carries, in a call's context, the headers set on the
// requests of that call to its tool server: the sessions kept with a
// server are shared by every call of one caller's token, the headers are
// the call's.
type callHeaders struct{}

func withCallHeaders(ctx context.Context, h http.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return context.WithValue(ctx, callHeaders{}, h)
}

// reservedHeaders are the headers the gateway, MCP, HTTP or tracing set:
// never a credential's (admission refuses them too).
var reservedHeaders = map[string]bool{
	"Authorization": true, "Mcp-Session-Id": true, "Mcp-Protocol-Version": true, "Content-Type": true, "Content-Length": true,
	"Accept": true, "Host": true, "Traceparent": true, "Tracestate": true, "Connection": true, "Transfer-Encoding": true,
}

// headersOf sets, on every request made in a call's context, that call's
// headers (withCallHeaders), under the gateway's own: those it sets after
// (bearer, tracing) win, and a reserved header is never set.
type headersOf struct {
	next http.RoundTripper
}

func (t headersOf) RoundTrip(r *http.Request) (*http.Response, error) {
	h, _ := r.Context().Value(callHeaders{}).(http.Header)
	if len(h) == 0 {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, v := range h {
		if !reservedHeaders[http.CanonicalHeaderKey(k)] {
			r.Header[http.CanonicalHeaderKey(k)] = v
		}
	}
	return t.next.RoundTrip(r)
}
