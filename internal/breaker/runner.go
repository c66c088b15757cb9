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
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// usageLabel is the label of the gateway replicas' usage reports
// (internal/gateway's UsageLabel).
const usageLabel = "custos.dev/usage"

// Runner is the breaker in the manager (the leader alone): every tick it
// reads what each agent took through the gateway replicas (their usage
// reports, ConfigMaps custos-usage-<pod> of Namespace), runs the detector
// per agent, and freezes an agent it trips on: an AgentFreeze with trigger
// Trend or Ratio, citing the breaker.tripped record it wrote with the
// evidence (what it saw, what it expected). Its baselines are kept in
// Store: a new leader goes on from the state the last one's last tick
// left, instead of learning every agent again for a week.
type Runner struct {
	// Reports lists the usage reports (uncached: Namespace's only).
	Reports client.Reader
	// Agents lists the Agents (the manager's cache).
	Agents client.Reader
	// Client creates the AgentFreezes.
	Client    client.Client
	Namespace string
	Params    DetectorParams
	Audit     audit.Sequencer
	// AuditLogID names the manager's trail in a freeze's evidence.
	AuditLogID string
	Clock      clock.PassiveClock
	Log        logr.Logger
	// Store keeps the states across a change of leader; nil keeps them in
	// memory only.
	Store *StateStore
	// SaveEvery is how often every agent's whole state is written (5
	// minutes when 0); their tick parts are written every tick.
	SaveEvery time.Duration
	// Metrics, when set, are kept every tick.
	Metrics *Metrics

	states map[types.NamespacedName]*AgentState
	// loaded: the states kept by the last leader are read.
	loaded bool
	// savedAll is when the whole states were last written.
	savedAll time.Time
	// reports are what each report (by ConfigMap UID) said last.
	reports map[types.UID]*report
	ticked  bool
	// pending are freezes tripped whose creation failed: made again each
	// tick, with the record already written, until they are. They are
	// kept in the Store too, for the next leader; pendingSaved is false
	// while the Store's copy is not this one.
	pending      map[types.NamespacedName]*custosv1alpha1.AgentFreeze
	pendingSaved bool
	// pendingAdded: a freeze was added to pending since it was last
	// saved (the states may not be written before it is).
	pendingAdded bool
}

// report is what the Runner knows of one replica's report: when it was
// made, its counts, and the rates they showed against the one before.
type report struct {
	at, started time.Time
	counts      map[types.NamespacedName][3]float64
	rates       map[types.NamespacedName][3]float64
	stale       int
}

// The report's keys for when it was made and when its process began
// counting (internal/gateway's UsageReportedAt, UsageStartedAt).
const (
	reportedAt = "_at"
	startedAt  = "_started"
)

// A report not written for reportStale is a replica gone: it counts for
// nothing; one not written for reportGone is deleted.
const (
	reportStale = 5 * time.Minute
	reportGone  = time.Hour
)

// NeedLeaderElection: one breaker, the leader's.
func (r *Runner) NeedLeaderElection() bool { return true }

// +kubebuilder:rbac:groups=custos.dev,resources=agentfreezes,verbs=create
// +kubebuilder:rbac:groups=custos.dev,resources=agents,verbs=trip

// Start runs the breaker every tick until ctx ends.
func (r *Runner) Start(ctx context.Context) error {
	t := time.NewTicker(r.Params.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Step(ctx, r.now()); err != nil {
				r.Log.Error(err, "The breaker's tick")
			}
		}
	}
}

