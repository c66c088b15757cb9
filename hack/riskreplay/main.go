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

// Command riskreplay judges the breaker (internal/breaker's detector, the
// code Custos runs) on a seeded synthetic replay, side by side with a plain
// EWMA z-score: agents with daily and weekly shapes, heavy-tailed records
// per call, legitimate 1.5-3x bursts, and injected 6x ten-minute spikes in
// working hours. It prints the catch rate, the median and p90 time to
// detect, the records taken before the trip, false trips per 168,000
// agent-hours and the share of agents never falsely frozen, per seed and
// over the judging seeds (never used for tuning). make replay-risk runs it.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/custos-dev/custos/internal/breaker"
)

// Config is the replay's world.
type Config struct {
	Agents      int
	LearnDays   int
	MeasureDays int
	Spikes      int           // injected per seed, in the measured days
	SpikeFactor float64       // 6
	SpikeFor    time.Duration // 10m
	FrozenFor   time.Duration // how long a person takes to lift a freeze
	KillEvery   time.Duration // the breaker's leader killed this often
	KillGap     time.Duration // ticks nobody observes while the leader changes
}

var debug = os.Getenv("RISKREPLAY_DEBUG") != ""

var start = time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC) // a Monday

func main() {
	cfg := Config{}
	flag.IntVar(&cfg.Agents, "agents", 1000, "Agents replayed.")
	flag.IntVar(&cfg.LearnDays, "learn-days", 7, "Days learned before any trip counts (the breaker's warm-up).")
	flag.IntVar(&cfg.MeasureDays, "measure-days", 7, "Days measured.")
	flag.IntVar(&cfg.Spikes, "spikes", 250, "6x spikes injected per seed, on distinct agents, in working hours of the measured days.")
	flag.Float64Var(&cfg.SpikeFactor, "spike-factor", 6, "How much a spike multiplies what the agent takes.")
	flag.DurationVar(&cfg.SpikeFor, "spike-for", 10*time.Minute, "How long a spike lasts.")
	flag.DurationVar(&cfg.FrozenFor, "frozen-for", 30*time.Minute, "How long a trip keeps an agent frozen before a person lifts it.")
	flag.DurationVar(&cfg.KillEvery, "kill-every", 47*time.Minute, "How often the breaker's leader is killed in the third row (0: never).")
	flag.DurationVar(&cfg.KillGap, "kill-gap", 45*time.Second, "Ticks nobody observes when the leader changes: the lease taken over, and the new leader's first tick, which reads the reports and learns nothing.")
	flag.DurationVar(&saveEvery, "save-every", saveEvery, "How often the breaker's leader keeps every agent's whole state (its Runner's SaveEvery); the hot parts are kept every tick.")
	p := &breaker.DefaultDetectorParams
	flag.DurationVar(&p.Tick, "tick", p.Tick, "The breaker's tick (a multiple of 15s), for tuning.")
	flag.Float64Var(&p.K[0], "k", p.K[0], "The breaker's K for records and calls, for tuning.")
	flag.Float64Var(&p.K[2], "k-percall", p.K[2], "The breaker's K for records per call, for tuning.")
	flag.Float64Var(&p.Floors[0].MinMean, "records-floor", p.Floors[0].MinMean, "The breaker's records floor (log scale), for tuning.")
	flag.Float64Var(&p.H, "h", p.H, "The breaker's H, for tuning.")
	flag.Float64Var(&p.ZMax, "zmax", p.ZMax, "The breaker's ZMax, for tuning.")
	flag.Float64Var(&p.Memory, "memory", p.Memory, "The breaker's Memory, for tuning.")
	flag.Float64Var(&p.PauseAt, "pause-at", p.PauseAt, "The breaker's PauseAt, for tuning.")
	flag.Float64Var(&p.Ratio, "ratio", p.Ratio, "The breaker's Ratio, for tuning.")
	flag.Float64Var(&p.CallsScale, "calls-scale", p.CallsScale, "The breaker's CallsScale, for tuning.")
	flag.Float64Var(&p.CallsRatio, "calls-ratio", p.CallsRatio, "The breaker's CallsRatio (0: calls in spreads above a log baseline), for tuning.")
	flag.Float64Var(&p.Floors[0].MinSpread, "records-spread", p.Floors[0].MinSpread, "The breaker's records spread floor (log scale), for tuning.")
	flag.Float64Var(&p.Floors[1].MinSpread, "calls-spread", p.Floors[1].MinSpread, "The breaker's calls spread floor (log scale), for tuning.")
	flag.Float64Var(&p.Floors[2].MinSpread, "percall-spread", p.Floors[2].MinSpread, "The breaker's records-per-call spread floor (log scale), for tuning.")
	tuning := flag.String("tuning-seeds", "1", "Seeds the parameters were tuned on (reported apart).")
	judging := flag.String("judging-seeds", "2,3", "Seeds never used for tuning: the verdict.")
	flag.Parse()
	p.K[1] = p.K[0]
	tune, err := seeds(*tuning)
	if err == nil {
		var judge []uint64
		judge, err = seeds(*judging)
		if err == nil {
			err = run(cfg, tune, judge)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "riskreplay:", err)
		os.Exit(1)
	}
}

