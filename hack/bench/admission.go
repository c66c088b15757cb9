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

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/controlplane"
)

// The admission mode's goals: with Custos's webhooks an Agent create's p99
// is at most admissionRatioGoal times what it is without them, and at most
// admissionP99Goal at admissionP99GoalClients concurrent clients.
const (
	admissionRatioGoal      = 1.3
	admissionP99Goal        = 50 * time.Millisecond
	admissionP99GoalClients = 50
	// agentWebhook is the webhook that validates Agents; its name is in
	// the API server's refusals and metrics.
	agentWebhook = "agents.custos.dev"
)

// level is one concurrency level of the admission mode: clients
// concurrent clients making creates Agents between them.
type level struct{ clients, creates int }

// parseLevels reads "1:500,10:1000,50:2000".
func parseLevels(s string) ([]level, error) {
	var levels []level
	for f := range strings.SplitSeq(s, ",") {
		c, n, ok := strings.Cut(strings.TrimSpace(f), ":")
		clients, err1 := strconv.Atoi(c)
		creates, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || clients < 1 || creates < clients {
			return nil, fmt.Errorf("-levels: %q is not clients:creates with creates >= clients >= 1", f)
		}
		levels = append(levels, level{clients, creates})
	}
	return levels, nil
}

// latencies are one phase's per-request create latencies and what the API
// server and the manager said about its webhook calls meanwhile.
type latencies struct {
	sorted []time.Duration
	// Mean seconds per Agent CREATE the API server spent calling the
	// webhook, and the manager's webhook handler spent on a request to the
	// Agent path (creates and the reconciler's updates alike); zero without
	// webhooks.
	apiserverWebhook, handler float64
	wall                      time.Duration
}

func (l latencies) pct(p float64) time.Duration {
	// Nearest rank.
	i := int(float64(len(l.sorted))*p+0.999999) - 1
	return l.sorted[max(0, min(i, len(l.sorted)-1))]
}

