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

package evaluate

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// An agent's periodic review (issue #23, item 5): one AgentReport per
// agent and UTC calendar month, counted from the audit trail by the
// Runner (Count) and judged by the manager (Assess).

// Period is the report period of t: its UTC month, 2026-12.
func Period(t time.Time) string { return t.UTC().Format("2006-01") }

// PeriodBounds are the start of period and of the next.
func PeriodBounds(period string) (from, to time.Time, err error) {
	from, err = time.Parse("2006-01", period)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("period %q is not a month (2006-01): %w", period, err)
	}
	return from, from.AddDate(0, 1, 0), nil
}

// ReportName is the name of the AgentReport of period of the Agent agent
// with UID uid: <agent>-<yyyymm>-<first 8 hex digits of the UID's
// SHA-256>, the agent's name cut and a digest of it added when that would
// pass 253 bytes. The UID keeps a new Agent of the same name from the
// reports of the one before it.
func ReportName(agent, uid, period string) string {
	u := sha256.Sum256([]byte(uid))
	suffix := "-" + strings.ReplaceAll(period, "-", "") + "-" + hex.EncodeToString(u[:4])
	if len(agent)+len(suffix) <= validation.DNS1123SubdomainMaxLength {
		return agent + suffix
	}
	sum := sha256.Sum256([]byte(agent))
	cut := validation.DNS1123SubdomainMaxLength - len(suffix) - 9
	return strings.TrimRight(agent[:cut], "-.") + "-" + hex.EncodeToString(sum[:4]) + suffix
}

// reportAgent is the agent a record counts for: its subject, or, for
// custos-gateway's records of an ApprovalRequest, the request's agent.
func reportAgent(r *audit.Record) (namespace, name, uid string) {
	if r.Subject == nil {
		return "", "", ""
	}
	if r.Subject.Kind == "ApprovalRequest" && r.Action == audit.ActionApprovalRequested {
		return r.Subject.Namespace, r.Details["agent"], r.Details["agentUID"]
	}
	if r.Subject.Kind != "Agent" {
		return "", "", ""
	}
	return r.Subject.Namespace, r.Subject.Name, r.Subject.UID
}

// Counts says whether r counts in its agent's report: a record of an
// agent's call, of an approval of one of its calls, of a freeze of it or
// of a Finding on it. (The approvals of an Agent's changes are its
// owners', not its own.)
func Counts(r *audit.Record) bool {
	if r.Type != audit.TypeEvent {
		return false
	}
	if _, name, _ := reportAgent(r); name == "" {
		return false
	}
	switch r.Action {
	case audit.ActionToolCalled, audit.ActionToolRefused, audit.ActionAgentFrozen, audit.ActionAgentUnfrozen, audit.ActionFindingReviewed:
		return true
	case audit.ActionApprovalRequested:
		return r.Details["tool"] != ""
	case audit.ActionApprovalDecided:
		return r.Details["tool"] != "" && finalTally(r) != ""
	case audit.ActionFindingOpened:
		return r.Details["reopened"] == ""
	}
	return false
}

// finalTally is the phase of the manager's final tally of a request
// (Approved, Denied, Expired); "" for a person's decision counted.
func finalTally(r *audit.Record) string {
	if r.Details["approvalDecision"] != "" {
		return ""
	}
	switch p := r.Details["phase"]; p {
	case string(custosv1alpha1.ApprovalApproved), string(custosv1alpha1.ApprovalDenied), string(custosv1alpha1.ApprovalExpired):
		return p
	}
	return ""
}

// Report caps: kinds of refusal, tools.
const (
	maxRefusalKinds = 32
	maxToolUses     = 256
)