func seeds(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seed %q: %w", f, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(cfg Config, tune, judge []uint64) error {
	fmt.Printf("replay: %d agents, %d learning + %d measured days at %s ticks, %d spikes of %gx for %s per seed, frozen %s per trip\n",
		cfg.Agents, cfg.LearnDays, cfg.MeasureDays, genTick, cfg.Spikes, cfg.SpikeFactor, cfg.SpikeFor, cfg.FrozenFor)
	fmt.Printf("breaker: %+v\n", breaker.DefaultDetectorParams)
	fmt.Printf("plain z-score: %+v\n\n", plainZ)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seeds\tdetector\tspikes\tcaught\tmedian s\tp90 s\texcess records p50\tfalse trips /168k agent-h\tagents never falsely frozen\t")
	var all [detectors]result
	for _, group := range []struct {
		name  string
		seeds []uint64
	}{{"tuning", tune}, {"judging", judge}} {
		var sum [detectors]result
		for _, seed := range group.seeds {
			t0 := time.Now()
			r := replay(cfg, seed)
			for i := range r {
				r[i].print(tw, fmt.Sprintf("seed %d", seed), cfg)
				sum[i].add(r[i])
			}
			fmt.Fprintf(os.Stderr, "seed %d replayed in %s\n", seed, time.Since(t0).Round(time.Millisecond))
		}
		if len(group.seeds) > 1 {
			for i := range sum {
				sum[i].print(tw, group.name+" "+joinSeeds(group.seeds), cfg)
			}
		}
		if group.name == "judging" {
			all = sum
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b := all[0]
	fmt.Printf("\njudged (the breaker, seeds never tuned on): caught %.1f%% (goal >= 80%%), median %.0f s (<= 90), false trips %.1f per 168,000 agent-hours (<= 10), never falsely frozen %.2f%% (>= 99%%)\n",
		100*b.catchRate(), b.quantile(0.5), b.falsePer168k(cfg), 100*b.neverFalse())
	if k := all[2]; cfg.KillEvery > 0 {
		fmt.Printf("the leader killed every %s (%s unobserved each time), judged: %d spikes caught without kills missed with them, %d false trips made with them only (goal 0 and 0); median %.0f s against %.0f\n",
			cfg.KillEvery, cfg.KillGap, k.killMissed, k.killFalse, k.quantile(0.5), b.quantile(0.5))
	}
	return nil
}

func joinSeeds(s []uint64) string {
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.FormatUint(n, 10)
	}
	return strings.Join(parts, ",")
}

// genTick is the generator's resolution; the detectors sum it over their
// own ticks.
const genTick = 15 * time.Second

// plainZ is the plain EWMA z-score over counts per minute: z >= 4 for 2
// minutes.
var plainZ = breaker.ZScore{Alpha: 0.01, Z: 4, For: 2}

// result is one detector's verdict over some seeds.
type result struct {
	name        string
	spikes      int
	detect      []float64 // seconds, of the caught spikes
	excess      []float64 // records taken above normal before the trip
	falseTrips  int
	agents      int
	falselyHeld int // agents falsely frozen at least once
	agentHours  float64
	// The leader killed: spikes caught without kills and missed with
	// them; false trips made with them and not without.
	killMissed, killFalse int
}

// detectors are the breaker, the plain z-score and the breaker with its
// leader killed.
const detectors = 3

func killedName(cfg Config) string {
	return "breaker, leader killed every " + strings.TrimSuffix(cfg.KillEvery.String(), "0s")
}

// keptState is what the breaker's StateStore keeps of an agent, as the
// Runner saves it: the whole state when breaker.WholeStateDue, the tick
// part at every other tick.
type keptState struct {
	all, tick     []byte
	allAt, tickAt time.Time
	saved         bool
}

// saveEvery is the Runner's default SaveEvery.
var saveEvery = 5 * time.Minute

func (k *keptState) save(st *breaker.AgentState, t time.Time) {
	if breaker.WholeStateDue(k.allAt, t, saveEvery) {
		k.all, _ = st.MarshalBinary()
		k.allAt, k.saved = t, true
		return
	}
	k.tick, k.tickAt = st.AppendTick(k.tick[:0], t), t
}

// restore is the new leader reading it (StateStore.Load).
func (k *keptState) restore(st *breaker.AgentState) {
	if !k.saved {
		*st = breaker.AgentState{}
		return
	}
	if err := st.UnmarshalBinary(k.all); err != nil {
		panic(err)
	}
	if k.tickAt.After(k.allAt) {
		if err := st.RestoreHot(k.tick); err != nil {
			panic(err)
		}
	}
}

func (r *result) add(o result) {
	r.name = o.name
	r.spikes += o.spikes
	r.detect = append(r.detect, o.detect...)
	r.excess = append(r.excess, o.excess...)
	r.falseTrips += o.falseTrips
	r.agents += o.agents
	r.falselyHeld += o.falselyHeld
	r.agentHours += o.agentHours
	r.killMissed += o.killMissed
	r.killFalse += o.killFalse
}

func (r *result) catchRate() float64 { return float64(len(r.detect)) / float64(max(1, r.spikes)) }

func (r *result) neverFalse() float64 {
	return 1 - float64(r.falselyHeld)/float64(max(1, r.agents))
}

func (r *result) falsePer168k(Config) float64 {
	return float64(r.falseTrips) * 168000 / max(1, r.agentHours)
}

func (r *result) quantile(q float64) float64 { return quantile(r.detect, q) }

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (r *result) print(tw *tabwriter.Writer, seeds string, cfg Config) {
	fmt.Fprintf(tw, "%s\t%s\t%d\t%d (%.1f%%)\t%.0f\t%.0f\t%.0f\t%.1f\t%.2f%%\t\n", seeds, r.name, r.spikes, len(r.detect), 100*r.catchRate(),
		r.quantile(0.5), r.quantile(0.9), quantile(r.excess, 0.5), r.falsePer168k(cfg), 100*r.neverFalse())
}

// spike is one injected anomaly: the agent takes factor times its
// records (by more records per call, or by more calls) for a while.
type spike struct {
	at, until time.Time
	moreCalls bool
}

// replay runs one seed: the breaker's result and the plain z-score's.
func replay(cfg Config, seed uint64) [detectors]result {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	// The spikes: distinct agents, weekdays of the measured days, 09:00 to
	// 16:50 UTC (working hours for every agent's shape).
	spikes := make(map[int]spike, cfg.Spikes)
	perm := rng.Perm(cfg.Agents)
	for _, a := range perm[:min(cfg.Spikes, cfg.Agents)] {
		var day time.Time
		for {
			day = start.AddDate(0, 0, cfg.LearnDays+rng.IntN(cfg.MeasureDays))
			if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
				break
			}
		}
		at := day.Add(9*time.Hour + time.Duration(rng.IntN(int(8*time.Hour-cfg.SpikeFor)/int(time.Minute)))*time.Minute)
		spikes[a] = spike{at: at, until: at.Add(cfg.SpikeFor), moreCalls: rng.IntN(2) == 0}
	}
	out := [detectors]result{{name: "breaker"}, {name: "z-score"}, {name: killedName(cfg)}}
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				sp, hasSpike := spikes[a]
				r := replayAgent(cfg, seed, a, sp, hasSpike)
				mu.Lock()
				for i := range out {
					out[i].add(r[i])
				}
				mu.Unlock()
			}
		}()
	}
	for a := range cfg.Agents {
		work <- a
	}
	close(work)
	wg.Wait()
	return out
}

