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
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/workload"
	"github.com/custos-dev/custos/test/controlplane"
)

// The pod side of the admission mode: the pod guard's p99 is at most
// podRatioGoal times a no-op webhook pair's, measured in the same run.
const (
	podRatioGoal = 1.1

	// The pod guard's webhooks (config/webhook/manifests.yaml), and the
	// no-op twins the run adds for the no-op side.
	podMutateWebhook       = "pods.mutate.custos.dev"
	podValidateWebhook     = "pods.validate.custos.dev"
	noopPodMutateWebhook   = "pods.mutate.noop.bench.custos.dev"
	noopPodValidateWebhook = "pods.validate.noop.bench.custos.dev"

	// podAgent names the Agent whose pods are created on each side.
	podAgent = "worker"
	// replicaSetController is who creates an agent's pods in a cluster,
	// and the one the custos-agent-identity policy lets create them.
	replicaSetController = "system:serviceaccount:kube-system:replicaset-controller"
)

// podBench is the pod side's world: on each side a tenant namespace with
// one Active agent whose image Custos verified, and the pod its
// Deployment's ReplicaSet would create, made by a client that authenticates
// as the ReplicaSet controller.
type podBench struct {
	ns   [sides]string
	pods [sides]*corev1.Pod
	rsc  client.Client
}

// setUpPods makes the pod side's namespaces and Agents, waits until each
// Agent is Active with its image verified, takes its pod from the
// Deployment Custos made for it, and waits until the API server applies
// the pod guard and its no-op twins where they should and only there.
func setUpPods(ctx context.Context, c config, env *benchEnv, noop *noopWebhookServer) (*podBench, error) {
	cl := env.client
	b := &podBench{}
	for sd := range sides {
		b.ns[sd] = "bench-pods-" + [sides]string{"custos", sideNoop, sideNone}[sd]
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.ns[sd], Labels: sideLabels(sd)}}); err != nil {
			return nil, err
		}
		// The manager's cache may not have seen the namespace yet; Custos's
		// Agent webhook then asks the API server.
		if err := cl.Create(ctx, newAgent(b.ns[sd], podAgent)); err != nil {
			return nil, err
		}
	}
	// A client certificate for the ReplicaSet controller's ServiceAccount:
	// the bootstrap RBAC grants it pod creates, as in any cluster.
	cfg, err := env.cp.AddUser(replicaSetController, "system:serviceaccounts", "system:serviceaccounts:kube-system")
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = float32(c.clientQPS), c.clientBurst
	if b.rsc, err = client.New(cfg, client.Options{Scheme: cl.Scheme()}); err != nil {
		return nil, err
	}
	for sd := range sides {
		if b.pods[sd], err = activeAgentPod(ctx, cl, b.ns[sd]); err != nil {
			return nil, err
		}
	}
	say("pods: agent %s Active in %s; its pods carry %s", podAgent, strings.Join(b.ns[:], ", "), b.pods[custosSide].Spec.Containers[0].Image)
	return b, b.waitWebhooks(ctx, noop)
}