// Count adds record r (Counts) to st.
func Count(st *custosv1alpha1.AgentReportStatus, r *audit.Record) {
	d := r.Details
	switch r.Action {
	case audit.ActionToolCalled:
		st.Calls++
		failed := d["outcome"] == "toolError"
		if !failed {
			st.Succeeded++
		}
		// The gateway records the name the agent called,
		// <toolset>.<tool>; the report names the Toolset's tool.
		tool := d["tool"]
		if _, name, ok := strings.Cut(d["toolset"], "/"); ok {
			tool = strings.TrimPrefix(tool, name+".")
		}
		i := slices.IndexFunc(st.Tools, func(u custosv1alpha1.ToolUse) bool { return u.Toolset == d["toolset"] && u.Tool == tool })
		if i < 0 && len(st.Tools) < maxToolUses && tool != "" {
			st.Tools = append(st.Tools, custosv1alpha1.ToolUse{Toolset: clip(d["toolset"], 317), Tool: clip(tool, 128)})
			i = len(st.Tools) - 1
		}
		if i >= 0 {
			st.Tools[i].Calls++
			if failed {
				st.Tools[i].Errors++
			}
		}
	case audit.ActionToolRefused:
		st.Calls++
		kind := clip(cmp.Or(r.Policy, "Refused"), 63)
		if !slices.ContainsFunc(st.Refusals, func(c custosv1alpha1.ReportCount) bool { return c.Kind == kind }) && len(st.Refusals) >= maxRefusalKinds-1 {
			// The last place is Other's.
			kind = "Other"
		}
		add(&st.Refusals, kind)
	case audit.ActionApprovalRequested:
		add(&st.Approvals, "Requested")
	case audit.ActionApprovalDecided:
		add(&st.Approvals, finalTally(r))
	case audit.ActionAgentFrozen:
		add(&st.Freezes, "Frozen")
	case audit.ActionAgentUnfrozen:
		add(&st.Freezes, cmp.Or(d["verdict"], "Lifted"))
	case audit.ActionFindingOpened:
		add(&st.Findings, "Opened")
	case audit.ActionFindingReviewed:
		add(&st.Findings, cmp.Or(d["verdict"], "Reviewed"))
	}
	if r.Action == audit.ActionToolCalled || r.Action == audit.ActionToolRefused {
		day := dayEntry(st, int32(r.Time.UTC().Day()))
		day.Calls++
		if n, err := strconv.ParseInt(d["records"], 10, 64); err == nil && n > 0 && r.Action == audit.ActionToolCalled {
			day.Records += n
		}
		if len(st.CallsBySlot) != slots {
			st.CallsBySlot = make([]int64, slots)
		}
		if r.Action == audit.ActionToolCalled {
			// A refused call makes no hour known: an agent cannot make
			// every hour its own with calls it is refused.
			st.CallsBySlot[slotOf(r.Time)]++
		}
	}
	if t := r.Time; st.AsOf == nil || st.AsOf.Time.Before(t) {
		st.AsOf = &metav1.Time{Time: t}
	}
}

// slots are the hours of a weekday and of a weekend day, UTC.
const slots = 48

// slotOf is t's slot: its UTC hour, plus 24 at weekends.
func slotOf(t time.Time) int {
	t = t.UTC()
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return 24 + t.Hour()
	}
	return t.Hour()
}

// dayEntry is st's entry of day, added (in order) when missing.
func dayEntry(st *custosv1alpha1.AgentReportStatus, day int32) *custosv1alpha1.ReportDay {
	i, found := slices.BinarySearchFunc(st.Days, day, func(d custosv1alpha1.ReportDay, day int32) int { return cmp.Compare(d.Day, day) })
	if !found {
		st.Days = slices.Insert(st.Days, i, custosv1alpha1.ReportDay{Day: day})
	}
	return &st.Days[i]
}

// add counts one of kind in counts.
func add(counts *[]custosv1alpha1.ReportCount, kind string) {
	kind = clip(kind, 63)
	if i := slices.IndexFunc(*counts, func(c custosv1alpha1.ReportCount) bool { return c.Kind == kind }); i >= 0 {
		(*counts)[i].Count++
		return
	}
	*counts = append(*counts, custosv1alpha1.ReportCount{Kind: kind, Count: 1})
}

