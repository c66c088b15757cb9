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
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// Recomputed is what the audit trail alone says of one freeze.
type Recomputed struct {
	// Freeze and Agent (namespace/name) as agent.frozen records them.
	Freeze, Agent string
	// Trigger is the freeze's.
	Trigger string
	// OK: the cited records say what the freeze says (a Cap freeze), or
	// there is nothing to recompute (a Manual one, by the person named).
	OK bool
	// Says is why, for people.
	Says string
}

// Cited finds a record of the trail logID by its sequence number.
type Cited func(logID string, seq uint64) (*audit.Record, bool)

// Recompute says whether the trail bears out an agent.frozen record:
// for a Cap freeze, each cited record of the gateway's trail must be a
// cap.exceeded of the same agent, in the cited traces, with the freeze's
// limit and observed, and observed over the limit.
func Recompute(frozen *audit.Record, cited Cited) Recomputed {
	d := frozen.Details
	r := Recomputed{Freeze: d["freeze"], Trigger: d["trigger"]}
	if frozen.Subject != nil {
		r.Agent = frozen.Subject.Namespace + "/" + frozen.Subject.Name
	}
	switch custosv1alpha1.FreezeTrigger(r.Trigger) {
	case custosv1alpha1.FreezeManual:
		r.OK, r.Says = true, fmt.Sprintf("by a person (%s): nothing to recompute", d["frozenBy"])
		return r
	case custosv1alpha1.FreezeCap:
	case custosv1alpha1.FreezeTrend, custosv1alpha1.FreezeRatio:
		return recomputeTrip(frozen, cited, r)
	default:
		r.Says = fmt.Sprintf("trigger %q: this version of custos-audit cannot recompute it", r.Trigger)
		return r
	}
	fail := func(format string, args ...any) Recomputed {
		r.Says = fmt.Sprintf(format, args...)
		return r
	}
	logID, seqs := d["evidence.auditLogID"], d["evidence.sequences"]
	if logID == "" || seqs == "" {
		return fail("cites no records (evidence.auditLogID %q, evidence.sequences %q)", logID, seqs)
	}
	traces := strings.Split(d["evidence.traceIDs"], ",")
	var said []string
	for _, s := range strings.Split(seqs, ",") {
		seq, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fail("evidence.sequences %q: %v", seqs, err)
		}
		c, why := cite(cited, logID, seq, audit.ActionCapExceeded, r.Agent)
		switch {
		case why != "":
			return fail("%s", why)
		case !slices.Contains(traces, c.TraceID):
			return fail("cites record %d of %s, whose trace %s is not among the freeze's (%s)", seq, logID, c.TraceID, d["evidence.traceIDs"])
		case d["signal"] != "" && c.Details["signal"] != d["signal"]:
			return fail("record %d of %s is of %s, the freeze of %s", seq, logID, c.Details["signal"], d["signal"])
		case c.Details["limit"] != d["limit"] || c.Details["observed"] != d["observed"]:
			return fail("record %d of %s says %s of %s, the freeze %s of %s", seq, logID, c.Details["observed"], c.Details["limit"], d["observed"], d["limit"])
		}
		observed, err1 := strconv.ParseInt(c.Details["observed"], 10, 64)
		limit, err2 := strconv.ParseInt(c.Details["limit"], 10, 64)
		if err1 != nil || err2 != nil || observed <= limit {
			return fail("record %d of %s: %s %s is not over the cap of %s", seq, logID, c.Details["observed"], c.Details["signal"], c.Details["limit"])
		}
		per := c.Details["window"]
		said = append(said, fmt.Sprintf("%d %s per %s over the cap of %d (%s record %d, tool %s, trace %s)",
			observed, c.Details["signal"], per, limit, logID, seq, c.Details["tool"], c.TraceID))
	}
	r.OK, r.Says = true, strings.Join(said, "; ")
	return r
}

// recomputeTrip checks a Trend or Ratio freeze against the breaker.tripped
// record it cites on the manager's trail: the same agent and trigger, and
// evidence that reached the breaker's threshold (Trend) or a window over
// its ratio (Ratio), as the record says.
func recomputeTrip(frozen *audit.Record, cited Cited, r Recomputed) Recomputed {
	d := frozen.Details
	fail := func(format string, args ...any) Recomputed {
		r.Says = fmt.Sprintf(format, args...)
		return r
	}
	logID, seqs := d["evidence.auditLogID"], d["evidence.sequences"]
	seq, err := strconv.ParseUint(seqs, 10, 64)
	if logID == "" || err != nil {
		return fail("cites no breaker record (evidence.auditLogID %q, evidence.sequences %q)", logID, seqs)
	}
	c, why := cite(cited, logID, seq, audit.ActionBreakerTripped, r.Agent)
	switch {
	case why != "":
		return fail("%s", why)
	case c.Details["trigger"] != r.Trigger:
		return fail("record %d of %s is a %s trip, the freeze a %s one", seq, logID, c.Details["trigger"], r.Trigger)
	}
	num := func(k string) float64 {
		v, err := strconv.ParseFloat(c.Details[k], 64)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	switch h, e, ratio, seen, base := num("h"), num("evidence"), num("ratio"), num("observed"), num("baseline"); {
	case r.Trigger == string(custosv1alpha1.FreezeTrend) && !math.IsNaN(h) && !(e >= h):
		return fail("record %d of %s says evidence %s, short of the %s that trips the breaker", seq, logID, c.Details["evidence"], c.Details["h"])
	case r.Trigger == string(custosv1alpha1.FreezeRatio) && !math.IsNaN(ratio) && !(seen > ratio*base):
		return fail("record %d of %s says %s records against a baseline of %s: not above %s times", seq, logID, c.Details["observed"], c.Details["baseline"], c.Details["ratio"])
	}
	r.OK, r.Says = true, fmt.Sprintf("%s: %s (%s record %d)", c.Details["signal"], c.Reason, logID, seq)
	return r
}

// cite is record seq of trail logID, which must be a record of action
// about agent (namespace/name); otherwise why not.
func cite(cited Cited, logID string, seq uint64, action, agent string) (*audit.Record, string) {
	c, ok := cited(logID, seq)
	switch {
	case !ok:
		return nil, fmt.Sprintf("cites record %d of trail %s, which is not in the trails given", seq, logID)
	case c.Action != action:
		return nil, fmt.Sprintf("cites record %d of %s, a %s, not a %s", seq, logID, c.Action, action)
	case c.Subject == nil || c.Subject.Namespace+"/"+c.Subject.Name != agent:
		return nil, fmt.Sprintf("cites record %d of %s, which is of another agent", seq, logID)
	}
	return c, ""
}
