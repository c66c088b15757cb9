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
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/breaker"
)

// The longest windows a DataBoundary or Agent may set: the evaluator keeps
// the records of the windowed rubrics this long (refusals for an hour,
// approval tallies for a week) to read them with the next.
const (
	MaxProbeWindow  = time.Hour
	MaxDeniedWindow = 7 * 24 * time.Hour
)

// ThresholdsOf are the thresholds in force for an agent: the defaults,
// tightened by its DataBoundary's spec.evaluation, then by its own (the
// tighter of each holds, so an Agent admitted before its boundary was
// tightened cannot stay looser).
func ThresholdsOf(agent *custosv1alpha1.Agent, b *custosv1alpha1.DataBoundary) Thresholds {
	th := DefaultThresholds
	if b != nil {
		th = tighten(th, b.Spec.Evaluation)
	}
	if agent != nil {
		th = tighten(th, agent.Spec.Evaluation)
		th.Schedule, _ = ScheduleOf(agent.Spec.Schedule)
	}
	return th
}

// Schedule is an agent's spec.schedule, its time zone loaded.
type Schedule struct {
	loc     *time.Location
	windows []custosv1alpha1.ScheduleWindow
}

// ScheduleOf loads s; nil for none.
func ScheduleOf(s *custosv1alpha1.AgentSchedule) (*Schedule, error) {
	if s == nil || len(s.Windows) == 0 {
		return nil, nil
	}
	loc, err := time.LoadLocation(cmp.Or(s.TimeZone, "UTC"))
	if err != nil {
		return nil, err
	}
	return &Schedule{loc: loc, windows: s.Windows}, nil
}

// Contains says whether t is in one of its windows.
func (s *Schedule) Contains(t time.Time) bool {
	return slices.ContainsFunc(s.windows, func(w custosv1alpha1.ScheduleWindow) bool {
		return breaker.WindowOpen(w.Days, w.Start, w.Duration.Duration, t, s.loc)
	})
}

// String says it as people read it: "Mon,Tue 09:00 for 9h0m0s Europe/Berlin".
func (s *Schedule) String() string {
	var parts []string
	for _, w := range s.windows {
		days := "every day"
		if len(w.Days) > 0 {
			ds := make([]string, len(w.Days))
			for i, d := range w.Days {
				ds[i] = string(d)
			}
			days = strings.Join(ds, ",")
		}
		parts = append(parts, fmt.Sprintf("%s %s for %s", days, w.Start, w.Duration.Duration))
	}
	return strings.Join(parts, "; ") + " " + s.loc.String()
}

// CheckSchedule refuses a schedule whose time zone is unknown or a window
// longer than a day, at path.
func CheckSchedule(s *custosv1alpha1.AgentSchedule, path *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	if _, err := time.LoadLocation(cmp.Or(s.TimeZone, "UTC")); err != nil {
		errs = append(errs, field.Invalid(path.Child("timeZone"), s.TimeZone, "not a time zone Custos knows (an IANA name such as Europe/Berlin)"))
	}
	for i, w := range s.Windows {
		if d := w.Duration.Duration; d <= 0 || d > 24*time.Hour {
			errs = append(errs, field.Invalid(path.Child("windows").Index(i).Child("duration"), d.String(), "must be above 0s and at most 24h"))
		}
	}
	return errs
}

func tighten(th Thresholds, e *custosv1alpha1.EvaluationThresholds) Thresholds {
	if e == nil {
		return th
	}
	if e.MinConfidencePercent != nil {
		th.MinConfidence = max(th.MinConfidence, float64(*e.MinConfidencePercent)/100)
	}
	if e.ProbeRefusals != nil && *e.ProbeRefusals > 0 {
		th.ProbeRefusals = min(th.ProbeRefusals, int(*e.ProbeRefusals))
	}
	if e.ProbeWindow != nil && e.ProbeWindow.Duration > 0 {
		th.ProbeWindow = min(MaxProbeWindow, max(th.ProbeWindow, e.ProbeWindow.Duration))
	}
	if e.DeniedApprovals != nil && *e.DeniedApprovals > 0 {
		th.DeniedApprovals = min(th.DeniedApprovals, int(*e.DeniedApprovals))
	}
	if e.DeniedWindow != nil && e.DeniedWindow.Duration > 0 {
		th.DeniedWindow = min(MaxDeniedWindow, max(th.DeniedWindow, e.DeniedWindow.Duration))
	}
	if e.VolumeFactorPercent != nil && *e.VolumeFactorPercent > 0 {
		th.VolumeFactor = min(th.VolumeFactor, float64(*e.VolumeFactorPercent)/100)
	}
	if e.DailyRecordBudget != nil && *e.DailyRecordBudget > 0 && (th.DailyRecordBudget == 0 || *e.DailyRecordBudget < th.DailyRecordBudget) {
		th.DailyRecordBudget = *e.DailyRecordBudget
	}
	return th
}

// CheckThresholds refuses windows out of range in e, at path.
func CheckThresholds(e *custosv1alpha1.EvaluationThresholds, path *field.Path) field.ErrorList {
	if e == nil {
		return nil
	}
	var errs field.ErrorList
	for _, w := range []struct {
		name string
		d    *time.Duration
		max  time.Duration
	}{{"probeWindow", durationOf(e.ProbeWindow), MaxProbeWindow}, {"deniedWindow", durationOf(e.DeniedWindow), MaxDeniedWindow}} {
		if w.d != nil && (*w.d <= 0 || *w.d > w.max) {
			errs = append(errs, field.Invalid(path.Child(w.name), w.d.String(), fmt.Sprintf("must be above 0s and at most %s", w.max)))
		}
	}
	return errs
}

