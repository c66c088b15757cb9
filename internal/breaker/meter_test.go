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
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/breaker"
	"github.com/custos-dev/custos/test/fixtures"
)

var agentKey = breaker.Key{Namespace: "finance-agents", Name: "reconciler"}

// ledgers are the Ledgers the Meter's tests run on: in memory, and
// ConfigMaps on a real API server.
var ledgers = []struct {
	name string
	new  func(t *testing.T) breaker.Ledger
}{
	{"memory", func(*testing.T) breaker.Ledger { return &breaker.MemoryLedger{} }},
	{"configmap", configMapLedger},
}

// serve plays a gateway replica's calls: each result of 1..maxResult
// records is served only when the meter takes it, and counted as served.
// It stops at the first refusal, and returns the refusals.
func serve(t *testing.T, m *breaker.Meter, limits breaker.Limits, calls, maxResult int, seed uint64, served *atomic.Int64) *breaker.Exceeded {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	for range calls {
		if e, err := m.Take(context.Background(), agentKey, limits, breaker.Usage{Calls: 1}); err != nil || e != nil {
			if err != nil {
				t.Error(err)
			}
			return e
		}
		n := int64(1 + r.IntN(maxResult))
		e, err := m.Take(context.Background(), agentKey, limits, breaker.Usage{Records: n, Bytes: 100 * n})
		if err != nil {
			t.Error(err)
			return nil
		}
		if e != nil {
			return e
		}
		served.Add(n)
	}
	return nil
}

// Two replicas, one of them restarted half way (what it held is lost, not
// given back), serve one agent's calls against one ledger: together they
// never serve a record past the day's cap, and stop short of it by no more
// than what the lost replica held.
func TestMeterServesNoRecordPastACapAcrossReplicasAndARestart(t *testing.T) {
	for _, ledger := range ledgers {
		t.Run(ledger.name, func(t *testing.T) {
			g := NewWithT(t)
			l := ledger.new(t)
			clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC))
			limits := breaker.Limits{Day: breaker.Usage{Records: 2000}}
			var served atomic.Int64
			var wg sync.WaitGroup
			exceeded := make([]*breaker.Exceeded, 3)
			run := func(i int, m *breaker.Meter, calls int) {
				defer wg.Done()
				exceeded[i] = serve(t, m, limits, calls, 40, uint64(i+1), &served)
			}
			a, b := &breaker.Meter{Ledger: l, Clock: clk}, &breaker.Meter{Ledger: l, Clock: clk}
			wg.Add(2)
			go run(0, a, 20)
			go run(1, b, 1000)
			wg.Wait()
			// a stops (a crash: nothing given back); a new replica starts.
			wg.Add(1)
			go run(2, &breaker.Meter{Ledger: l, Clock: clk}, 1000)
			wg.Wait()
			g.Expect(served.Load()).To(BeNumerically("<=", 2000), "no record past the cap")
			// The crashed replica held at most a chunk, and each replica stops
			// at a result that would not fit (at most 40 records).
			g.Expect(served.Load()).To(BeNumerically(">=", 2000-2000/16-3*40), "the cap is not reached much early")
			for _, e := range exceeded[1:] {
				g.Expect(e).NotTo(BeNil())
				g.Expect(*e).To(MatchFields(IgnoreExtras, Fields{"Window": Equal(breaker.Day), "Signal": Equal(breaker.SignalRecords), "Limit": BeEquivalentTo(2000)}))
				g.Expect(e.Observed).To(BeNumerically(">", 2000))
			}
		})
	}
}

// A minute's cap starts again each minute; the day's goes on.
func TestMeterWindows(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 7, 23, 58, 30, 0, time.UTC))
	m := &breaker.Meter{Ledger: &breaker.MemoryLedger{}, Clock: clk}
	limits := breaker.Limits{Minute: breaker.Usage{Calls: 3}, Day: breaker.Usage{Calls: 5}}
	take := func() *breaker.Exceeded {
		e, err := m.Take(context.Background(), agentKey, limits, breaker.Usage{Calls: 1})
		g.Expect(err).NotTo(HaveOccurred())
		return e
	}
	for range 3 {
		g.Expect(take()).To(BeNil())
	}
	g.Expect(take()).To(PointTo(MatchFields(IgnoreExtras, Fields{"Window": Equal(breaker.Minute), "Signal": Equal(breaker.SignalCalls), "Observed": BeEquivalentTo(4)})))
	clk.SetTime(clk.Now().Add(time.Minute))
	g.Expect(take()).To(BeNil())
	g.Expect(take()).To(BeNil())
	e := take()
	g.Expect(e).To(PointTo(MatchFields(IgnoreExtras, Fields{"Window": Equal(breaker.Day), "Limit": BeEquivalentTo(5)})))
	g.Expect(e.Describe()).To(Equal("6 calls this day, over the cap of 5 a day"))
	// Midnight (UTC): a new day.
	clk.SetTime(time.Date(2026, 12, 8, 0, 0, 1, 0, time.UTC))
	g.Expect(take()).To(BeNil())
}

