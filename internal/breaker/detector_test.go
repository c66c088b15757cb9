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
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/custos-dev/custos/internal/breaker"
)

var monday = time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC)

// steady is an agent that calls about 10 times a tick, 20 records a call,
// around the clock.
func steady(rng *rand.Rand) breaker.Observation {
	calls := 0.0
	for range 20 {
		if rng.Float64() < 0.5 {
			calls++
		}
	}
	records := 0.0
	for range int(calls) {
		records += math.Round(math.Exp(math.Log(20) + 0.5*rng.NormFloat64()))
	}
	return breaker.Observation{Records: records, Calls: calls}
}

// learn feeds p a week and a day of the steady agent, and fails on any trip.
func learn(t *testing.T, p *breaker.DetectorParams, st *breaker.AgentState, rng *rand.Rand) time.Time {
	t.Helper()
	at := monday
	for ; at.Before(monday.Add(8 * 24 * time.Hour)); at = at.Add(p.Tick) {
		if trip := p.Observe(st, at, steady(rng)); trip != nil {
			t.Fatalf("a steady agent tripped at %s: %+v", at, trip)
		}
	}
	return at
}

// A sixfold rise in records per call, sustained, trips the breaker within a
// few ticks; the trip says which signal, what it saw and what it expected.
func TestDetectorTripsOnASustainedRise(t *testing.T) {
	p := breaker.DefaultDetectorParams
	rng := rand.New(rand.NewPCG(1, 2))
	var st breaker.AgentState
	at := learn(t, &p, &st, rng)
	for i := range 20 {
		x := steady(rng)
		x.Records *= 6
		if trip := p.Observe(&st, at, x); trip != nil {
			if i < 1 {
				t.Errorf("tripped on the first tick of the rise: %+v", trip)
			}
			if trip.Trigger != "Trend" || trip.Evidence < p.H || trip.Baseline <= 0 {
				t.Errorf("the trip: %+v", trip)
			}
			t.Logf("tripped after %d ticks: %+v", i+1, trip)
			return
		}
		at = at.Add(p.Tick)
	}
	t.Fatal("20 ticks of six times the records did not trip the breaker")
}

// One oversized result, however large, is not evidence enough; nor is
// anything before the warm-up ends.
func TestDetectorNeedsSustainedEvidence(t *testing.T) {
	p := breaker.DefaultDetectorParams
	rng := rand.New(rand.NewPCG(3, 4))
	var st breaker.AgentState
	at := learn(t, &p, &st, rng)
	x := steady(rng)
	x.Records *= 1000
	if trip := p.Observe(&st, at, x); trip != nil {
		t.Errorf("one oversized result tripped the breaker: %+v", trip)
	}
	for i := range 40 {
		if trip := p.Observe(&st, at.Add(time.Duration(i+1)*p.Tick), steady(rng)); trip != nil {
			t.Fatalf("tripped after the oversized result, on normal ticks: %+v", trip)
		}
	}

	var young breaker.AgentState
	for i := range 200 {
		x := steady(rng)
		if i > 100 {
			x.Records *= 50
		}
		if trip := p.Observe(&young, monday.Add(time.Duration(i)*p.Tick), x); trip != nil {
			t.Fatalf("tripped during the warm-up: %+v", trip)
		}
	}
}

// The ratio rule: records above Ratio times the baseline in every minute
// for RatioFor trip, even with the trend rule out of reach.
func TestDetectorRatioRule(t *testing.T) {
	p := breaker.DefaultDetectorParams
	p.H = math.Inf(1)
	rng := rand.New(rand.NewPCG(5, 6))
	var st breaker.AgentState
	at := learn(t, &p, &st, rng)
	start := at
	for ; at.Before(start.Add(p.RatioFor + 2*time.Minute)); at = at.Add(p.Tick) {
		x := steady(rng)
		x.Records *= 8
		if trip := p.Observe(&st, at, x); trip != nil {
			if trip.Trigger != "Ratio" || trip.Observed < p.Ratio*trip.Baseline {
				t.Errorf("the trip: %+v", trip)
			}
			if took := at.Add(p.Tick).Sub(start); took < p.RatioFor {
				t.Errorf("tripped after %s, before %s of evidence", took, p.RatioFor)
			}
			return
		}
	}
	t.Fatal("eight times the records for 12 minutes did not trip the ratio rule")
}

// The breaker's cost per tick for 10,000 agents (goal: 10 ms).
func BenchmarkDetectorTick10000Agents(b *testing.B) {
	p := breaker.DefaultDetectorParams
	rng := rand.New(rand.NewPCG(7, 8))
	agents := make([]breaker.AgentState, 10000)
	obs := make([]breaker.Observation, 1024)
	for i := range obs {
		obs[i] = steady(rng)
	}
	at := monday
	for i := range agents {
		p.Observe(&agents[i], at, obs[i%len(obs)])
	}
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		at = at.Add(p.Tick)
		for i := range agents {
			p.Observe(&agents[i], at, obs[(i+n)%len(obs)])
		}
	}
}

// The caps' cost on a gateway call: a call and its result counted from
// what the replica holds (goal: 1 µs).
func BenchmarkMeterTake(b *testing.B) {
	m := &breaker.Meter{Ledger: &breaker.MemoryLedger{}}
	limits := breaker.Limits{Minute: breaker.Usage{Records: 1 << 40, Calls: 1 << 40}, Day: breaker.Usage{Records: 1 << 50, Bytes: 1 << 50, Calls: 1 << 50}}
	ctx := context.Background()
	for b.Loop() {
		if e, err := m.Take(ctx, agentKey, limits, breaker.Usage{Calls: 1}); e != nil || err != nil {
			b.Fatal(e, err)
		}
		if e, err := m.Take(ctx, agentKey, limits, breaker.Usage{Records: 20, Bytes: 4000}); e != nil || err != nil {
			b.Fatal(e, err)
		}
	}
}

// Calls are counts: twice as many calls for an hour (a batch of legitimate
// work) drifts their evidence down; six times as many trips on calls
// within a few ticks, not on the first.
func TestDetectorCallsRate(t *testing.T) {
	p := breaker.DefaultDetectorParams
	rng := rand.New(rand.NewPCG(7, 8))
	var st breaker.AgentState
	at := learn(t, &p, &st, rng)
	times := func(x breaker.Observation, n float64) breaker.Observation {
		return breaker.Observation{Records: x.Records * n, Calls: x.Calls * n}
	}
	for end := at.Add(time.Hour); at.Before(end); at = at.Add(p.Tick) {
		if trip := p.Observe(&st, at, times(steady(rng), 2)); trip != nil && trip.Signal == breaker.SignalCalls {
			t.Fatalf("twice the calls tripped on calls: %+v", trip)
		}
	}
	st.Reset()
	for i := range 10 {
		trip := p.Observe(&st, at, times(steady(rng), 6))
		at = at.Add(p.Tick)
		if trip == nil {
			continue
		}
		if i < 1 || trip.Signal != breaker.SignalCalls || trip.Evidence < p.H {
			t.Fatalf("tick %d: %+v", i+1, trip)
		}
		t.Logf("tripped after %d ticks: %+v", i+1, trip)
		return
	}
	t.Fatal("ten ticks of six times the calls did not trip the breaker")
}
