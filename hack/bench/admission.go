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
	"github.com/custos-dev/custos/test/controlplane"
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
	// side's webhook, and, on Custos's side, the manager's webhook handler
	// spent on a request to the Agent path (creates and the reconciler's
	// updates alike); zero where there is none.
	apiserverWebhook, handler float64
	wall                      time.Duration
}

func (l latencies) pct(p float64) time.Duration {
	// Nearest rank.
	i := int(float64(len(l.sorted))*p+0.999999) - 1
	return l.sorted[max(0, min(i, len(l.sorted)-1))]
}

// The admission mode's sides: each create goes to a namespace of one of
// them. sideLabel on a namespace takes it out of Custos's Agent webhook and
// names its side; namespaces without it are Custos's.
const (
	sideLabel = "bench.custos.dev/side"
	sideNoop  = "noop"
	sideNone  = "none"
	// noopWebhook is the webhook the run adds for the no-op side.
	noopWebhook = "noop.bench.custos.dev"
)

// side is one of the admission mode's three: Custos's Agent webhook, a
// webhook that admits everything and reads nothing (what any webhook costs
// on this machine), or no webhook.
type side int

const (
	custosSide side = iota
	noopSide
	noneSide
	sides
)

// runAdmission is `make bench-admission`: on one control plane, with the
// manager running throughout, it times creates through the API server at
// each level of concurrency with Custos's webhooks, with webhooks that do
// nothing, and without webhooks, and compares the p99s. It times what
// -objects names, in its order: Agent creates (Custos's Agent webhook; see
// timeAgentCreates) and agent pod creates (the pod guard, a mutating and a
// validating webhook; see timePodCreates).
//
// The three sides are measured at the same time, not one after the other:
// each has namespaces of its own, the no-op and no-webhook ones taken out of
// Custos's webhooks by their namespaceSelector, and each client goes round
// the three. All meet the same API server under the same load, including
// the manager reconciling the Agents created so far, which a phase run
// after another would meet more of.
func runAdmission(ctx context.Context, c config) (retErr error) {
	levels, err := parseLevels(c.levels)
	if err != nil {
		return err
	}
	objects, err := parseObjects(c.objects)
	if err != nil {
		return err
	}
	timeAgents := slices.Contains(objects, objectAgents)
	if timeAgents && c.namespaces < int(sides) {
		return fmt.Errorf("-namespaces: the admission mode needs at least %d, a third on each side", sides)
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
	noop, err := startNoopWebhook(ctx)
	if err != nil {
		return err
	}

	// The manager runs with its ordinary limits and reconciles every
	// Agent created, on every side.
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
	if err := routeWebhooks(ctx, cl, noop); err != nil {
		return err
	}
	var pods *podBench
	if slices.Contains(objects, objectPods) {
		if pods, err = setUpPods(ctx, c, env, noop); err != nil {
			return fmt.Errorf("pods: %w", err)
		}
	}
	var ns [sides][]string
	var measured client.Client
	if timeAgents {
		// The measured clients: one connection, as one controller or CI
		// job has, limited so loosely that the limiter shapes nothing.
		measuredCfg := rest.CopyConfig(cp.Config)
		measuredCfg.QPS, measuredCfg.Burst = float32(c.clientQPS), c.clientBurst
		if measured, err = client.New(measuredCfg, client.Options{Scheme: cl.Scheme()}); err != nil {
			return err
		}
		for i := range c.namespaces {
			sd := side(i % int(sides))
			name := namespace("bench-custos", i/int(sides))
			switch sd {
			case noopSide:
				name = namespace("bench-noop", i/int(sides))
			case noneSide:
				name = namespace("bench-none", i/int(sides))
			}
			if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: sideLabels(sd)}}); err != nil {
				return err
			}
			ns[sd] = append(ns[sd], name)
		}
		// Timing starts once the API server applies each webhook where it
		// should and only there, and the manager's cache has seen the
		// boundary and the namespaces.
		if err := waitWebhooks(ctx, cl, noop, ns); err != nil {
			return err
		}
	}

	var reports []func()
	for _, o := range objects {
		var report func()
		switch o {
		case objectAgents:
			report, err = timeAgentCreates(ctx, c, levels, measured, cs, mgr, ns)
		case objectPods:
			report, err = pods.timePodCreates(ctx, c, levels, cl, cs, mgr)
		}
		if err != nil {
			return err
		}
		reports = append(reports, report)
	}
	fmt.Print(managerMetrics(mgr))
	say("manager log: %s", mgr.LogPath)
	for _, report := range reports {
		report()
	}
	return nil
}