// runAdmission is `make bench-admission`: on one control plane, with the
// manager running throughout, it times Agent creates through the API
// server at each level of concurrency, first with Custos's webhook
// configurations removed and then with them back, and compares the p99s.
func runAdmission(ctx context.Context, c config) (retErr error) {
	levels, err := parseLevels(c.levels)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	env, err := startBenchEnv(ctx, c, "custos-bench-admission-")
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, env.stop()) }()
	cp, dir, kubeconfig, admin, cl := env.cp, env.dir, env.kubeconfig, env.admin, env.client
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return err
	}
	// The measured clients: one connection, as one controller or CI job
	// has, limited so loosely that the limiter shapes nothing.
	measuredCfg := rest.CopyConfig(cp.Config)
	measuredCfg.QPS, measuredCfg.Burst = float32(c.clientQPS), c.clientBurst
	measured, err := client.New(measuredCfg, client.Options{Scheme: cl.Scheme()})
	if err != nil {
		return err
	}

	// The manager runs in both phases with its ordinary limits, so that its
	// reconcilers load the API server alike with and without webhooks.
	mgr, err := startManager(ctx, c, cp, kubeconfig, dir)
	if err != nil {
		return err
	}
	defer mgr.Stop()
	if err := cl.Create(ctx, &custosv1alpha1.DataBoundary{
		ObjectMeta: metav1.ObjectMeta{Name: tenant},
		Spec: custosv1alpha1.DataBoundarySpec{
			Tenant:            tenant,
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.TenantLabel: tenant}},
			Regions:           []string{region},
			Images:            benchImages.Policy(),
		},
	}); err != nil {
		return err
	}
	const prefix = "bench-admission"
	if err := createNamespaces(ctx, cl, prefix, c.namespaces, map[string]string{custosv1alpha1.TenantLabel: tenant}); err != nil {
		return err
	}
	hooks, err := saveWebhooks(ctx, cl)
	if err != nil {
		return err
	}
	// Let the manager's cache see the boundary and the namespaces before
	// anything is timed.
	if err := waitWebhooks(ctx, cl, namespace(prefix, 0), true); err != nil {
		return err
	}

	type result struct {
		level
		off, on latencies
	}
	var results []result
	for _, lv := range levels {
		r := result{level: lv}
		for _, on := range []bool{false, true} {
			phase := map[bool]string{false: "without", true: "with"}[on]
			if on {
				if err := restoreWebhooks(ctx, cl, hooks); err != nil {
					return err
				}
			} else if err := removeWebhooks(ctx, cl, hooks); err != nil {
				return err
			}
			if err := waitWebhooks(ctx, cl, namespace(prefix, 0), on); err != nil {
				return err
			}
			name := func(i int) string { return fmt.Sprintf("c%02d-%s-%05d", lv.clients, phase, i) }
			// Warm-up: connections, caches, the API server's webhook client.
			warm := min(lv.creates/10, 100)
			if _, err := createAgents(ctx, measured, prefix, c.namespaces, lv.clients, warm, func(i int) string { return "warm-" + name(i) }); err != nil {
				return fmt.Errorf("%d clients %s webhooks, warm-up: %w", lv.clients, phase, err)
			}
			before, err := webhookMetrics(ctx, cs, mgr)
			if err != nil {
				return err
			}
			say("%d clients, %s webhooks: %d creates", lv.clients, phase, lv.creates)
			start := time.Now()
			lat, err := createAgents(ctx, measured, prefix, c.namespaces, lv.clients, lv.creates, name)
			if err != nil {
				return fmt.Errorf("%d clients %s webhooks: %w", lv.clients, phase, err)
			}
			l := latencies{sorted: lat, wall: time.Since(start)}
			after, err := webhookMetrics(ctx, cs, mgr)
			if err != nil {
				return err
			}
			l.apiserverWebhook, l.handler = after.sub(before)
			say("%d clients, %s webhooks: %s, %.0f creates/s, p99 %s", lv.clients, phase, l.wall.Round(time.Millisecond),
				float64(lv.creates)/l.wall.Seconds(), l.pct(0.99).Round(10*time.Microsecond))
			if on {
				r.on = l
			} else {
				r.off = l
			}
		}
		results = append(results, r)
	}
	fmt.Print(managerMetrics(mgr))
	say("manager log: %s", mgr.LogPath)

	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("\nAgent create latency through the API server (ms), manager --concurrency %d --kube-api-qps %g, client qps %g burst %d, %d namespaces\n",
		c.concurrency, c.qps, c.clientQPS, c.clientBurst, c.namespaces)
	fmt.Printf("  %7s %6s | %-23s | %-23s | %9s | %-12s | %-13s | %s\n", "", "", "without webhooks", "with webhooks", "", "goal", "goal", "with: mean ms")
	fmt.Printf("  %7s %6s | %7s %7s %7s | %7s %7s %7s | %9s | %-12s | %-13s | %s\n",
		"clients", "N", "p50", "p95", "p99", "p50", "p95", "p99", "p99 ratio", "<= 1.3x", "p99 <= 50 ms", "apiserver→webhook / handler")
	for _, r := range results {
		ratio := r.on.pct(0.99).Seconds() / r.off.pct(0.99).Seconds()
		abs := "-"
		if r.clients == admissionP99GoalClients {
			abs = verdict(r.on.pct(0.99) <= admissionP99Goal)
		}
		fmt.Printf("  %7d %6d | %7s %7s %7s | %7s %7s %7s | %8.2fx | %-12s | %-13s | %.2f / %.2f\n",
			r.clients, r.creates,
			ms(r.off.pct(0.5)), ms(r.off.pct(0.95)), ms(r.off.pct(0.99)),
			ms(r.on.pct(0.5)), ms(r.on.pct(0.95)), ms(r.on.pct(0.99)),
			ratio, verdict(ratio <= admissionRatioGoal), abs, r.on.apiserverWebhook*1e3, r.on.handler*1e3)
	}
	fmt.Println()
	return nil
}

// createAgents creates n valid Agents named name(i) on workers concurrent
// clients, spread over the namespaces, and returns each create's
// latency, sorted.
func createAgents(ctx context.Context, cl client.Client, prefix string, namespaces, workers, n int, name func(int) string) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var mu sync.Mutex
	err := parallel(ctx, workers, n, func(ctx context.Context, i int) error {
		agent := newAgent(namespace(prefix, i%namespaces), name(i))
		start := time.Now()
		err := cl.Create(ctx, agent)
		d := time.Since(start)
		mu.Lock()
		lat[i] = d
		mu.Unlock()
		return err
	})
	slices.Sort(lat)
	return lat, err
}

// webhookConfigs are the webhook configurations the control plane
// installed, as they were.
type webhookConfigs struct {
	validating []admissionregistrationv1.ValidatingWebhookConfiguration
	mutating   []admissionregistrationv1.MutatingWebhookConfiguration
}

