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

// Command bench is `make bench`: on one local control plane it times Custos
// (bin/manager) bringing N Agents to Ready against a baseline of plain
// client-go creating the same objects with the same parallelism and client
// rate limits, to see what governance costs over "just apply the YAML". The
// goal is at most 1.5 times the baseline; missing it is a result, not an
// error.
//
// With -mode admission (`make bench-admission`) it instead times creates
// through the API server of agent pods (with Custos's pod guard) and of
// Agents (with Custos's Agent webhook), each against webhooks that do
// nothing and against no webhook, at several levels of concurrency; see
// runAdmission. With
// -mode audit (`make bench-audit`) it times the audit trail's segment store
// and its verifier, with no control plane; see runAudit. With -mode memory
// (`make bench-memory`) it measures the manager's RSS with 10,000 unrelated
// Secrets and as many ConfigMaps in the cluster against its RSS without
// them; see runMemory.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/netpol"
	"github.com/custos-dev/custos/internal/workload"
	"github.com/custos-dev/custos/test/controlplane"
	"github.com/custos-dev/custos/test/imagetest"
)

const (
	// tenant labels the Custos run's namespaces and Agents and names their
	// DataBoundary.
	tenant = "bench"
	region = "eu-west-1"
	goal   = 1.5
)

type config struct {
	root, manager                   string
	agents, namespaces, concurrency int
	qps                             float64
	burst                           int
	timeout                         time.Duration
	pprof                           string
	cpuProfile                      string

	// The admission mode's (-mode admission).
	mode, levels, objects string
	clientQPS             float64
	clientBurst           int

	// The memory mode's (-mode memory).
	settle time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.root, "repo-root", ".", "Root of the Custos repository (CRDs and admission policies).")
	flag.StringVar(&c.manager, "manager", "bin/manager", "The manager binary (make build).")
	flag.IntVar(&c.agents, "agents", 1000, "How many agents each run creates.")
	flag.IntVar(&c.namespaces, "namespaces", 10, "How many namespaces each run spreads its agents over.")
	flag.IntVar(&c.concurrency, "concurrency", 4, "The manager's --concurrency, and the number of baseline workers.")
	flag.Float64Var(&c.qps, "qps", 50, "Client requests per second, of the manager (--kube-api-qps) and of the baseline.")
	flag.IntVar(&c.burst, "burst", 100, "Client burst, of the manager (--kube-api-burst) and of the baseline.")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "Give up when the whole bench has not finished within this time.")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "Write a CPU profile of the bench process itself to this file: where the time of an in-process side (sts mode's custos-sts and floor) goes (go tool pprof FILE).")
	flag.StringVar(&c.pprof, "pprof", "", "Serve the manager's Go profiles on this loopback address (e.g. 127.0.0.1:8082), to see where a figure's time goes: go tool pprof http://ADDR/debug/pprof/profile?seconds=20.")
	flag.StringVar(&c.mode, "mode", "onboarding", "onboarding: time Custos onboarding agents against a plain apply loop; admission: time agent pod and Agent creates with and without Custos's admission webhooks; audit: time the audit segment store against a plain file, and verification (its flags after --); lease: time kubernetesToken lease issuance against a raw TokenRequest; memory: the manager's RSS with -objects unrelated Secrets and as many ConfigMaps in the cluster against without them; sts: token exchange latency of custos-sts against a floor, at -levels; gateway: MCP tool calls through custos-gateway against direct (its flags after --).")
	flag.StringVar(&c.levels, "levels", "1:500,10:1000,50:2000", "Admission and sts modes: concurrent clients:requests for each level; each level makes that many creates of each object on each side (Custos's webhooks, no-op webhooks, none), taking turns.")
	flag.StringVar(&c.objects, "objects", "pods,agents", "Admission mode: what to create, in this order: pods (an agent's pods, through Custos's pod guard), agents (Agents, through Custos's Agent webhook). Memory mode: how many unrelated Secrets, and as many ConfigMaps, to create (10000 when not given; -agents is then 20 when not given).")
	flag.Float64Var(&c.clientQPS, "client-qps", 5000, "Admission mode: requests per second of the timed clients.")
	flag.IntVar(&c.clientBurst, "client-burst", 5000, "Admission mode: burst of the timed clients.")
	flag.DurationVar(&c.settle, "settle", 30*time.Second, "Memory mode: how long each manager settles before it is measured.")
	flag.Parse()
	if c.agents < 1 || c.namespaces < 1 || c.concurrency < 1 {
		fmt.Fprintln(os.Stderr, "custos bench: -agents, -namespaces and -concurrency must be at least 1")
		os.Exit(2)
	}

	// controller-runtime's cache logs through this; only its errors matter.
	ctrllog.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))

	// The first SIGINT or SIGTERM cancels ctx; later ones are swallowed
	// until run has stopped everything it started.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "custos bench: -cpuprofile: %v\n", err)
			os.Exit(2)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	var err error
	switch c.mode {
	case "onboarding":
		err = run(ctx, c)
	case "admission":
		err = runAdmission(ctx, c)
	case "audit":
		err = runAudit(ctx, flag.Args())
	case "lease":
		err = runLease(ctx, c)
	case "memory":
		err = runMemory(ctx, c)
	case "sts":
		err = runSTS(ctx, c)
	case "gateway":
		err = runGateway(ctx, flag.Args())
	default:
		stop()
		fmt.Fprintf(os.Stderr, "custos bench: -mode %q is none of onboarding, admission, audit, lease, memory, sts and gateway\n", c.mode)
		os.Exit(2)
	}
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted; stopped everything it started")
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "custos bench: %v\n", err)
		os.Exit(1)
	}
}

