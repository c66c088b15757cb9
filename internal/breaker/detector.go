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

package breaker

import (
	"math"
	"time"
)

// The signals the breaker watches, in the order of Observation's members.
const (
	signalRecords = iota
	signalCalls
	signalPerCall
	signals
)

// SignalRecordsPerCall is the breaker's third signal: records per call,
// which a burst of legitimate work does not move and a query widened to
// take more does.
const SignalRecordsPerCall = "records per call"

// slots is the breaker's seasons: the hour of the day (UTC), on a weekday
// or on a weekend.
const slots = 48

func slotOf(t time.Time) int {
	t = t.UTC()
	slot := t.Hour()
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		slot += 24
	}
	return slot
}

// Observation is what an agent took in one tick: records returned and
// calls made, every replica's together.
type Observation struct {
	Records, Calls float64
	// LogRecords is the sum, over the tick's calls, of log(1+records of
	// the call): records per call on a log scale, call by call, whose
	// mean a heavy-tailed result does not drag as it drags the mean of
	// records. 0 when not counted (the breaker then takes the log of
	// records per call).
	LogRecords float64
}

// at is what the breaker learns of a signal: its logarithm. An agent
// that stops behaving like itself takes a multiple of what it takes
// (sixfold, not a hundred more), which is a shift on a log scale whatever
// its volume; and a tick's records are a sum of heavy-tailed results,
// whose spread would drown a sixfold rise, while their logarithm's does
// not.
func (o Observation) at(signal int) float64 {
	if signal == signalPerCall && o.LogRecords > 0 {
		return o.LogRecords / o.Calls
	}
	return math.Log1p(o.linear(signal))
}

func (o Observation) linear(signal int) float64 {
	switch signal {
	case signalRecords:
		return o.Records
	case signalCalls:
		return o.Calls
	}
	return o.Records / o.Calls
}

// Floor keeps a quiet agent from tripping on small numbers: its baseline is
// at least MinMean per tick, its spread at least MinSpread.
type Floor struct {
	MinMean, MinSpread float64
}

// DetectorParams are the breaker's settings. DefaultDetectorParams are
// what Custos runs, and what `make replay-risk` judges.
type DetectorParams struct {
	// Tick is how often counts are taken.
	Tick time.Duration
	// WarmUp is how long an agent is learned before the breaker may
	// freeze it (caps alone freeze it then).
	WarmUp time.Duration
	// ObserveAfter: from then on in the warm-up, evidence accumulates and
	// a trip is a Trip with WarmUp set, which the breaker records and acts
	// on as in Observe mode (a new agent's first days are observed).
	ObserveAfter time.Duration
	// Memory is how many ticks of a slot the baseline remembers (its
	// exponential weights' horizon).
	Memory float64
	// K is the CUSUM's allowance per tick, in spreads, per signal:
	// excess below it does not accumulate.
	K [signals]float64
	// H is the evidence, in spreads, at which the breaker trips.
	H float64
	// ZMax bounds one tick's evidence, so that no single oversized
	// result trips the breaker alone (ZMax - K < H).
	ZMax float64
	// PauseAt: nothing is learned while the evidence is at least this
	// share of H (an anomaly is not learned as normal; the upper tail of
	// normal is).
	PauseAt float64
	// PauseFor is the longest learning stays paused.
	PauseFor time.Duration
	// Floors, per signal (records, calls).
	Floors [signals]Floor
	// CallsRatio, when above 1, has the calls' evidence be the
	// log-likelihood ratio of a rate CallsRatio times the baseline's (a
	// count's, over its dispersion) rather than spreads above a log
	// baseline.
	CallsRatio float64
	// CallsScale scales that ratio into evidence.
	CallsScale float64
	// Ratio and RatioFor: records above Ratio times the baseline in every
	// minute (the last minute's, at each tick) for RatioFor trip as well.
	Ratio    float64
	RatioFor time.Duration
	// RatioFloor is the least baseline, in records per tick, the ratio
	// rule compares with.
	RatioFloor float64
}

