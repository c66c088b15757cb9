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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// DefaultIdleAfter is how long an agent's series stay after its last call.
const DefaultIdleAfter = 15 * time.Minute

// Metrics are custos-gateway's metrics: per agent, four series (calls
// allowed and refused, records and bytes served), dropped once the agent
// has been idle for IdleAfter, so that a replica's series follow the
// agents calling through it; everything else labelled by tool, reason or
// nothing. The calls' duration is OpenTelemetry's MCP server metric
// (mcp.server.operation.duration), by tool and error type, not by agent.
// The records counter carries the call's trace ID as an exemplar, linking
// a spike to its trace and audit records. Token and cost metrics are
// reserved for when model traffic goes through Custos: an agent's own
// report of its usage is not a measurement and freezes nobody.
type Metrics struct {
	// IdleAfter is DefaultIdleAfter when 0.
	IdleAfter time.Duration
	// Clock is the real clock when nil.
	Clock clock.PassiveClock

	calls    *prometheus.CounterVec
	records  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	refusals *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu        sync.Mutex
	lastSeen  map[types.NamespacedName]time.Time
	nextSweep time.Time
}

// Call outcomes, the calls counter's outcome label.
const (
	outcomeAllowed = "allowed"
	outcomeRefused = "refused"
)

// NewMetrics makes the gateway's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	agent := []string{"namespace", "agent"}
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_gateway_agent_calls_total",
			Help: "Tool calls an agent made through this replica, by outcome (allowed, refused). Dropped after the agent has been idle a while.",
		}, append(agent, "outcome")),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_gateway_agent_records_total",
			Help: "Records served to an agent (a tool's recordsPath says what a record is), with the call's trace ID as exemplar.",
		}, agent),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_gateway_agent_bytes_total",
			Help: "Bytes of results served to an agent.",
		}, agent),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_gateway_refusals_total",
			Help: "Tool calls refused, by reason (the audit record's policy: CapExceeded, PolicyDenied, ApprovalPending, ...).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcp_server_operation_duration_seconds",
			Help:    "Duration of MCP tools/call requests at the gateway, checks and upstream included (OpenTelemetry's mcp.server.operation.duration).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"mcp_method_name", "gen_ai_tool_name", "error_type"}),
		lastSeen: map[types.NamespacedName]time.Time{},
	}
	for _, c := range []prometheus.Collector{m.calls, m.records, m.bytes, m.refusals, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe counts one call: agent may be nil (no agent acting: nothing
// per agent), refusedReason "" for an allowed call.
func (m *Metrics) observe(agent types.NamespacedName, tool, refusedReason string, records, bytes int64, took time.Duration, traceID string) {
	if m == nil {
		return
	}
	errorType := ""
	outcome := outcomeAllowed
	if refusedReason != "" {
		outcome, errorType = outcomeRefused, refusedReason
		m.refusals.WithLabelValues(refusedReason).Inc()
	}
	m.duration.WithLabelValues("tools/call", tool, errorType).Observe(took.Seconds())
	if agent.Name == "" {
		return
	}
	m.calls.WithLabelValues(agent.Namespace, agent.Name, outcome).Inc()
	if records > 0 {
		c := m.records.WithLabelValues(agent.Namespace, agent.Name)
		if ea, ok := c.(prometheus.ExemplarAdder); ok && traceID != "" {
			ea.AddWithExemplar(float64(records), prometheus.Labels{"trace_id": traceID})
		} else {
			c.Add(float64(records))
		}
	}
	if bytes > 0 {
		m.bytes.WithLabelValues(agent.Namespace, agent.Name).Add(float64(bytes))
	}
	m.seen(agent)
}

// seen notes agent's call and, at most once a minute, drops the series
// of the agents idle for IdleAfter.
func (m *Metrics) seen(agent types.NamespacedName) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastSeen[agent] = now
	if now.Before(m.nextSweep) {
		return
	}
	m.nextSweep = now.Add(time.Minute)
	idle := m.IdleAfter
	if idle <= 0 {
		idle = DefaultIdleAfter
	}
	for a, at := range m.lastSeen {
		if now.Sub(at) < idle {
			continue
		}
		delete(m.lastSeen, a)
		labels := prometheus.Labels{"namespace": a.Namespace, "agent": a.Name}
		m.calls.DeletePartialMatch(labels)
		m.records.Delete(labels)
		m.bytes.Delete(labels)
	}
}

func (m *Metrics) now() time.Time {
	if m.Clock == nil {
		return time.Now()
	}
	return m.Clock.Now()
}