// benchEnv is a local control plane with Custos's webhooks, and the bench's
// own clients.
type benchEnv struct {
	cp         *controlplane.ControlPlane
	dir        string // kept after the run: the logs explain a surprising figure
	kubeconfig string
	admin      *rest.Config
	client     client.Client
	cpLog      *os.File
	images     *imagetest.Trust
}

// startBenchEnv starts the control plane with Custos's admission webhooks,
// as make dev runs it, logging into a new directory named after prefix.
// Until the manager serves the webhooks, the API server refuses Agents and
// tenant-labelled namespaces.
func startBenchEnv(ctx context.Context, c config, prefix string) (*benchEnv, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	cpLog, err := os.Create(filepath.Join(dir, "controlplane.log"))
	if err != nil {
		return nil, err
	}
	say("starting etcd and kube-apiserver; logs in %s", dir)
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: c.root, Output: cpLog, Webhooks: true})
	if err != nil {
		cpLog.Close()
		return nil, err
	}
	env := &benchEnv{cp: cp, dir: dir, cpLog: cpLog, kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := os.WriteFile(env.kubeconfig, cp.Kubeconfig, 0o600); err != nil {
		return nil, errors.Join(err, env.stop())
	}
	// The bench's own clients (namespaces, Agents, the stand-in deployment
	// controller, polling) are not rate limited, so that only the measured
	// clients' limits shape the figures.
	env.admin = rest.CopyConfig(cp.Config)
	env.admin.QPS = -1
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	if env.client, err = client.New(env.admin, client.Options{Scheme: scheme}); err != nil {
		return nil, errors.Join(err, env.stop())
	}
	if err := env.startImages(ctx); err != nil {
		return nil, errors.Join(err, env.stop())
	}
	return env, nil
}

// benchImages serves the agents' image on loopback, signed with a key made
// for the run that the bench's DataBoundaries trust, as make dev does:
// Custos verifies every agent's image, and the bench measures that too.
var benchImages *imagetest.Trust

func (e *benchEnv) startImages(ctx context.Context) error {
	var err error
	if benchImages, err = imagetest.NewTrust("agents/bench:1.0.0", "custos-system", "bench-image-signers"); err != nil {
		return err
	}
	e.images = benchImages
	return benchImages.Apply(ctx, e.client)
}