// DefaultDetectorParams are the breaker's settings.
var DefaultDetectorParams = DetectorParams{
	Tick:         15 * time.Second,
	WarmUp:       7 * 24 * time.Hour,
	ObserveAfter: 24 * time.Hour,
	Memory:       1200,
	K:            [signals]float64{2, 2, 1.25},
	H:            8,
	ZMax:         3,
	PauseAt:      0.5,
	PauseFor:     time.Hour,
	// On a log scale: a quiet agent's records are taken as at least 50 a
	// tick, its calls as at least 0.6, and no spread as less than half a
	// doubling (a third for records per call, a mean of draws).
	Floors: [signals]Floor{{MinMean: 3.9, MinSpread: 0.5}, {MinMean: 0.5, MinSpread: 0.5}, {MinMean: 0, MinSpread: 0.3}},
	// Calls: evidence for a rate twelve times the baseline's, at half
	// weight: legitimate bursts of up to three times drift it down.
	CallsRatio: 12,
	CallsScale: 0.5,
	Ratio:      5,
	RatioFor:   10 * time.Minute,
	RatioFloor: 50,
}

// Trip is the breaker's verdict on an agent.
type Trip struct {
	// Trigger is "Trend" (the CUSUM) or "Ratio".
	Trigger string
	// Signal is SignalRecords or SignalCalls.
	Signal string
	// Observed and Baseline are the last tick's (Trend) or the window's
	// (Ratio) counts, and what the baseline expected.
	Observed, Baseline float64
	// Evidence is the CUSUM's sum, in spreads (Trend).
	Evidence float64
	// WarmUp: the agent is in its first days, observed whatever the mode.
	WarmUp bool
}

// Watch is how one agent is watched, within the DetectorParams.
type Watch struct {
	// H is the evidence that trips it; the params' H when 0.
	H float64
	// Allow is an allowance in force: the agent may take Allow times its
	// baseline before evidence accumulates, and nothing is learned. None
	// when at most 1.
	Allow float64
}

// scaled is what an allowance of f leaves of x: its records and calls
// divided by f, and each call's log(1 + records) less log f.
func (o Observation) scaled(f float64) Observation {
	lr := o.LogRecords
	if lr > 0 {
		lr = max(0, lr-o.Calls*math.Log(f)) / f
	}
	return Observation{Records: o.Records / f, Calls: o.Calls / f, LogRecords: lr}
}

// AgentState is what the breaker keeps of one agent: its seasonal
// baseline per signal and slot, the evidence accumulating, and the ratio
// rule's window. About 1 KiB.
type AgentState struct {
	baseline [signals][slots]slotStat
	// linear is the records' (for the ratio rule) and calls' (for their
	// rate's evidence) baselines as counted.
	linear   [2][slots]slotStat
	evidence [signals]float64
	started  time.Time
	// The ratio rule: the last minute's records and baseline, per tick,
	// and how many ticks in a row they were above the ratio.
	ring     []float64
	ringBase []float64
	ringAt   int
	ringSum  float64
	baseSum  float64
	ratioRun int
	// paused is how many ticks in a row learning has been paused.
	paused int
}

type slotStat struct {
	mean, vari float64
	n          float64
}

// expect is the slot's mean and spread (its standard deviation, never
// below the floor).
func (s *slotStat) expect(f Floor) (mean, spread float64) {
	return max(s.mean, f.MinMean), max(math.Sqrt(s.vari), f.MinSpread)
}

func (s *slotStat) learn(x, memory float64) { s.learnWeighted(x, 1, memory) }

// learnWeighted learns x, a mean of w draws: its deviation counts as w
// draws' (so that the spread is one draw's).
func (s *slotStat) learnWeighted(x, w, memory float64) {
	s.n++
	a := max(1/s.n, 1/memory)
	if s.n == 1 {
		s.mean, s.vari = x, 0
		return
	}
	d := x - s.mean
	s.mean += a * d
	s.vari = (1 - a) * (s.vari + a*d*d*w)
}

