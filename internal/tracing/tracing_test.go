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

package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/custos-dev/custos/internal/tracing"
	"github.com/custos-dev/custos/test/otlptest"
)

// TestSetupExportsOverOTLP: with an endpoint, the spans go to it over
// OTLP/gRPC, named by service; a traceparent goes on in an HTTP request's
// headers and in an MCP _meta, and comes back out of both.
func TestSetupExportsOverOTLP(t *testing.T) {
	rcv, err := otlptest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Stop)
	ctx := context.Background()
	shutdown, err := tracing.Setup(ctx, "custos-test", tracing.Options{Endpoint: rcv.Endpoint(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := otel.Tracer("test").Start(ctx, "parent")
	traceID := span.SpanContext().TraceID().String()

	var seen trace.SpanContext
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(tracing.FromHeaders(r.Context(), r.Header))
	}))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := (&http.Client{Transport: tracing.Transport(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.TraceID().String() != traceID || seen.SpanID() != span.SpanContext().SpanID() || !seen.IsRemote() {
		t.Errorf("the server saw %v, want the caller's span", seen)
	}
	meta := map[string]any{"custos.dev/decision": map[string]any{"goal": "g"}}
	tracing.ToMeta(ctx, meta)
	if got := trace.SpanContextFromContext(tracing.FromMeta(context.Background(), meta)); got.TraceID().String() != traceID {
		t.Errorf("_meta %v carried %v, want trace %s", meta, got, traceID)
	}
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Trace(traceID)
	if len(spans) != 1 || spans[0].Service != "custos-test" || spans[0].Name != "parent" {
		t.Errorf("received %+v, want the parent span of custos-test", spans)
	}
}