func (r *Runner) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// Step is one tick at now: what each agent took since the last, into the
// detector; an agent it trips on is frozen.
func (r *Runner) Step(ctx context.Context, now time.Time) error {
	if r.states == nil {
		r.states, r.reports = map[types.NamespacedName]*AgentState{}, map[types.UID]*report{}
		r.pending = map[types.NamespacedName]*custosv1alpha1.AgentFreeze{}
	}
	if !r.loaded {
		if r.Store != nil {
			// Nothing is learned, nor written, before the baselines are
			// back: a failed read is tried again next tick.
			states, last, err := r.Store.Load(ctx)
			if err != nil {
				return err
			}
			pending, err := r.Store.LoadPending(ctx)
			if err != nil {
				return err
			}
			r.states, r.pending = states, pending
			r.Log.Info("The breaker goes on from the state the last leader kept", "agents", len(states), "lastTick", last, "pendingFreezes", len(pending))
		}
		r.pendingSaved = true
		r.loaded = true
	}
	took, complete, err := r.Took(ctx)
	if err != nil {
		return err
	}
	var agents custosv1alpha1.AgentList
	if err := r.Agents.List(ctx, &agents); err != nil {
		return err
	}
	var boundaries custosv1alpha1.DataBoundaryList
	if err := r.Agents.List(ctx, &boundaries); err != nil {
		return err
	}
	tenants := TenantWatches(boundaries.Items)
	seen := map[types.NamespacedName]bool{}
	frozen := map[string]int{}
	for i := range agents.Items {
		a := &agents.Items[i]
		key := types.NamespacedName{Namespace: a.Namespace, Name: a.Name}
		seen[key] = true
		if a.Status.Lifecycle != nil && a.Status.Lifecycle.Phase == custosv1alpha1.AgentPhaseFrozen {
			frozen[a.Namespace]++
		}
		st := r.states[key]
		if st == nil {
			st = &AgentState{}
			r.states[key] = st
		}
		if f := r.pending[key]; f != nil {
			// Made for the agent of that name, as every freeze holds the
			// name: deleting the Agent and applying it again does not
			// escape a trip.
			if err := r.create(ctx, f); err != nil {
				r.Log.Error(err, "Freezing an agent the breaker tripped on, again", "agent", key, "freeze", f.Name)
				continue
			}
			delete(r.pending, key)
			r.pendingSaved = false
		}
		if a.Status.Lifecycle == nil || a.Status.Lifecycle.Phase != custosv1alpha1.AgentPhaseActive {
			// Not running (frozen, suspended, ...): nothing to learn, and
			// the evidence starts again when it does.
			st.Reset()
			r.Metrics.evidenceOf(key, 0)
			continue
		}
		if !complete {
			// A tick some replica's report said nothing of (a new
			// leader's first): neither learned nor evidence.
			continue
		}
		x := took[key]
		tw := tenants[a.Labels[custosv1alpha1.TenantLabel]]
		w, _, why := r.Params.WatchOf(a, tw, now)
		trip := r.Params.ObserveWith(st, now, x, w)
		if trip != nil {
			st.Reset()
		}
		r.Metrics.evidenceOf(key, st.View().Evidence/w.H)
		if trip != nil {
			if trip.WarmUp {
				why = "its first days"
			}
			r.Metrics.trip(trip.Trigger, why != "")
			if why != "" {
				r.record(ctx, audit.ActionBreakerObserved, a, trip, x, w, why)
				continue
			}
			if f, err := r.freeze(ctx, now, a, trip, x, w); err != nil {
				r.Log.Error(err, "Freezing an agent the breaker tripped on; trying again next tick", "agent", key, "freeze", f.Name)
				r.pending[key] = f
				r.pendingSaved, r.pendingAdded = false, true
			}
		}
	}
	for k := range r.states {
		if !seen[k] {
			delete(r.states, k)
			r.Metrics.evidenceOf(k, 0)
		}
	}
	for k, f := range r.pending {
		// An agent gone: its trip waits for the name to be applied again,
		// for as long as a new agent would be learned before any trip.
		if at, err := time.Parse(time.RFC3339, f.Annotations[trippedAtAnnotation]); !seen[k] && (err != nil || now.Sub(at) > r.Params.WarmUp) {
			delete(r.pending, k)
			r.pendingSaved = false
		}
	}
	r.Metrics.frozenAgents(frozen)
	r.save(ctx, now)
	return nil
}

