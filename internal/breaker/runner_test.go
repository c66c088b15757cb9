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

package breaker_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/internal/gateway"
	"github.com/custos-dev/custos/test/fixtures"
)

// trail is an audit.Sequencer that keeps what it is given.
type trail struct {
	mu     sync.Mutex
	events []audit.Event
}

func (tr *trail) Record(ctx context.Context, e audit.Event) { tr.RecordSeq(ctx, e) }

func (tr *trail) RecordSeq(_ context.Context, e audit.Event) (uint64, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, e)
	return uint64(len(tr.events) - 1), true
}

// The breaker in the manager reads what two gateway replicas report of an
// agent (their usage, in ConfigMaps, as custos-gateway writes them), learns
// it, trips on a sustained sixfold rise in records per call, and freezes
// it: an AgentFreeze with trigger Trend, citing its breaker.tripped record.
// A replica that starts again (a new report, counting from zero) is no
// rise. Nothing trips before.
func TestRunnerFreezesOnATrend(t *testing.T) {
	t.Run("Enforce", func(t *testing.T) { runnerOnATrend(t, trendCase{mode: custosv1alpha1.BreakerEnforce}) })
	// A tenant whose DataBoundary says Observe: the trip is recorded as
	// what would have frozen the agent, and nothing is frozen.
	t.Run("Observe", func(t *testing.T) {
		runnerOnATrend(t, trendCase{mode: custosv1alpha1.BreakerObserve, observed: "its DataBoundaries' spec.breaker.mode"})
	})
	// The Agent says Observe (set by someone who may unfreeze it): the
	// same, whatever its boundary says.
	t.Run("AgentObserve", func(t *testing.T) {
		runnerOnATrend(t, trendCase{agent: &custosv1alpha1.AgentBreaker{Mode: custosv1alpha1.BreakerObserve}, observed: "the Agent's spec.breaker.mode"})
	})
	// A new agent's first days are observed: from ObserveAfter on in its
	// warm-up, a trip is recorded and freezes nothing.
	t.Run("FirstDays", func(t *testing.T) {
		runnerOnATrend(t, trendCase{warmUp: 5 * time.Hour, observed: "its first days"})
	})
	// In a batch window with an allowance of 10 times its baseline, six
	// times is nothing: no freeze, no record.
	t.Run("Allowance", func(t *testing.T) {
		runnerOnATrend(t, trendCase{agent: &custosv1alpha1.AgentBreaker{Allowances: []custosv1alpha1.BreakerAllowance{{
			Name: "month-end", Start: "11:00", Duration: metav1.Duration{Duration: time.Hour}, Factor: 10}}}, allowed: true})
	})
}

// trendCase is how the breaker is set for runnerOnATrend: the
// DataBoundary's mode, the Agent's spec.breaker, the warm-up (an hour when
// 0), and what a trip does: freeze (observed empty), be observed for that
// reason, or nothing at all (allowed).
type trendCase struct {
	mode     custosv1alpha1.BreakerMode
	agent    *custosv1alpha1.AgentBreaker
	warmUp   time.Duration
	observed string
	allowed  bool
}

