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
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/evaluate"
	"github.com/custos-dev/custos/test/controlplane"
)

// The bench-evaluate command (make bench-evaluate): a kube-apiserver and
// etcd, the manager binary with leader election following one
// custos-gateway-like trail (a real segment store, written here through an
// audit.Log at a steady rate, by 20 agents: reads, irreversible calls with
// low stated confidence, Write calls without a decision record, calls
// their decision record contradicts, refusals for unknown tools), and the
// manager killed (SIGKILL) and started again every few seconds while it
// evaluates. At the end, the Findings are compared with what the rubrics
// find over the whole trail at once: each expected Finding must exist,
// cite exactly the records expected (more is a record counted twice,
// fewer one skipped), and have its opening on the manager's trail. The
// latency of each hit is from the moment its last record was written to
// the trail to the moment a watch of the Findings saw that record cited:
// a leader change (a new process waiting out the old one's Lease) is in
// it.

func benchEvaluateMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-evaluate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("repo-root", ".", "Root of the Custos repository.")
	manager := fs.String("manager", "bin/manager", "The manager binary (make build).")
	stateDir := fs.String("state-dir", "bin/bench-evaluate", "Directory for the trails, the kubeconfig and the logs.")
	records := fs.Int("records", 10000, "Records to write to the trail.")
	rate := fs.Int("rate", 100, "Records a second.")
	killEvery := fs.Duration("kill-every", 15*time.Second, "Kill the manager about this often (0: never), at a random moment within ±50%.")
	seed := fs.Uint64("seed", 1, "Seed of the calls' mix and of the kills.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *records < 1 || *rate < 1 {
		fs.Usage()
		return 2
	}
	if err := dieWithParent(); err != nil {
		fmt.Fprintf(stderr, "custos-dev bench-evaluate: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b := &evaluateBench{root: *root, manager: *manager, state: *stateDir, records: *records, rate: *rate, killEvery: *killEvery,
		rng: rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15))}
	if err := b.run(ctx, stdout); err != nil {
		fmt.Fprintf(stderr, "custos-dev bench-evaluate: %v\n", err)
		return 1
	}
	return 0
}

const (
	benchNamespace = "bench-agents"
	benchTrailID   = "custos-gateway/bench-0"
)

type evaluateBench struct {
	root, manager, state string
	records, rate        int
	killEvery            time.Duration
	rng                  *rand.Rand

	mu      sync.Mutex
	written map[uint64]time.Time
	// seen is when a watch first saw each record cited, by Finding.
	seen map[string]map[int64]time.Time
}

