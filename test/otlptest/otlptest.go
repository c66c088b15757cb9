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

// Package otlptest is an OTLP/gRPC trace receiver on loopback, in
// process: what Custos's servers export their spans to in tests and in
// make dev, read back by trace ID. It speaks the real protocol (the
// collector's TraceService), so the exporters are the ones a cluster uses.
package otlptest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is a span as received: who sent it and where it is in its trace.
type Span struct {
	Service      string            `json:"service"`
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	TraceID      string            `json:"traceID"`
	SpanID       string            `json:"spanID"`
	ParentSpanID string            `json:"parentSpanID,omitempty"`
	Error        bool              `json:"error,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
	StartNanos   uint64            `json:"startUnixNano"`
	EndNanos     uint64            `json:"endUnixNano"`
}

// Receiver stores every span exported to it.
type Receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	lis  net.Listener
	srv  *grpc.Server
	mu   sync.Mutex
	recv []Span
}

// Start listens on addr (127.0.0.1:0 for any port) and serves OTLP/gRPC
// without TLS.
func Start(addr string) (*Receiver, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Receiver{lis: lis, srv: grpc.NewServer()}
	collectortrace.RegisterTraceServiceServer(r.srv, r)
	go func() { _ = r.srv.Serve(lis) }()
	return r, nil
}

// Endpoint is host:port, for an exporter's endpoint (insecure).
func (r *Receiver) Endpoint() string { return r.lis.Addr().String() }

// Stop stops serving.
func (r *Receiver) Stop() { r.srv.Stop() }

// Export stores the spans of a request.
func (r *Receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := attributes(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{Service: service, Name: s.GetName(), Kind: strings.TrimPrefix(s.GetKind().String(), "SPAN_KIND_"),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, Attributes: attributes(s.GetAttributes()),
					StartNanos: s.GetStartTimeUnixNano(), EndNanos: s.GetEndTimeUnixNano()}
				if len(s.GetParentSpanId()) > 0 {
					sp.ParentSpanID = hex.EncodeToString(s.GetParentSpanId())
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.recv = append(r.recv, got...)
	r.mu.Unlock()
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// Trace is the spans received of traceID, by start time.
func (r *Receiver) Trace(traceID string) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Span
	for _, s := range r.recv {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b Span) int {
		switch {
		case a.StartNanos < b.StartNanos:
			return -1
		case a.StartNanos > b.StartNanos:
			return 1
		}
		return 0
	})
	return out
}

// Handler serves GET /traces/<trace ID>: the trace's spans as JSON.
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /traces/{id}", func(w http.ResponseWriter, req *http.Request) {
		spans := r.Trace(req.PathValue("id"))
		if spans == nil {
			spans = []Span{}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(spans)
	})
	return mux
}

func attributes(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_BoolValue:
			out[kv.GetKey()] = strconv.FormatBool(v.BoolValue)
		case *commonpb.AnyValue_IntValue:
			out[kv.GetKey()] = strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_DoubleValue:
			out[kv.GetKey()] = strconv.FormatFloat(v.DoubleValue, 'g', -1, 64)
		default:
			out[kv.GetKey()] = kv.GetValue().String()
		}
	}
	return out
}