// countOf is how many of kind counts holds.
func countOf(counts []custosv1alpha1.ReportCount, kind string) int64 {
	if i := slices.IndexFunc(counts, func(c custosv1alpha1.ReportCount) bool { return c.Kind == kind }); i >= 0 {
		return counts[i].Count
	}
	return 0
}

// The score's weights: what a confirmed Finding, a freeze confirmed as
// misuse and a denied approval take off the success rate's 100.
const (
	WeightFindingConfirmed = 10
	WeightMisuse           = 25
	WeightApprovalDenied   = 5
)

// GrantedToolset is one of an agent's Toolsets in force and the tools of
// it the agent may call (Agent.ToolsInForce), in the Toolset's order.
type GrantedToolset struct {
	Ref   custosv1alpha1.ToolsetReference
	Key   types.NamespacedName
	Tools []string
}

// Assessment is what the manager makes of a report's counts.
type Assessment struct {
	SuccessPercent *int32
	Score          *int32
	Formula        string
	Recommendation custosv1alpha1.Recommendation
	Reason         string
	Patch          string
}

// Assess scores report rep of agent, whose Toolsets in force are granted,
// and recommends: Decommission when a freeze of it was confirmed as
// misuse or it called no tool in the period; Narrow, with a merge patch
// of its toolsetRefs cut to the tools it called, when it holds tools it
// did not call; Keep otherwise. over says the period has ended (else its
// figures are so far).
func Assess(st *custosv1alpha1.AgentReportStatus, agent *custosv1alpha1.Agent, granted []GrantedToolset, period string, over bool) Assessment {
	var a Assessment
	soFar := ""
	if !over {
		soFar = " so far"
	}
	confirmed, misuse, denied := countOf(st.Findings, string(custosv1alpha1.FindingConfirmed)),
		countOf(st.Freezes, string(custosv1alpha1.ConfirmedMisuse)), countOf(st.Approvals, string(custosv1alpha1.ApprovalDenied))
	if st.Calls > 0 {
		pct := int32(st.Succeeded * 100 / st.Calls)
		a.SuccessPercent = &pct
		raw := float64(st.Succeeded)*100/float64(st.Calls) - float64(WeightFindingConfirmed*confirmed+WeightMisuse*misuse+WeightApprovalDenied*denied)
		score := int32(max(0, min(100, raw)))
		a.Score = &score
		a.Formula = fmt.Sprintf("100 × %d/%d calls succeeded − %d × %d Findings confirmed − %d × %d freezes confirmed as misuse − %d × %d approvals denied = %d (0 to 100)",
			st.Succeeded, st.Calls, WeightFindingConfirmed, confirmed, WeightMisuse, misuse, WeightApprovalDenied, denied, score)
	} else {
		a.Formula = "no score: no call in " + period + soFar
	}

	called := map[string]int64{}
	for _, u := range st.Tools {
		called[u.Toolset+"/"+u.Tool] += u.Calls
	}
	decommission := `{"spec":{"lifecycle":{"state":"Decommissioned"}}}`
	switch {
	case misuse > 0:
		a.Recommendation, a.Patch = custosv1alpha1.RecommendDecommission, decommission
		a.Reason = fmt.Sprintf("%d freeze(s) of it confirmed as misuse in %s", misuse, period)
		return a
	case len(called) == 0 && !over:
		a.Reason = fmt.Sprintf("no recommendation before %s is over: it called no tool in it so far", period)
		return a
	case len(called) == 0:
		a.Recommendation, a.Patch = custosv1alpha1.RecommendDecommission, decommission
		a.Reason = fmt.Sprintf("it called no tool in %s", period)
		return a
	case len(st.Tools) >= maxToolUses:
		a.Recommendation = custosv1alpha1.RecommendKeep
		a.Reason = fmt.Sprintf("it called %d tools or more in %s%s, more than a report lists: not narrowed", maxToolUses, period, soFar)
		return a
	}

	var unused, used []string
	refs := make([]custosv1alpha1.ToolsetReference, 0, len(agent.Spec.ToolsetRefs))
	narrowed := false
	for _, ref := range agent.Spec.ToolsetRefs {
		key := ref.Key(agent.Namespace)
		i := slices.IndexFunc(granted, func(g GrantedToolset) bool { return g.Key == key })
		if i < 0 {
			// Not in force (waiting for approval, not there): not this
			// report's to judge.
			refs = append(refs, *ref.DeepCopy())
			continue
		}
		var keep []string
		for _, t := range granted[i].Tools {
			if called[key.String()+"/"+t] > 0 {
				keep = append(keep, t)
				used = append(used, key.Name+"."+t)
			} else {
				unused = append(unused, key.Name+"."+t)
			}
		}
		switch {
		case len(keep) == 0:
			narrowed = true
		case len(keep) < len(granted[i].Tools):
			narrowed = true
			refs = append(refs, custosv1alpha1.ToolsetReference{Name: ref.Name, Namespace: ref.Namespace, Tools: keep})
		default:
			refs = append(refs, *ref.DeepCopy())
		}
	}
	if !narrowed {
		a.Recommendation = custosv1alpha1.RecommendKeep
		a.Reason = clip(fmt.Sprintf("it called every tool it holds in %s%s (%s)", period, soFar, listClipped(used, 16)), maxReason)
		return a
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"toolsetRefs": refs}})
	if err != nil {
		// A ToolsetReference always marshals.
		panic(err)
	}
	a.Recommendation = custosv1alpha1.RecommendNarrow
	a.Reason = fmt.Sprintf("it called %d of the %d tools it holds in %s%s; not %s", len(used), len(used)+len(unused), period, soFar, listClipped(unused, 16))
	if len(patch) > maxPatch {
		a.Reason = clip(a.Reason, maxReason-80) + fmt.Sprintf("; the patch (%d bytes) is too long to keep here", len(patch))
		return a
	}
	a.Patch = string(patch)
	a.Reason = clip(a.Reason, maxReason)
	return a
}

