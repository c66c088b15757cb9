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

// Package tracing sets up OpenTelemetry tracing for Custos's runtime
// servers (custos-sts, custos-gateway): W3C trace context, spans exported
// over OTLP/gRPC when an endpoint is configured, and trace IDs for every
// request either way (the audit records carry them). It also carries
// trace context through MCP's _meta (traceparent, tracestate), where MCP
// puts what is not the call's arguments.
package tracing

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Options say where spans go.
type Options struct {
	// Endpoint is the OTLP/gRPC collector, host:port; empty: the
	// standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, and when neither is
	// set no span leaves the process (trace IDs are still made).
	Endpoint string
	// Insecure sends spans without TLS (a collector on the node or in a
	// sidecar).
	Insecure bool
}

// AddFlags registers --otlp-endpoint and --otlp-insecure.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Endpoint, "otlp-endpoint", "", "OTLP/gRPC collector (host:port) the spans of every request are sent to; empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, and with neither no span is sent (trace IDs are still made and recorded).")
	fs.BoolVar(&o.Insecure, "otlp-insecure", false, "Send spans to --otlp-endpoint without TLS (a collector on the node or in the pod).")
}

// Setup installs the process's tracer provider, as service, and the W3C
// trace-context propagator; the returned func flushes and stops it.
func Setup(ctx context.Context, service string, o Options) (func(context.Context) error, error) {
	res := resource.NewSchemaless(attribute.String("service.name", service))
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if o.Endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		var eo []otlptracegrpc.Option
		if o.Endpoint != "" {
			eo = append(eo, otlptracegrpc.WithEndpoint(o.Endpoint))
		}
		if o.Insecure {
			eo = append(eo, otlptracegrpc.WithInsecure())
		}
		exp, err := otlptracegrpc.New(ctx, eo...)
		if err != nil {
			return nil, fmt.Errorf("the OTLP exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator)
	return tp.Shutdown, nil
}

// Propagator is W3C trace context (traceparent, tracestate).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Tracer is the named tracer of tp, of the global provider when nil.
func Tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(name)
}

// Meta carries trace context in an MCP _meta object: traceparent and
// tracestate as string members.
type Meta map[string]any

func (m Meta) Get(key string) string {
	s, _ := m[key].(string)
	return s
}

func (m Meta) Set(key, value string) { m[key] = value }

func (m Meta) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// FromMeta is ctx with the remote span context _meta carries, if any.
func FromMeta(ctx context.Context, meta map[string]any) context.Context {
	if meta == nil {
		return ctx
	}
	return Propagator.Extract(ctx, Meta(meta))
}

// ToMeta writes ctx's span context into meta.
func ToMeta(ctx context.Context, meta map[string]any) {
	Propagator.Inject(ctx, Meta(meta))
}

// FromHeaders is ctx with the remote span context r's headers carry.
func FromHeaders(ctx context.Context, h http.Header) context.Context {
	return Propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Transport adds the trace context of each request's context to its
// headers.
func Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return transport{next}
}

type transport struct{ next http.RoundTripper }

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	Propagator.Inject(r.Context(), propagation.HeaderCarrier(r.Header))
	return t.next.RoundTrip(r)
}

// TraceID is the W3C trace ID of ctx's span, hex; empty when none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}
