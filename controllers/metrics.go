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

package controllers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// agentsDesc is custos_agents: how many Agents there are, by tenant, phase
// and readiness.
var agentsDesc = prometheus.NewDesc("custos_agents",
	"Agents by tenant, lifecycle phase (Pending before the first status) and Ready condition status.",
	[]string{"tenant", "phase", "ready"}, nil)

// agentCollector counts the Agents in the manager's cache when Prometheus
// scrapes: always current, with no bookkeeping in the reconciler, and
// Agents that are gone simply stop being counted.
type agentCollector struct {
	reader atomic.Pointer[client.Reader]
}

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- agentsDesc
	ch <- leasesDesc
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	reader := c.reader.Load()
	if reader == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var agents custosv1alpha1.AgentList
	if err := (*reader).List(ctx, &agents, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(agentsDesc, err)
		return
	}
	type key struct{ tenant, phase, ready string }
	counts := map[key]int{}
	leases := map[string]int{}
	now := time.Now()
	for i := range agents.Items {
		a := &agents.Items[i]
		for _, l := range a.Status.Leases {
			if l.ExpiresAt != nil && now.Before(l.ExpiresAt.Time) {
				leases[l.Backend]++
			}
		}
		k := key{tenant: a.Labels[custosv1alpha1.TenantLabel], phase: string(phaseOf(a)), ready: "Unknown"}
		if k.phase == "" {
			k.phase = string(custosv1alpha1.AgentPhasePending)
		}
		if c := findCondition(a, custosv1alpha1.ReadyCondition); c != nil {
			k.ready = string(c.Status)
		}
		counts[k]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, float64(n), k.tenant, k.phase, k.ready)
	}
	for backend, n := range leases {
		ch <- prometheus.MustNewConstMetric(leasesDesc, prometheus.GaugeValue, float64(n), backend)
	}
}

// leaseOps counts lease operations by backend, operation (issue, renew,
// revoke) and result (ok, refused, error).
var leaseOps = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "custos_lease_operations_total",
	Help: "Credential lease operations by backend, operation (issue, renew, revoke) and result (ok, refused, error).",
}, []string{"backend", "op", "result"})

// leasesDesc is custos_leases: the leases currently valid, by backend.
var leasesDesc = prometheus.NewDesc("custos_leases",
	"Credential leases currently valid (in the Agents' ledgers), by backend.", []string{"backend"}, nil)

// imageVerifications counts image verifications by result: Verified or
// the reason it failed (SignatureMissing, UntrustedSigner,
// RegistryNotAllowed, ResolveFailed, InvalidImagePolicy). Answers from the
// verifier's cache count too: each is a decision.
var imageVerifications = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "custos_image_verifications_total",
	Help: "Agent image verifications by result (Verified, or the reason it failed).",
}, []string{"result"})

func init() {
	metrics.Registry.MustRegister(leaseOps, imageVerifications)
}
