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

package controllers

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// TestAgentStatus covers the one pure pass that computes an Agent's status
// from what its steps observed: the summary conditions kstatus reads
// (Ready, Stalled, Reconciling) and the lifecycle phase.
func TestAgentStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg}
	}
	// allTrue is every step's condition True, as a pass of a healthy agent
	// observes them.
	allTrue := func() []metav1.Condition {
		var c []metav1.Condition
		for _, s := range agentSteps {
			msg := s.condition + " ok"
			if s.condition == custosv1alpha1.WorkloadAvailableCondition {
				msg = "2/2 replicas available"
			}
			c = append(c, cond(s.condition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, msg))
		}
		return c
	}
	// with is allTrue with the given conditions replacing theirs.
	with := func(over ...metav1.Condition) []metav1.Condition {
		c := allTrue()
		for _, o := range over {
			for i := range c {
				if c[i].Type == o.Type {
					c[i] = o
				}
			}
		}
		return c
	}
	onboarded := &custosv1alpha1.LifecycleStatus{Phase: custosv1alpha1.AgentPhaseActive, OnboardedAt: &metav1.Time{Time: t0}}

	type want struct {
		ready       metav1.ConditionStatus
		readyReason string
		readyMsg    string // a substring
		stalled     string // its reason, "" when absent
		reconciling string // its reason, "" when absent
		phase       custosv1alpha1.AgentPhase
		onboardedAt *time.Time
		suspendedAt *time.Time
	}
	cases := []struct {
		name      string
		lifecycle *custosv1alpha1.LifecycleStatus // the status before
		prior     []metav1.Condition              // conditions before the pass
		observed  []metav1.Condition
		suspend   string
		expiresAt *metav1.Time // spec.lifecycle.expiresAt
		want      want
	}{{
		name:     "every step True: Ready, Active, onboarded now",
		observed: allTrue(),
		want: want{ready: metav1.ConditionTrue, readyReason: custosv1alpha1.SucceededReason, readyMsg: "2/2 replicas available",
			phase: custosv1alpha1.AgentPhaseActive, onboardedAt: &now},
	}, {
		name:      "an onboarded agent keeps the time it was onboarded",
		lifecycle: onboarded.DeepCopy(),
		observed:  allTrue(),
		want: want{ready: metav1.ConditionTrue, readyReason: custosv1alpha1.SucceededReason,
			phase: custosv1alpha1.AgentPhaseActive, onboardedAt: &t0},
	}, {
		name: "a stalled step wins over a waiting one, whatever their order",
		observed: with(
			cond(custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason, "waiting for the token"),
			cond(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason, "Deployment agent-x is not the agent's"),
		),
		want: want{ready: metav1.ConditionFalse, readyReason: custosv1alpha1.NameConflictReason, readyMsg: "is not the agent's",
			stalled: custosv1alpha1.NameConflictReason, phase: custosv1alpha1.AgentPhasePending},
	}, {
		name: "of two stalled steps the first in step order is told",
		observed: with(
			cond(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason, "name taken"),
			cond(custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.UntrustedSignerReason, "signed by nobody trusted"),
		),
		want: want{ready: metav1.ConditionFalse, readyReason: custosv1alpha1.UntrustedSignerReason,
			stalled: custosv1alpha1.UntrustedSignerReason, phase: custosv1alpha1.AgentPhasePending},
	}, {
		name: "a waiting step: Reconciling, not Ready, not Stalled",
		observed: with(cond(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse,
			custosv1alpha1.ProgressingReason, "0/2 replicas available")),
		want: want{ready: metav1.ConditionFalse, readyReason: custosv1alpha1.ProgressingReason, readyMsg: "0/2",
			reconciling: custosv1alpha1.ProgressingReason, phase: custosv1alpha1.AgentPhasePending},
	}, {
		name:      "an onboarded agent that is rolling stays Active",
		lifecycle: onboarded.DeepCopy(),
		observed: with(cond(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse,
			custosv1alpha1.ProgressingReason, "1/2 replicas available")),
		want: want{ready: metav1.ConditionFalse, readyReason: custosv1alpha1.ProgressingReason,
			reconciling: custosv1alpha1.ProgressingReason, phase: custosv1alpha1.AgentPhaseActive, onboardedAt: &t0},
	}, {
		name:      "suspended by spec, every step done: Ready in Suspended",
		lifecycle: onboarded.DeepCopy(),
		observed: with(cond(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionTrue,
			custosv1alpha1.SucceededReason, "scaled to zero")),
		suspend: custosv1alpha1.SuspendedBySpecReason,
		want: want{ready: metav1.ConditionTrue, readyReason: custosv1alpha1.SuspendedBySpecReason, readyMsg: "set it to Active to resume",
			phase: custosv1alpha1.AgentPhaseSuspended, onboardedAt: &t0, suspendedAt: &now},
	}, {
		name:    "expired: Ready in Suspended, saying how to renew",
		suspend: custosv1alpha1.ExpiredReason, observed: allTrue(), expiresAt: &metav1.Time{Time: t0},
		want: want{ready: metav1.ConditionTrue, readyReason: custosv1alpha1.ExpiredReason, readyMsg: "Expired at " + t0.Format(time.RFC3339),
			phase: custosv1alpha1.AgentPhaseSuspended, suspendedAt: &now},
	}, {
		name:      "suspended while pods still run as the agent: not Suspended yet",
		lifecycle: onboarded.DeepCopy(),
		observed: with(cond(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse,
			custosv1alpha1.StoppingReason, "2 pods still run as the agent")),
		suspend: custosv1alpha1.SuspendedBySpecReason,
		want: want{ready: metav1.ConditionFalse, readyReason: custosv1alpha1.StoppingReason,
			reconciling: custosv1alpha1.StoppingReason, phase: custosv1alpha1.AgentPhaseActive, onboardedAt: &t0},
	}, {
		name: "a condition no step observed in this pass stands",
		prior: []metav1.Condition{cond(custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse,
			custosv1alpha1.ProgressingReason, "from the last pass")},
		observed: allTrue()[:len(agentSteps)-1], // the workload step did not run
		want: want{ready: metav1.ConditionFalse, readyReason: custosv1alpha1.ProgressingReason, readyMsg: "from the last pass",
			reconciling: custosv1alpha1.ProgressingReason, phase: custosv1alpha1.AgentPhasePending},
	}, {
		name:     "no step observed anything yet: Pending, no Ready written",
		observed: nil,
		want:     want{phase: custosv1alpha1.AgentPhasePending},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			agent.Status.Lifecycle = tc.lifecycle
			agent.Spec.Lifecycle.ExpiresAt = tc.expiresAt
			for _, c := range tc.prior {
				setCondition(agent, c.Type, c.Status, c.Reason, "%s", c.Message)
			}
			// A summary left over from the last pass must not survive.
			setCondition(agent, custosv1alpha1.StalledCondition, metav1.ConditionTrue, "Leftover", "from the last pass")
			agentStatus(agent, tc.observed, tc.suspend, now)

			ready := findCondition(agent, custosv1alpha1.ReadyCondition)
			switch {
			case tc.want.ready == "" && ready != nil:
				t.Errorf("Ready = %s/%s, want none", ready.Status, ready.Reason)
			case tc.want.ready != "" && ready == nil:
				t.Errorf("no Ready condition, want %s/%s", tc.want.ready, tc.want.readyReason)
			case ready != nil:
				if ready.Status != tc.want.ready || ready.Reason != tc.want.readyReason {
					t.Errorf("Ready = %s/%s, want %s/%s", ready.Status, ready.Reason, tc.want.ready, tc.want.readyReason)
				}
				if !strings.Contains(ready.Message, tc.want.readyMsg) {
					t.Errorf("Ready message %q does not say %q", ready.Message, tc.want.readyMsg)
				}
				if ready.ObservedGeneration != 3 {
					t.Errorf("Ready observedGeneration = %d, want the Agent's 3", ready.ObservedGeneration)
				}
			}
			for _, s := range []struct{ typ, want string }{
				{custosv1alpha1.StalledCondition, tc.want.stalled},
				{custosv1alpha1.ReconcilingCondition, tc.want.reconciling},
			} {
				c := findCondition(agent, s.typ)
				switch {
				case s.want == "" && c != nil:
					t.Errorf("%s = %s/%s, want it absent (kstatus reads it only while True)", s.typ, c.Status, c.Reason)
				case s.want != "" && (c == nil || c.Status != metav1.ConditionTrue || c.Reason != s.want):
					t.Errorf("%s = %v, want True/%s", s.typ, c, s.want)
				}
			}
			lc := agent.Status.Lifecycle
			if lc == nil {
				t.Fatal("no status.lifecycle")
			}
			if !lc.ExpiresAt.Equal(tc.expiresAt) {
				t.Errorf("status.lifecycle.expiresAt = %v, want the spec's %v", lc.ExpiresAt, tc.expiresAt)
			}
			if lc.Phase != tc.want.phase {
				t.Errorf("phase = %s, want %s", lc.Phase, tc.want.phase)
			}
			for _, tm := range []struct {
				name string
				got  *metav1.Time
				want *time.Time
			}{{"onboardedAt", lc.OnboardedAt, tc.want.onboardedAt}, {"suspendedAt", lc.SuspendedAt, tc.want.suspendedAt}} {
				switch {
				case tm.want == nil && tm.got != nil:
					t.Errorf("%s = %s, want none", tm.name, tm.got)
				case tm.want != nil && (tm.got == nil || !tm.got.Time.Equal(*tm.want)):
					t.Errorf("%s = %v, want %s", tm.name, tm.got, tm.want)
				}
			}
		})
	}
}