// A replica that stops cleanly gives back what it held and did not use,
// so that another may serve it.
func TestMeterRelease(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC))
	l := &breaker.MemoryLedger{}
	limits := breaker.Limits{Day: breaker.Usage{Records: 160}}
	a := &breaker.Meter{Ledger: l, Clock: clk}
	e, err := a.Take(context.Background(), agentKey, limits, breaker.Usage{Records: 1})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e).To(BeNil())
	g.Expect(a.Release(context.Background())).To(Succeed())
	b := &breaker.Meter{Ledger: l, Clock: clk}
	e, err = b.Take(context.Background(), agentKey, limits, breaker.Usage{Records: 159})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e).To(BeNil(), "a's unused 9 records were given back")
	e, err = b.Take(context.Background(), agentKey, limits, breaker.Usage{Records: 1})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e).NotTo(BeNil())
}

// The caps in force are the lowest of the boundaries' and the Agent's.
func TestLimitsOf(t *testing.T) {
	g := NewWithT(t)
	b1 := fixtures.DataBoundary("t")
	b1.Spec.Caps = &custosv1alpha1.AgentCaps{PerDay: &custosv1alpha1.CapLimits{Records: ptr.To[int64](10000), Calls: ptr.To[int64](500)}}
	b2 := fixtures.DataBoundary("t")
	b2.Spec.Caps = &custosv1alpha1.AgentCaps{PerDay: &custosv1alpha1.CapLimits{Records: ptr.To[int64](8000)}}
	agent := fixtures.Agent("ns", "a", "t")
	agent.Spec.Caps = &custosv1alpha1.AgentCaps{PerMinute: &custosv1alpha1.CapLimits{Bytes: ptr.To[int64](1 << 20)},
		PerDay: &custosv1alpha1.CapLimits{Calls: ptr.To[int64](600)}}
	g.Expect(breaker.LimitsOf(agent, b1, b2)).To(Equal(breaker.Limits{
		Minute: breaker.Usage{Bytes: 1 << 20},
		Day:    breaker.Usage{Records: 8000, Calls: 500},
	}))
	g.Expect(breaker.LimitsOf(nil).None()).To(BeTrue())
}

// Across midnight, a replica whose clock is two seconds behind reserves in
// the day it is in, and never over the new day's totals: neither day is
// served past its cap.
func TestMeterAcrossTheDayWithClocksApart(t *testing.T) {
	for _, ledger := range ledgers {
		t.Run(ledger.name, func(t *testing.T) {
			g := NewWithT(t)
			l := ledger.new(t)
			limits := breaker.Limits{Day: breaker.Usage{Records: 1000}}
			midnight := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
			behind := clocktesting.NewFakePassiveClock(midnight.Add(-2 * time.Second))
			ahead := clocktesting.NewFakePassiveClock(midnight.Add(time.Second))
			a, b := &breaker.Meter{Ledger: l, Clock: behind}, &breaker.Meter{Ledger: l, Clock: ahead}
			served := map[*breaker.Meter]int64{}
			take := func(m *breaker.Meter) bool {
				e, err := m.Take(context.Background(), agentKey, limits, breaker.Usage{Records: 10})
				g.Expect(err).NotTo(HaveOccurred())
				if e == nil {
					served[m] += 10
				}
				return e == nil
			}
			// Turn about: a in the old day, b in the new one.
			for i := 0; i < 400; i++ {
				take(a)
				take(b)
			}
			g.Expect(served[a]).To(BeNumerically("<=", 1000), "the old day")
			g.Expect(served[b]).To(BeNumerically("<=", 1000), "the new day")
			g.Expect(served[b]).To(BeNumerically(">=", 900), "the new day's cap is not eaten by the old")
		})
	}
}

// Four replicas serving one agent in turn reach its cap only a little
// early: near a cap the chunks they hold shrink.
func TestMeterReplicasReachTheCapNearlyWhole(t *testing.T) {
	g := NewWithT(t)
	l := &breaker.MemoryLedger{}
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 7, 9, 30, 5, 0, time.UTC))
	limits := breaker.Limits{Minute: breaker.Usage{Calls: 120}}
	meters := make([]*breaker.Meter, 4)
	for i := range meters {
		meters[i] = &breaker.Meter{Ledger: l, Clock: clk}
	}
	calls := 0
	for ; calls < 200; calls++ {
		e, err := meters[calls%4].Take(context.Background(), agentKey, limits, breaker.Usage{Calls: 1})
		g.Expect(err).NotTo(HaveOccurred())
		if e != nil {
			g.Expect(e.Observed).To(BeNumerically(">", 120))
			break
		}
	}
	t.Logf("frozen after %d of 120 calls", calls)
	g.Expect(calls).To(BeNumerically(">=", 112), "the cap was reached far too early: other replicas held too much")
	g.Expect(calls).To(BeNumerically("<=", 120))
}
