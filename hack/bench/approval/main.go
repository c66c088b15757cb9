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

// Command approval is `make bench-approval`: on a local control plane
// (kube-apiserver and etcd with Custos's CRDs, no manager) it measures
// internal/approval's Gate, which custos-gateway holds tool calls with.
//
//   - Exactly once: -trials times, an Approved ApprovalRequest is made and
//     -consumers tries of its call race to consume it (Gate.Await, as a
//     gateway does, reading through an informer cache). Every trial must
//     run the call exactly once: a double execution is a bug; so is none.
//   - Latency from approval (the status update to Approved, which the
//     manager makes when the quorum approves) to the call running, -samples
//     times each: on the held path (the call held in Await, woken through
//     the informer) and on the retry path (Hold 0: the agent retries the
//     call every -retry-interval; the latency is to the first retry that
//     runs).
//   - What an approval costs the API server: objects (the request and its
//     -quorum ApprovalDecisions) and their JSON bytes as stored.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/controlplane"
)

const namespace = "bench-approval"

type config struct {
	root          string
	trials        int
	consumers     int
	parallel      int
	samples       int
	quorum        int
	retryInterval time.Duration
	hold          time.Duration
	direct        bool
}

func main() {
	var c config
	flag.StringVar(&c.root, "repo-root", ".", "Root of the Custos repository (its CRDs).")
	flag.IntVar(&c.trials, "trials", 10000, "Exactly-once trials: each makes an Approved request and races -consumers tries of its call.")
	flag.IntVar(&c.consumers, "consumers", 4, "Concurrent tries of the call in each exactly-once trial.")
	flag.IntVar(&c.parallel, "parallel", 16, "Exactly-once trials run at once (each on a call of its own).")
	flag.IntVar(&c.samples, "samples", 200, "Latency samples of each path (held, retry).")
	flag.IntVar(&c.quorum, "quorum", 1, "Approvals (ApprovalDecisions) per request, for the objects and bytes per approval.")
	flag.DurationVar(&c.retryInterval, "retry-interval", 200*time.Millisecond, "Retry path: how often the agent retries a pending call.")
	flag.DurationVar(&c.hold, "hold", 30*time.Second, "Held path: the Gate's Hold (a sample that waits it out is a missed wake-up).")
	flag.BoolVar(&c.direct, "direct", false, "Read requests straight from the API server rather than through an informer cache (the gateway reads through its cache).")
	flag.Parse()
	if c.trials < 0 || c.consumers < 1 || c.parallel < 1 || c.samples < 1 || c.quorum < 1 {
		fmt.Fprintln(os.Stderr, "custos bench-approval: -consumers, -parallel, -samples and -quorum must be at least 1, -trials at least 0")
		os.Exit(2)
	}
	ctrllog.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, c)
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted; stopped everything it started")
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "custos bench-approval: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("custos bench-approval: "+format+"\n", args...)
}

// bench is the control plane and the gateway's side of it: clients, an
// informer cache of ApprovalRequests, and Gates reading through it.
type bench struct {
	c      config
	direct client.Client
	reader client.Client // what the Gates read requests through
	cache  cache.Cache
	req    *approval.Requirement
	seq    atomic.Int64
}