// What a report's status holds at most of a reason and a patch.
const (
	maxReason = 2048
	maxPatch  = 65536
)

// listClipped is names joined, at most n of them and how many more.
func listClipped(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

// NewReport is agent's AgentReport of period, as Custos makes it,
// labelled with the agent and its tenant. It is nobody's: a record, it
// outlives its Agent until the manager expires it.
func NewReport(agent *custosv1alpha1.Agent, period string) *custosv1alpha1.AgentReport {
	from, to, _ := PeriodBounds(period)
	labels := map[string]string{custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue, custosv1alpha1.AgentUIDLabel: string(agent.UID)}
	if len(validation.IsValidLabelValue(agent.Name)) == 0 {
		labels[custosv1alpha1.AgentLabel] = agent.Name
	}
	if t := agent.Labels[custosv1alpha1.TenantLabel]; t != "" {
		labels[custosv1alpha1.TenantLabel] = t
	}
	return &custosv1alpha1.AgentReport{
		ObjectMeta: metav1.ObjectMeta{Namespace: agent.Namespace, Name: ReportName(agent.Name, string(agent.UID), period), Labels: labels},
		Spec:       custosv1alpha1.AgentReportSpec{Agent: agent.Name, AgentUID: string(agent.UID), Period: period},
		Status:     custosv1alpha1.AgentReportStatus{From: &metav1.Time{Time: from}, To: &metav1.Time{Time: to}},
	}
}

var reportRecordsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "custos_evaluator_report_records_dropped_total",
	Help: "Audit records the evaluator could not count into their agent's AgentReport whatever it did (Forbidden, Invalid, NotFound; NotTheAgents: a report of that name is of another agent or month), by reason: logged and passed over.",
}, []string{"reason"})

