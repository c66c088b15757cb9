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
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// The rubrics over an agent's history (volume, idle-slot): they read
// what its AgentReports count (its days' calls and records, its calls by
// hour), this month's and the one before, and judge the records a batch
// counts into them against it.

// The history an agent needs before its volume and idle hours are judged:
// days with calls; and the least daily mean the volume line is drawn
// from (an agent that read almost nothing is not flagged for its first
// few records, and cannot lower its line below this by calls that return
// none).
const (
	volumeHistoryDays = 7
	idleHistoryDays   = 14
	volumeFloor       = 10
)

// countedRecord is a record counted into a report now, with its trail.
type countedRecord struct {
	rec   *audit.Record
	trail string
}

// historyHit is a hit of a history rubric and the records it cites.
type historyHit struct {
	Hit
	parts []cited
}

// historyHits are the hits of the history rubrics made by recs, counted
// into a report of period whose status went from before to after; prev
// is the status of the report of the month before (nil: none).
func historyHits(period string, prev, before, after *custosv1alpha1.AgentReportStatus, recs []countedRecord, th Thresholds) []historyHit {
	from, _, err := PeriodBounds(period)
	if err != nil || len(recs) == 0 {
		return nil
	}
	return append(volumeHits(from, prev, before, after, recs, th), idleHits(prev, before, recs)...)
}

// volumeHits: each day whose records this batch took past the agent's
// line (VolumeFactor times its daily mean over the 28 days before, on
// its days with calls, at least 7, the mean at least one record) or past
// DailyRecordBudget. Only the batch that crosses a line hits.
func volumeHits(from time.Time, prev, before, after *custosv1alpha1.AgentReportStatus, recs []countedRecord, th Thresholds) []historyHit {
	type counts struct{ calls, records int64 }
	days := map[time.Time]counts{}
	if prev != nil {
		for _, d := range prev.Days {
			days[from.AddDate(0, -1, int(d.Day)-1)] = counts{d.Calls, d.Records}
		}
	}
	for _, d := range after.Days {
		days[from.AddDate(0, 0, int(d.Day)-1)] = counts{d.Calls, d.Records}
	}
	had := map[int32]int64{}
	for _, d := range before.Days {
		had[d.Day] = d.Records
	}
	var out []historyHit
	for _, d := range after.Days {
		was, now := had[d.Day], d.Records
		if now == was {
			continue
		}
		date := from.AddDate(0, 0, int(d.Day)-1)
		var sum, active int64
		for i := 1; i <= 28; i++ {
			if c, ok := days[date.AddDate(0, 0, -i)]; ok && c.calls > 0 {
				sum, active = sum+c.records, active+1
			}
		}
		var why string
		severity, score := custosv1alpha1.SeverityMedium, 0.0
		if active >= volumeHistoryDays {
			mean := float64(sum) / float64(active)
			if line := max(mean, volumeFloor) * th.VolumeFactor; float64(was) <= line && float64(now) > line {
				why = fmt.Sprintf("%d records on %s, over %g× its daily mean of %.0f over the 28 days before (%d days with calls; line %.0f)",
					now, date.Format(time.DateOnly), th.VolumeFactor, mean, active, line)
				score = clamp((float64(now) - line) / line)
			}
		}
		if b := th.DailyRecordBudget; b > 0 && was <= b && now > b {
			if why != "" {
				why += "; "
			}
			why += fmt.Sprintf("%d records on %s, over the daily budget of %d", now, date.Format(time.DateOnly), b)
			severity, score = custosv1alpha1.SeverityHigh, max(score, clamp(float64(now-b)/float64(b)))
		}
		if why == "" {
			continue
		}
		var cites []countedRecord
		for _, c := range recs {
			if c.rec.Action == audit.ActionToolCalled && c.rec.Time.UTC().Day() == int(d.Day) && recordsOf(c.rec) > 0 {
				cites = append(cites, c)
			}
		}
		if h, ok := historyHitOf(RubricVolume, severity, score, why, cites); ok {
			out = append(out, h)
		}
	}
	return out
}