// stop stops the control plane and removes the kubeconfig, which points at
// a server that is gone.
func (e *benchEnv) stop() error {
	say("stopping the control plane")
	if e.images != nil {
		e.images.Close()
	}
	err := e.cp.Stop()
	_ = os.Remove(e.kubeconfig)
	e.cpLog.Close()
	return err
}

func run(ctx context.Context, c config) (retErr error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	env, err := startBenchEnv(ctx, c, "custos-bench-")
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, env.stop()) }()
	cp, dir, kubeconfig, admin, cl := env.cp, env.dir, env.kubeconfig, env.admin, env.client
	measured := rest.CopyConfig(cp.Config)
	measured.QPS, measured.Burst = float32(c.qps), c.burst

	say("baseline: %d agents' objects by a plain apply loop, %d workers", c.agents, c.concurrency)
	base, err := runBaseline(ctx, c, cl, measured)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	say("baseline: done after %s", base.Round(time.Millisecond))
	say("custos: %d Agents, --concurrency %d", c.agents, c.concurrency)
	custos, hwm, err := runCustos(ctx, c, admin, cl, kubeconfig, dir, cp)
	if err != nil {
		return fmt.Errorf("custos: %w", err)
	}

	ratio := custos.Seconds() / base.Seconds()
	verdict := "goal met"
	if ratio > goal {
		verdict = "GOAL MISSED"
	}
	rate := func(d time.Duration) float64 { return float64(c.agents) / d.Seconds() }
	fmt.Printf("\n%d agents in %d namespaces, concurrency %d, qps %g, burst %d\n", c.agents, c.namespaces, c.concurrency, c.qps, c.burst)
	fmt.Printf("  %-36s %9s %9s\n", "", "seconds", "agents/s")
	fmt.Printf("  %-36s %9.2f %9.1f\n", "baseline (plain apply loop + rollout)", base.Seconds(), rate(base))
	fmt.Printf("  %-36s %9.2f %9.1f\n", "custos (first create to all Ready)", custos.Seconds(), rate(custos))
	fmt.Printf("  %-36s %8.2fx  goal <= %.2fx: %s\n", "ratio custos/baseline", ratio, goal, verdict)
	fmt.Printf("  %-36s %9.1f MiB\n\n", "manager peak RSS (VmHWM)", float64(hwm)/(1<<20))
	return nil
}

// runBaseline does, per agent, the least any operator must do for the same
// result: server-side apply the ServiceAccount, the credential's lease (a
// Secret and a token bound to it), the NetworkPolicy and the Deployment the
// reconciler would (rendered by the same packages with the same
// parameters), then roll the Deployment out. Worker w of c.concurrency takes
// every c.concurrency-th agent from w. The client is controller-runtime's,
// as the manager's is: it rate limits each kind apart (a client-go
// Clientset shares one limiter among all), so -qps means the same to both.
func runBaseline(ctx context.Context, c config, admin client.Client, cfg *rest.Config) (time.Duration, error) {
	if err := createNamespaces(ctx, admin, "bench-baseline", c.namespaces, nil); err != nil {
		return 0, err
	}
	cl, err := client.New(cfg, client.Options{Scheme: admin.Scheme()})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = parallel(ctx, c.concurrency, c.agents, func(ctx context.Context, i int) error {
		return baselineAgent(ctx, cl, namespace("bench-baseline", i%c.namespaces), agentName(i))
	})
	return time.Since(start), err
}

