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

// Package promslice writes a slice of Custos's metrics (the gateway's for
// 20 agents, the breaker's) and serves it from a real Prometheus: the
// chart's dashboard test queries it, and hack/screenshots shows it.
package promslice

import (
	"bufio"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Write writes the gateway's metrics of 20 agents, and the breaker's,
// from start to end, a sample a minute, as OpenMetrics for promtool's
// backfill (promtool tsdb create-blocks-from openmetrics).
func Write(path string, start, end time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	// busy is an agent's activity at t: a working day, quieter at night.
	busy := func(agent int, t time.Time) float64 {
		h := float64(t.UTC().Hour()) + float64(t.Minute())/60
		return 0.2 + math.Max(0, math.Sin(math.Pi*(h-7-float64(agent%3))/11))
	}
	each := func(series string, rate func(agent int, t time.Time) float64, agents int) {
		for a := range agents {
			name := series
			if agents > 1 {
				name = fmt.Sprintf(series, a)
			}
			total := 0.0
			for t := start; t.Before(end); t = t.Add(time.Minute) {
				total += rate(a, t) * 60
				fmt.Fprintf(w, "%s %.0f %d\n", name, total, t.Unix())
			}
		}
	}
	agent := `{namespace="finance-agents",agent="agent-%02d"}`
	fmt.Fprintln(w, "# TYPE custos_gateway_agent_records counter")
	each("custos_gateway_agent_records_total"+agent, func(a int, t time.Time) float64 { return float64(5+a) * busy(a, t) }, 20)
	fmt.Fprintln(w, "# TYPE custos_gateway_agent_bytes counter")
	each("custos_gateway_agent_bytes_total"+agent, func(a int, t time.Time) float64 { return float64(800*(5+a)) * busy(a, t) }, 20)
	fmt.Fprintln(w, "# TYPE custos_gateway_agent_calls counter")
	each(`custos_gateway_agent_calls_total{namespace="finance-agents",agent="agent-%02d",outcome="allowed"}`, func(a int, t time.Time) float64 { return busy(a, t) }, 20)
	each(`custos_gateway_agent_calls_total{namespace="finance-agents",agent="agent-%02d",outcome="refused"}`, func(a int, t time.Time) float64 { return 0.05 * busy(a, t) }, 20)
	fmt.Fprintln(w, "# TYPE custos_gateway_refusals counter")
	for _, reason := range []string{"PolicyDenied", "ApprovalPending", "CapExceeded"} {
		each(`custos_gateway_refusals_total{reason="`+reason+`"}`, func(_ int, t time.Time) float64 { return 0.1 * busy(0, t) }, 1)
	}
	// The breaker's (the manager's): evidence of a few agents, agents
	// Frozen, trips.
	fmt.Fprintln(w, "# TYPE custos_breaker_evidence_ratio gauge")
	for a := range 5 {
		for t := start; t.Before(end); t = t.Add(time.Minute) {
			fmt.Fprintf(w, "custos_breaker_evidence_ratio{namespace=\"finance-agents\",agent=\"agent-%02d\"} %.3f %d\n", a, 0.1*float64(a+1)*busy(a, t), t.Unix())
		}
	}
	fmt.Fprintln(w, "# TYPE custos_breaker_frozen_agents gauge")
	for t := start; t.Before(end); t = t.Add(time.Minute) {
		fmt.Fprintf(w, "custos_breaker_frozen_agents{namespace=\"finance-agents\"} 1 %d\n", t.Unix())
	}
	fmt.Fprintln(w, "# TYPE custos_breaker_trips counter")
	each(`custos_breaker_trips_total{trigger="Trend",outcome="frozen"}`, func(_ int, t time.Time) float64 { return 0.001 * busy(0, t) }, 1)
	// The evaluator's (the manager's): Findings by phase, overdue ones, and
	// how far behind its trails it reads.
	fmt.Fprintln(w, "# TYPE custos_findings gauge")
	for _, phase := range []string{"Open", "Acknowledged", "Dismissed"} {
		for t := start; t.Before(end); t = t.Add(time.Minute) {
			fmt.Fprintf(w, "custos_findings{namespace=\"finance-agents\",finding_severity=\"High\",phase=%q} %.0f %d\n", phase, 1+2*busy(0, t), t.Unix())
		}
	}
	fmt.Fprintln(w, "# TYPE custos_findings_overdue gauge")
	for t := start; t.Before(end); t = t.Add(time.Minute) {
		fmt.Fprintf(w, "custos_findings_overdue{namespace=\"finance-agents\",finding_severity=\"High\"} 1 %d\n", t.Unix())
	}
	fmt.Fprintln(w, "# TYPE custos_evaluator_behind_seconds gauge")
	for _, trail := range []string{"custos-gateway/custos-gateway-0", "custos-sts/custos-sts-0"} {
		for t := start; t.Before(end); t = t.Add(time.Minute) {
			fmt.Fprintf(w, "custos_evaluator_behind_seconds{trail=%q} %.1f %d\n", trail, 5*busy(0, t), t.Unix())
		}
	}
	fmt.Fprintln(w, "# TYPE custos_findings_opened counter")
	each(`custos_findings_opened_total{rubric="probing",severity="Medium"}`, func(_ int, t time.Time) float64 { return 0.002 * busy(0, t) }, 1)
	fmt.Fprintln(w, "# TYPE mcp_server_operation_duration_seconds histogram")
	for _, tool := range []string{"ledger-readonly.get_invoice", "ledger-payments.pay"} {
		labels := `mcp_method_name="tools/call",gen_ai_tool_name="` + tool + `",error_type=""`
		for _, le := range []string{"0.01", "0.05", "0.1", "0.5", "1", "+Inf"} {
			share := map[string]float64{"0.01": 0.2, "0.05": 0.6, "0.1": 0.8, "0.5": 0.95, "1": 0.99, "+Inf": 1}[le]
			each(`mcp_server_operation_duration_seconds_bucket{`+labels+`,le="`+le+`"}`, func(_ int, t time.Time) float64 { return share * busy(1, t) }, 1)
		}
		each(`mcp_server_operation_duration_seconds_sum{`+labels+`}`, func(_ int, t time.Time) float64 { return 0.05 * busy(1, t) }, 1)
		each(`mcp_server_operation_duration_seconds_count{`+labels+`}`, func(_ int, t time.Time) float64 { return busy(1, t) }, 1)
	}
	fmt.Fprintln(w, "# EOF")
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// Server is a real Prometheus serving a slice on loopback.
type Server struct {
	// Addr is where it listens (127.0.0.1:port).
	Addr string
	cmd  *exec.Cmd
}

// Serve writes the slice of the eight days to end into dir, loads it with
// promtool, and starts prometheus on loopback with config (a
// prometheus.yml), waiting until it is ready. Its log is dir/prometheus.log.
func Serve(promtool, prometheus, dir, config string, end time.Time) (*Server, error) {
	slice := filepath.Join(dir, "slice.om")
	if err := Write(slice, end.Add(-8*24*time.Hour), end); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", slice, data).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return nil, err
	}
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logs, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return nil, err
	}
	defer logs.Close()
	cmd := exec.Command(prometheus, "--config.file="+configFile, "--storage.tsdb.path="+data,
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=30d")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Addr: addr, cmd: cmd}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if res, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("prometheus did not get ready (its log: %s)", logs.Name())
		}
	}
}

// Stop stops it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}