// What -objects names.
const (
	objectAgents = "agents"
	objectPods   = "pods"
)

// parseObjects reads "pods,agents".
func parseObjects(s string) ([]string, error) {
	var objects []string
	for f := range strings.SplitSeq(s, ",") {
		o := strings.TrimSpace(f)
		if o != objectAgents && o != objectPods || slices.Contains(objects, o) {
			return nil, fmt.Errorf("-objects: %q is not a list of %s and %s, each at most once", s, objectPods, objectAgents)
		}
		objects = append(objects, o)
	}
	return objects, nil
}

// sideLabels are the labels of a namespace of side sd: the tenant's, and
// on the no-op and no-webhook sides the one that takes it out of Custos's
// webhooks and names its side.
func sideLabels(sd side) map[string]string {
	labels := map[string]string{custosv1alpha1.TenantLabel: tenant}
	switch sd {
	case noopSide:
		labels[sideLabel] = sideNoop
	case noneSide:
		labels[sideLabel] = sideNone
	}
	return labels
}

// timeAgentCreates times Agent creates by measured in the namespaces ns of
// each side at each level, and returns what prints the figures.
func timeAgentCreates(ctx context.Context, c config, levels []level, measured client.Client, cs kubernetes.Interface, mgr *controlplane.Manager, ns [sides][]string) (func(), error) {
	type result struct {
		level
		lat [sides]latencies
	}
	var results []result
	for _, lv := range levels {
		name := func(i int) string { return fmt.Sprintf("c%02d-%05d", lv.clients, i) }
		// Warm-up: connections, caches, the API server's webhook clients.
		warm := min(lv.creates/10, 100)
		if _, err := createAgents(ctx, measured, ns, lv.clients, warm, func(i int) string { return "warm-" + name(i) }); err != nil {
			return nil, fmt.Errorf("%d clients, warm-up: %w", lv.clients, err)
		}
		before, err := webhookMetrics(ctx, cs, mgr)
		if err != nil {
			return nil, err
		}
		say("agents, %d clients: %d creates on each side (Custos's webhook, a no-op webhook, none), taking turns", lv.clients, lv.creates)
		start := time.Now()
		lat, err := createAgents(ctx, measured, ns, lv.clients, lv.creates, name)
		if err != nil {
			return nil, fmt.Errorf("%d clients: %w", lv.clients, err)
		}
		wall := time.Since(start)
		after, err := webhookMetrics(ctx, cs, mgr)
		if err != nil {
			return nil, err
		}
		r := result{level: lv}
		for sd := range sides {
			r.lat[sd] = latencies{sorted: lat[sd], wall: wall}
		}
		r.lat[custosSide].apiserverWebhook, r.lat[noopSide].apiserverWebhook, r.lat[custosSide].handler = after.sub(before)
		say("agents, %d clients: %s, %.0f creates/s, p99 %s with Custos's webhook, %s with a no-op webhook, %s without", lv.clients,
			wall.Round(time.Millisecond), float64(int(sides)*lv.creates)/wall.Seconds(),
			r.lat[custosSide].pct(0.99).Round(10*time.Microsecond), r.lat[noopSide].pct(0.99).Round(10*time.Microsecond),
			r.lat[noneSide].pct(0.99).Round(10*time.Microsecond))
		results = append(results, r)
	}

	return func() {
		fmt.Printf("\nAgent create latency through the API server (ms), the three sides taking turns; manager --concurrency %d --kube-api-qps %g, client qps %g burst %d, %d namespaces\n",
			c.concurrency, c.qps, c.clientQPS, c.clientBurst, c.namespaces)
		fmt.Printf("  %7s %6s | %-23s | %-23s | %-23s | %-20s | %-12s | %-13s | %s\n", "", "",
			"without webhooks", "with a no-op webhook", "with Custos's webhook", "p99 ratio to without", "goal", "goal", "mean ms apiserver→webhook")
		fmt.Printf("  %7s %6s | %7s %7s %7s | %7s %7s %7s | %7s %7s %7s | %9s %10s | %-12s | %-13s | %s\n",
			"clients", "N", "p50", "p95", "p99", "p50", "p95", "p99", "p50", "p95", "p99", "no-op", "Custos", "<= 1.3x", "p99 <= 50 ms", "no-op / Custos (its handler)")
		for _, r := range results {
			none, noop, custos := r.lat[noneSide], r.lat[noopSide], r.lat[custosSide]
			ratio := func(l latencies) float64 { return l.pct(0.99).Seconds() / none.pct(0.99).Seconds() }
			abs := "-"
			if r.clients == admissionP99GoalClients {
				abs = verdict(custos.pct(0.99) <= admissionP99Goal)
			}
			fmt.Printf("  %7d %6d | %7s %7s %7s | %7s %7s %7s | %7s %7s %7s | %8.2fx %9.2fx | %-12s | %-13s | %.2f / %.2f (%.2f)\n",
				// Each side's count: parallel's turns share the creates out
				// evenly only when they divide evenly.
				r.clients, min(len(none.sorted), len(noop.sorted), len(custos.sorted)),
				ms(none.pct(0.5)), ms(none.pct(0.95)), ms(none.pct(0.99)),
				ms(noop.pct(0.5)), ms(noop.pct(0.95)), ms(noop.pct(0.99)),
				ms(custos.pct(0.5)), ms(custos.pct(0.95)), ms(custos.pct(0.99)),
				ratio(noop), ratio(custos), verdict(ratio(custos) <= admissionRatioGoal), abs,
				noop.apiserverWebhook*1e3, custos.apiserverWebhook*1e3, custos.handler*1e3)
		}
		fmt.Println()
	}, nil
}