func (b *evaluateBench) run(ctx context.Context, out io.Writer) error {
	if err := os.RemoveAll(b.state); err != nil {
		return err
	}
	trailDir, auditDir := filepath.Join(b.state, "gateway-audit"), filepath.Join(b.state, "manager-audit")
	for _, d := range []string{trailDir, auditDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	cpLog, err := os.Create(filepath.Join(b.state, "controlplane.log"))
	if err != nil {
		return err
	}
	defer func() { _ = cpLog.Close() }()
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: b.root, Webhooks: true, Output: cpLog})
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	kubeconfig := filepath.Join(b.state, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cp.Kubeconfig, 0o600); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := custosv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	for _, ns := range []string{benchNamespace, "custos-system"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}

	store, err := audit.OpenSegmentStore(trailDir, audit.StoreOptions{SegmentSize: 1 << 20})
	if err != nil {
		return err
	}
	trail, err := audit.New(audit.Options{Sinks: []audit.Sink{store}, BufferDir: trailDir + "-buffer",
		Registerer: prometheus.NewRegistry(), Logger: logr.Discard()})
	if err != nil {
		return err
	}
	defer func() { _ = trail.Close() }()

	start := func(n int) (*controlplane.Manager, error) {
		return cp.StartManager(ctx, b.manager, kubeconfig, filepath.Join(b.state, "manager-"+strconv.Itoa(n)+".log"),
			"--leader-elect", "--leader-election-namespace=custos-system",
			"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=1s",
			"--evaluate-trail="+benchTrailID+"="+trailDir, "--audit-sink=file", "--audit-dir="+auditDir)
	}
	mgr, err := start(0)
	if err != nil {
		return err
	}
	defer func() { mgr.Stop() }()

	b.written, b.seen = map[uint64]time.Time{}, map[string]map[int64]time.Time{}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go b.watch(watchCtx, c)

	// Write the trail while the killer kills.
	writeDone := make(chan error, 1)
	began := time.Now()
	go func() { writeDone <- b.write(ctx, trail) }()
	kills := 0
	var killErr error
	for done := false; !done; {
		wait := time.Duration(1<<62 - 1)
		if b.killEvery > 0 {
			wait = time.Duration(float64(b.killEvery) * (0.5 + b.rng.Float64()))
		}
		select {
		case err := <-writeDone:
			if err != nil {
				return err
			}
			done = true
		case <-time.After(wait):
			mgr.Kill()
			kills++
			if mgr, killErr = start(kills); killErr != nil {
				return killErr
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	wrote := time.Since(began)

	// What the rubrics find over the whole trail at once.
	all, err := (&audit.StoreReader{Dir: trailDir}).Read(0, 0)
	if err != nil {
		return err
	}
	want := expectedFindings(all)
	// Wait until every expected record is cited, or for two minutes.
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && !b.caughtUp(ctx, c, want) {
		time.Sleep(time.Second)
	}
	var list custosv1alpha1.FindingList
	if err := c.List(ctx, &list, client.InNamespace(benchNamespace)); err != nil {
		return err
	}
	mgr.Stop()
	opened, err := openings(auditDir)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := compareFindings(want, list.Items, opened, b.written, b.seen)
	r.records, r.kills, r.wrote = len(all), kills, wrote
	r.print(out, b.killEvery)
	if r.missing+r.doubled+r.short+r.unopened > 0 {
		return errors.New("the Findings are not what the rubrics find over the whole trail")
	}
	return nil
}

// agentsInBench make the trail's calls.
const agentsInBench = 20

// write records b.records records at b.rate a second, each flushed to the
// trail before the next, noting when each was written.
func (b *evaluateBench) write(ctx context.Context, trail *audit.Log) error {
	tick := time.NewTicker(time.Second / time.Duration(b.rate))
	defer tick.Stop()
	for i := range b.records {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		agent := fmt.Sprintf("agent-%02d", b.rng.IntN(agentsInBench))
		e := audit.Event{Actor: audit.Actor{Kind: audit.ActorController, Name: "custos-gateway"},
			Subject: audit.Subject{Kind: "Agent", Namespace: benchNamespace, Name: agent, UID: "uid-" + agent, Tenant: "bench"},
			TraceID: fmt.Sprintf("%032x", i+1), Action: audit.ActionToolCalled, Decision: audit.DecisionAllow, Policy: "gateway.call",
			Details: map[string]string{"tool": "ledger.get", "access": "Read", "argumentsDigest": "sha256:a"}}
		switch p := b.rng.Float64(); {
		case p < 0.05: // an irreversible payment stated with low confidence
			e.Details = map[string]string{"tool": "ledger.pay", "access": "Write", "irreversible": "true", "decisionDigest": "sha256:d",
				"decision.confidence": "0.3", "argumentsDigest": "sha256:a"}
		case p < 0.08: // a Write call with no decision record
			e.Details = map[string]string{"tool": "ledger.post", "access": "Write", "argumentsDigest": "sha256:a"}
		case p < 0.10: // a decision record the call contradicts
			e.Details = map[string]string{"tool": "ledger.post", "access": "Write", "decisionDigest": "sha256:d", "decision.intentTool": "ledger.get",
				"argumentsDigest": "sha256:a"}
		case p < 0.15: // looking for a tool it was not given
			e.Action, e.Decision, e.Policy = audit.ActionToolRefused, audit.DecisionDeny, "UnknownTool"
			e.Details = map[string]string{"tool": "shell.exec"}
		}
		seq, ok := trail.RecordSeq(ctx, e)
		if !ok {
			return errors.New("the trail refused a record")
		}
		if err := trail.Flush(ctx); err != nil {
			return err
		}
		b.mu.Lock()
		b.written[seq] = time.Now()
		b.mu.Unlock()
	}
	return nil
}

// watch notes when each record is first cited by a Finding.
func (b *evaluateBench) watch(ctx context.Context, c client.WithWatch) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, &custosv1alpha1.FindingList{}, client.InNamespace(benchNamespace))
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			f, ok := ev.Object.(*custosv1alpha1.Finding)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			now := time.Now()
			b.mu.Lock()
			if b.seen[f.Name] == nil {
				b.seen[f.Name] = map[int64]time.Time{}
			}
			for _, e := range f.Status.Evidence {
				for _, s := range e.Sequences {
					if _, ok := b.seen[f.Name][s]; !ok {
						b.seen[f.Name][s] = now
					}
				}
			}
			b.mu.Unlock()
		}
		w.Stop()
	}
}

