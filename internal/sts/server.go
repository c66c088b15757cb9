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

package sts

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/custos-dev/custos/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Handler serves custos-sts's endpoints for every tenant of svc, below
// base (the issuers' common prefix, such as
// https://custos-sts.custos-system.svc): per tenant, the RFC 8414 metadata
// (at <issuer>/.well-known/oauth-authorization-server and at the RFC 8414
// §3.1 path /.well-known/oauth-authorization-server/tenants/<tenant>), the
// JWKS and the token endpoint.
func Handler(svc *Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tenants/{tenant}/.well-known/oauth-authorization-server", svc.serveMetadata)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server/tenants/{tenant}", svc.serveMetadata)
	mux.HandleFunc("GET /tenants/{tenant}/jwks", svc.serveJWKS)
	mux.HandleFunc("/tenants/{tenant}/token", svc.serveToken)
	return mux
}

func (s *Service) issuer(w http.ResponseWriter, r *http.Request) (*Issuer, bool) {
	is, ok := s.Issuers.Issuer(r.PathValue("tenant"))
	if !ok {
		http.Error(w, "no issuer for this tenant", http.StatusNotFound)
	}
	return is, ok
}

func (s *Service) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if is, ok := s.issuer(w, r); ok {
		writeJSON(w, http.StatusOK, MetadataFor(is.URL), "public, max-age=300")
	}
}

func (s *Service) serveJWKS(w http.ResponseWriter, r *http.Request) {
	// Short-cached: a verifier sees a rotated key within a minute, and the
	// key before stays live much longer than that.
	if is, ok := s.issuer(w, r); ok {
		writeJSON(w, http.StatusOK, is.Keys.JWKS(), "public, max-age=60")
	}
}

// serveToken is the token endpoint: RFC 8693 exchange only.
func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	// The exchange is a span of its caller's trace (the traceparent
	// header), and its record carries the trace ID.
	ctx, span := tracing.Tracer(s.Tracing, "custos.dev/sts").Start(tracing.FromHeaders(r.Context(), r.Header), "token exchange",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("custos.tenant", tenant)))
	defer span.End()
	req, perr := ParseExchangeRequest(w, r)
	if perr != nil {
		if perr.Status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		span.SetStatus(codes.Error, perr.Code)
		WriteError(w, perr)
		return
	}
	span.SetAttributes(attribute.String("custos.target", req.Target()))
	resp, err := s.Exchange(ctx, tenant, req)
	if err != nil {
		span.SetStatus(codes.Error, err.Code)
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp, "no-store")
}

func writeJSON(w http.ResponseWriter, status int, v any, cacheControl string) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cacheControl)
	if strings.Contains(cacheControl, "no-store") {
		w.Header().Set("Pragma", "no-cache")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