// Reset forgets the evidence (after a trip, once the freeze is lifted);
// the baseline stays.
func (st *AgentState) Reset() {
	st.evidence = [signals]float64{}
	for i := range st.ring {
		st.ring[i], st.ringBase[i] = 0, 0
	}
	st.ringSum, st.baseSum, st.ratioRun, st.paused = 0, 0, 0, 0
}

// Observe takes one tick of an agent's counts at t and returns a Trip when
// the evidence is enough; the state learns the tick unless it is
// anomalous.
func (p *DetectorParams) Observe(st *AgentState, t time.Time, x Observation) *Trip {
	return p.ObserveWith(st, t, x, Watch{})
}

// ObserveWith is Observe for an agent watched as w.
func (p *DetectorParams) ObserveWith(st *AgentState, t time.Time, x Observation, w Watch) *Trip {
	h := p.H
	if w.H > 0 {
		h = w.H
	}
	allowed := w.Allow > 1
	if allowed {
		x = x.scaled(w.Allow)
	}
	if st.started.IsZero() {
		st.started = t
	}
	if n := max(1, int(time.Minute/p.Tick)); len(st.ring) != n {
		// The first tick, or a state kept under another tick.
		st.ring, st.ringBase = make([]float64, n), make([]float64, n)
		st.ringAt, st.ringSum, st.baseSum, st.ratioRun = 0, 0, 0, 0
	}
	warm := t.Sub(st.started) >= p.WarmUp
	// In the warm-up everything is learned; from ObserveAfter on, evidence
	// accumulates, and a trip is observed.
	watching := warm || (p.ObserveAfter > 0 && t.Sub(st.started) >= p.ObserveAfter)
	slot := slotOf(t)
	var trip *Trip
	anomalous := false
	var learn [signals]float64
	for sig := range signals {
		s := &st.baseline[sig][slot]
		if sig == signalPerCall && x.Calls == 0 {
			// No call, nothing to say of records per call.
			learn[sig] = math.NaN()
			continue
		}
		v := x.at(sig)
		if s.n == 0 {
			// The slot's first tick: nothing to compare it with (nor to
			// learn, in an allowance).
			learn[sig] = math.NaN()
			if !allowed {
				s.learn(v, p.Memory)
			}
			continue
		}
		mean, spread := s.expect(p.Floors[sig])
		if sig == signalPerCall {
			// A mean of x.Calls calls': its spread shrinks with them.
			spread /= math.Sqrt(x.Calls)
		}
		step := min((v-mean)/spread, p.ZMax) - p.K[sig]
		if lc := &st.linear[signalCalls][slot]; sig == signalCalls && p.CallsRatio > 1 && lc.n > 0 {
			// Calls are counts: the log-likelihood ratio of a rate
			// CallsRatio times the baseline's against the baseline's,
			// scaled down by their overdispersion. Its drift is negative
			// below about a third of CallsRatio, positive above.
			// At least half a call a tick (the calls' floor, taken as a
			// count).
			lam := max(lc.mean, p.Floors[signalCalls].MinMean)
			phi := max(1, lc.vari/lam)
			step = min((x.Calls*math.Log(p.CallsRatio)-lam*(p.CallsRatio-1))/phi*p.CallsScale, p.ZMax)
			mean = math.Log1p(lam)
		}
		e := 0.0
		if watching {
			e = max(0, st.evidence[sig]+step)
		}
		st.evidence[sig] = e
		if warm && e >= p.PauseAt*h {
			anomalous = true
		}
		learn[sig] = v
		if watching && e >= h && trip == nil {
			trip = &Trip{Trigger: "Trend", Signal: signalName(sig), Observed: x.linear(sig), Baseline: math.Expm1(mean), Evidence: e, WarmUp: !warm}
		}
		if sig == signalRecords {
			i := st.ringAt
			lin, linMean := x.Records, st.linear[signalRecords][slot].mean
			st.ringSum += lin - st.ring[i]
			st.baseSum += linMean - st.ringBase[i]
			st.ring[i], st.ringBase[i] = lin, linMean
			st.ringAt = (i + 1) % len(st.ring)
			if st.ringSum > p.Ratio*max(st.baseSum, p.RatioFloor*float64(len(st.ring))) {
				st.ratioRun++
				anomalous = true
			} else {
				st.ratioRun = 0
			}
			if watching && trip == nil && time.Duration(st.ratioRun)*p.Tick >= p.RatioFor {
				trip = &Trip{Trigger: "Ratio", Signal: SignalRecords, Observed: st.ringSum, Baseline: st.baseSum, WarmUp: !warm}
			}
		}
	}
	if anomalous {
		st.paused++
	} else {
		st.paused = 0
	}
	// Evidence that neither trips nor fades (a new level about K spreads
	// up) would pause learning for ever: after PauseFor the new level is
	// learned as normal.
	if allowed {
		// A batch window is not what the agent normally takes then.
		return trip
	}
	if !anomalous || time.Duration(st.paused)*p.Tick > p.PauseFor {
		st.linear[signalRecords][slot].learn(x.Records, p.Memory)
		st.linear[signalCalls][slot].learn(x.Calls, p.Memory)
		for sig := range signals {
			if math.IsNaN(learn[sig]) {
				continue
			}
			if sig == signalPerCall {
				st.baseline[sig][slot].learnWeighted(learn[sig], x.Calls, p.Memory)
			} else {
				st.baseline[sig][slot].learn(learn[sig], p.Memory)
			}
		}
	}
	return trip
}