// ms formats d in milliseconds, as the tables print them.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// verdict says whether a goal was met.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// createAgents creates n valid Agents on each side on workers concurrent
// clients, each client taking the sides in turn, and returns each side's
// create latencies, sorted.
func createAgents(ctx context.Context, cl client.Client, ns [sides][]string, workers, n int, name func(int) string) ([sides][]time.Duration, error) {
	return timeCreates(ctx, cl, workers, n, func(sd side, i int) client.Object {
		names := ns[sd]
		return newAgent(names[(i/int(sides))%len(names)], name(i))
	})
}

// timeCreates makes n creates by cl on each side on workers concurrent
// clients, each client taking the sides in turn: the i-th of all creates
// object(sd, i), on side sd; only the create is timed. It returns each
// side's latencies, sorted.
func timeCreates(ctx context.Context, cl client.Client, workers, n int, object func(side, int) client.Object) ([sides][]time.Duration, error) {
	lat := make([]time.Duration, int(sides)*n)
	var mu sync.Mutex
	err := parallel(ctx, workers, len(lat), func(ctx context.Context, i int) error {
		sd := sideOf(i, workers)
		obj := object(sd, i)
		start := time.Now()
		err := cl.Create(ctx, obj)
		d := time.Since(start)
		mu.Lock()
		lat[i] = d
		mu.Unlock()
		return err
	})
	var bySide [sides][]time.Duration
	for i, d := range lat {
		bySide[sideOf(i, workers)] = append(bySide[sideOf(i, workers)], d)
	}
	for sd := range sides {
		slices.Sort(bySide[sd])
	}
	return bySide, err
}

// sideOf tells which side create i of parallel's is on. Worker w takes
// i = w + k*workers for k = 0, 1, ...: each worker goes round the sides
// with k, and at each k the workers are spread over the sides.
func sideOf(i, workers int) side {
	return side((i%workers + i/workers) % int(sides))
}

// noopTwins names, by the name of each Custos webhook the bench measures,
// the no-op webhook that stands in for it on the no-op side.
var noopTwins = map[string]string{
	agentWebhook:       noopWebhook,
	podMutateWebhook:   noopPodMutateWebhook,
	podValidateWebhook: noopPodValidateWebhook,
}