func runnerOnATrend(t *testing.T, tc trendCase) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newUsageWorld(t, tc.mode, tc.agent)
	c := w.c
	params := breaker.DefaultDetectorParams
	params.WarmUp = cmp.Or(tc.warmUp, time.Hour)
	params.ObserveAfter = 30 * time.Minute
	if tc.warmUp == 0 {
		// Nothing observed in the warm-up: the steady ticks' only record
		// would be the spike's.
		params.ObserveAfter = 0
	}
	params.Tick = time.Minute // fewer API round trips than 15 s ticks, the same detector
	tr := &trail{}
	reg := prometheus.NewRegistry()
	r := &breaker.Runner{Reports: c, Agents: c, Client: c, Namespace: w.gatewayNS, Params: params, Audit: tr, AuditLogID: "custos-manager/test",
		Metrics: breaker.NewMetrics(reg)}
	gatewayNS, replicas := w.gatewayNS, w.replicas
	// evidence is the agent's custos_breaker_evidence_ratio, 0 when it
	// has no series.
	evidence := func() float64 {
		families, err := reg.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			if f.GetName() != "custos_breaker_evidence_ratio" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "agent" && l.GetValue() == "reconciler" {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		return 0
	}
	trips := func(outcome string) float64 {
		n := 0.0
		for _, trigger := range []string{"Trend", "Ratio"} {
			n += testutil.ToFloat64(r.Metrics.Trips().WithLabelValues(trigger, outcome))
		}
		return n
	}
	tick := func(now time.Time, rise float64) *custosv1alpha1.AgentFreeze {
		w.take(now, rise)
		g.Expect(r.Step(ctx, now)).To(Succeed())
		return w.frozen()
	}
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for end := now.Add(150 * time.Minute); now.Before(end); now = now.Add(params.Tick) {
		if now.Equal(time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)) {
			// gw-b starts again: a new report, from zero.
			g.Expect(c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: gatewayNS, Name: "custos-usage-gw-b"}})).To(Succeed())
			replicas[1] = &gateway.Usage{}
		}
		g.Expect(tick(now, 1)).To(BeNil(), "tripped on a steady agent at %s", now)
	}
	var frozen *custosv1alpha1.AgentFreeze
	took, most := 0, 0.0
	for ; frozen == nil && took < 10; took++ {
		frozen = tick(now, 6)
		now = now.Add(params.Tick)
		if frozen == nil && trips("frozen")+trips("observed") == 0 {
			most = max(most, evidence())
		}
	}
	if !tc.allowed {
		// The evidence rose on the way, as the metric says, and the trip
		// is counted by its outcome; the evidence is gone after it.
		g.Expect(most).To(BeNumerically(">", 0.3), "custos_breaker_evidence_ratio on the way to the trip")
		g.Expect(evidence()).To(BeZero(), "no series once the trip reset the evidence")
		outcome := "frozen"
		if tc.observed != "" {
			outcome = "observed"
		}
		g.Expect(trips(outcome)).To(BeNumerically(">=", 1))
	}
	if tc.allowed {
		g.Expect(frozen).To(BeNil(), "in the allowance")
		tr.mu.Lock()
		defer tr.mu.Unlock()
		g.Expect(tr.events).To(BeEmpty(), "in the allowance")
		return
	}
	if tc.observed != "" {
		g.Expect(frozen).To(BeNil(), "observed, not frozen")
		tr.mu.Lock()
		defer tr.mu.Unlock()
		g.Expect(tr.events).NotTo(BeEmpty())
		g.Expect(tr.events[0].Action).To(Equal(audit.ActionBreakerObserved))
		g.Expect(tr.events[0].Details).To(HaveKeyWithValue("trigger", "Trend"))
		g.Expect(tr.events[0].Details).To(HaveKeyWithValue("observed", tc.observed))
		g.Expect(tr.events[0].Subject.Name).To(Equal("reconciler"))
		return
	}
	g.Expect(frozen).NotTo(BeNil(), "ten minutes of six times the records per call did not trip the breaker")
	t.Logf("tripped after %d ticks of %s: %s", took, params.Tick, frozen.Spec.Reason)
	g.Expect(took).To(BeNumerically(">", 1), "not on one tick")
	g.Expect(frozen.Spec.Agent).To(Equal("reconciler"))
	g.Expect(frozen.Spec.Trigger).To(Equal(custosv1alpha1.FreezeTrend))
	g.Expect(frozen.Spec.Signal).To(Equal(breaker.SignalRecords))
	g.Expect(frozen.Spec.Evidence).NotTo(BeNil())
	g.Expect(frozen.Spec.Evidence.AuditLogID).To(Equal("custos-manager/test"))
	tr.mu.Lock()
	defer tr.mu.Unlock()
	g.Expect(tr.events).To(HaveLen(1))
	e := tr.events[0]
	g.Expect(e.Action).To(Equal(audit.ActionBreakerTripped))
	g.Expect(e.Subject.Name).To(Equal("reconciler"))
	g.Expect(frozen.Spec.Evidence.Sequences).To(Equal([]int64{0}), "the freeze cites the breaker.tripped record")
	g.Expect(e.Details).To(HaveKeyWithValue("trigger", "Trend"))
}