func run(ctx context.Context, c config) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(custosv1alpha1.AddToScheme(scheme))
	say("starting etcd and kube-apiserver")
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: c.root, Scheme: scheme})
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	cfg := rest.CopyConfig(cp.Config)
	// The gateway is one client among many: no client-side throttling, so
	// the figures are the API server's and the Gate's.
	cfg.QPS, cfg.Burst = 100000, 100000
	b := &bench{c: c, req: &approval.Requirement{Policies: []string{"bench"}, Quorum: int32(c.quorum), Timeout: time.Hour}}
	if b.direct, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if err := b.direct.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	b.reader = b.direct
	if !c.direct {
		if b.cache, err = cache.New(cfg, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{namespace: {}}}); err != nil {
			return err
		}
		if b.reader, err = client.New(cfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: b.cache}}); err != nil {
			return err
		}
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { _ = b.cache.Start(cctx) }()
		if !b.cache.WaitForCacheSync(ctx) {
			return errors.New("the informer cache did not sync")
		}
	}

	say("exactly once: %d trials of %d concurrent consumers (%d trials at once)", c.trials, c.consumers, c.parallel)
	once, err := b.exactlyOnce(ctx)
	if err != nil {
		return err
	}
	say("latency: %d samples of the held path", c.samples)
	held, size, err := b.heldLatency(ctx)
	if err != nil {
		return err
	}
	say("latency: %d samples of the retry path (a retry every %s)", c.samples, c.retryInterval)
	retried, err := b.retryLatency(ctx)
	if err != nil {
		return err
	}

	reads := "informer cache"
	if c.direct {
		reads = "API server (-direct)"
	}
	fmt.Println()
	fmt.Printf("Approval gate (reads through the %s)\n\n", reads)
	fmt.Printf("exactly once          trials %d, consumers %d each\n", once.trials, c.consumers)
	fmt.Printf("  executions          exactly one %d, double %d, zero %d\n", once.one, once.double, once.zero)
	fmt.Printf("  other tries         found it used %d, asked again (request n+1) %d\n", once.used, once.again)
	fmt.Printf("  wall                %s (%.0f trials/s)\n", once.wall.Round(time.Millisecond), float64(once.trials)/once.wall.Seconds())
	fmt.Println()
	fmt.Printf("%-22s %10s %10s %10s %10s %8s\n", "approval to run", "p50", "p99", "max", "mean", "samples")
	for _, r := range []struct {
		name string
		l    []time.Duration
	}{{"held (Watch wakes it)", held}, {fmt.Sprintf("retry every %s", c.retryInterval), retried}} {
		p50, p99, mx, mean := stats(r.l)
		fmt.Printf("%-22s %10s %10s %10s %10s %8d\n", r.name, ms(p50), ms(p99), ms(mx), ms(mean), len(r.l))
	}
	fmt.Println()
	fmt.Printf("per approval (quorum %d)\n", c.quorum)
	fmt.Printf("  objects             %d (1 ApprovalRequest, %d ApprovalDecision)\n", 1+c.quorum, c.quorum)
	fmt.Printf("  bytes (JSON)        request %d (arguments shown %d), decisions %d, total %d\n", size.request, size.arguments, size.decisions, size.request+size.decisions)
	fmt.Printf("  API requests        held path: create request, %d create decision, 1 status update (approval), 1 status update (consume)\n", c.quorum)
	if once.double != 0 || once.zero != 0 {
		return fmt.Errorf("%d trials ran the call twice or more and %d never ran it: the approval is not consumed exactly once", once.double, once.zero)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func stats(l []time.Duration) (p50, p99, mx, mean time.Duration) {
	if len(l) == 0 {
		return
	}
	s := slices.Clone(l)
	slices.Sort(s)
	pct := func(p float64) time.Duration { // nearest rank
		i := int(float64(len(s))*p+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return pct(0.5), pct(0.99), s[len(s)-1], sum / time.Duration(len(s))
}

// call is a new call of its own (its own digest), as custos-gateway holds
// it.
func (b *bench) call(kind string) (*approval.Held, error) {
	n := b.seq.Add(1)
	args := map[string]any{"amount": float64(1000 + n), "payee": map[string]any{"iban": "FR7630006000011234567890189", "name": "Bench"}, "memo": kind}
	canonical, err := audit.CanonicalValue(args)
	if err != nil {
		return nil, err
	}
	agent := &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "bench-agent", Namespace: namespace, UID: "00000000-0000-4000-8000-000000000001"}}
	return &approval.Held{
		Call: approval.Call{
			Tool: "pay", Access: custosv1alpha1.ToolAccessWrite, Irreversible: true,
			Toolset:   custosv1alpha1.ToolsetReference{Name: "payments"},
			Arguments: args, Person: "alice@example.com", Groups: []string{"staff"}, Agent: agent,
		},
		AgentUID: string(agent.UID), Session: fmt.Sprintf("session-%d", n), Chain: "alice@example.com -> bench-agent",
		CanonicalArguments: canonical, TraceID: fmt.Sprintf("%032x", n),
	}, nil
}

func (b *bench) gate(hold time.Duration) *approval.Gate {
	return &approval.Gate{Client: b.reader, Live: b.direct, Hold: hold}
}

// approve is the manager deciding ar: quorum ApprovalDecisions (as people
// make them), then the status update to Approved with their votes. It
// returns when the status update was sent.
func (b *bench) approve(ctx context.Context, ar *custosv1alpha1.ApprovalRequest, decisions bool) (sent time.Time, err error) {
	var votes []custosv1alpha1.ApprovalVote
	for i := range b.c.quorum {
		approver := custosv1alpha1.Approver{Username: fmt.Sprintf("approver-%d@example.com", i), UID: fmt.Sprintf("uid-%d", i), Groups: []string{"system:authenticated", "approvers"}}
		vote := custosv1alpha1.ApprovalVote{Name: fmt.Sprintf("%s-%d", ar.Name, i), Approver: approver, Decision: custosv1alpha1.Approve, Counted: true, DecidedAt: metav1.Now()}
		if decisions {
			d := &custosv1alpha1.ApprovalDecision{
				ObjectMeta: metav1.ObjectMeta{Name: vote.Name, Namespace: ar.Namespace},
				Spec:       custosv1alpha1.ApprovalDecisionSpec{Request: ar.Name, Decision: custosv1alpha1.Approve, Comment: "looks right", Approver: approver},
			}
			if err := b.direct.Create(ctx, d); err != nil {
				return time.Time{}, err
			}
			vote.DecidedAt = d.CreationTimestamp
		}
		votes = append(votes, vote)
	}
	next := ar.DeepCopy()
	now := metav1.Now()
	next.Status.Phase, next.Status.Approvals, next.Status.Decisions, next.Status.DecidedAt = custosv1alpha1.ApprovalApproved, int32(b.c.quorum), votes, &now
	sent = time.Now()
	return sent, b.direct.Status().Update(ctx, next)
}

// seen waits until the Gates' reads show ar in phase.
func (b *bench) seen(ctx context.Context, ar *custosv1alpha1.ApprovalRequest, phase custosv1alpha1.ApprovalPhase) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := &custosv1alpha1.ApprovalRequest{}
		if err := b.reader.Get(ctx, client.ObjectKeyFromObject(ar), got); err == nil && (got.Status.Phase == phase || phase == "") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ApprovalRequest %s/%s not seen in phase %q within 10s", ar.Namespace, ar.Name, phase)
		}
		time.Sleep(time.Millisecond)
	}
}

