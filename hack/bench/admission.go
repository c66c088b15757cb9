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
	corev1 "k8s.io/api/core/v1"
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

// withoutWebhooksLabel marks the admission mode's namespaces that the run
// takes out of the Agent webhook's namespaceSelector.
const withoutWebhooksLabel = "bench.custos.dev/without-webhooks"

// runAdmission is `make bench-admission`: on one control plane, with the
// manager running throughout, it times Agent creates through the API
// server at each level of concurrency, with and without Custos's Agent
// webhook, and compares the p99s.
//
// The two are measured at the same time, not one after the other: half the
// namespaces are taken out of the webhook's namespaceSelector, and each
// client alternates between a namespace with the webhook and one without.
// Both halves then meet the same API server under the same load, including
// the manager reconciling the Agents created so far, which a phase run after
// another would meet more of.
func runAdmission(ctx context.Context, c config) (retErr error) {
	levels, err := parseLevels(c.levels)
	if err != nil {
		return err
	}
	if c.namespaces < 2 {
		return errors.New("-namespaces: the admission mode needs at least 2, half of them without the webhook")
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

	// The manager runs with its ordinary limits and reconciles every
	// Agent created, with the webhook or without.
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
	if err := excludeFromAgentWebhook(ctx, cl); err != nil {
		return err
	}
	// Namespaces with and without the webhook, half each.
	nsWith := make([]string, 0, c.namespaces)
	nsWithout := make([]string, 0, c.namespaces)
	for i := range c.namespaces {
		labels := map[string]string{custosv1alpha1.TenantLabel: tenant}
		name := namespace("bench-with", i/2)
		if i%2 == 1 {
			labels[withoutWebhooksLabel] = "true"
			name = namespace("bench-without", i/2)
		}
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
			return err
		}
		if i%2 == 1 {
			nsWithout = append(nsWithout, name)
		} else {
			nsWith = append(nsWith, name)
		}
	}
	// Timing starts once the API server applies the webhook where it
	// should and only there, and the manager's cache has seen the boundary
	// and the namespaces.
	if err := waitWebhooks(ctx, cl, nsWith[0], true); err != nil {
		return err
	}
	if err := waitWebhooks(ctx, cl, nsWithout[0], false); err != nil {
		return err
	}

	type result struct {
		level
		off, on latencies
	}
	var results []result
	for _, lv := range levels {
		name := func(i int) string { return fmt.Sprintf("c%02d-%05d", lv.clients, i) }
		// Warm-up: connections, caches, the API server's webhook client.
		warm := min(lv.creates/10, 100)
		if _, _, err := createAgents(ctx, measured, nsWith, nsWithout, lv.clients, warm, func(i int) string { return "warm-" + name(i) }); err != nil {
			return fmt.Errorf("%d clients, warm-up: %w", lv.clients, err)
		}
		before, err := webhookMetrics(ctx, cs, mgr)
		if err != nil {
			return err
		}
		say("%d clients: %d creates with the webhook and %d without, alternating", lv.clients, lv.creates, lv.creates)
		start := time.Now()
		on, off, err := createAgents(ctx, measured, nsWith, nsWithout, lv.clients, lv.creates, name)
		if err != nil {
			return fmt.Errorf("%d clients: %w", lv.clients, err)
		}
		wall := time.Since(start)
		after, err := webhookMetrics(ctx, cs, mgr)
		if err != nil {
			return err
		}
		r := result{level: lv, off: latencies{sorted: off, wall: wall}, on: latencies{sorted: on, wall: wall}}
		r.on.apiserverWebhook, r.on.handler = after.sub(before)
		say("%d clients: %s, %.0f creates/s, p99 %s with the webhook, %s without", lv.clients, wall.Round(time.Millisecond),
			float64(2*lv.creates)/wall.Seconds(), r.on.pct(0.99).Round(10*time.Microsecond), r.off.pct(0.99).Round(10*time.Microsecond))
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
	fmt.Printf("\nAgent create latency through the API server (ms), with and without the webhook alternating; manager --concurrency %d --kube-api-qps %g, client qps %g burst %d, %d namespaces\n",
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

// createAgents creates 2n valid Agents on workers concurrent clients, each
// client alternating between the namespaces with the webhook and those
// without, and returns each half's create latencies, sorted.
func createAgents(ctx context.Context, cl client.Client, nsWith, nsWithout []string, workers, n int, name func(int) string) (on, off []time.Duration, err error) {
	lat := make([]time.Duration, 2*n)
	var mu sync.Mutex
	err = parallel(ctx, workers, 2*n, func(ctx context.Context, i int) error {
		ns := nsWith
		if withoutWebhook(i, workers) {
			ns = nsWithout
		}
		agent := newAgent(ns[(i/2)%len(ns)], name(i))
		start := time.Now()
		err := cl.Create(ctx, agent)
		d := time.Since(start)
		mu.Lock()
		lat[i] = d
		mu.Unlock()
		return err
	})
	for i, d := range lat {
		if withoutWebhook(i, workers) {
			off = append(off, d)
		} else {
			on = append(on, d)
		}
	}
	slices.Sort(on)
	slices.Sort(off)
	return on, off, err
}

// withoutWebhook tells which side create i of parallel's is on. Worker w
// takes i = w + k*workers for k = 0, 1, ...: each worker alternates with k,
// and at each k half the workers are on each side.
func withoutWebhook(i, workers int) bool {
	return (i%workers+i/workers)%2 == 1
}

// excludeFromAgentWebhook takes the namespaces labelled
// withoutWebhooksLabel out of the Agent webhook's namespaceSelector, as a
// cluster does with namespaces a webhook does not govern.
func excludeFromAgentWebhook(ctx context.Context, cl client.Client) error {
	var list admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := cl.List(ctx, &list); err != nil {
		return err
	}
	for i := range list.Items {
		vwc := &list.Items[i]
		for j := range vwc.Webhooks {
			w := &vwc.Webhooks[j]
			if w.Name != agentWebhook {
				continue
			}
			if w.NamespaceSelector == nil {
				w.NamespaceSelector = &metav1.LabelSelector{}
			}
			w.NamespaceSelector.MatchExpressions = append(w.NamespaceSelector.MatchExpressions,
				metav1.LabelSelectorRequirement{Key: withoutWebhooksLabel, Operator: metav1.LabelSelectorOpDoesNotExist})
			return cl.Update(ctx, vwc)
		}
	}
	return fmt.Errorf("the control plane installed no webhook %s", agentWebhook)
}

// waitWebhooks waits until the API server applies the Agent webhook (on)
// in namespace ns, or does not: a dry-run create of an Agent labelled with
// a tenant that is not its namespace's, which only the webhook refuses, is
// refused by it, or admitted.
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
				return fmt.Errorf("probing the Agent webhook in %s: %w", ns, err)
			}
		case refused == on:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the API server still %s the Agent webhook in %s after a minute", map[bool]string{true: "does not apply", false: "applies"}[on], ns)
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
