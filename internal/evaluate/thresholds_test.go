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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// TestThresholdsOf: a boundary and an agent only tighten the defaults,
// each line for itself, and windows stay within what the evaluator keeps.
func TestThresholdsOf(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ThresholdsOf(nil, nil)).To(Equal(DefaultThresholds))
	b := &custosv1alpha1.DataBoundary{ObjectMeta: metav1.ObjectMeta{Name: "finance"}, Spec: custosv1alpha1.DataBoundarySpec{
		Evaluation: &custosv1alpha1.EvaluationThresholds{MinConfidencePercent: ptr.To[int32](90), ProbeRefusals: ptr.To[int32](3),
			ProbeWindow: &metav1.Duration{Duration: 30 * time.Minute}, DeniedApprovals: ptr.To[int32](9),
			VolumeFactorPercent: ptr.To[int32](500), DailyRecordBudget: ptr.To[int64](10000)}}}
	th := ThresholdsOf(nil, b)
	g.Expect(th).To(Equal(Thresholds{MinConfidence: 0.9, ProbeRefusals: 3, ProbeWindow: 30 * time.Minute,
		DeniedApprovals: 3, DeniedWindow: 24 * time.Hour, VolumeFactor: 3, DailyRecordBudget: 10000}),
		"9 denied approvals would loosen the default 3, and 500% the default 300%: not taken")

	agent := &custosv1alpha1.Agent{Spec: custosv1alpha1.AgentSpec{Evaluation: &custosv1alpha1.EvaluationThresholds{
		MinConfidencePercent: ptr.To[int32](50), ProbeRefusals: ptr.To[int32](2), ProbeWindow: &metav1.Duration{Duration: 5 * time.Hour},
		DeniedWindow: &metav1.Duration{Duration: 48 * time.Hour}}}}
	th = ThresholdsOf(agent, b)
	g.Expect(th.MinConfidence).To(Equal(0.9), "the agent's 50% would loosen its boundary's 90%")
	g.Expect(th.ProbeRefusals).To(Equal(2))
	g.Expect(th.ProbeWindow).To(Equal(MaxProbeWindow), "longer is tighter, up to what the evaluator keeps")
	g.Expect(th.DeniedWindow).To(Equal(48 * time.Hour))

	// Admission says which of the agent's lines are looser, and why.
	errs := CheckAgentEvaluation(agent, b)
	g.Expect(errs).To(HaveLen(2))
	g.Expect(errs[0].Field).To(Equal("spec.evaluation.probeWindow"))
	g.Expect(errs[0].Detail).To(ContainSubstring("at most 1h0m0s"))
	g.Expect(errs[1].Field).To(Equal("spec.evaluation.minConfidencePercent"))
	g.Expect(errs[1].Detail).To(ContainSubstring("looser than DataBoundary finance's"))
	g.Expect(errs[1].Detail).To(ContainSubstring("of 90%"))
	agent.Spec.Evaluation = &custosv1alpha1.EvaluationThresholds{ProbeRefusals: ptr.To[int32](6)}
	errs = CheckAgentEvaluation(agent, nil)
	g.Expect(errs).To(HaveLen(1))
	g.Expect(errs[0].Detail).To(ContainSubstring("looser than Custos's default of 5"))
	agent.Spec.Evaluation = &custosv1alpha1.EvaluationThresholds{MinConfidencePercent: ptr.To[int32](95), DeniedApprovals: ptr.To[int32](1),
		VolumeFactorPercent: ptr.To[int32](200), DailyRecordBudget: ptr.To[int64](5000)}
	g.Expect(CheckAgentEvaluation(agent, b)).To(BeEmpty())
	th = ThresholdsOf(agent, b)
	g.Expect(th.VolumeFactor).To(Equal(2.0))
	g.Expect(th.DailyRecordBudget).To(BeEquivalentTo(5000))
	agent.Spec.Evaluation = &custosv1alpha1.EvaluationThresholds{VolumeFactorPercent: ptr.To[int32](400), DailyRecordBudget: ptr.To[int64](20000)}
	errs = CheckAgentEvaluation(agent, b)
	g.Expect(errs).To(HaveLen(2))
	g.Expect(errs[0].Field).To(Equal("spec.evaluation.volumeFactorPercent"))
	g.Expect(errs[0].Detail).To(ContainSubstring("of 300%"))
	g.Expect(errs[1].Field).To(Equal("spec.evaluation.dailyRecordBudget"))
	g.Expect(errs[1].Detail).To(ContainSubstring("of 10000"))
	g.Expect(CheckAgentEvaluation(agent, nil)).To(HaveLen(1), "no budget to loosen without one on the boundary")
	g.Expect(CheckThresholds(&custosv1alpha1.EvaluationThresholds{DeniedWindow: &metav1.Duration{Duration: -time.Second}}, nil)).To(HaveLen(1))
}