func baselineAgent(ctx context.Context, cl client.Client, ns, name string) error {
	// Custos's child labels, but not its managed-by value: the manager's
	// cache, sweeper and the stand-in must not see the baseline's objects.
	labels := map[string]string{
		custosv1alpha1.AgentLabel:     name,
		custosv1alpha1.AgentUIDLabel:  "baseline-" + name,
		custosv1alpha1.TenantLabel:    "baseline",
		custosv1alpha1.ManagedByLabel: "baseline",
	}
	selector := map[string]string{custosv1alpha1.AgentLabel: name, custosv1alpha1.ManagedByLabel: "baseline"}
	opts := []client.ApplyOption{client.FieldOwner("baseline"), client.ForceOwnership}
	agent := newAgent(ns, name)
	sa := identity.ServiceAccountName(name)

	if err := cl.Apply(ctx, identity.ServiceAccount(sa, ns, nil).WithLabels(labels), opts...); err != nil {
		return err
	}
	// The credential's lease, as Custos issues it: a Secret, a token of
	// the ServiceAccount bound to it, the token in the Secret.
	cred := agent.Spec.Credentials[0]
	secret := corev1ac.Secret("agent-"+name+"."+cred.Name, ns).WithType(custosv1alpha1.LeaseSecretType).WithLabels(labels)
	if err := cl.Apply(ctx, secret, opts...); err != nil {
		return err
	}
	token := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{cred.KubernetesToken.Audience},
		ExpirationSeconds: ptr.To(int64(cred.TTL.Seconds())),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: *secret.Name, UID: *secret.UID},
	}}
	if err := cl.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}, token); err != nil {
		return err
	}
	secret = corev1ac.Secret(*secret.Name, ns).WithType(custosv1alpha1.LeaseSecretType).WithLabels(labels).
		WithData(map[string][]byte{"token": []byte(token.Status.Token)})
	if err := cl.Apply(ctx, secret, opts...); err != nil {
		return err
	}
	np := netpol.Render("agent-"+name, ns, selector, netpol.DefaultDNS, &netpol.Egress{}).WithLabels(labels)
	if err := cl.Apply(ctx, np, opts...); err != nil {
		return err
	}
	applied := workload.Deployment(workload.Params{
		Name: "agent-" + name, Namespace: ns, ServiceAccount: sa,
		Selector: selector, PodLabels: labels,
		Image: agent.Spec.Image, Runtime: agent.Spec.Runtime, Replicas: *agent.Spec.Runtime.Replicas,
		Regions:    []string{region},
		ConfigHash: workload.ConfigHash(agent.Spec.Identity, agent.Spec.Credentials),
	}).WithLabels(labels)
	if err := cl.Apply(ctx, applied, opts...); err != nil {
		return err
	}
	// Apply left the server's answer in applied; the status update needs it
	// as a Deployment.
	data, err := json.Marshal(applied)
	if err != nil {
		return err
	}
	d := &appsv1.Deployment{}
	if err := json.Unmarshal(data, d); err != nil {
		return err
	}
	rolledOut(d)
	return cl.Status().Update(ctx, d)
}

// runCustos starts the manager, creates the DataBoundary, the namespaces and
// then the Agents, and times the Agents from the first create until all are
// Ready, while a stand-in deployment controller rolls out their Deployments.
// It returns that time and the manager's peak RSS in bytes.
func runCustos(ctx context.Context, c config, admin *rest.Config, cl client.Client, kubeconfig, dir string, cp *controlplane.ControlPlane) (time.Duration, int64, error) {
	mgr, err := startManager(ctx, c, cp, kubeconfig, dir)
	if err != nil {
		return 0, 0, err
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
		return 0, 0, err
	}
	if err := createNamespaces(ctx, cl, "bench-custos", c.namespaces, map[string]string{custosv1alpha1.TenantLabel: tenant}); err != nil {
		return 0, 0, err
	}
	// The stand-in and the Agent cache stop before the control plane does.
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return 0, 0, err
	}
	if err := startStandIn(watchCtx, cs); err != nil {
		return 0, 0, err
	}
	// Readiness is polled from a local cache of the Agents, not by listing
	// them from the API server: a list of 1000 Agents is about 4 MB of JSON
	// and takes the API server about half a second on a small machine, so
	// polling it every 250 ms would make the bench its busiest client.
	agents, err := cache.New(admin, cache.Options{Scheme: cl.Scheme(),
		DefaultLabelSelector: labels.SelectorFromSet(labels.Set{custosv1alpha1.TenantLabel: tenant})})
	if err != nil {
		return 0, 0, err
	}
	if _, err := agents.GetInformer(watchCtx, &custosv1alpha1.Agent{}); err != nil {
		return 0, 0, err
	}
	go func() { _ = agents.Start(watchCtx) }()
	if !agents.WaitForCacheSync(watchCtx) {
		return 0, 0, fmt.Errorf("the Agent cache did not sync: %w", ctx.Err())
	}

	start := time.Now()
	err = parallel(ctx, c.concurrency, c.agents, func(ctx context.Context, i int) error {
		return cl.Create(ctx, newAgent(namespace("bench-custos", i%c.namespaces), agentName(i)))
	})
	if err != nil {
		return 0, 0, err
	}
	say("custos: all Agents created after %s", time.Since(start).Round(time.Millisecond))
	if err := waitReady(ctx, agents, c.agents, mgr, start); err != nil {
		return 0, 0, err
	}
	elapsed := time.Since(start)
	hwm, err := peakRSS(mgr.PID())
	if err != nil {
		return 0, 0, err
	}
	fmt.Print(managerMetrics(mgr))
	say("custos: manager log: %s", mgr.LogPath)
	return elapsed, hwm, nil
}