// agentModel is one agent's behaviour.
type agentModel struct {
	callsPerMin     float64 // at its busiest
	recMu, recSigma float64 // records per call: lognormal
	flat            bool    // works around the clock
	night, weekend  float64 // its quiet hours' and weekend's share
	offset          int     // hours its day starts late
}

func newAgentModel(rng *rand.Rand) agentModel {
	return agentModel{
		callsPerMin: math.Exp(math.Log(4) + rng.NormFloat64()),
		recMu:       math.Log(2 + 48*rng.Float64()),
		recSigma:    0.8 + 0.6*rng.Float64(),
		flat:        rng.Float64() < 0.2,
		night:       0.05 + 0.15*rng.Float64(),
		weekend:     0.1 + 0.4*rng.Float64(),
		offset:      rng.IntN(3) - 1,
	}
}

// shape is the agent's activity at t, 1 at its busiest.
func (m agentModel) shape(t time.Time) float64 {
	if m.flat {
		return 0.8 + 0.2*math.Sin(2*math.Pi*float64(t.Hour()*60+t.Minute())/1440)
	}
	h := float64(t.Hour()-m.offset) + float64(t.Minute())/60
	var f float64
	switch {
	case h < 7 || h >= 20:
		f = m.night
	case h < 9:
		f = m.night + (1-m.night)*(h-7)/2
	case h >= 12 && h < 13:
		f = 0.7
	case h < 17:
		f = 1
	default:
		f = 1 - (1-m.night)*(h-17)/3
	}
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		f *= m.weekend
	}
	return f
}

