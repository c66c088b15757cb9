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

// Package evaluate reads the audit trail for what volume does not show:
// rubrics, pure functions over audit records, each a rule that can be
// tested, that say which calls a person should look at and why (issue
// #23). They read the trail alone: what custos-gateway records of each
// call (its tool's access, irreversible, its decision record's digest,
// stated confidence and intent, the arguments' digest) and of each
// refusal (its reason, as the record's policy).
package evaluate

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// The rubrics, by name: a Finding's rubric.
const (
	// RubricLowConfidence: an irreversible call made with a stated
	// confidence below Thresholds.MinConfidence, or none.
	RubricLowConfidence = "low-confidence"
	// RubricNoDecisionRecord: a Write call made without a decision
	// record.
	RubricNoDecisionRecord = "no-decision-record"
	// RubricIntentMismatch: a call that is not what its decision record
	// said the agent would call: another tool, or other arguments.
	RubricIntentMismatch = "intent-mismatch"
	// RubricProbing: at least Thresholds.ProbeRefusals calls refused as
	// unknown, out of the agent's scope, off the tool's schema, against
	// the tenant's policy or naming someone else, within
	// Thresholds.ProbeWindow.
	RubricProbing = "probing"
	// RubricDeniedApprovals: at least Thresholds.DeniedApprovals of the
	// agent's approval requests denied within Thresholds.DeniedWindow.
	RubricDeniedApprovals = "denied-approvals"
	// RubricMaxDepth: custos-sts issued a token whose chain of agents is
	// as deep as the acting agent's delegation allows.
	RubricMaxDepth = "delegation-at-max-depth"
	// RubricOffSchedule: a call made outside the agent's schedule (its
	// spec.schedule).
	RubricOffSchedule = "off-schedule"
	// RubricVolume: a day whose records pass Thresholds.VolumeFactor
	// times the agent's daily mean over the 28 days before, or
	// Thresholds.DailyRecordBudget.
	RubricVolume = "volume"
	// RubricIdleSlot: a call in an hour of the day (UTC, weekdays or
	// weekends) in which the agent made none this month or the one
	// before, once it has called on 14 days.
	RubricIdleSlot = "idle-slot"
)

// Thresholds are the rubrics' settings. A DataBoundary sets them for a
// tenant; an Agent may only tighten them.
type Thresholds struct {
	// MinConfidence is the least stated confidence of an irreversible
	// call that raises nothing.
	MinConfidence float64
	// ProbeRefusals within ProbeWindow is probing.
	ProbeRefusals int
	ProbeWindow   time.Duration
	// DeniedApprovals within DeniedWindow is asking again what people
	// refused.
	DeniedApprovals int
	DeniedWindow    time.Duration
	// Schedule is the agent's own (spec.schedule), when it has one.
	Schedule *Schedule
	// VolumeFactor times an agent's daily mean of records over the 28
	// days before is far above its history; past DailyRecordBudget (0:
	// none) a day is over its budget.
	VolumeFactor      float64
	DailyRecordBudget int64
}

// DefaultThresholds are the rubrics' settings where none is set.
var DefaultThresholds = Thresholds{MinConfidence: 0.7, ProbeRefusals: 5, ProbeWindow: 10 * time.Minute,
	DeniedApprovals: 3, DeniedWindow: 24 * time.Hour, VolumeFactor: 3}

// Hit is what a rubric found: the agent, how bad, and the records that
// show it.
type Hit struct {
	Rubric   string
	Severity custosv1alpha1.FindingSeverity
	// Score is from 0 to 1: how far past the rubric's line.
	Score float64
	// Agent is the subject of the records, namespace/name; AgentUID and
	// Tenant are the subject's, as the records name them.
	Namespace, Agent string
	AgentUID, Tenant string
	// From and To are the first and last record's times.
	From, To time.Time
	// Seqs and TraceIDs are the records' sequence numbers and traces.
	Seqs     []uint64
	TraceIDs []string
	// Why says it in a sentence.
	Why string

	// idx are the records' indexes in what was evaluated.
	idx []int
}

// ThresholdsFor says the thresholds of Agent namespace/agent
// (ThresholdsOf its DataBoundary and itself).
type ThresholdsFor func(namespace, agent string) Thresholds

// Fixed is the same thresholds for every agent.
func Fixed(th Thresholds) ThresholdsFor {
	return func(string, string) Thresholds { return th }
}

// Evaluate runs every rubric over records (of one trail, in its order),
// each agent's with its thresholds, and returns their hits, in the order
// of their first record.
func Evaluate(records []audit.Record, th ThresholdsFor) []Hit {
	hits := append(EvaluateRecords(records, th), EvaluateWindows(records, th)...)
	slices.SortStableFunc(hits, func(a, b Hit) int { return cmp.Compare(a.idx[0], b.idx[0]) })
	return hits
}

