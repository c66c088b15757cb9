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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/controlplane"
)

// The memory mode's goal: the manager's RSS with the unrelated objects in
// the cluster is at most memoryGoal times its RSS without them.
const memoryGoal = 1.05

// The memory mode's defaults, where -objects and -agents mean something of
// their own, and its layout: the Agents in memoryTenantNamespaces namespaces
// of the bench tenant, the unrelated objects spread over those and
// memoryOtherNamespaces namespaces Custos has nothing to do with (an
// unfiltered watch, cluster-wide or of the agents' namespaces, sees them
// either way).
const (
	memoryObjects          = 10000
	memoryAgents           = 20
	memoryTenantNamespaces = 2
	memoryOtherNamespaces  = 5
	// memoryObjectSize is each unrelated object's payload, in bytes.
	memoryObjectSize = 1024
	// memorySamples VmRSS samples, memorySampleEvery apart, make one figure.
	memorySamples     = 10
	memorySampleEvery = time.Second
)

// memoryFigure is one manager measured once.
type memoryFigure struct {
	label string
	// rss is the median VmRSS sample, min and max the others' range, hwm
	// the process's peak so far (VmHWM), all in bytes.
	rss, min, max, hwm int64
	// heapAlloc and heapInuse are the Go runtime's, right after the forced
	// GC; profile is that GC's heap profile.
	heapAlloc, heapInuse int64
	profile              string
}

// runMemory is `make bench-memory`: it measures what unrelated Secrets and
// ConfigMaps cost the manager's memory. The manager caches only Custos's own
// objects (controllers.CacheOptions and the name cache), so the goal is that
// -objects unrelated Secrets and as many ConfigMaps, about 1 KiB each, raise
// its RSS by at most 5%.
//
// In one run, on one control plane, with one DataBoundary and -agents
// (default 20) Agents kept Ready by the stand-in deployment controller:
//
//  1. a first manager onboards the Agents and is stopped, so that both
//     measured managers start on the same finished workload;
//  2. manager A starts, settles and is measured: without the objects;
//  3. the objects are created, everything settles, A is measured again:
//     the same process, with the objects;
//  4. A is stopped (the webhook port is the control plane's, so two
//     managers cannot run at once) and manager B starts, settles and is
//     measured: a fresh process with the objects, lived like A before them.
//
// A measurement is: -settle of waiting, a forced GC (the manager's pprof
// heap endpoint with gc=1, which also saves the heap profile into the run's
// directory), then memorySamples samples of VmRSS from /proc/<pid>/status,
// memorySampleEvery apart, of which the median is the figure. The ratios
// are A with ÷ A without and B ÷ A without.
func runMemory(ctx context.Context, c config) (retErr error) {
	objects, agents, err := memoryCounts(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	env, err := startBenchEnv(ctx, c, "custos-bench-memory-")
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, env.stop()) }()
	cs, err := kubernetes.NewForConfig(env.admin)
	if err != nil {
		return err
	}

	// 1. The workload, onboarded by a manager that is then stopped.
	warm, err := startMemoryManager(ctx, c, env, "warm-up")
	if err != nil {
		return err
	}
	defer warm.Stop()
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	if err := startStandIn(watchCtx, cs); err != nil {
		return err
	}
	tenantNS, err := createMemoryWorkload(ctx, watchCtx, env, warm, agents)
	if err != nil {
		return err
	}
	warm.Stop()

	// 2. Manager A without the objects.
	a, err := startMemoryManager(ctx, c, env, "A")
	if err != nil {
		return err
	}
	defer a.Stop()
	before, err := measureManager(ctx, c, env.dir, a, "A, before the objects")
	if err != nil {
		return err
	}

	// 3. The objects, then A again.
	namespaces := slices.Clone(tenantNS)
	for i := range memoryOtherNamespaces {
		ns := namespace("bench-unrelated", i)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		namespaces = append(namespaces, ns)
	}
	if err := createUnrelated(ctx, cs, a, namespaces, objects); err != nil {
		return err
	}
	after, err := measureManager(ctx, c, env.dir, a, "A, after the objects (same process)")
	if err != nil {
		return err
	}
	a.Stop()

	// 4. A fresh manager B with the objects.
	b, err := startMemoryManager(ctx, c, env, "B")
	if err != nil {
		return err
	}
	defer b.Stop()
	fresh, err := measureManager(ctx, c, env.dir, b, "B, started after the objects")
	if err != nil {
		return err
	}
	b.Stop()

	printMemory(c, objects, agents, len(namespaces), before, after, fresh)
	say("logs and heap profiles in %s; what grew: go tool pprof -sample_index=inuse_space -top -base %s %s",
		env.dir, before.profile, after.profile)
	return nil
}