// save keeps the states for the next leader: every agent's whole state
// when WholeStateDue, and every agent's tick part at every other tick.
func (r *Runner) save(ctx context.Context, now time.Time) {
	if r.Store == nil {
		return
	}
	if len(r.pending) == 0 {
		// Nothing kept is a trip lost: a stale copy is one made since.
		r.pendingAdded = false
	}
	if !r.pendingSaved {
		// Before the states: a trip is the state's reset, and a new
		// leader that read the reset without the freeze would lose it.
		if err := r.Store.SavePending(ctx, now, r.pending); err != nil {
			r.Metrics.saveFailed()
			r.Log.Error(err, "Keeping the freezes not made yet for the next leader")
			if r.pendingAdded {
				// Nor the states while a trip is not kept: the kept ones
				// still hold the evidence that tripped.
				return
			}
		} else {
			r.pendingSaved, r.pendingAdded = true, false
		}
	}
	if WholeStateDue(r.savedAll, now, r.SaveEvery) {
		err := r.Store.SaveAll(ctx, now, r.states)
		if err == nil {
			// The whole state has this tick's: its tick part would be
			// the same, and Load takes the tick parts only when newer.
			r.savedAll = now
			return
		}
		r.Metrics.saveFailed()
		r.Log.Error(err, "Keeping the breaker's state for the next leader")
	}
	if _, err := r.Store.SaveTick(ctx, now, r.states); err != nil {
		r.Metrics.saveFailed()
		r.Log.Error(err, "Keeping the breaker's last tick for the next leader")
	}
}

// WholeStateDue says whether the whole states are written at now, last
// written at savedAll: every every (5 minutes when 0), and at the first
// tick of a slot, so that the slot just ended is kept whole.
func WholeStateDue(savedAll, now time.Time, every time.Duration) bool {
	if every <= 0 {
		every = 5 * time.Minute
	}
	return savedAll.IsZero() || now.Sub(savedAll) >= every || slotOf(now) != slotOf(savedAll)
}

// Took is what each agent took in the tick, every replica's report
// together. Replicas report on their own clocks, so a tick may see two
// reports of a replica, or none: each new report gives rates (its counts
// against the one before, over the time between them) and a replica adds
// its latest rates for a tick, for two ticks at most without a new report.
// A process started again (its report's _started) counts from zero. A
// report not written for reportStale counts for nothing, and goes after
// reportGone. complete is false when a live report said nothing of the
// tick (first seen, by a new leader or back from being stale): the tick's
// counts are short of what was taken.
func (r *Runner) Took(ctx context.Context) (obs map[types.NamespacedName]Observation, complete bool, err error) {
	if r.reports == nil {
		r.reports = map[types.UID]*report{}
	}
	var list corev1.ConfigMapList
	if err := r.Reports.List(ctx, &list, client.InNamespace(r.Namespace), client.HasLabels{usageLabel}); err != nil {
		return nil, false, fmt.Errorf("reading the gateways' usage reports in %s: %w", r.Namespace, err)
	}
	tick := r.Params.Tick.Seconds()
	out := map[types.NamespacedName][3]float64{}
	add := func(agent types.NamespacedName, v [3]float64, scale float64) {
		d := out[agent]
		for j := range v {
			d[j] += v[j] * scale
		}
		out[agent] = d
	}
	live := map[types.UID]bool{}
	now := r.now()
	complete = true
	for i := range list.Items {
		cm := &list.Items[i]
		at, started := millis(cm.Data[reportedAt]), millis(cm.Data[startedAt])
		if at.IsZero() || now.Sub(at) > reportStale {
			if !at.IsZero() && now.Sub(at) > reportGone {
				// A replica long gone: its report goes.
				if err := r.Client.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
					r.Log.Error(err, "Deleting the usage report of a replica gone", "configMap", cm.Name)
				}
			}
			continue
		}
		live[cm.UID] = true
		counts := map[types.NamespacedName][3]float64{}
		for k, v := range cm.Data {
			if k == reportedAt || k == startedAt {
				continue
			}
			agent, records, calls, logs, err := parseReport(k, v)
			if err != nil {
				r.Log.Error(err, "A usage report that is not one", "configMap", cm.Name)
				continue
			}
			counts[agent] = [3]float64{records, calls, logs}
		}
		rep := r.reports[cm.UID]
		switch {
		case rep == nil:
			rep = &report{at: at, started: started, counts: counts, rates: map[types.NamespacedName][3]float64{}}
			r.reports[cm.UID] = rep
			// A replica started since the last ticks: what it reports is
			// what it took since, as rates. Any other report first seen
			// (a new leader's, or one back from being stale) says nothing
			// of this tick until its next.
			if !r.ticked || started.IsZero() || now.Sub(started) > reportStale {
				complete = false
			} else {
				dt := max(at.Sub(started).Seconds(), 1)
				for agent, c := range counts {
					rate := [3]float64{c[0] / dt, c[1] / dt, c[2] / dt}
					rep.rates[agent] = rate
					add(agent, rate, tick)
				}
			}
		case at.After(rep.at):
			since, before := rep.at, rep.counts
			if !started.Equal(rep.started) {
				// The replica's process started again: its counts are
				// from zero, since it started.
				since, before = started, nil
			}
			dt := max(at.Sub(since).Seconds(), 1)
			rates := map[types.NamespacedName][3]float64{}
			for agent, c := range counts {
				prev, ok := before[agent]
				var rate [3]float64
				for j := range c {
					delta := c[j]
					if ok && c[j] >= prev[j] {
						delta = c[j] - prev[j]
					}
					rate[j] = delta / dt
				}
				rates[agent] = rate
				add(agent, rate, tick)
			}
			rep.at, rep.started, rep.counts, rep.rates, rep.stale = at, started, counts, rates, 0
		default:
			// No new report this tick: its latest rates stand in, a while.
			if rep.stale++; rep.stale <= 2 {
				for agent, rate := range rep.rates {
					add(agent, rate, tick)
				}
			}
		}
	}
	for uid := range r.reports {
		if !live[uid] {
			delete(r.reports, uid)
		}
	}
	r.ticked = true
	obs = make(map[types.NamespacedName]Observation, len(out))
	for agent, v := range out {
		obs[agent] = Observation{Records: v[0], Calls: v[1], LogRecords: v[2]}
	}
	return obs, complete, nil
}

