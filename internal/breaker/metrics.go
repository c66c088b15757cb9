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

package breaker

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
)

// Metrics are the breaker's own series, the leader's (a replica that does
// not lead has none but the counters at zero):
//
//	custos_breaker_evidence_ratio{namespace,agent}  an agent's most evidence over what trips it, while it has any
//	custos_breaker_trips_total{trigger,outcome}      trips (Trend, Ratio), frozen or observed
//	custos_breaker_frozen_agents{namespace}          agents Frozen
//	custos_breaker_state_save_failures_total        writes of the state kept for the next leader that failed
//
// One series an agent at most, and only while evidence accumulates; which
// agent tripped is on the audit trail.
type Metrics struct {
	evidence     *prometheus.GaugeVec
	trips        *prometheus.CounterVec
	frozen       *prometheus.GaugeVec
	saveFailures prometheus.Counter
}

// NewMetrics makes the breaker's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		evidence: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "custos_breaker_evidence_ratio",
			Help: "An agent's most evidence (of its signals) over the evidence that trips the breaker for it: 1 trips. Only agents with evidence have a series.",
		}, []string{"namespace", "agent"}),
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_breaker_trips_total",
			Help: "The breaker's trips, by trigger (Trend, Ratio) and outcome (frozen: an AgentFreeze; observed: breaker.observed only).",
		}, []string{"trigger", "outcome"}),
		frozen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "custos_breaker_frozen_agents",
			Help: "Agents Frozen (by the breaker, a cap or a person), by namespace.",
		}, []string{"namespace"}),
		saveFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custos_breaker_state_save_failures_total",
			Help: "Writes of the state the breaker keeps for the next leader that failed: a new leader would go on from an older state.",
		}),
	}
	for _, trigger := range []string{"Trend", "Ratio"} {
		for _, outcome := range []string{"frozen", "observed"} {
			m.trips.WithLabelValues(trigger, outcome)
		}
	}
	if reg != nil {
		reg.MustRegister(m.evidence, m.trips, m.frozen, m.saveFailures)
	}
	return m
}

// Trips is custos_breaker_trips_total.
func (m *Metrics) Trips() *prometheus.CounterVec { return m.trips }

// The Runner's calls; a nil *Metrics keeps nothing.

func (m *Metrics) evidenceOf(agent types.NamespacedName, ratio float64) {
	if m == nil {
		return
	}
	if ratio <= 0 {
		m.evidence.DeleteLabelValues(agent.Namespace, agent.Name)
		return
	}
	m.evidence.WithLabelValues(agent.Namespace, agent.Name).Set(ratio)
}

func (m *Metrics) trip(trigger string, observed bool) {
	if m == nil {
		return
	}
	outcome := "frozen"
	if observed {
		outcome = "observed"
	}
	m.trips.WithLabelValues(trigger, outcome).Inc()
}

func (m *Metrics) frozenAgents(byNamespace map[string]int) {
	if m == nil {
		return
	}
	m.frozen.Reset()
	for ns, n := range byNamespace {
		m.frozen.WithLabelValues(ns).Set(float64(n))
	}
}

func (m *Metrics) saveFailed() {
	if m != nil {
		m.saveFailures.Inc()
	}
}