func durationOf(d *metav1.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	return &d.Duration
}

// CheckAgentEvaluation refuses an Agent's spec.evaluation looser than what
// its DataBoundary b holds it to (b's, or the defaults): an Agent may only
// tighten the lines it is watched by.
func CheckAgentEvaluation(agent *custosv1alpha1.Agent, b *custosv1alpha1.DataBoundary) field.ErrorList {
	e := agent.Spec.Evaluation
	if e == nil {
		return nil
	}
	path := field.NewPath("spec", "evaluation")
	errs := CheckThresholds(e, path)
	floor := ThresholdsOf(nil, b)
	source := "Custos's default"
	if b != nil && b.Spec.Evaluation != nil {
		source = fmt.Sprintf("DataBoundary %s's (spec.evaluation there, or Custos's default)", b.Name)
	}
	looser := func(name string, value any, line string) {
		errs = append(errs, field.Invalid(path.Child(name), value, fmt.Sprintf("looser than %s of %s: an Agent may only tighten the lines it is watched by", source, line)))
	}
	if e.MinConfidencePercent != nil && float64(*e.MinConfidencePercent)/100 < floor.MinConfidence {
		looser("minConfidencePercent", *e.MinConfidencePercent, fmt.Sprintf("%g%%", floor.MinConfidence*100))
	}
	if e.ProbeRefusals != nil && int(*e.ProbeRefusals) > floor.ProbeRefusals {
		looser("probeRefusals", *e.ProbeRefusals, fmt.Sprint(floor.ProbeRefusals))
	}
	if e.ProbeWindow != nil && e.ProbeWindow.Duration < floor.ProbeWindow {
		looser("probeWindow", e.ProbeWindow.Duration.String(), floor.ProbeWindow.String())
	}
	if e.DeniedApprovals != nil && int(*e.DeniedApprovals) > floor.DeniedApprovals {
		looser("deniedApprovals", *e.DeniedApprovals, fmt.Sprint(floor.DeniedApprovals))
	}
	if e.DeniedWindow != nil && e.DeniedWindow.Duration < floor.DeniedWindow {
		looser("deniedWindow", e.DeniedWindow.Duration.String(), floor.DeniedWindow.String())
	}
	if e.VolumeFactorPercent != nil && float64(*e.VolumeFactorPercent)/100 > floor.VolumeFactor {
		looser("volumeFactorPercent", *e.VolumeFactorPercent, fmt.Sprintf("%g%%", floor.VolumeFactor*100))
	}
	if e.DailyRecordBudget != nil && floor.DailyRecordBudget > 0 && *e.DailyRecordBudget > floor.DailyRecordBudget {
		looser("dailyRecordBudget", *e.DailyRecordBudget, fmt.Sprint(floor.DailyRecordBudget))
	}
	return errs
}

// ClusterThresholds resolves agents' thresholds from the API server, once
// per agent for as long as it is kept (one evaluator pass): the agent's
// namespace, the DataBoundary that covers it, and the Agent. A namespace
// or Agent that does not exist holds the agent to the defaults (tightened
// by whatever does); a namespace several boundaries cover, to the
// tightest of them. Any other error is kept for Err: the evaluator does
// not judge records by lines it could not read.
type ClusterThresholds struct {
	Reader client.Reader

	boundaries *custosv1alpha1.DataBoundaryList
	byAgent    map[[2]string]Thresholds
	err        error
}

// Err is the first error reading the lines, if any.
func (c *ClusterThresholds) Err() error { return c.err }

func (c *ClusterThresholds) fail(err error) {
	if c.err == nil && err != nil && !apierrors.IsNotFound(err) {
		c.err = err
	}
}

// For is the ThresholdsFor of the cluster now.
func (c *ClusterThresholds) For(ctx context.Context) ThresholdsFor {
	return func(namespace, name string) Thresholds {
		k := [2]string{namespace, name}
		if th, ok := c.byAgent[k]; ok {
			return th
		}
		if c.byAgent == nil {
			c.byAgent = map[[2]string]Thresholds{}
		}
		if c.boundaries == nil {
			c.boundaries = &custosv1alpha1.DataBoundaryList{}
			if err := c.Reader.List(ctx, c.boundaries); err != nil {
				c.fail(err)
			}
		}
		th := DefaultThresholds
		ns := &corev1.Namespace{}
		if err := c.Reader.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
			c.fail(err)
		} else {
			for i := range c.boundaries.Items {
				b := &c.boundaries.Items[i]
				if covers, err := boundary.Covers(b, ns); err == nil && covers && b.DeletionTimestamp.IsZero() {
					th = tighten(th, b.Spec.Evaluation)
				}
			}
		}
		agent := &custosv1alpha1.Agent{}
		if err := c.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, agent); err != nil {
			c.fail(err)
		} else {
			th = tighten(th, agent.Spec.Evaluation)
			th.Schedule, _ = ScheduleOf(agent.Spec.Schedule)
		}
		c.byAgent[k] = th
		return th
	}
}