// idleHits: the calls, once the agent has called on 14 days of this
// month and the one before, in an hour (UTC, weekdays or weekends) in
// which it made no call in them before this batch: one hit for each UTC
// day, citing that day's such calls of the batch (its Finding is that
// day's, and takes each record once). Refused calls are judged, and make
// no hour known.
func idleHits(prev, before *custosv1alpha1.AgentReportStatus, recs []countedRecord) []historyHit {
	var hist [slots]int64
	active := 0
	for _, st := range []*custosv1alpha1.AgentReportStatus{prev, before} {
		if st == nil {
			continue
		}
		for i, n := range st.CallsBySlot {
			if i < slots {
				hist[i] += n
			}
		}
		for _, d := range st.Days {
			if d.Calls > 0 {
				active++
			}
		}
	}
	if active < idleHistoryDays {
		return nil
	}
	type dayHits struct {
		cites []countedRecord
		slots []int
	}
	byDay := map[time.Time]*dayHits{}
	var order []time.Time
	for _, c := range recs {
		if c.rec.Action != audit.ActionToolCalled && c.rec.Action != audit.ActionToolRefused {
			continue
		}
		s := slotOf(c.rec.Time)
		if hist[s] > 0 {
			continue
		}
		day := dayOf(c.rec.Time)
		d := byDay[day]
		if d == nil {
			d = &dayHits{}
			byDay[day] = d
			order = append(order, day)
		}
		d.cites = append(d.cites, c)
		if !slices.Contains(d.slots, s) {
			d.slots = append(d.slots, s)
		}
	}
	var out []historyHit
	for _, day := range order {
		d := byDay[day]
		hours := make([]string, len(d.slots))
		for i, s := range d.slots {
			hours[i] = fmt.Sprintf("%02d:00-%02d:59", s%24, s%24)
		}
		kind := "weekday"
		if d.slots[0] >= 24 {
			kind = "weekend"
		}
		why := fmt.Sprintf("%d call(s) on %s at %s UTC, %s hours in which it made no call this month or the one before (%d days with calls)",
			len(d.cites), day.Format(time.DateOnly), strings.Join(hours, ", "), kind, active)
		if h, ok := historyHitOf(RubricIdleSlot, custosv1alpha1.SeverityLow, 1, why, d.cites); ok {
			out = append(out, h)
		}
	}
	return out
}

// recordsOf is the records a call's result held, as custos-gateway
// recorded them.
func recordsOf(r *audit.Record) int64 {
	n, _ := strconv.ParseInt(r.Details["records"], 10, 64)
	return n
}

// historyHitOf makes a hit of cites (one agent's, in time order).
func historyHitOf(rubric string, severity custosv1alpha1.FindingSeverity, score float64, why string, cites []countedRecord) (historyHit, bool) {
	if len(cites) == 0 {
		return historyHit{}, false
	}
	last := cites[len(cites)-1].rec
	ns, name, uid := reportAgent(last)
	h := historyHit{Hit: Hit{Rubric: rubric, Severity: severity, Score: score, Namespace: ns, Agent: name, AgentUID: uid,
		From: last.Time, To: last.Time, Why: why}}
	if last.Subject != nil {
		h.Tenant = last.Subject.Tenant
	}
	for _, c := range cites {
		h.From, h.To = minTime(h.From, c.rec.Time), maxTime(h.To, c.rec.Time)
		h.Seqs = append(h.Seqs, c.rec.Seq)
		h.TraceIDs = append(h.TraceIDs, traceIDs(c.rec)...)
		i := slices.IndexFunc(h.parts, func(p cited) bool { return p.trail == c.trail })
		if i < 0 {
			h.parts = append(h.parts, cited{trail: c.trail})
			i = len(h.parts) - 1
		}
		h.parts[i].seqs = append(h.parts[i].seqs, c.rec.Seq)
	}
	return h, true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