type onceResult struct {
	trials, one, double, zero, used, again int
	wall                                   time.Duration
}

func (b *bench) exactlyOnce(ctx context.Context) (onceResult, error) {
	var (
		mu  sync.Mutex
		res onceResult
	)
	g := b.gate(0)
	trial := func() error {
		h, err := b.call("exactly-once")
		if err != nil {
			return err
		}
		ar := approval.Request(h, b.req, 1, time.Now())
		if err := b.direct.Create(ctx, ar); err != nil {
			return err
		}
		if _, err := b.approve(ctx, ar, false); err != nil {
			return err
		}
		// The consumers race once their gateway's cache shows it approved.
		if err := b.seen(ctx, ar, custosv1alpha1.ApprovalApproved); err != nil {
			return err
		}
		outs := make([]approval.Outcome, b.c.consumers)
		errs := make([]error, b.c.consumers)
		var wg sync.WaitGroup
		gun := make(chan struct{})
		for i := range b.c.consumers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				try := *h
				<-gun
				outs[i], errs[i] = g.Await(ctx, &try, b.req)
			}()
		}
		close(gun)
		wg.Wait()
		runs, used, again := 0, 0, 0
		for i, out := range outs {
			if errs[i] != nil {
				return errs[i]
			}
			switch {
			case out.Run:
				runs++
			case out.Used:
				used++
			case out.Request != nil && out.Request.Name != ar.Name:
				again++
			}
		}
		mu.Lock()
		defer mu.Unlock()
		res.trials++
		res.used += used
		res.again += again
		switch runs {
		case 0:
			res.zero++
		case 1:
			res.one++
		default:
			res.double++
		}
		return nil
	}
	start := time.Now()
	work := make(chan struct{})
	errc := make(chan error, b.c.parallel)
	var wg sync.WaitGroup
	for range b.c.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := trial(); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range b.c.trials {
		select {
		case work <- struct{}{}:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
		if i > 0 && i%2000 == 0 {
			say("  %d trials", i)
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	res.wall = time.Since(start)
	return res, err
}

type sizes struct{ request, arguments, decisions int }

// heldLatency: the call is held in Await (Hold -hold, Watch wired to the
// cache's informer); the latency is from sending the status update to
// Approved to Await returning Run.
func (b *bench) heldLatency(ctx context.Context) ([]time.Duration, sizes, error) {
	g := b.gate(b.c.hold)
	if b.cache != nil {
		if err := g.Watch(ctx, b.cache); err != nil {
			return nil, sizes{}, err
		}
	}
	var lat []time.Duration
	var size sizes
	for range b.c.samples {
		h, err := b.call("held")
		if err != nil {
			return nil, size, err
		}
		type result struct {
			out approval.Outcome
			err error
			at  time.Time
		}
		done := make(chan result, 1)
		go func() {
			out, err := g.Await(ctx, h, b.req)
			done <- result{out, err, time.Now()}
		}()
		// Approve once the call is held: the request exists and the try
		// has had time to start waiting on it.
		ar := &custosv1alpha1.ApprovalRequest{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: approval.RequestName(h.Agent.Name, h.Digest(), 1)}}
		if err := b.seen(ctx, ar, ""); err != nil {
			return nil, size, err
		}
		time.Sleep(20 * time.Millisecond)
		if err := b.direct.Get(ctx, client.ObjectKeyFromObject(ar), ar); err != nil {
			return nil, size, err
		}
		sent, err := b.approve(ctx, ar, true)
		if err != nil {
			return nil, size, err
		}
		r := <-done
		if r.err != nil {
			return nil, size, r.err
		}
		if !r.out.Run {
			return nil, size, fmt.Errorf("held call of %s did not run: %+v", ar.Name, r.out)
		}
		lat = append(lat, r.at.Sub(sent))
		if size.request == 0 {
			if size, err = b.sizes(ctx, ar); err != nil {
				return nil, size, err
			}
		}
	}
	return lat, size, nil
}

// retryLatency: Hold 0, the agent retries every -retry-interval; the
// latency is from sending the status update to Approved to the first
// retry that runs. The approval comes at a random moment between retries.
func (b *bench) retryLatency(ctx context.Context) ([]time.Duration, error) {
	g := b.gate(0)
	var lat []time.Duration
	for i := range b.c.samples {
		h, err := b.call("retry")
		if err != nil {
			return nil, err
		}
		out, err := g.Await(ctx, h, b.req)
		if err != nil {
			return nil, err
		}
		ar := out.Request
		type result struct {
			err error
			at  time.Time
		}
		done := make(chan result, 1)
		go func() {
			t := time.NewTicker(b.c.retryInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					done <- result{err: ctx.Err()}
					return
				case <-t.C:
				}
				out, err := g.Await(ctx, h, b.req)
				if err != nil || out.Run {
					done <- result{err, time.Now()}
					return
				}
			}
		}()
		// Spread the approvals over the retry interval.
		time.Sleep(b.c.retryInterval/2 + time.Duration(i*7919%1000)*b.c.retryInterval/1000)
		if err := b.direct.Get(ctx, client.ObjectKeyFromObject(ar), ar); err != nil {
			return nil, err
		}
		sent, err := b.approve(ctx, ar, false)
		if err != nil {
			return nil, err
		}
		r := <-done
		if r.err != nil {
			return nil, r.err
		}
		lat = append(lat, r.at.Sub(sent))
	}
	return lat, nil
}

// sizes are ar's and its decisions' JSON as the API server returns them
// (what etcd stores for a custom resource, give or take managedFields).
func (b *bench) sizes(ctx context.Context, ar *custosv1alpha1.ApprovalRequest) (sizes, error) {
	var s sizes
	got := &custosv1alpha1.ApprovalRequest{}
	if err := b.direct.Get(ctx, client.ObjectKeyFromObject(ar), got); err != nil {
		return s, err
	}
	j, err := json.Marshal(got)
	if err != nil {
		return s, err
	}
	s.request, s.arguments = len(j), len(got.Spec.Arguments)
	var ds custosv1alpha1.ApprovalDecisionList
	if err := b.direct.List(ctx, &ds, client.InNamespace(namespace)); err != nil {
		return s, err
	}
	for i := range ds.Items {
		if ds.Items[i].Spec.Request != ar.Name {
			continue
		}
		j, err := json.Marshal(&ds.Items[i])
		if err != nil {
			return s, err
		}
		s.decisions += len(j)
	}
	return s, nil
}