func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// replayAgent runs one agent through both detectors.
func replayAgent(cfg Config, seed uint64, a int, sp spike, hasSpike bool) [detectors]result {
	rng := rand.New(rand.NewPCG(seed, uint64(a)+1))
	m := newAgentModel(rng)
	p := breaker.DefaultDetectorParams
	tick := genTick
	// The breaker sees sums over its own tick; the plain z-score, per
	// minute.
	type acc struct {
		x breaker.Observation
		n int
	}
	var agg [detectors]acc
	every := [detectors]int{max(1, int(p.Tick/genTick)), int(time.Minute / genTick), max(1, int(p.Tick/genTick))}
	days := cfg.LearnDays + cfg.MeasureDays
	measureFrom := start.AddDate(0, 0, cfg.LearnDays)
	end := start.AddDate(0, 0, days)

	var st breaker.AgentState
	var zs breaker.ZState
	out := [detectors]result{{name: "breaker", agents: 1}, {name: "z-score", agents: 1}, {name: killedName(cfg), agents: 1}}
	if hasSpike {
		for i := range out {
			out[i].spikes = 1
		}
	}
	// The breaker again, its leader killed every cfg.KillEvery: the new
	// leader goes on from what the last one kept (the whole state as of
	// its last save, the hot part as of its last tick), after a gap of
	// ticks nobody observed.
	var killed breaker.AgentState
	var kept keptState
	nextKill := measureFrom.Add(cfg.KillEvery / 3)
	var gapUntil time.Time
	falseTrips := [detectors]int{}
	var perCall []float64
	var frozenUntil [detectors]time.Time
	var caught [detectors]bool
	var falsely [detectors]bool
	var excess float64
	// A legitimate burst, at most one a day.
	var burstFrom, burstUntil time.Time
	burstFactor := 1.0
	for t := start; t.Before(end); t = t.Add(tick) {
		if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 {
			burstFrom, burstUntil = time.Time{}, time.Time{}
			if rng.Float64() < 0.5 {
				burstFactor = 1.5 + 1.5*rng.Float64()
				burstFrom = t.Add(8*time.Hour + time.Duration(rng.IntN(9*60))*time.Minute)
				burstUntil = burstFrom.Add(time.Duration(10+rng.IntN(80)) * time.Minute)
			}
		}
		lambda := m.callsPerMin * m.shape(t) * tick.Minutes()
		if !t.Before(burstFrom) && t.Before(burstUntil) {
			lambda *= burstFactor
		}
		inSpike := hasSpike && !t.Before(sp.at) && t.Before(sp.until)
		calls := poisson(rng, lambda)
		records, logRecords := 0.0, 0.0
		perCall = perCall[:0]
		for range calls {
			r := math.Round(math.Exp(m.recMu + m.recSigma*rng.NormFloat64()))
			records += r
			perCall = append(perCall, r)
		}
		if inSpike {
			// What the spike adds: (factor-1) times as much again.
			extraCalls, extraRecords := 0, 0.0
			if sp.moreCalls {
				extraCalls = poisson(rng, lambda*(cfg.SpikeFactor-1))
				for range extraCalls {
					r := math.Round(math.Exp(m.recMu + m.recSigma*rng.NormFloat64()))
					extraRecords += r
					perCall = append(perCall, r)
				}
			} else {
				extraRecords = records * (cfg.SpikeFactor - 1)
				for i := range perCall {
					perCall[i] *= cfg.SpikeFactor
				}
			}
			calls += extraCalls
			records += extraRecords
			excess += extraRecords
		}
		for _, r := range perCall {
			logRecords += math.Log1p(r)
		}
		x := breaker.Observation{Records: records, Calls: float64(calls), LogRecords: logRecords}
		measured := !t.Before(measureFrom)
		if measured {
			for i := range out {
				out[i].agentHours += tick.Hours()
			}
		}
		if cfg.KillEvery > 0 && !t.Before(nextKill) {
			kept.restore(&killed)
			gapUntil = t.Add(cfg.KillGap)
			nextKill = nextKill.Add(cfg.KillEvery)
		}
		for i := range detectors {
			if i == 2 && t.Before(gapUntil) {
				// The leader changing: these ticks are nobody's.
				agg[i] = acc{}
				continue
			}
			if t.Before(frozenUntil[i]) {
				agg[i] = acc{}
				continue
			}
			agg[i].x.Records += x.Records
			agg[i].x.Calls += x.Calls
			agg[i].x.LogRecords += x.LogRecords
			if agg[i].n++; agg[i].n < every[i] {
				continue
			}
			sum := agg[i].x
			agg[i] = acc{}
			var trip *breaker.Trip
			switch i {
			case 0:
				trip = p.Observe(&st, t, sum)
			case 1:
				trip = plainZ.Observe(&zs, measured, sum)
			default:
				trip = p.Observe(&killed, t, sum)
			}
			if trip != nil && trip.WarmUp {
				// A new agent's first days are observed: recorded, not
				// frozen (the Runner resets the evidence).
				trip = nil
				if i == 0 {
					st.Reset()
				} else {
					killed.Reset()
				}
			}
			if trip != nil {
				frozenUntil[i] = t.Add(cfg.FrozenFor)
				switch i {
				case 0:
					st.Reset()
				case 1:
					zs.ResetRuns()
				default:
					killed.Reset()
				}
			}
			if i == 2 {
				kept.save(&killed, t)
			}
			if trip == nil {
				continue
			}
			switch {
			case inSpike && !caught[i]:
				caught[i] = true
				out[i].detect = append(out[i].detect, t.Add(tick).Sub(sp.at).Seconds())
				out[i].excess = append(out[i].excess, excess)
			case hasSpike && !t.Before(sp.at) && t.Before(sp.until.Add(15*time.Minute)):
				// Late, but the spike's doing: neither a catch nor false.
			case measured:
				out[i].falseTrips++
				falseTrips[i]++
				falsely[i] = true
				if debug && i == 0 {
					fmt.Fprintf(os.Stderr, "false trip agent %d %s %s %+v model %+v\n", a, t.Format("Mon 15:04:05"), trip.Trigger, *trip, m)
				}
			}
		}
	}
	for i := range detectors {
		if falsely[i] {
			out[i].falselyHeld = 1
		}
	}
	// What the kills changed: a spike the breaker caught and missed with
	// them, false trips it made with them only.
	if caught[0] && !caught[2] {
		out[2].killMissed = 1
	}
	out[2].killFalse = max(0, falseTrips[2]-falseTrips[0])
	if debug && hasSpike && !caught[0] {
		fmt.Fprintf(os.Stderr, "missed agent %d %s moreCalls=%v model %+v\n", a, sp.at.Format("Mon 15:04"), sp.moreCalls, m)
	}
	return out
}
