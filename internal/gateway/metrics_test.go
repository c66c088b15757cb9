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
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clocktesting "k8s.io/utils/clock/testing"
)

// scrape is what a Prometheus server gets from reg, in OpenMetrics (which
// carries exemplars).
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

// seriesOf are the scraped series (sample lines) of agent.
func seriesOf(text, agent string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "#") && strings.Contains(line, `agent="`+agent+`"`) {
			out = append(out, line)
		}
	}
	return out
}

// An agent costs four series on a replica (calls allowed and refused,
// records, bytes), well within the ten the issue allows; its records carry
// the trace ID as exemplar; refusals are counted by reason and durations by
// tool; an agent idle for IdleAfter loses its series.
func TestMetricsPerAgent(t *testing.T) {
	w := newCapsWorld(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakePassiveClock(time.Now())
	m.Clock = clk
	w.usage = &Usage{}
	gw := w.replicaWith(t, m)
	for range 3 {
		if n, refusal := w.search(t, gw, "invoice", 10); n != 10 {
			t.Fatalf("a search: %d, %q", n, refusal)
		}
	}
	if _, refusal := w.search(t, gw, "invoice", 51); !strings.Contains(refusal, "maxRecords") {
		t.Fatalf("51 records: %q", refusal)
	}
	// The breaker's report: what was served, not what was withheld.
	report := w.usage.Report(time.Now())
	if got := report["finance.invoice"]; got != "30 3 "+strconv.FormatFloat(3*math.Log1p(10), 'f', 6, 64) {
		t.Errorf("the usage report of invoice: %q (all: %v)", got, report)
	}
	text := scrape(t, reg)
	series := seriesOf(text, "invoice")
	if len(series) > 10 || len(series) != 4 {
		t.Errorf("agent invoice has %d series (want 4, at most 10):\n%s", len(series), strings.Join(series, "\n"))
	}
	for _, want := range []string{
		`custos_gateway_agent_calls_total{agent="invoice",namespace="finance",outcome="allowed"} 3.0`,
		`custos_gateway_agent_calls_total{agent="invoice",namespace="finance",outcome="refused"} 1.0`,
		`custos_gateway_agent_records_total{agent="invoice",namespace="finance"} 30.0 # {trace_id="`,
		`custos_gateway_refusals_total{reason="CapExceeded"} 1.0`,
		`mcp_server_operation_duration_seconds_count{error_type="",gen_ai_tool_name="search.search",mcp_method_name="tools/call"} 3`,
		`mcp_server_operation_duration_seconds_count{error_type="CapExceeded",gen_ai_tool_name="search.search",mcp_method_name="tools/call"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the scrape has no %s", want)
		}
	}
	if !strings.Contains(text, `custos_gateway_agent_bytes_total{agent="invoice",namespace="finance"}`) {
		t.Error("no bytes served to invoice")
	}

	// Sixteen minutes on, another agent calls: invoice's series go.
	clk.SetTime(clk.Now().Add(16 * time.Minute))
	if n, _ := w.search(t, gw, "other", 1); n != 1 {
		t.Fatal("the other agent's search failed")
	}
	text = scrape(t, reg)
	if s := seriesOf(text, "invoice"); len(s) != 0 {
		t.Errorf("an idle agent's series stayed: %v", s)
	}
	if s := seriesOf(text, "other"); len(s) != 3 {
		t.Errorf("the calling agent's series: %v", s)
	}
}