// EvaluateRecords runs the rubrics of one record each (a call's, an
// exchange's).
func EvaluateRecords(records []audit.Record, th ThresholdsFor) []Hit {
	var hits []Hit
	for i := range records {
		r := &records[i]
		if r.Type != audit.TypeEvent || r.Subject == nil {
			continue
		}
		var found []Hit
		switch r.Action {
		case audit.ActionToolCalled:
			found = calledHits(r, th(r.Subject.Namespace, r.Subject.Name))
		case audit.ActionTokenExchanged:
			if h, ok := maxDepth(r); ok {
				found = []Hit{h}
			}
		}
		for _, h := range found {
			h.idx = []int{i}
			hits = append(hits, h)
		}
	}
	return hits
}

// EvaluateWindows runs the rubrics over windows of records (probing,
// denied approvals) over records in time order, which may come from
// several trails: the evaluator merges its trails' so that an agent whose
// calls several gateway replicas served is counted whole.
func EvaluateWindows(records []audit.Record, th ThresholdsFor) []Hit {
	return append(probing(records, th), deniedApprovals(records, th)...)
}

// calledHits are the hits of one call made (tool.called).
func calledHits(r *audit.Record, th Thresholds) []Hit {
	d := r.Details
	tool := d["tool"]
	hit := func(rubric string, severity custosv1alpha1.FindingSeverity, score float64, why string, args ...any) Hit {
		return Hit{Rubric: rubric, Severity: severity, Score: score, Namespace: r.Subject.Namespace, Agent: r.Subject.Name,
			AgentUID: r.Subject.UID, Tenant: r.Subject.Tenant, From: r.Time, To: r.Time, Seqs: []uint64{r.Seq}, TraceIDs: traceIDs(r), Why: fmt.Sprintf(why, args...)}
	}
	var out []Hit
	irreversible := d["irreversible"] == "true"
	if irreversible {
		switch c, err := strconv.ParseFloat(d["decision.confidence"], 64); {
		case d["decision.confidence"] == "":
			out = append(out, hit(RubricLowConfidence, custosv1alpha1.SeverityHigh, 1, "irreversible call of %s with no stated confidence", tool))
		case err == nil && c < th.MinConfidence:
			out = append(out, hit(RubricLowConfidence, custosv1alpha1.SeverityHigh, clamp((th.MinConfidence-c)/max(th.MinConfidence, 1e-9)),
				"irreversible call of %s with a stated confidence of %g, below %g", tool, c, th.MinConfidence))
		}
	}
	if d["access"] == "Write" && d["decisionDigest"] == "" {
		severity := custosv1alpha1.SeverityMedium
		if irreversible {
			severity = custosv1alpha1.SeverityHigh
		}
		out = append(out, hit(RubricNoDecisionRecord, severity, 1, "%s call of %s with no decision record", describeWrite(irreversible), tool))
	}
	if th.Schedule != nil && !th.Schedule.Contains(r.Time) {
		out = append(out, hit(RubricOffSchedule, custosv1alpha1.SeverityMedium, 1, "call of %s at %s, outside its schedule (%s)",
			tool, r.Time.In(th.Schedule.loc).Format("Mon 15:04 MST"), th.Schedule))
	}
	if t := d["decision.intentTool"]; t != "" && t != tool {
		out = append(out, hit(RubricIntentMismatch, custosv1alpha1.SeverityHigh, 1, "the decision record said %s and the agent called %s", t, tool))
	} else if a := d["decision.intentArgumentsDigest"]; a != "" && a != d["argumentsDigest"] {
		out = append(out, hit(RubricIntentMismatch, custosv1alpha1.SeverityHigh, 1, "%s called with other arguments than its decision record stated", tool))
	}
	return out
}

// maxDepth: an exchange (token.exchanged, custos-sts's) whose chain is
// at its delegation's maximum depth.
func maxDepth(r *audit.Record) (Hit, bool) {
	if r.Subject.Kind != "Agent" {
		return Hit{}, false
	}
	depth, err1 := strconv.Atoi(r.Details["depth"])
	limit, err2 := strconv.Atoi(r.Details["maxDepth"])
	if err1 != nil || err2 != nil || limit <= 1 || depth < limit {
		// A chain of one is any agent acting for a person.
		return Hit{}, false
	}
	return Hit{Rubric: RubricMaxDepth, Severity: custosv1alpha1.SeverityLow, Score: 1, Namespace: r.Subject.Namespace, Agent: r.Subject.Name,
		AgentUID: r.Subject.UID, Tenant: r.Subject.Tenant, From: r.Time, To: r.Time, Seqs: []uint64{r.Seq}, TraceIDs: traceIDs(r),
		Why: fmt.Sprintf("a token for %s with a chain of %d agents, the most its delegation allows (%s)", r.Details["target"], depth, r.Details["chain"])}, true
}

func describeWrite(irreversible bool) string {
	if irreversible {
		return "an irreversible"
	}
	return "a Write"
}

// probeReasons are the refusals of an agent looking for what it was not
// given (internal/gateway's reasons).
var probeReasons = map[string]bool{
	"UnknownTool": true, "OutOfScope": true, "InvalidInput": true, "PolicyDenied": true, "SpoofedArgument": true,
}