// usageWorld is a tenant with an active Agent, "reconciler", and two
// gateway replicas reporting what it takes as custos-gateway writes its
// reports.
type usageWorld struct {
	g                   *WithT
	c                   client.Client
	gatewayNS, agentsNS string
	key                 types.NamespacedName
	replicas            []*gateway.Usage
	names               []string
	rng                 *rand.Rand
}

func newUsageWorld(t *testing.T, mode custosv1alpha1.BreakerMode, ab *custosv1alpha1.AgentBreaker) *usageWorld {
	g := NewWithT(t)
	ctx := context.Background()
	c := apiServer(t)
	w := &usageWorld{g: g, c: c, gatewayNS: newNamespace(t, "custos-gateway-"), replicas: []*gateway.Usage{{}, {}},
		names: []string{"gw-a", "gw-b"}, rng: rand.New(rand.NewPCG(11, 12))}
	tenant := fixtures.UniqueTenant("brk")
	w.agentsNS = fixtures.CreateTenantNamespace(t, c, tenant)
	b := fixtures.DataBoundary(tenant)
	b.Spec.Breaker = &custosv1alpha1.BreakerPolicy{Mode: mode}
	g.Expect(c.Create(ctx, b)).To(Succeed())
	t.Cleanup(func() { _ = c.Delete(context.Background(), b) })
	agent := fixtures.Agent(w.agentsNS, "reconciler", tenant)
	agent.Spec.Breaker = ab
	g.Expect(c.Create(ctx, agent)).To(Succeed())
	agent.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseActive}
	g.Expect(c.Status().Update(ctx, agent)).To(Succeed())
	w.key = types.NamespacedName{Namespace: w.agentsNS, Name: "reconciler"}
	return w
}

// report writes replica i's report at now.
func (w *usageWorld) report(i int, now time.Time) {
	ctx := context.Background()
	cm := &corev1.ConfigMap{}
	err := w.c.Get(ctx, client.ObjectKey{Namespace: w.gatewayNS, Name: "custos-usage-" + w.names[i]}, cm)
	if err != nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: w.gatewayNS, Name: "custos-usage-" + w.names[i],
			Labels: map[string]string{gateway.UsageLabel: "gateway"}}, Data: w.replicas[i].Report(now)}
		w.g.Expect(w.c.Create(ctx, cm)).To(Succeed())
		return
	}
	cm.Data = w.replicas[i].Report(now)
	w.g.Expect(w.c.Update(ctx, cm)).To(Succeed())
}

// take is a tick of 30 calls of about 20 records (rise times as many
// records per call), served by either replica, and both replicas' reports.
func (w *usageWorld) take(now time.Time, rise float64) {
	for range 30 {
		records := int64(math.Round(rise * math.Exp(math.Log(20)+0.4*w.rng.NormFloat64())))
		w.replicas[w.rng.IntN(2)].Add(w.key, records, now)
	}
	w.report(0, now)
	w.report(1, now)
}

// frozen is the agent's first AgentFreeze, nil when there is none.
func (w *usageWorld) frozen() *custosv1alpha1.AgentFreeze {
	var freezes custosv1alpha1.AgentFreezeList
	w.g.Expect(w.c.List(context.Background(), &freezes, client.InNamespace(w.agentsNS))).To(Succeed())
	if len(freezes.Items) > 0 {
		return &freezes.Items[0]
	}
	return nil
}