// millis is a time in Unix milliseconds; zero when it is not one.
func millis(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// parseReport reads "namespace.name" = "records calls logRecords".
func parseReport(key, value string) (types.NamespacedName, float64, float64, float64, error) {
	ns, name, ok := strings.Cut(key, ".")
	f := strings.Fields(value)
	if !ok || len(f) != 3 {
		return types.NamespacedName{}, 0, 0, 0, fmt.Errorf("%q=%q: want namespace.name=\"records calls logRecords\"", key, value)
	}
	var v [3]float64
	for i := range f {
		n, err := strconv.ParseFloat(f[i], 64)
		if err != nil || n < 0 || math.IsNaN(n) || math.IsInf(n, 0) {
			return types.NamespacedName{}, 0, 0, 0, fmt.Errorf("%q=%q: %q is not a count", key, value, f[i])
		}
		v[i] = n
	}
	return types.NamespacedName{Namespace: ns, Name: name}, v[0], v[1], v[2], nil
}

// record writes what the breaker observed of a trip, and why it froze
// nothing.
func (r *Runner) record(ctx context.Context, action string, a *custosv1alpha1.Agent, trip *Trip, x Observation, w Watch, why string) {
	reason, details := describeTrip(r.Params, trip, x, w)
	details["observed"] = why
	r.recordWith(ctx, action, a, trip, reason+"; observed for "+why, details)
}

func (r *Runner) recordWith(ctx context.Context, action string, a *custosv1alpha1.Agent, trip *Trip, reason string, details map[string]string) (uint64, bool) {
	if r.Audit == nil {
		return 0, false
	}
	decision := audit.DecisionDeny
	if action == audit.ActionBreakerObserved {
		decision = audit.DecisionInfo
	}
	return r.Audit.RecordSeq(ctx, audit.Event{Action: action, Decision: decision, Policy: "breaker." + strings.ToLower(trip.Trigger),
		Actor:   audit.Actor{Kind: audit.ActorController, Name: "breaker"},
		Subject: audit.Subject{Kind: "Agent", Namespace: a.Namespace, Name: a.Name, UID: string(a.UID), Tenant: a.Labels[custosv1alpha1.TenantLabel]},
		Reason:  reason, Details: details})
}

// freeze records the trip and freezes the agent; it returns the freeze,
// made or not. Its name is the trip's (TripName), so that making it again
// after a failure that was not one makes no second freeze.
func (r *Runner) freeze(ctx context.Context, now time.Time, a *custosv1alpha1.Agent, trip *Trip, x Observation, w Watch) (*custosv1alpha1.AgentFreeze, error) {
	trigger := custosv1alpha1.FreezeTrigger(trip.Trigger)
	signal := trip.Signal
	if signal == SignalRecordsPerCall {
		// The AgentFreeze's signals are records, bytes and calls.
		signal = SignalRecords
	}
	reason, details := describeTrip(r.Params, trip, x, w)
	var seqs []int64
	if seq, ok := r.recordWith(ctx, audit.ActionBreakerTripped, a, trip, reason, details); ok {
		seqs = []int64{int64(seq)}
	}
	observed, baseline := int64(math.Round(trip.Observed)), int64(math.Round(trip.Baseline))
	f := &custosv1alpha1.AgentFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: TripName(a, trigger, now),
			Annotations: map[string]string{trippedAtAnnotation: now.UTC().Format(time.RFC3339)}},
		Spec: custosv1alpha1.AgentFreezeSpec{Agent: a.Name, Trigger: trigger, Signal: signal, Reason: reason,
			Observed: &observed, Baseline: &baseline, Evidence: &custosv1alpha1.FreezeEvidence{AuditLogID: r.AuditLogID, Sequences: seqs}},
	}
	return f, r.create(ctx, f)
}