func init() { metrics.Registry.MustRegister(reportRecordsDropped) }

// ManagerTrail is the manager's own trail's ID, followed when its audit
// sink writes files.
const ManagerTrail = "custos-manager"

// reportKey is an agent's report of one period.
type reportKey struct{ namespace, agent, uid, period string }

// reportParts are the records of one report, by trail (its evidence
// name, <ID>@<chain>), each trail's in its order.
type reportParts struct {
	trails []string
	recs   map[string][]*audit.Record
}

// count adds the records the trails read now hold to their agents'
// reports (Counts): a report takes only a trail's records past the last
// it counted of it, so that a record read twice (a manager stopped
// before it wrote how far it had read) counts once. A record that names
// no Agent UID counts for the Agent of its name now; one of an Agent that
// is gone counts only into a report made while it was there.
func (r *Runner) count(ctx context.Context, reads []*read, th ThresholdsFor, thErr func() error) error {
	byReport := map[reportKey]*reportParts{}
	var order []reportKey
	current := map[[2]string]string{}
	for _, rd := range reads {
		for i := range rd.fresh {
			rec := &rd.fresh[i]
			if !Counts(rec) {
				continue
			}
			ns, name, uid := reportAgent(rec)
			if uid == "" {
				k := [2]string{ns, name}
				u, ok := current[k]
				if !ok {
					agent := &custosv1alpha1.Agent{}
					if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, agent); client.IgnoreNotFound(err) != nil {
						return fmt.Errorf("reading Agent %s/%s: %w", ns, name, err)
					}
					u = string(agent.UID)
					current[k] = u
				}
				if uid = u; uid == "" {
					continue
				}
			}
			k := reportKey{ns, name, uid, Period(rec.Time)}
			p := byReport[k]
			if p == nil {
				p = &reportParts{recs: map[string][]*audit.Record{}}
				byReport[k] = p
				order = append(order, k)
			}
			if _, ok := p.recs[rd.evidence]; !ok {
				p.trails = append(p.trails, rd.evidence)
			}
			p.recs[rd.evidence] = append(p.recs[rd.evidence], rec)
		}
	}
	// Month by month: a report is judged against the one before it,
	// counted first.
	slices.SortStableFunc(order, func(a, b reportKey) int { return cmp.Compare(a.period, b.period) })
	for _, k := range order {
		if err := r.countInto(ctx, k, byReport[k], th, thErr); err != nil {
			return err
		}
	}
	return nil
}

// count is how many records parts holds.
func (p *reportParts) count() int {
	n := 0
	for _, recs := range p.recs {
		n += len(recs)
	}
	return n
}