// activeAgentPod waits until Custos has made the Deployment of Agent
// podAgent in ns, rolls it out (envtest runs no deployment controller),
// waits until the Agent is Ready and Active with its verified digest in the
// Deployment, and returns the pod the ReplicaSet controller would create
// from the Deployment's template.
func activeAgentPod(ctx context.Context, cl client.Client, ns string) (*corev1.Pod, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		agent := &custosv1alpha1.Agent{}
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: podAgent}, agent); err != nil {
			return nil, err
		}
		d := &appsv1.Deployment{}
		err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: identity.ChildPrefix + podAgent}, d)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		case d.Status.ObservedGeneration < d.Generation:
			rolledOut(d)
			if err := cl.Status().Update(ctx, d); err != nil && !apierrors.IsConflict(err) {
				return nil, err
			}
		case apimeta.IsStatusConditionTrue(agent.Status.Conditions, custosv1alpha1.ReadyCondition) &&
			agent.Status.Lifecycle != nil && agent.Status.Lifecycle.Phase == custosv1alpha1.AgentPhaseActive &&
			workload.VerifiedImage(agent) != "" && d.Spec.Template.Spec.Containers[0].Image == workload.VerifiedImage(agent):
			return replicaSetPod(d)
		}
		if time.Now().After(deadline) {
			var conds []string
			for _, c := range agent.Status.Conditions {
				conds = append(conds, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
			}
			return nil, fmt.Errorf("agent %s/%s is not Ready and Active with a verified image after 2 minutes: %s", ns, podAgent, strings.Join(conds, "; "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// replicaSetPod is the pod the ReplicaSet controller creates for d, as
// Kubernetes' controller.GetPodFromTemplate makes it: the template's
// labels (with the pod-template-hash the deployment controller adds),
// annotations and spec, a name generated from the ReplicaSet's, and the
// ReplicaSet as its controller. The ReplicaSet itself is not created:
// nothing on the admission path reads it, and no garbage collector runs
// here to act on the reference.
func replicaSetPod(d *appsv1.Deployment) (*corev1.Pod, error) {
	tmpl := d.Spec.Template
	data, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	h := fnv.New32a()
	_, _ = h.Write(data)
	hash := rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
	rs := d.Name + "-" + hash
	labels := maps.Clone(tmpl.Labels)
	labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: rs + "-",
			Namespace:    d.Namespace,
			Labels:       labels,
			Annotations:  maps.Clone(tmpl.Annotations),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, UID: uuid.NewUUID(),
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}, nil
}

// waitWebhooks waits until the API server applies the pod guard and its
// no-op twins where they should and only there: a dry-run create of the
// agent's pod with its image by tag, which only the guard refuses, is
// refused on Custos's side and admitted on the others, one on the no-op
// side reaches both no-op webhooks, and the agent's own pod is admitted on
// every side.
func (b *podBench) waitWebhooks(ctx context.Context, noop *noopWebhookServer) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ready := true
		var last error
		for sd := range sides {
			bad := b.pods[sd].DeepCopy()
			bad.Spec.Containers[0].Image = benchImages.Image
			served, mutated := noop.served.Load(), noop.mutated.Load()
			err := b.rsc.Create(ctx, bad, client.DryRunAll)
			refused := err != nil && strings.Contains(err.Error(), podValidateWebhook)
			if err != nil && !refused {
				ready, last = false, fmt.Errorf("probing the webhooks in %s: %w", b.ns[sd], err)
				continue
			}
			reached := noop.mutated.Load() > mutated && noop.served.Load()-noop.mutated.Load() > served-mutated
			ready = ready && refused == (sd == custosSide) && (sd != noopSide || reached)
			if err := b.rsc.Create(ctx, b.pods[sd].DeepCopy(), client.DryRunAll); err != nil {
				ready, last = false, fmt.Errorf("the agent's own pod in %s: %w", b.ns[sd], err)
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			if last != nil {
				return last
			}
			return errors.New("the API server does not apply the pod webhooks to the namespaces of their sides after a minute")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// timePodCreates times creates of the agents' pods, as the ReplicaSet
// controller makes them, on each side at each level, deleting them after
// each level, and returns what prints the figures. cl is the bench's admin
// client, which deletes.
func (b *podBench) timePodCreates(ctx context.Context, c config, levels []level, cl client.Client, cs kubernetes.Interface, mgr *controlplane.Manager) (func(), error) {
	type result struct {
		level
		lat [sides]latencies
	}
	var results []result
	pod := func(sd side, _ int) client.Object { return b.pods[sd].DeepCopy() }
	for _, lv := range levels {
		// Warm-up: connections, caches, the API server's webhook clients.
		if _, err := timeCreates(ctx, b.rsc, lv.clients, min(lv.creates/10, 100), pod); err != nil {
			return nil, fmt.Errorf("pods, %d clients, warm-up: %w", lv.clients, err)
		}
		before, err := readWebhookMetrics(ctx, cs, mgr)
		if err != nil {
			return nil, err
		}
		say("pods, %d clients: %d creates on each side (Custos's pod guard, a no-op webhook pair, none), taking turns", lv.clients, lv.creates)
		start := time.Now()
		lat, err := timeCreates(ctx, b.rsc, lv.clients, lv.creates, pod)
		if err != nil {
			return nil, fmt.Errorf("pods, %d clients: %w", lv.clients, err)
		}
		wall := time.Since(start)
		after, err := readWebhookMetrics(ctx, cs, mgr)
		if err != nil {
			return nil, err
		}
		r := result{level: lv}
		for sd := range sides {
			r.lat[sd] = latencies{sorted: lat[sd], wall: wall}
		}
		// Per pod: the mutating and the validating call, one each.
		const apiMetric = "apiserver_admission_webhook_admission_duration_seconds"
		r.lat[custosSide].apiserverWebhook = meanDelta(before.api, after.api, apiMetric, `name="`+podMutateWebhook+`"`, `operation="CREATE"`) +
			meanDelta(before.api, after.api, apiMetric, `name="`+podValidateWebhook+`"`, `operation="CREATE"`)
		r.lat[noopSide].apiserverWebhook = meanDelta(before.api, after.api, apiMetric, `name="`+noopPodMutateWebhook+`"`, `operation="CREATE"`) +
			meanDelta(before.api, after.api, apiMetric, `name="`+noopPodValidateWebhook+`"`, `operation="CREATE"`)
		const hMetric = "controller_runtime_webhook_latency_seconds"
		r.lat[custosSide].handler = meanDelta(before.manager, after.manager, hMetric, `webhook="/mutate-v1-pod"`) +
			meanDelta(before.manager, after.manager, hMetric, `webhook="/validate-v1-pod"`)
		// A webhook reinvoked, or a create retried, would show here.
		calls := func(webhook string) float64 {
			l := []string{`name="` + webhook + `"`, `operation="CREATE"`}
			return (metricSum(after.api, apiMetric+"_count{", l...) - metricSum(before.api, apiMetric+"_count{", l...)) / float64(lv.creates)
		}
		say("pods, %d clients: %s, %.0f creates/s, p99 %s with Custos's pod guard, %s with a no-op webhook pair, %s without; calls per pod: guard %.2f mutating, %.2f validating; no-op %.2f, %.2f", lv.clients,
			wall.Round(time.Millisecond), float64(int(sides)*lv.creates)/wall.Seconds(),
			r.lat[custosSide].pct(0.99).Round(10*time.Microsecond), r.lat[noopSide].pct(0.99).Round(10*time.Microsecond),
			r.lat[noneSide].pct(0.99).Round(10*time.Microsecond),
			calls(podMutateWebhook), calls(podValidateWebhook), calls(noopPodMutateWebhook), calls(noopPodValidateWebhook))
		results = append(results, r)
		// Unscheduled pods go at once (no kubelet holds them): the next
		// level meets as many pods as this one did.
		for _, ns := range b.ns {
			if err := cl.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns)); err != nil {
				return nil, fmt.Errorf("deleting the pods of %s: %w", ns, err)
			}
		}
	}

	return func() {
		fmt.Printf("\nPod create latency through the API server (ms): pods of an Active agent, its Deployment's template with its verified digest, created as the ReplicaSet controller; the three sides taking turns; client qps %g burst %d\n",
			c.clientQPS, c.clientBurst)
		fmt.Printf("On every side the API server also runs Custos's ValidatingAdmissionPolicies on pods (config/crd/policies), in process; the goal compares the webhooks alone.\n")
		fmt.Printf("  %7s %6s | %-23s | %-23s | %-23s | %-21s | %-12s | %s\n", "", "",
			"without webhooks", "with a no-op pair", "with Custos's guard", "p99 ratio", "goal", "mean ms apiserver→webhooks per pod")
		fmt.Printf("  %7s %6s | %7s %7s %7s | %7s %7s %7s | %7s %7s %7s | %10s %10s | %-12s | %s\n",
			"clients", "N", "p50", "p95", "p99", "p50", "p95", "p99", "p50", "p95", "p99", "no-op/none", "guard/noop", fmt.Sprintf("<= %.1fx", podRatioGoal), "no-op / Custos (its handlers)")
		for _, r := range results {
			none, noop, custos := r.lat[noneSide], r.lat[noopSide], r.lat[custosSide]
			ratio := func(l, base latencies) float64 { return l.pct(0.99).Seconds() / base.pct(0.99).Seconds() }
			fmt.Printf("  %7d %6d | %7s %7s %7s | %7s %7s %7s | %7s %7s %7s | %9.2fx %9.2fx | %-12s | %.2f / %.2f (%.2f)\n",
				r.clients, min(len(none.sorted), len(noop.sorted), len(custos.sorted)),
				ms(none.pct(0.5)), ms(none.pct(0.95)), ms(none.pct(0.99)),
				ms(noop.pct(0.5)), ms(noop.pct(0.95)), ms(noop.pct(0.99)),
				ms(custos.pct(0.5)), ms(custos.pct(0.95)), ms(custos.pct(0.99)),
				ratio(noop, none), ratio(custos, noop), verdict(ratio(custos, noop) <= podRatioGoal),
				noop.apiserverWebhook*1e3, custos.apiserverWebhook*1e3, custos.handler*1e3)
		}
		fmt.Println()
	}, nil
}

// webhookBodies are the API server's and the manager's metrics, as
// Prometheus text.
type webhookBodies struct{ api, manager string }

// readWebhookMetrics reads the API server's and the manager's metrics.
func readWebhookMetrics(ctx context.Context, cs kubernetes.Interface, mgr *controlplane.Manager) (webhookBodies, error) {
	api, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return webhookBodies{}, fmt.Errorf("the API server's metrics: %w", err)
	}
	m, err := get("http://" + mgr.MetricsAddr + "/metrics")
	if err != nil {
		return webhookBodies{}, fmt.Errorf("the manager's metrics: %w", err)
	}
	return webhookBodies{api: string(api), manager: m}, nil
}

// meanDelta is the mean of histogram metric's observations between before
// and after, over its series carrying every one of labels; zero when there
// were none.
func meanDelta(before, after, metric string, labels ...string) float64 {
	n := metricSum(after, metric+"_count{", labels...) - metricSum(before, metric+"_count{", labels...)
	if n <= 0 {
		return 0
	}
	return (metricSum(after, metric+"_sum{", labels...) - metricSum(before, metric+"_sum{", labels...)) / n
}