func signalName(sig int) string {
	switch sig {
	case signalRecords:
		return SignalRecords
	case signalCalls:
		return SignalCalls
	}
	return SignalRecordsPerCall
}

// ZScore is the plain detector the breaker is measured against: one EWMA
// mean and variance per signal, no seasons, tripping when z >= Z for For.
// It must not freeze anyone: it is here to be beaten, in make
// replay-risk.
type ZScore struct {
	Alpha, Z float64
	For      int // ticks in a row
}

// ZState is ZScore's state of one agent.
type ZState struct {
	mean, vari [signals]float64
	n          int
	run        [signals]int
}

// Observe takes one tick; a non-nil Trip is what the plain z-score would
// have frozen.
func (d ZScore) Observe(st *ZState, warm bool, x Observation) *Trip {
	var trip *Trip
	st.n++
	for sig := range signalPerCall {
		v := x.linear(sig)
		if st.n == 1 {
			st.mean[sig] = v
			continue
		}
		sd := math.Sqrt(st.vari[sig])
		z := 0.0
		if sd > 0 {
			z = (v - st.mean[sig]) / sd
		}
		if z >= d.Z {
			st.run[sig]++
		} else {
			st.run[sig] = 0
		}
		if warm && st.run[sig] >= d.For && trip == nil {
			trip = &Trip{Trigger: "ZScore", Signal: signalName(sig), Observed: v, Baseline: st.mean[sig], Evidence: z}
		}
		diff := v - st.mean[sig]
		st.mean[sig] += d.Alpha * diff
		st.vari[sig] = (1 - d.Alpha) * (st.vari[sig] + d.Alpha*diff*diff)
	}
	return trip
}

// ResetRuns forgets the runs after a trip.
func (st *ZState) ResetRuns() { st.run = [signals]int{} }

// View is what a person sees of an agent's state (kubectl custos top).
type View struct {
	// LastMinute is the records the agent took in the last minute;
	// Expected, what its baseline expected of that minute.
	LastMinute, Expected float64
	// Evidence is the most of any signal's evidence, in spreads, and
	// Signal that signal's name.
	Evidence float64
	Signal   string
	// Started is when the breaker began learning the agent.
	Started time.Time
}

// View is the state as a person sees it.
func (st *AgentState) View() View {
	v := View{LastMinute: st.ringSum, Expected: st.baseSum, Started: st.started, Signal: SignalRecords}
	for sig := range signals {
		if st.evidence[sig] > v.Evidence {
			v.Evidence, v.Signal = st.evidence[sig], signalName(sig)
		}
	}
	return v
}