// countInto adds parts to the report of k, made when it is not there and
// its Agent is, and opens the Findings of the history rubrics (volume,
// idle-slot) the records it adds make, before the report says they are
// counted: a pass that stops between the two finds the same hits again,
// which the Findings count once.
func (r *Runner) countInto(ctx context.Context, k reportKey, parts *reportParts, th ThresholdsFor, thErr func() error) error {
	key := client.ObjectKey{Namespace: k.namespace, Name: ReportName(k.agent, k.uid, k.period)}
	for attempt := 0; ; attempt++ {
		rep := &custosv1alpha1.AgentReport{}
		err := r.Reader.Get(ctx, key, rep)
		if apierrors.IsNotFound(err) {
			agent := &custosv1alpha1.Agent{}
			if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: k.agent}, agent); err != nil {
				if apierrors.IsNotFound(err) {
					return nil
				}
				return fmt.Errorf("report %s: reading its Agent: %w", key, err)
			}
			if string(agent.UID) != k.uid {
				return nil
			}
			rep = NewReport(agent, k.period)
			if err = r.Client.Create(ctx, rep); apierrors.IsAlreadyExists(err) && attempt < 5 {
				continue
			}
		}
		if err != nil {
			return r.reportDropped(key, parts.count(), err)
		}
		if rep.Spec.AgentUID != k.uid || rep.Spec.Agent != k.agent || rep.Spec.Period != k.period {
			// Not Custos's report of k (made by someone else by name).
			reportRecordsDropped.WithLabelValues("NotTheAgents").Add(float64(parts.count()))
			r.Log.Error(nil, "A report of this name is of another agent or month: records passed over", "report", key,
				"itsAgent", rep.Spec.Agent, "itsAgentUID", rep.Spec.AgentUID, "itsPeriod", rep.Spec.Period)
			return nil
		}
		before := rep.Status.DeepCopy()
		var counted []countedRecord
		for _, trail := range parts.trails {
			last := highWater(rep.Status.Counted, trail)
			recs := parts.recs[trail]
			for _, rec := range recs {
				if rec.Seq <= math.MaxInt64 && int64(rec.Seq) > last {
					Count(&rep.Status, rec)
					counted = append(counted, countedRecord{rec: rec, trail: trail})
				}
			}
			setHighWater(&rep.Status.Counted, trail, int64(min(recs[len(recs)-1].Seq, math.MaxInt64)))
		}
		if len(counted) == 0 {
			return nil
		}
		slices.SortStableFunc(counted, func(a, b countedRecord) int { return a.rec.Time.Compare(b.rec.Time) })
		prev, err := r.previousReport(ctx, k)
		if err != nil {
			return err
		}
		lines := th(k.namespace, k.agent)
		if err := thErr(); err != nil {
			return fmt.Errorf("reading the evaluation lines of %s/%s: %w", k.namespace, k.agent, err)
		}
		for _, h := range historyHits(k.period, prev, before, &rep.Status, counted, lines) {
			if err := r.record(ctx, h.Hit, h.parts); err != nil {
				return err
			}
		}
		rep.Status.NotCounted = r.notCounted()
		if err := r.Client.Status().Update(ctx, rep); err != nil {
			if apierrors.IsConflict(err) && attempt < 5 {
				continue
			}
			return r.reportDropped(key, parts.count(), err)
		}
		return nil
	}
}

// previousReport is the status of the report of the month before k's,
// nil when there is none.
func (r *Runner) previousReport(ctx context.Context, k reportKey) (*custosv1alpha1.AgentReportStatus, error) {
	from, _, err := PeriodBounds(k.period)
	if err != nil {
		return nil, nil
	}
	prev := &custosv1alpha1.AgentReport{}
	key := client.ObjectKey{Namespace: k.namespace, Name: ReportName(k.agent, k.uid, Period(from.AddDate(0, -1, 0)))}
	if err := r.Reader.Get(ctx, key, prev); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("report %s: %w", key, err)
	}
	if prev.Spec.Agent != k.agent || prev.Spec.AgentUID != k.uid || prev.Spec.Period != Period(from.AddDate(0, -1, 0)) {
		// Not Custos's report of the month before.
		return nil, nil
	}
	return &prev.Status, nil
}

// notCounted says what the reports leave out: the manager's decisions,
// unless the Runner follows its trail.
func (r *Runner) notCounted() string {
	if slices.ContainsFunc(r.Trails, func(t Trail) bool { return t.ID == ManagerTrail }) {
		return ""
	}
	return "the manager's decisions (freezes, approvals decided, Findings opened and reviewed) are not counted: the evaluator does not follow the manager's audit trail (its --audit-sink is stdout); the gateway's records of calls, refusals and approvals asked for are"
}

// reportDropped: as dropped, for records to count into a report.
func (r *Runner) reportDropped(key client.ObjectKey, records int, err error) error {
	reason := permanent(err)
	if reason == "" {
		return fmt.Errorf("report %s: %w", key, err)
	}
	reportRecordsDropped.WithLabelValues(reason).Add(float64(records))
	r.Log.Error(err, "Records could not be counted into their AgentReport, and are passed over", "report", key)
	return nil
}