// waitReady lists the cached Agents every 250 ms until n are Ready=True: often
// enough to add little to the figure.
func waitReady(ctx context.Context, agents client.Reader, n int, mgr *controlplane.Manager, start time.Time) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	said := time.Now()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d Agents to be Ready: %w", n, ctx.Err())
		case <-mgr.Exited():
			return fmt.Errorf("the manager exited: %v; see %s", mgr.Err(), mgr.LogPath)
		case <-tick.C:
		}
		var list custosv1alpha1.AgentList
		if err := agents.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		ready := 0
		for i := range list.Items {
			if apimeta.IsStatusConditionTrue(list.Items[i].Status.Conditions, custosv1alpha1.ReadyCondition) {
				ready++
			}
		}
		if ready >= n {
			return nil
		}
		if time.Since(said) >= 10*time.Second {
			say("custos: %d/%d Agents Ready after %s", ready, n, time.Since(start).Round(time.Second))
			said = time.Now()
		}
	}
}

// newAgent is a valid, Active Agent as the controller tests make them: no
// cloud identity, one Kubernetes token credential, no Toolsets.
func newAgent(ns, name string) *custosv1alpha1.Agent {
	return &custosv1alpha1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{custosv1alpha1.TenantLabel: tenant}},
		Spec: custosv1alpha1.AgentSpec{
			Owner:   custosv1alpha1.AgentOwner{Team: "bench", Contact: "bench@example.com"},
			Purpose: "Measure how fast Custos onboards agents.",
			Image:   benchImages.Image,
			Runtime: custosv1alpha1.AgentRuntime{Replicas: ptr.To[int32](1)},
			Credentials: []custosv1alpha1.CredentialSpec{{
				Name:            "api",
				KubernetesToken: &custosv1alpha1.KubernetesTokenCredential{Audience: "api"},
				TTL:             metav1.Duration{Duration: 10 * time.Minute},
			}},
		},
	}
}

func createNamespaces(ctx context.Context, cl client.Client, prefix string, n int, labels map[string]string) error {
	for i := range n {
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace(prefix, i), Labels: labels}}); err != nil {
			return err
		}
	}
	return nil
}

func namespace(prefix string, i int) string { return fmt.Sprintf("%s-%02d", prefix, i) }

func agentName(i int) string { return fmt.Sprintf("agent-%05d", i) }

// parallel runs do(i) for i in [0, n) on workers goroutines, worker w taking
// every workers-th i from w, and returns the first error, after which the
// others stop.
func parallel(ctx context.Context, workers, n int, do func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n && ctx.Err() == nil; i += workers {
				if err := do(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

func say(format string, args ...any) {
	fmt.Printf("custos bench: "+format+"\n", args...)
}
