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
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Who sets the watcher: a DataBoundary sets the breaker's sensitivity and
// how large an allowance may be; an Agent may raise the sensitivity
// (anyone's to do: the watch tightens), and may be observed or given
// batch-window allowances only by someone who may lift its freezes
// (MayLoosen), so that its owners cannot switch their own watch off.

// DefaultMaxAllowance is a DataBoundary's maxAllowance when it sets none.
const DefaultMaxAllowance = 10

// sensitivityRank orders sensitivities; none set is below every one.
var sensitivityRank = map[custosv1alpha1.BreakerSensitivity]int{
	"": -1, custosv1alpha1.SensitivityLow: 0, custosv1alpha1.SensitivityMedium: 1, custosv1alpha1.SensitivityHigh: 2,
}

// SensitivityScale is what a sensitivity multiplies the detector's H by
// (the evidence that trips it): Low 1.5 (12 spreads), Medium 1 (8, what
// make replay-risk judges), High 0.75 (6).
func SensitivityScale(s custosv1alpha1.BreakerSensitivity) float64 {
	return [...]float64{1.5, 1, 0.75}[max(0, sensitivityRank[Higher(s, "")])]
}

// Higher is the higher of two sensitivities (Medium when neither is set).
func Higher(a, b custosv1alpha1.BreakerSensitivity) custosv1alpha1.BreakerSensitivity {
	if sensitivityRank[b] > sensitivityRank[a] {
		a = b
	}
	if a == "" {
		return custosv1alpha1.SensitivityMedium
	}
	return a
}

// MaxAllowanceOf is a boundary's maxAllowance.
func MaxAllowanceOf(b *custosv1alpha1.DataBoundary) int32 {
	if b == nil || b.Spec.Breaker == nil || b.Spec.Breaker.MaxAllowance == 0 {
		return DefaultMaxAllowance
	}
	return b.Spec.Breaker.MaxAllowance
}