// memoryCounts reads -objects and -agents for the memory mode, where they
// default to memoryObjects and memoryAgents.
func memoryCounts(c config) (objects, agents int, err error) {
	objects, agents = memoryObjects, memoryAgents
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["objects"] {
		if objects, err = strconv.Atoi(c.objects); err != nil || objects < 0 {
			return 0, 0, fmt.Errorf("-objects: the memory mode takes a count of Secrets (and as many ConfigMaps), not %q", c.objects)
		}
	}
	if set["agents"] {
		agents = c.agents
	}
	return objects, agents, nil
}

// startMemoryManager starts the manager as the other modes do, its log
// named after label, with Go's profiles on a free loopback port of its own.
func startMemoryManager(ctx context.Context, c config, env *benchEnv, label string) (*memoryManager, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.pprof = l.Addr().String()
	l.Close()
	say("manager %s: starting", label)
	mgr, err := startManager(ctx, c, env.cp, env.kubeconfig, env.dir)
	if err != nil {
		return nil, fmt.Errorf("manager %s: %w", label, err)
	}
	// startManager names every log manager.log; keep each manager's.
	logPath := filepath.Join(env.dir, "manager-"+label+".log")
	if err := os.Rename(mgr.LogPath, logPath); err != nil {
		mgr.Stop()
		return nil, err
	}
	mgr.LogPath = logPath
	return &memoryManager{Manager: mgr, pprof: c.pprof}, nil
}

// memoryManager is a manager of the memory mode, serving its Go profiles
// on pprof.
type memoryManager struct {
	*controlplane.Manager
	pprof string
}

// createMemoryWorkload creates the DataBoundary, its namespaces and the
// Agents, and waits until all are Ready. It returns the namespaces.
func createMemoryWorkload(ctx, watchCtx context.Context, env *benchEnv, mgr *memoryManager, agents int) ([]string, error) {
	cl := env.client
	if err := cl.Create(ctx, &custosv1alpha1.DataBoundary{
		ObjectMeta: metav1.ObjectMeta{Name: tenant},
		Spec: custosv1alpha1.DataBoundarySpec{
			Tenant:            tenant,
			NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{custosv1alpha1.TenantLabel: tenant}},
			Regions:           []string{region},
			Images:            benchImages.Policy(),
		},
	}); err != nil {
		return nil, err
	}
	if err := createNamespaces(ctx, cl, "bench-memory", memoryTenantNamespaces, map[string]string{custosv1alpha1.TenantLabel: tenant}); err != nil {
		return nil, err
	}
	var ns []string
	for i := range memoryTenantNamespaces {
		ns = append(ns, namespace("bench-memory", i))
	}
	cached, err := cache.New(env.admin, cache.Options{Scheme: cl.Scheme(),
		DefaultLabelSelector: labels.SelectorFromSet(labels.Set{custosv1alpha1.TenantLabel: tenant})})
	if err != nil {
		return nil, err
	}
	if _, err := cached.GetInformer(watchCtx, &custosv1alpha1.Agent{}); err != nil {
		return nil, err
	}
	go func() { _ = cached.Start(watchCtx) }()
	if !cached.WaitForCacheSync(watchCtx) {
		return nil, fmt.Errorf("the Agent cache did not sync: %w", ctx.Err())
	}
	start := time.Now()
	say("workload: a DataBoundary and %d Agents in %d namespaces", agents, len(ns))
	if err := parallel(ctx, 4, agents, func(ctx context.Context, i int) error {
		return cl.Create(ctx, newAgent(ns[i%len(ns)], agentName(i)))
	}); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, cached, agents, mgr.Manager, start); err != nil {
		return nil, err
	}
	say("workload: all %d Agents Ready after %s", agents, time.Since(start).Round(time.Millisecond))
	return ns, nil
}

// createUnrelated creates n Secrets and n ConfigMaps, each with
// memoryObjectSize bytes of random data and no label of Custos's, spread
// over namespaces, 16 at a time.
func createUnrelated(ctx context.Context, cs kubernetes.Interface, mgr *memoryManager, namespaces []string, n int) error {
	say("creating %d Secrets and %d ConfigMaps of %d bytes each in %d namespaces", n, n, memoryObjectSize, len(namespaces))
	start := time.Now()
	var done atomic.Int64
	progress, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-progress.Done():
				return
			case <-tick.C:
				say("  %d/%d created after %s", done.Load(), 2*n, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := parallel(ctx, 16, 2*n, func(ctx context.Context, i int) error {
		payload := make([]byte, memoryObjectSize)
		_, _ = rand.Read(payload)
		meta := metav1.ObjectMeta{
			Name:      fmt.Sprintf("unrelated-%05d", i/2),
			Namespace: namespaces[(i/2)%len(namespaces)],
			Labels:    map[string]string{"app.kubernetes.io/name": "unrelated", "app.kubernetes.io/managed-by": "someone-else"},
		}
		var err error
		if i%2 == 0 {
			_, err = cs.CoreV1().Secrets(meta.Namespace).Create(ctx, &corev1.Secret{ObjectMeta: meta,
				Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"data": payload}}, metav1.CreateOptions{})
		} else {
			_, err = cs.CoreV1().ConfigMaps(meta.Namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta,
				Data: map[string]string{"data": hex.EncodeToString(payload)[:memoryObjectSize]}}, metav1.CreateOptions{})
		}
		if err == nil {
			done.Add(1)
		}
		return err
	})
	if err != nil {
		return err
	}
	select {
	case <-mgr.Exited():
		return fmt.Errorf("the manager exited: %v; see %s", mgr.Err(), mgr.LogPath)
	default:
	}
	say("created %d objects in %s", 2*n, time.Since(start).Round(time.Millisecond))
	return nil
}