// isProbe says r is a refusal probing counts.
func isProbe(r *audit.Record) bool {
	return r.Action == audit.ActionToolRefused && probeReasons[r.Policy]
}

// isDenied says r is the manager's final tally of a request people denied.
func isDenied(r *audit.Record) bool {
	return r.Action == audit.ActionApprovalDecided && r.Decision == audit.DecisionDeny && r.Details["phase"] == "Denied" &&
		r.Details["approvalDecision"] == ""
}

// WindowedRubric is the rubric over a window of records that r feeds
// (probing, denied-approvals), or "": such records are kept between the
// evaluator's passes, and consumed by the hit that cites them.
func WindowedRubric(r *audit.Record) string {
	if r.Type != audit.TypeEvent || r.Subject == nil || r.Subject.Kind != "Agent" {
		return ""
	}
	switch {
	case isProbe(r):
		return RubricProbing
	case isDenied(r):
		return RubricDeniedApprovals
	}
	return ""
}

// probing finds, per agent, ProbeRefusals such refusals within
// ProbeWindow: each hit is ProbeRefusals of them, and the next starts
// after it.
func probing(records []audit.Record, th ThresholdsFor) []Hit {
	return bursts(records, func(ns, agent string) (int, time.Duration) {
		t := th(ns, agent)
		return t.ProbeRefusals, t.ProbeWindow
	}, isProbe, func(r *audit.Record) string { return r.Policy }, func(h *Hit, n int, counts string) {
		h.Rubric, h.Severity = RubricProbing, custosv1alpha1.SeverityMedium
		h.Why = fmt.Sprintf("%d calls refused within %s (%s)", n, h.To.Sub(h.From).Round(time.Second), counts)
	})
}

// deniedApprovals finds, per agent, DeniedApprovals approval requests
// denied within DeniedWindow (the manager's final tally of each:
// approval.decided, phase Denied): each hit is DeniedApprovals of them.
func deniedApprovals(records []audit.Record, th ThresholdsFor) []Hit {
	return bursts(records, func(ns, agent string) (int, time.Duration) {
		t := th(ns, agent)
		return t.DeniedApprovals, t.DeniedWindow
	}, isDenied, func(r *audit.Record) string { return cmp.Or(r.Details["tool"], "an Agent change") }, func(h *Hit, n int, counts string) {
		h.Rubric, h.Severity = RubricDeniedApprovals, custosv1alpha1.SeverityMedium
		h.Why = fmt.Sprintf("%d approval requests denied within %s (%s)", n, h.To.Sub(h.From).Round(time.Second), counts)
	})
}

// bursts finds, per agent (the records' subject), n records that match
// within window of the first (line says the agent's n and window): each
// hit is n such records, and the next starts after it. A record too old
// for the window of a later one is passed over. Which records make a hit
// depends only on those before them, so that a trail read in pieces (the
// evaluator's passes) and read whole give the same hits. kind names a
// record in the hit's counts; describe sets the hit's rubric, severity and
// why. The score is how much faster than the window the n came.
func bursts(records []audit.Record, line func(namespace, agent string) (int, time.Duration), match func(*audit.Record) bool, kind func(*audit.Record) string,
	describe func(h *Hit, n int, counts string)) []Hit {
	byAgent := map[[2]string][]int{}
	var order [][2]string
	for i := range records {
		r := &records[i]
		if r.Type != audit.TypeEvent || r.Subject == nil || r.Subject.Kind != "Agent" || !match(r) {
			continue
		}
		k := [2]string{r.Subject.Namespace, r.Subject.Name}
		if _, ok := byAgent[k]; !ok {
			order = append(order, k)
		}
		byAgent[k] = append(byAgent[k], i)
	}
	var out []Hit
	for _, k := range order {
		is := byAgent[k]
		rs := make([]*audit.Record, len(is))
		for n, i := range is {
			rs[n] = &records[i]
		}
		n, window := line(k[0], k[1])
		if n <= 0 {
			continue
		}
		i := 0
		for j := range rs {
			for rs[j].Time.Sub(rs[i].Time) > window {
				i++
			}
			if j-i+1 < n {
				continue
			}
			last := rs[j].Subject
			span := rs[j].Time.Sub(rs[i].Time)
			h := Hit{Score: clamp(1 - float64(span)/float64(2*max(window, time.Nanosecond))), Namespace: k[0], Agent: k[1],
				AgentUID: last.UID, Tenant: last.Tenant, From: rs[i].Time, To: rs[j].Time}
			counts := map[string]int{}
			for m, r := range rs[i : j+1] {
				h.Seqs = append(h.Seqs, r.Seq)
				h.idx = append(h.idx, is[i+m])
				h.TraceIDs = append(h.TraceIDs, traceIDs(r)...)
				counts[kind(r)]++
			}
			describe(&h, n, describeCounts(counts))
			out = append(out, h)
			i = j + 1
		}
	}
	return out
}

func describeCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, m[k])
	}
	return s
}

func traceIDs(r *audit.Record) []string {
	if r.TraceID == "" {
		return nil
	}
	return []string{r.TraceID}
}

func clamp(x float64) float64 { return min(1, max(0, x)) }