func saveWebhooks(ctx context.Context, cl client.Client) (*webhookConfigs, error) {
	var v admissionregistrationv1.ValidatingWebhookConfigurationList
	var m admissionregistrationv1.MutatingWebhookConfigurationList
	if err := cl.List(ctx, &v); err != nil {
		return nil, err
	}
	if err := cl.List(ctx, &m); err != nil {
		return nil, err
	}
	if len(v.Items) == 0 {
		return nil, errors.New("the control plane installed no ValidatingWebhookConfiguration")
	}
	return &webhookConfigs{validating: v.Items, mutating: m.Items}, nil
}

func removeWebhooks(ctx context.Context, cl client.Client, h *webhookConfigs) error {
	for i := range h.validating {
		if err := client.IgnoreNotFound(cl.Delete(ctx, &h.validating[i])); err != nil {
			return err
		}
	}
	for i := range h.mutating {
		if err := client.IgnoreNotFound(cl.Delete(ctx, &h.mutating[i])); err != nil {
			return err
		}
	}
	return nil
}

func restoreWebhooks(ctx context.Context, cl client.Client, h *webhookConfigs) error {
	fresh := func(o *metav1.ObjectMeta) {
		o.ResourceVersion, o.UID, o.Generation, o.CreationTimestamp, o.ManagedFields = "", "", 0, metav1.Time{}, nil
	}
	for _, v := range h.validating {
		v := v.DeepCopy()
		fresh(&v.ObjectMeta)
		if err := client.IgnoreAlreadyExists(cl.Create(ctx, v)); err != nil {
			return err
		}
	}
	for _, m := range h.mutating {
		m := m.DeepCopy()
		fresh(&m.ObjectMeta)
		if err := client.IgnoreAlreadyExists(cl.Create(ctx, m)); err != nil {
			return err
		}
	}
	return nil
}

// waitWebhooks waits until the API server applies the Agent webhook (on)
// or no longer does: a dry-run create of an Agent labelled with a tenant
// that is not its namespace's, which only the webhook refuses, is refused by
// it, or admitted.
func waitWebhooks(ctx context.Context, cl client.Client, ns string, on bool) error {
	deadline := time.Now().Add(time.Minute)
	for i := 0; ; i++ {
		bad := newAgent(ns, fmt.Sprintf("probe-%d", i))
		bad.Labels[custosv1alpha1.TenantLabel] = "not-" + tenant
		err := cl.Create(ctx, bad, client.DryRunAll)
		refused := err != nil && strings.Contains(err.Error(), agentWebhook)
		switch {
		case err != nil && !refused:
			if time.Now().After(deadline) {
				return fmt.Errorf("probing the Agent webhook: %w", err)
			}
		case refused == on:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the API server still %s the Agent webhook after a minute", map[bool]string{true: "does not apply", false: "applies"}[on])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// webhookTotals are cumulative sums and counts of the API server's Agent
// CREATE webhook calls and of the manager's handling of the Agent path.
type webhookTotals struct{ apiSum, apiCount, hSum, hCount float64 }

func (a webhookTotals) sub(b webhookTotals) (api, handler float64) {
	mean := func(s, n float64) float64 {
		if n <= 0 {
			return 0
		}
		return s / n
	}
	return mean(a.apiSum-b.apiSum, a.apiCount-b.apiCount), mean(a.hSum-b.hSum, a.hCount-b.hCount)
}

func webhookMetrics(ctx context.Context, cs kubernetes.Interface, mgr *controlplane.Manager) (webhookTotals, error) {
	var t webhookTotals
	api, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return t, fmt.Errorf("the API server's metrics: %w", err)
	}
	m, err := get("http://" + mgr.MetricsAddr + "/metrics")
	if err != nil {
		return t, fmt.Errorf("the manager's metrics: %w", err)
	}
	const apiMetric = "apiserver_admission_webhook_admission_duration_seconds"
	on := []string{`name="` + agentWebhook + `"`, `operation="CREATE"`}
	t.apiSum = metricSum(string(api), apiMetric+"_sum{", on...)
	t.apiCount = metricSum(string(api), apiMetric+"_count{", on...)
	const hMetric = "controller_runtime_webhook_latency_seconds"
	path := `webhook="/validate-custos-dev-v1alpha1-agent"`
	t.hSum = metricSum(m, hMetric+"_sum{", path)
	t.hCount = metricSum(m, hMetric+"_count{", path)
	return t, nil
}

// metricSum adds up the samples in a Prometheus text exposition whose line
// starts with prefix and contains every one of labels.
func metricSum(body, prefix string, labels ...string) float64 {
	var sum float64
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		f := strings.Fields(line)
		if !ok || len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