// routeWebhooks takes the namespaces labelled sideLabel out of Custos's
// Agent webhook and pod guard (its mutating and validating webhooks), as a
// cluster does with namespaces a webhook does not govern, and adds beside
// each its no-op twin for the no-op side's namespaces, served by noop: a
// twin is Custos's webhook in all but its server and the namespaces it
// looks at (the same rules, object selector, reinvocation, timeout).
func routeWebhooks(ctx context.Context, cl client.Client, noop *noopWebhookServer) error {
	// route takes the sideLabel namespaces out of selector, and returns
	// the twin's selector.
	route := func(selector **metav1.LabelSelector) *metav1.LabelSelector {
		if *selector == nil {
			*selector = &metav1.LabelSelector{}
		}
		twin := (*selector).DeepCopy()
		(*selector).MatchExpressions = append((*selector).MatchExpressions,
			metav1.LabelSelectorRequirement{Key: sideLabel, Operator: metav1.LabelSelectorOpDoesNotExist})
		twin.MatchLabels = map[string]string{sideLabel: sideNoop}
		return twin
	}
	routed := map[string]bool{}

	var validating admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := cl.List(ctx, &validating); err != nil {
		return err
	}
	for i := range validating.Items {
		vwc := &validating.Items[i]
		var twins []admissionregistrationv1.ValidatingWebhook
		for j := range vwc.Webhooks {
			w := &vwc.Webhooks[j]
			name, ok := noopTwins[w.Name]
			if !ok {
				continue
			}
			twin := *w.DeepCopy()
			twin.Name = name
			twin.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &noop.url, CABundle: noop.caPEM}
			twin.NamespaceSelector = route(&w.NamespaceSelector)
			twins = append(twins, twin)
			routed[w.Name] = true
		}
		if len(twins) > 0 {
			vwc.Webhooks = append(vwc.Webhooks, twins...)
			if err := cl.Update(ctx, vwc); err != nil {
				return err
			}
		}
	}

	var mutating admissionregistrationv1.MutatingWebhookConfigurationList
	if err := cl.List(ctx, &mutating); err != nil {
		return err
	}
	for i := range mutating.Items {
		mwc := &mutating.Items[i]
		var twins []admissionregistrationv1.MutatingWebhook
		for j := range mwc.Webhooks {
			w := &mwc.Webhooks[j]
			name, ok := noopTwins[w.Name]
			if !ok {
				continue
			}
			twin := *w.DeepCopy()
			twin.Name = name
			twin.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &noop.mutateURL, CABundle: noop.caPEM}
			twin.NamespaceSelector = route(&w.NamespaceSelector)
			twins = append(twins, twin)
			routed[w.Name] = true
		}
		if len(twins) > 0 {
			mwc.Webhooks = append(mwc.Webhooks, twins...)
			if err := cl.Update(ctx, mwc); err != nil {
				return err
			}
		}
	}

	for name := range noopTwins {
		if !routed[name] {
			return fmt.Errorf("the control plane installed no webhook %s", name)
		}
	}
	return nil
}

// waitWebhooks waits until the API server applies each webhook where it
// should and only there: a dry-run create of an Agent labelled with a
// tenant that is not its namespace's, which only Custos's webhook refuses,
// is refused on Custos's side and admitted on the others, and one on the
// no-op side reaches the no-op server.
func waitWebhooks(ctx context.Context, cl client.Client, noop *noopWebhookServer, ns [sides][]string) error {
	deadline := time.Now().Add(time.Minute)
	for i := 0; ; i++ {
		ready := true
		for sd := range sides {
			bad := newAgent(ns[sd][0], fmt.Sprintf("probe-%d", i))
			bad.Labels[custosv1alpha1.TenantLabel] = "not-" + tenant
			served := noop.served.Load()
			err := cl.Create(ctx, bad, client.DryRunAll)
			refused := err != nil && strings.Contains(err.Error(), agentWebhook)
			if err != nil && !refused {
				if time.Now().After(deadline) {
					return fmt.Errorf("probing the webhooks in %s: %w", ns[sd][0], err)
				}
				ready = false
				continue
			}
			ready = ready && refused == (sd == custosSide) && (sd != noopSide || noop.served.Load() > served)
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the API server does not apply the webhooks to the namespaces of their sides after a minute")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// webhookTotals are cumulative sums and counts of the API server's Agent
// CREATE calls to Custos's webhook and to the no-op one, and of the
// manager's handling of the Agent path.
type webhookTotals struct{ apiSum, apiCount, noopSum, noopCount, hSum, hCount float64 }

// sub returns the mean seconds per call between b and a: the API server's
// to Custos's webhook and to the no-op one, and the manager's handler's.
func (a webhookTotals) sub(b webhookTotals) (api, noop, handler float64) {
	mean := func(s, n float64) float64 {
		if n <= 0 {
			return 0
		}
		return s / n
	}
	return mean(a.apiSum-b.apiSum, a.apiCount-b.apiCount), mean(a.noopSum-b.noopSum, a.noopCount-b.noopCount), mean(a.hSum-b.hSum, a.hCount-b.hCount)
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
	t.apiSum = metricSum(string(api), apiMetric+"_sum{", `name="`+agentWebhook+`"`, `operation="CREATE"`)
	t.apiCount = metricSum(string(api), apiMetric+"_count{", `name="`+agentWebhook+`"`, `operation="CREATE"`)
	t.noopSum = metricSum(string(api), apiMetric+"_sum{", `name="`+noopWebhook+`"`, `operation="CREATE"`)
	t.noopCount = metricSum(string(api), apiMetric+"_count{", `name="`+noopWebhook+`"`, `operation="CREATE"`)
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
