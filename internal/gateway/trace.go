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
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/custos-dev/custos/internal/tracing"
)

// tracerName names the gateway's spans' instrumentation scope.
const tracerName = "custos.dev/gateway"

// Span attributes the gateway sets (OpenTelemetry's MCP and GenAI names
// where they exist, custos.* for the rest). The person is not on a span:
// spans leave the audit trail's custody.
const (
	attrMCPMethod = "mcp.method.name"
	attrTool      = "gen_ai.tool.name"
	attrTenant    = "custos.tenant"
	attrAgent     = "custos.agent"
	attrToolset   = "custos.toolset"
	attrOutcome   = "custos.outcome"
	attrReason    = "custos.reason"
	attrChecks    = "custos.checks"
)

// remoteParent is ctx with the caller's span as the parent: the
// traceparent of the call's _meta, else of the request's headers (an
// invalid one is ignored, as W3C Trace Context asks).
func remoteParent(ctx context.Context, meta map[string]any, h http.Header) context.Context {
	var m CallMeta
	if s, ok := meta[TraceParentMetaKey].(string); ok && m.parseTraceParent(s) {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: m.TraceID, SpanID: m.SpanID,
			TraceFlags: trace.TraceFlags(m.TraceFlags), Remote: true})
		if ts, ok := meta[TraceStateMetaKey].(string); ok {
			if state, err := trace.ParseTraceState(ts); err == nil {
				sc = sc.WithTraceState(state)
			}
		}
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	if h != nil {
		return tracing.FromHeaders(ctx, h)
	}
	return ctx
}

// startSpan starts the gateway's span of a request or call.
func (s *Server) startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracing.Tracer(s.Tracing, tracerName).Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// endSpan ends span with what the call's record says.
func endSpan(span trace.Span, rec *callRecord, refused *Refusal) {
	span.SetAttributes(attribute.String(attrChecks, rec.checksString()))
	if rec.toolset != "" {
		span.SetAttributes(attribute.String(attrToolset, rec.toolset))
	}
	if refused != nil {
		span.SetAttributes(attribute.String(attrOutcome, "refused"), attribute.String(attrReason, refused.Reason))
		span.SetStatus(codes.Error, refused.Reason)
	} else {
		outcome := rec.details["outcome"]
		if outcome == "" {
			outcome = "ok"
		}
		span.SetAttributes(attribute.String(attrOutcome, outcome))
	}
	span.End()
}

// traceIDOf is span's W3C trace ID, or "" when it has none (a tracer
// provider that makes no IDs, such as OpenTelemetry's no-op default):
// the record then gets one of its own.
func traceIDOf(span trace.Span) string {
	if sc := span.SpanContext(); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}