// measureManager waits -settle, forces a GC in the manager through its
// pprof heap endpoint (saving the profile), and samples its VmRSS.
func measureManager(ctx context.Context, c config, dir string, mgr *memoryManager, label string) (memoryFigure, error) {
	f := memoryFigure{label: label}
	say("manager %s: settling for %s", label, c.settle)
	select {
	case <-ctx.Done():
		return f, ctx.Err()
	case <-mgr.Exited():
		return f, fmt.Errorf("the manager exited: %v; see %s", mgr.Err(), mgr.LogPath)
	case <-time.After(c.settle):
	}
	addr := mgr.pprof
	profile, err := get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return f, fmt.Errorf("the manager's heap profile: %w", err)
	}
	f.profile = filepath.Join(dir, "heap-"+strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "").Replace(label)+".pb.gz")
	if err := os.WriteFile(f.profile, []byte(profile), 0o644); err != nil {
		return f, err
	}
	// The runtime's own figures, right after that GC.
	text, err := get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		return f, fmt.Errorf("the manager's heap profile: %w", err)
	}
	f.heapAlloc, f.heapInuse = memStat(text, "HeapAlloc"), memStat(text, "HeapInuse")

	var samples []int64
	for i := range memorySamples {
		if i > 0 {
			select {
			case <-ctx.Done():
				return f, ctx.Err()
			case <-time.After(memorySampleEvery):
			}
		}
		rss, err := procStatus(mgr.PID(), "VmRSS")
		if err != nil {
			return f, err
		}
		samples = append(samples, rss)
	}
	slices.Sort(samples)
	f.rss, f.min, f.max = samples[len(samples)/2], samples[0], samples[len(samples)-1]
	if f.hwm, err = procStatus(mgr.PID(), "VmHWM"); err != nil {
		return f, err
	}
	say("manager %s: RSS %.1f MiB (%.1f–%.1f), Go heap in use %.1f MiB", label, mib(f.rss), mib(f.min), mib(f.max), mib(f.heapInuse))
	return f, nil
}

// memStat reads "# name = value" from the runtime.MemStats a debug=1 heap
// profile ends with; -1 when it is not there.
func memStat(text, name string) int64 {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "# "+name+" = "); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// procStatus reads a "kB" field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == field+":" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func printMemory(c config, objects, agents, namespaces int, before, after, fresh memoryFigure) {
	fmt.Printf("\nmanager memory with %d unrelated Secrets and %d ConfigMaps (%d bytes of data each, %d namespaces)\n",
		objects, objects, memoryObjectSize, namespaces)
	fmt.Printf("against a DataBoundary and %d Agents; each figure: %s settle, forced GC, median of %d VmRSS samples %s apart\n",
		agents, c.settle, memorySamples, memorySampleEvery)
	fmt.Printf("  %-46s %9s %17s %9s %9s\n", "", "RSS MiB", "(min-max)", "peak MiB", "heap MiB")
	for _, f := range []memoryFigure{before, after, fresh} {
		fmt.Printf("  %-46s %9.1f %17s %9.1f %9.1f\n", "manager "+f.label, mib(f.rss),
			fmt.Sprintf("(%.1f-%.1f)", mib(f.min), mib(f.max)), mib(f.hwm), mib(f.heapInuse))
	}
	for _, r := range []struct {
		label         string
		with, without memoryFigure
	}{
		{"RSS ratio A after ÷ A before", after, before},
		{"RSS ratio B ÷ A before", fresh, before},
	} {
		x := float64(r.with.rss) / float64(r.without.rss)
		verdict := "goal met"
		if x > memoryGoal {
			verdict = "GOAL MISSED"
		}
		fmt.Printf("  %-46s %8.3fx  goal <= %.2fx: %s (Go heap in use %.3fx)\n", r.label, x, memoryGoal, verdict,
			float64(r.with.heapInuse)/float64(r.without.heapInuse))
	}
	fmt.Println()
}