// TestSchedule: a call outside every window of the agent's schedule, read
// in its time zone, is off-schedule; inside one, nothing; a window runs
// past midnight; admission refuses an unknown zone and a window over a
// day.
func TestSchedule(t *testing.T) {
	g := NewWithT(t)
	sched := &custosv1alpha1.AgentSchedule{TimeZone: "Europe/Berlin", Windows: []custosv1alpha1.ScheduleWindow{
		{Days: []custosv1alpha1.Weekday{"Mon", "Tue", "Wed", "Thu", "Fri"}, Start: "09:00", Duration: metav1.Duration{Duration: 9 * time.Hour}},
		{Days: []custosv1alpha1.Weekday{"Sat"}, Start: "22:00", Duration: metav1.Duration{Duration: 4 * time.Hour}},
	}}
	s, err := ScheduleOf(sched)
	g.Expect(err).NotTo(HaveOccurred())
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 12, day, hh, mm, 0, 0, berlin) } // 7 Dec 2026 is a Monday
	g.Expect(s.Contains(at(7, 9, 0))).To(BeTrue())
	g.Expect(s.Contains(at(7, 17, 59))).To(BeTrue())
	g.Expect(s.Contains(at(7, 18, 0))).To(BeFalse())
	g.Expect(s.Contains(at(7, 8, 59).UTC())).To(BeFalse(), "read in its zone, whatever t's")
	g.Expect(s.Contains(at(12, 23, 0))).To(BeTrue(), "Saturday night")
	g.Expect(s.Contains(at(13, 1, 30))).To(BeTrue(), "past midnight, into Sunday")
	g.Expect(s.Contains(at(13, 2, 0))).To(BeFalse())
	g.Expect(s.String()).To(Equal("Mon,Tue,Wed,Thu,Fri 09:00 for 9h0m0s; Sat 22:00 for 4h0m0s Europe/Berlin"))

	agent := &custosv1alpha1.Agent{Spec: custosv1alpha1.AgentSpec{Schedule: sched}}
	th := ThresholdsOf(agent, nil)
	call := func(at time.Time) audit.Record {
		return audit.Record{Type: audit.TypeEvent, Action: audit.ActionToolCalled, Time: at, Subject: &audit.Subject{Kind: "Agent", Namespace: "ns", Name: "a"},
			Details: map[string]string{"tool": "ledger.get", "access": "Read"}}
	}
	hits := EvaluateRecords([]audit.Record{call(at(7, 10, 0)), call(at(12, 3, 12))}, Fixed(th))
	g.Expect(hits).To(HaveLen(1))
	g.Expect(hits[0].Rubric).To(Equal(RubricOffSchedule))
	g.Expect(hits[0].Why).To(Equal("call of ledger.get at Sat 03:12 CET, outside its schedule (Mon,Tue,Wed,Thu,Fri 09:00 for 9h0m0s; Sat 22:00 for 4h0m0s Europe/Berlin)"))
	g.Expect(EvaluateRecords([]audit.Record{call(at(12, 3, 12))}, Fixed(ThresholdsOf(nil, nil)))).To(BeEmpty(), "no schedule, any time")

	bad := &custosv1alpha1.AgentSchedule{TimeZone: "Mars/Olympus", Windows: []custosv1alpha1.ScheduleWindow{{Start: "09:00", Duration: metav1.Duration{Duration: 25 * time.Hour}}}}
	errs := CheckSchedule(bad, field.NewPath("spec", "schedule"))
	g.Expect(errs).To(HaveLen(2))
	g.Expect(errs[0].Field).To(Equal("spec.schedule.timeZone"))
	g.Expect(errs[1].Field).To(Equal("spec.schedule.windows[0].duration"))
	g.Expect(CheckSchedule(sched, field.NewPath("spec", "schedule"))).To(BeEmpty())
}