// trippedAtAnnotation is when the breaker tripped, on its freeze.
const trippedAtAnnotation = "custos.dev/tripped-at"

// create makes f; one that exists already was made by an earlier try.
func (r *Runner) create(ctx context.Context, f *custosv1alpha1.AgentFreeze) error {
	if err := r.Client.Create(ctx, f.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// TripName names the freeze of a trip on agent a at now: GenerateName's
// prefix and five characters of a hash of the Agent's UID and the time,
// so that every try of one trip names the same freeze.
func TripName(a *custosv1alpha1.Agent, trigger custosv1alpha1.FreezeTrigger, now time.Time) string {
	sum := sha256.Sum256([]byte(string(a.UID) + "/" + strconv.FormatInt(now.UnixNano(), 10)))
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	suffix := make([]byte, 5)
	for i := range suffix {
		suffix[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return GenerateName(a.Name, trigger) + string(suffix)
}

// describeTrip is a trip's reason and audit details.
func describeTrip(p DetectorParams, trip *Trip, x Observation, w Watch) (string, map[string]string) {
	reason := fmt.Sprintf("%s: %.0f this tick (%s), against a baseline of %.1f: %s evidence %.1f", trip.Signal, trip.Observed, p.Tick, trip.Baseline, trip.Trigger, trip.Evidence)
	if trip.Trigger == "Ratio" {
		reason = fmt.Sprintf("records above %g times the baseline in every minute for %s: %.0f against %.0f", p.Ratio, p.RatioFor, trip.Observed, trip.Baseline)
	}
	return reason, map[string]string{
		"trigger": trip.Trigger, "signal": trip.Signal, "observed": strconv.FormatFloat(trip.Observed, 'f', 2, 64),
		"baseline": strconv.FormatFloat(trip.Baseline, 'f', 2, 64), "evidence": strconv.FormatFloat(trip.Evidence, 'f', 2, 64),
		"tick.records": strconv.FormatFloat(x.Records, 'f', 0, 64), "tick.calls": strconv.FormatFloat(x.Calls, 'f', 0, 64),
		"tick": p.Tick.String(), "h": strconv.FormatFloat(cmp.Or(w.H, p.H), 'f', 2, 64),
		"allowance": strconv.FormatFloat(max(1, w.Allow), 'f', 0, 64), "ratio": strconv.FormatFloat(p.Ratio, 'f', -1, 64),
	}
}