var weekdays = map[custosv1alpha1.Weekday]time.Weekday{"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday,
	"Wed": time.Wednesday, "Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday}

// AllowanceAt is the allowance in force at now (the largest, when windows
// overlap), capped at most, and its name; 1 and "" when none is.
func AllowanceAt(allowances []custosv1alpha1.BreakerAllowance, most int32, now time.Time) (float64, string) {
	factor, name := 1.0, ""
	for _, a := range allowances {
		if WindowOpen(a.Days, a.Start, a.Duration.Duration, now, time.UTC) {
			if f := float64(min(a.Factor, most)); f > factor {
				factor, name = f, a.Name
			}
		}
	}
	return factor, name
}

// WindowOpen says whether a weekly window (it opens at start, HH:MM, on
// days, every day when none, and stays open for d, at most a day), read in
// loc, is open at t.
func WindowOpen(days []custosv1alpha1.Weekday, start string, d time.Duration, t time.Time, loc *time.Location) bool {
	h, m, ok := hhmm(start)
	if !ok || d <= 0 {
		return false
	}
	t = t.In(loc)
	// A window of at most a day opened today or yesterday.
	for back := range 2 {
		day := time.Date(t.Year(), t.Month(), t.Day()-back, h, m, 0, 0, loc)
		if len(days) > 0 && !slices.ContainsFunc(days, func(w custosv1alpha1.Weekday) bool { return weekdays[w] == day.Weekday() }) {
			continue
		}
		if !t.Before(day) && t.Before(day.Add(min(d, 24*time.Hour))) {
			return true
		}
	}
	return false
}

func hhmm(s string) (int, int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	return h, m, err1 == nil && err2 == nil && h < 24 && m < 60
}

// CheckAgentBreaker holds an Agent's spec.breaker to its DataBoundary's: a
// sensitivity at least the boundary's, allowances of at most its
// maxAllowance and at most a day.
func CheckAgentBreaker(agent *custosv1alpha1.Agent, b *custosv1alpha1.DataBoundary) field.ErrorList {
	ab := agent.Spec.Breaker
	if ab == nil {
		return nil
	}
	var errs field.ErrorList
	path := field.NewPath("spec", "breaker")
	if b != nil && b.Spec.Breaker != nil && ab.Sensitivity != "" && sensitivityRank[ab.Sensitivity] < sensitivityRank[b.Spec.Breaker.Sensitivity] {
		errs = append(errs, field.Invalid(path.Child("sensitivity"), ab.Sensitivity, fmt.Sprintf(
			"below DataBoundary %s's sensitivity %s (spec.breaker.sensitivity there): an Agent may only raise it", b.Name, b.Spec.Breaker.Sensitivity)))
	}
	most := MaxAllowanceOf(b)
	for i, a := range ab.Allowances {
		p := path.Child("allowances").Index(i)
		if a.Factor > most {
			name := "its DataBoundary"
			if b != nil {
				name = "DataBoundary " + b.Name
			}
			errs = append(errs, field.Invalid(p.Child("factor"), a.Factor, fmt.Sprintf(
				"above %s's maxAllowance of %d (spec.breaker.maxAllowance there)", name, most)))
		}
		if d := a.Duration.Duration; d <= 0 || d > 24*time.Hour {
			errs = append(errs, field.Invalid(p.Child("duration"), a.Duration.String(), "a window is open for more than nothing and at most 24h"))
		}
	}
	return errs
}

// Loosens lists what an update (old nil on create) does to loosen the
// breaker's watch of the agent: Observe set, an allowance added or
// changed, the sensitivity lowered. Each needs MayLoosen. Removing
// Observe or an allowance, or raising the sensitivity, is anyone's.
func Loosens(old, agent *custosv1alpha1.Agent) []*field.Path {
	var was custosv1alpha1.AgentBreaker
	if old != nil && old.Spec.Breaker != nil {
		was = *old.Spec.Breaker
	}
	ab := agent.Spec.Breaker
	if ab == nil {
		ab = &custosv1alpha1.AgentBreaker{}
	}
	var out []*field.Path
	path := field.NewPath("spec", "breaker")
	if sensitivityRank[ab.Sensitivity] < sensitivityRank[was.Sensitivity] {
		// Back down from what someone who may unfreeze it raised it to.
		out = append(out, path.Child("sensitivity"))
	}
	if ab.Mode == custosv1alpha1.BreakerObserve && was.Mode != custosv1alpha1.BreakerObserve {
		out = append(out, path.Child("mode"))
	}
	for i, a := range ab.Allowances {
		j := slices.IndexFunc(was.Allowances, func(w custosv1alpha1.BreakerAllowance) bool { return w.Name == a.Name })
		if j < 0 || !equality.Semantic.DeepEqual(was.Allowances[j], a) {
			out = append(out, path.Child("allowances").Index(i))
		}
	}
	return out
}

// TenantWatch is what a tenant's DataBoundaries say of the breaker: it is
// observed when every one says Observe, watched at the highest of their
// sensitivities, and allowed the lowest of their maxAllowances.
type TenantWatch struct {
	Observed     bool
	Sensitivity  custosv1alpha1.BreakerSensitivity
	MaxAllowance int32
}

// TenantWatches is every tenant's TenantWatch.
func TenantWatches(boundaries []custosv1alpha1.DataBoundary) map[string]TenantWatch {
	out := map[string]TenantWatch{}
	for i := range boundaries {
		b := &boundaries[i]
		tw, seen := out[b.Spec.Tenant]
		obs := b.Spec.Breaker != nil && b.Spec.Breaker.Mode == custosv1alpha1.BreakerObserve
		tw.Observed = obs && (!seen || tw.Observed)
		sens := custosv1alpha1.SensitivityMedium
		if b.Spec.Breaker != nil && b.Spec.Breaker.Sensitivity != "" {
			sens = b.Spec.Breaker.Sensitivity
		}
		tw.Sensitivity = Higher(tw.Sensitivity, sens)
		if !seen || MaxAllowanceOf(b) < tw.MaxAllowance {
			tw.MaxAllowance = MaxAllowanceOf(b)
		}
		out[b.Spec.Tenant] = tw
	}
	return out
}

// SensitivityOf is agent's sensitivity: the higher of its tenant's and
// its own.
func (tw TenantWatch) SensitivityOf(agent *custosv1alpha1.Agent) custosv1alpha1.BreakerSensitivity {
	own := custosv1alpha1.BreakerSensitivity("")
	if agent.Spec.Breaker != nil {
		own = agent.Spec.Breaker.Sensitivity
	}
	return Higher(tw.Sensitivity, own)
}

// WatchOf is how the breaker watches agent at t, within its tenant's
// TenantWatch: the evidence that trips it and the allowance in force (and
// its name); and why a trip of it is observed rather than frozen ("" when
// it freezes; a trip in the warm-up is observed besides, Trip.WarmUp).
func (p *DetectorParams) WatchOf(agent *custosv1alpha1.Agent, tw TenantWatch, t time.Time) (w Watch, allowance, observed string) {
	ab := agent.Spec.Breaker
	if ab == nil {
		ab = &custosv1alpha1.AgentBreaker{}
	}
	most := tw.MaxAllowance
	if most == 0 {
		most = DefaultMaxAllowance
	}
	w.H = p.H * SensitivityScale(tw.SensitivityOf(agent))
	w.Allow, allowance = AllowanceAt(ab.Allowances, most, t)
	switch {
	case ab.Mode == custosv1alpha1.BreakerObserve:
		observed = "the Agent's spec.breaker.mode"
	case tw.Observed:
		observed = "its DataBoundaries' spec.breaker.mode"
	}
	return w, allowance, observed
}