// caughtUp says whether every expected Finding cites all its records.
func (b *evaluateBench) caughtUp(ctx context.Context, c client.Client, want map[string]*expectedFinding) bool {
	var list custosv1alpha1.FindingList
	if err := c.List(ctx, &list, client.InNamespace(benchNamespace)); err != nil {
		return false
	}
	got := map[string]int32{}
	for _, f := range list.Items {
		got[f.Name] = f.Status.RecordCount
	}
	for name, w := range want {
		if got[name] < int32(len(w.seqs)) {
			return false
		}
	}
	return true
}

// expectedFinding is what the rubrics find over the whole trail for one
// Finding: the records it cites, and each hit's last record (the one that
// made it).
type expectedFinding struct {
	seqs  map[uint64]bool
	lasts []uint64
}

func expectedFindings(records []audit.Record) map[string]*expectedFinding {
	want := map[string]*expectedFinding{}
	for _, h := range evaluate.Evaluate(records, evaluate.Fixed(evaluate.DefaultThresholds)) {
		name := evaluate.FindingName(h.Agent, h.Rubric, h.To)
		w := want[name]
		if w == nil {
			w = &expectedFinding{seqs: map[uint64]bool{}}
			want[name] = w
		}
		last := uint64(0)
		for _, s := range h.Seqs {
			w.seqs[s] = true
			last = max(last, s)
		}
		w.lasts = append(w.lasts, last)
	}
	return want
}

// openings counts the finding.opened records on the manager's trail, by
// Finding.
func openings(dir string) (map[string]int, error) {
	records, err := (&audit.StoreReader{Dir: dir}).Read(0, 0)
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, r := range records {
		if r.Action == audit.ActionFindingOpened {
			n[r.Details["finding"]]++
		}
	}
	return n, nil
}

type evaluateReport struct {
	records, kills                    int
	wrote                             time.Duration
	expected, found                   int
	missing, extra, doubled, short    int
	unopened, openedTwice, unobserved int
	latencies                         []time.Duration
}

// compareFindings holds the Findings to what was expected of them.
func compareFindings(want map[string]*expectedFinding, got []custosv1alpha1.Finding, opened map[string]int,
	written map[uint64]time.Time, seen map[string]map[int64]time.Time) evaluateReport {
	r := evaluateReport{expected: len(want), found: len(got)}
	byName := map[string]*custosv1alpha1.Finding{}
	for i := range got {
		byName[got[i].Name] = &got[i]
		if want[got[i].Name] == nil {
			r.extra++
		}
	}
	for name, w := range want {
		f := byName[name]
		switch {
		case f == nil:
			r.missing++
			continue
		case int(f.Status.RecordCount) > len(w.seqs):
			r.doubled++
		case int(f.Status.RecordCount) < len(w.seqs):
			r.short++
		}
		switch opened[name] {
		case 0:
			r.unopened++
		case 1:
		default:
			r.openedTwice++
		}
		for _, last := range w.lasts {
			at, ok := seen[name][int64(last)]
			if !ok {
				r.unobserved++
				continue
			}
			r.latencies = append(r.latencies, at.Sub(written[last]))
		}
	}
	return r
}

func (r evaluateReport) print(out io.Writer, killEvery time.Duration) {
	fmt.Fprintf(out, "\nevaluator: %d records written in %s to one trail by %d agents, the manager killed (SIGKILL) %d times (about every %s) and started again\n",
		r.records, r.wrote.Round(time.Second), agentsInBench, r.kills, killEvery)
	fmt.Fprintf(out, "  Findings: %d expected (the rubrics over the whole trail at once), %d found, %d missing, %d not expected\n",
		r.expected, r.found, r.missing, r.extra)
	fmt.Fprintf(out, "  records cited: %d Findings with a record counted twice, %d with a record skipped\n", r.doubled, r.short)
	fmt.Fprintf(out, "  openings on the manager's trail: %d Findings without one, %d with more than one (a kill between the record and the status)\n",
		r.unopened, r.openedTwice)
	fmt.Fprintf(out, "  from a hit's last record written to a watch seeing it cited (%d hits, %d not seen): p50 %s, p99 %s, max %s (goal p99 60s)\n",
		len(r.latencies), r.unobserved, percentile(r.latencies, 50).Round(time.Millisecond), percentile(r.latencies, 99).Round(time.Millisecond),
		percentile(r.latencies, 100).Round(time.Millisecond))
}