// TestAgentStatusKeepsTransitionTimes: a condition observed again with the
// same status keeps the time of its last transition; one whose status
// changes gets a new one. Messages longer than the limit are clipped.
func TestAgentStatusKeepsTransitionTimes(t *testing.T) {
	agent := &custosv1alpha1.Agent{ObjectMeta: metav1.ObjectMeta{Generation: 1}}
	long := strings.Repeat("é", conditionMessageLimit)
	agentStatus(agent, []metav1.Condition{
		{Type: custosv1alpha1.BoundaryCompliantCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.SucceededReason, Message: "placed"},
		{Type: custosv1alpha1.ImageVerifiedCondition, Status: metav1.ConditionFalse, Reason: custosv1alpha1.ResolveFailedReason, Message: long},
	}, "", time.Now())
	past := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for i := range agent.Status.Conditions {
		agent.Status.Conditions[i].LastTransitionTime = past
	}
	img := findCondition(agent, custosv1alpha1.ImageVerifiedCondition)
	if len(img.Message) > conditionMessageLimit || !strings.HasSuffix(img.Message, "…") {
		t.Errorf("a %d-byte message was written as %d bytes, want it clipped to %d with a mark", len(long), len(img.Message), conditionMessageLimit)
	}

	agentStatus(agent, []metav1.Condition{
		{Type: custosv1alpha1.BoundaryCompliantCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.SucceededReason, Message: "placed again"},
		{Type: custosv1alpha1.ImageVerifiedCondition, Status: metav1.ConditionTrue, Reason: custosv1alpha1.VerifiedReason, Message: "verified"},
	}, "", time.Now())
	if c := findCondition(agent, custosv1alpha1.BoundaryCompliantCondition); !c.LastTransitionTime.Equal(&past) || c.Message != "placed again" {
		t.Errorf("BoundaryCompliant observed True again: transition %s message %q, want %s kept and the new message", c.LastTransitionTime, c.Message, past)
	}
	if c := findCondition(agent, custosv1alpha1.ImageVerifiedCondition); c.LastTransitionTime.Equal(&past) {
		t.Errorf("ImageVerified went False→True but kept its transition time %s", past)
	}
	if meta.IsStatusConditionTrue(agent.Status.Conditions, custosv1alpha1.ReadyCondition) {
		t.Error("Ready with four steps never observed")
	}
}