// What the breaker reads of the replicas' reports, tick by tick: nothing
// of what was there before it started (a new leader); rates between two
// reports, whatever their timing; a replica's latest rates for two ticks
// without a new report, then nothing; a process started again counts from
// zero; a new replica from its start; a report not written for five
// minutes is nothing, and one not written for an hour goes.
func TestRunnerReadsReportsAsRates(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := apiServer(t)
	ns := newNamespace(t, "custos-gateway-")
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	params := breaker.DefaultDetectorParams
	params.Tick = time.Minute
	r := &breaker.Runner{Reports: c, Agents: c, Client: c, Namespace: ns, Params: params, Clock: clk}
	agent := types.NamespacedName{Namespace: "finance", Name: "reconciler"}
	write := func(replica string, at, started time.Time, records, calls float64) {
		data := map[string]string{gateway.UsageReportedAt: strconv.FormatInt(at.UnixMilli(), 10),
			gateway.UsageStartedAt: strconv.FormatInt(started.UnixMilli(), 10),
			"finance.reconciler":   fmt.Sprintf("%g %g %g", records, calls, calls*math.Log1p(10))}
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "custos-usage-" + replica}, cm); err != nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "custos-usage-" + replica,
				Labels: map[string]string{gateway.UsageLabel: "gateway"}}, Data: data}
			g.Expect(c.Create(ctx, cm)).To(Succeed())
			return
		}
		cm.Data = data
		g.Expect(c.Update(ctx, cm)).To(Succeed())
	}
	complete := false
	took := func() breaker.Observation {
		obs, ok, err := r.Took(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		complete = ok
		return obs[agent]
	}
	start := clk.Now().Add(-time.Hour) // both replicas have run an hour
	at := clk.Now()
	write("a", at, start, 6000, 600)
	write("b", at, start, 3000, 300)
	g.Expect(took()).To(Equal(breaker.Observation{}), "a new leader: nothing of the hour before")
	g.Expect(complete).To(BeFalse(), "a new leader's first tick is short of what was taken: not learned")

	// A minute on, 100 records and 10 calls more on each.
	at = at.Add(time.Minute)
	clk.SetTime(at.Add(time.Second))
	write("a", at, start, 6100, 610)
	write("b", at, start, 3100, 310)
	g.Expect(took().Records).To(BeNumerically("~", 200, 0.01))
	g.Expect(took().Calls).To(BeNumerically("~", 20, 0.01), "both replicas, a minute each")
	g.Expect(complete).To(BeTrue())

	// b reports every two minutes from here: a minute without its report
	// takes its last rate; a reports every minute, at half the rate.
	for i := 1; i <= 2; i++ {
		at = at.Add(time.Minute)
		clk.SetTime(at.Add(time.Second))
		write("a", at, start, 6100+50*float64(i), 610+5*float64(i))
		if i == 2 {
			write("b", at, start, 3300, 330)
		}
		g.Expect(took().Records).To(BeNumerically("~", 150, 0.01), "minute %d", i)
	}
	// b stops reporting: two ticks of its rate, then nothing.
	for i, want := range []float64{150, 150, 50} {
		at = at.Add(time.Minute)
		clk.SetTime(at.Add(time.Second))
		write("a", at, start, 6250+50*float64(i), 625+5*float64(i))
		g.Expect(took().Records).To(BeNumerically("~", want, 0.01), "tick %d without b", i)
	}
	// b's process started again 30 s ago, under the same name: from zero.
	at = at.Add(time.Minute)
	clk.SetTime(at.Add(time.Second))
	write("a", at, start, 6400, 640)
	write("b", at, at.Add(-30*time.Second), 50, 5)
	g.Expect(took().Records).To(BeNumerically("~", 50+100, 0.01), "b's 50 in 30 s: 100 a minute")
	// A new replica, started 20 s ago.
	at = at.Add(time.Minute)
	clk.SetTime(at.Add(time.Second))
	write("a", at, start, 6450, 645)
	write("b", at, at.Add(-90*time.Second), 150, 15)
	write("c", at, at.Add(-20*time.Second), 40, 4)
	g.Expect(took().Records).To(BeNumerically("~", 50+100+120, 0.01))
	g.Expect(complete).To(BeTrue(), "a new replica counts from its start")

	// Five minutes later only a reports: b's and c's reports are stale,
	// nothing; an hour later they are deleted.
	clk.SetTime(at.Add(6 * time.Minute))
	write("a", clk.Now(), start, 6750, 675)
	g.Expect(took().Records).To(BeNumerically("~", 50, 0.01), "a's 300 in 6 minutes; b and c stale")
	clk.SetTime(at.Add(61 * time.Minute))
	write("a", clk.Now(), start, 9700, 970)
	took()
	var left corev1.ConfigMapList
	g.Expect(c.List(ctx, &left, client.InNamespace(ns))).To(Succeed())
	var names []string
	for _, cm := range left.Items {
		if cm.Labels[gateway.UsageLabel] != "" {
			names = append(names, cm.Name)
		}
	}
	g.Expect(names).To(ConsistOf("custos-usage-a"))
}
