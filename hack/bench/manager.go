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
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
)

// startManager runs bin/manager for a benchmark run: the sweeper out of the
// way, and the concurrency and client limits the run asks for.
func startManager(ctx context.Context, c config, cp *controlplane.ControlPlane, kubeconfig, dir string) (*controlplane.Manager, error) {
	args := []string{"--sweep-interval", "1h",
		"--concurrency", strconv.Itoa(c.concurrency),
		"--kube-api-qps", strconv.FormatFloat(c.qps, 'g', -1, 64),
		"--kube-api-burst", strconv.Itoa(c.burst)}
	if c.pprof != "" {
		say("manager profiles: http://%s/debug/pprof/", c.pprof)
		args = append(args, "--pprof-bind-address", c.pprof)
	}
	return cp.StartManager(ctx, c.manager, kubeconfig, filepath.Join(dir, "manager.log"), args...)
}

// metrics returns the manager's non-zero metrics that explain its figure:
// the requests it sent, by verb and code, and how often and how long each
// controller reconciled and its queue made work wait.
func managerMetrics(m *controlplane.Manager) string {
	body, err := get("http://" + m.MetricsAddr + "/metrics")
	if err != nil {
		return fmt.Sprintf("custos bench: manager metrics: %v\n", err)
	}
	var b strings.Builder
	b.WriteString("custos bench: manager metrics at the end of the run:\n")
	for line := range strings.Lines(body) {
		for _, p := range []string{"rest_client_requests_total{", "controller_runtime_reconcile_total{",
			"controller_runtime_reconcile_time_seconds_sum{", "workqueue_adds_total{", "workqueue_queue_duration_seconds_sum{"} {
			if strings.HasPrefix(line, p) && !strings.HasSuffix(line, " 0\n") {
				b.WriteString("  " + line)
			}
		}
	}
	return b.String()
}

// get returns the body of a 200 answer from url.
func get(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// startStandIn stands in, until ctx ends, for the deployment controller the
// local control plane does not run: it watches Custos's Deployments and
// rolls each out as soon as it appears and whenever its generation moves on,
// as the real one would, only at once.
func startStandIn(ctx context.Context, cs kubernetes.Interface) error {
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = custosv1alpha1.ManagedByLabel + "=" + custosv1alpha1.ManagedByValue
	}))
	informer := factory.Apps().V1().Deployments().Informer()
	rollOut := func(obj any) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok || d.Status.ObservedGeneration >= d.Generation {
			return
		}
		// Off the informer's goroutine, so that one slow write holds up no
		// other Deployment; the informer's copy may be behind (the manager
		// writes too), so each try reads it afresh.
		go func() {
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				d, err := cs.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
				if err != nil || d.Status.ObservedGeneration >= d.Generation {
					return err
				}
				rolledOut(d)
				_, err = cs.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
				return err
			})
			if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
				say("stand-in deployment controller: %s/%s: %v", d.Namespace, d.Name, err)
			}
		}()
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    rollOut,
		UpdateFunc: func(_, obj any) { rollOut(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	go func() { <-ctx.Done(); factory.Shutdown() }()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return fmt.Errorf("the stand-in deployment controller did not sync: %w", ctx.Err())
	}
	return nil
}

// rolledOut reports d's current template as fully rolled out and
// available, as controllers/agent_helpers_test.go does.
func rolledOut(d *appsv1.Deployment) {
	n := ptr.Deref(d.Spec.Replicas, 1)
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           n,
		UpdatedReplicas:    n,
		ReadyReplicas:      n,
		AvailableReplicas:  n,
	}
}
