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
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// isStalledReason: the reason needs a change by a person, not time.
func isStalledReason(reason string) bool {
	switch reason {
	case custosv1alpha1.BoundaryConflictReason, custosv1alpha1.BoundaryViolationReason,
		custosv1alpha1.NameConflictReason, custosv1alpha1.InvalidSpecReason, custosv1alpha1.NetworkPolicyWidenedReason,
		custosv1alpha1.LeaseBackendNotConfiguredReason, custosv1alpha1.GatewayNotConfiguredReason,
		custosv1alpha1.SignatureMissingReason, custosv1alpha1.UntrustedSignerReason,
		custosv1alpha1.RegistryNotAllowedReason, custosv1alpha1.NoTrustedSignersReason,
		custosv1alpha1.InvalidImagePolicyReason, custosv1alpha1.ApprovalDeniedReason, custosv1alpha1.ApprovalExpiredReason:
		return true
	}
	return false
}

func setCondition(agent *custosv1alpha1.Agent, conditionType string, status metav1.ConditionStatus, reason, format string, args ...any) {
	setStatusCondition(&agent.Status.Conditions, agent.Generation, conditionType, status, reason, fmt.Sprintf(format, args...))
}

func findCondition(agent *custosv1alpha1.Agent, conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(agent.Status.Conditions, conditionType)
}

func isTrue(agent *custosv1alpha1.Agent, conditionType string) bool {
	return meta.IsStatusConditionTrue(agent.Status.Conditions, conditionType)
}

func conditionMessage(agent *custosv1alpha1.Agent, conditionType string) string {
	if c := findCondition(agent, conditionType); c != nil {
		return c.Message
	}
	return ""
}

// agentStatus computes the agent's status from what the steps of a pass
// observed: each observed condition replaces the one of its type (its
// transition time kept when its status did not change), the conditions no
// step observed stand, and the summary (Ready, Stalled, Reconciling) and
// the lifecycle phase follow from them all (summarize). It is pure: the
// steps observe, and only this writes conditions.
func agentStatus(agent *custosv1alpha1.Agent, observed []metav1.Condition, suspendReason string, now time.Time) {
	for _, c := range observed {
		setCondition(agent, c.Type, c.Status, c.Reason, "%s", c.Message)
	}
	summarize(agent, suspendReason, now)
}

// summarize sets Ready, Reconciling and Stalled from the steps' conditions
// and moves the lifecycle phase on. kstatus reads Reconciling and Stalled,
// which are present only while True.
func summarize(agent *custosv1alpha1.Agent, suspendReason string, now time.Time) {
	var stalled, waiting *metav1.Condition
	var ready int
	for _, step := range agentSteps {
		t := step.condition
		c := findCondition(agent, t)
		switch {
		case c == nil:
		case c.Status == metav1.ConditionTrue:
			ready++
		case isStalledReason(c.Reason):
			if stalled == nil {
				stalled = c
			}
		case waiting == nil:
			waiting = c
		}
	}

	meta.RemoveStatusCondition(&agent.Status.Conditions, custosv1alpha1.StalledCondition)
	meta.RemoveStatusCondition(&agent.Status.Conditions, custosv1alpha1.ReconcilingCondition)
	switch {
	case stalled != nil:
		setCondition(agent, custosv1alpha1.StalledCondition, metav1.ConditionTrue, stalled.Reason, "%s", stalled.Message)
		setCondition(agent, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, stalled.Reason, "%s", stalled.Message)
	case waiting != nil:
		setCondition(agent, custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, waiting.Reason, "%s", waiting.Message)
		setCondition(agent, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, waiting.Reason, "%s", waiting.Message)
	case suspendReason != "":
		// Suspended is a state the spec asks for (or its expiry does): once
		// reached, the agent is Ready in it, and kstatus sees it Current.
		setCondition(agent, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, suspendReason, "%s", suspendedMessage(agent, suspendReason))
	case ready == len(agentSteps):
		setCondition(agent, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"Agent runs with its own identity inside its DataBoundary: %s", conditionMessage(agent, custosv1alpha1.WorkloadAvailableCondition))
	}

	lc := agent.Status.Lifecycle
	if lc == nil {
		lc = &custosv1alpha1.LifecycleStatus{}
		agent.Status.Lifecycle = lc
	}
	lc.ExpiresAt = agent.Spec.Lifecycle.ExpiresAt.DeepCopy()
	stopping := false
	if c := findCondition(agent, custosv1alpha1.WorkloadAvailableCondition); c != nil && c.Reason == custosv1alpha1.StoppingReason {
		// Pods still run as the agent: it is not suspended yet, whatever
		// its spec asks for.
		stopping = true
	}
	switch {
	case suspendReason == custosv1alpha1.FrozenReason && !stopping:
		lc.Phase = custosv1alpha1.AgentPhaseFrozen
		if lc.SuspendedAt == nil {
			lc.SuspendedAt = ptr.To(metav1.NewTime(now))
		}
	case suspendReason != "" && !stopping:
		lc.Phase = custosv1alpha1.AgentPhaseSuspended
		if lc.SuspendedAt == nil {
			lc.SuspendedAt = ptr.To(metav1.NewTime(now))
		}
	case isTrue(agent, custosv1alpha1.ReadyCondition):
		lc.Phase = custosv1alpha1.AgentPhaseActive
		lc.SuspendedAt = nil
		if lc.OnboardedAt == nil {
			lc.OnboardedAt = ptr.To(metav1.NewTime(now))
		}
	default:
		lc.SuspendedAt = nil
		lc.Phase = custosv1alpha1.AgentPhasePending
		if lc.OnboardedAt != nil {
			// An onboarded agent that is rolling or briefly unready is still
			// an active agent; Ready says the rest.
			lc.Phase = custosv1alpha1.AgentPhaseActive
		}
	}
}

func suspendedMessage(agent *custosv1alpha1.Agent, reason string) string {
	if reason == custosv1alpha1.FrozenReason {
		return fmt.Sprintf("Frozen by AgentFreeze %s: every lease revoked, scaled to zero and deny-all, its calls and exchanges refused, "+
			"until a person who may unfreeze it, and does not own it, lifts the freeze (kubectl custos unfreeze %s -n %s)",
			agent.Status.Lifecycle.Freeze, agent.Name, agent.Namespace)
	}
	if reason == custosv1alpha1.ImageNotVerifiedReason {
		return "Suspended because spec.image does not verify (the DataBoundary's onVerificationFailure is Suspend): " +
			conditionMessage(agent, custosv1alpha1.ImageVerifiedCondition)
	}
	if reason == custosv1alpha1.ReviewOverdueReason {
		due := "its spec.review period"
		if r := agent.Status.Review; r != nil && r.DueAt != nil {
			due = r.DueAt.UTC().Format(time.RFC3339)
		}
		return fmt.Sprintf("Owner review overdue since %s: suspended, scaled to zero and deny-all until an owner attests it (kubectl custos attest %s -n %s)",
			due, agent.Name, agent.Namespace)
	}
	if reason == custosv1alpha1.ExpiredReason {
		return fmt.Sprintf("Expired at %s: suspended, scaled to zero and deny-all; move spec.lifecycle.expiresAt to renew it",
			agent.Spec.Lifecycle.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return "Suspended by spec.lifecycle.state: scaled to zero and deny-all; set it to Active to resume"
}

// setDecommissioning reports the decommission step under way.
func setDecommissioning(agent *custosv1alpha1.Agent, reason, msg string) {
	lc := ensureLifecycle(agent)
	lc.Phase = custosv1alpha1.AgentPhaseDecommissioning
	meta.RemoveStatusCondition(&agent.Status.Conditions, custosv1alpha1.StalledCondition)
	setCondition(agent, custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, reason, "%s", msg)
	setCondition(agent, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, reason, "%s", msg)
}

// setDecommissioned reports a completed decommission: every step condition
// says so, and the phase is final.
func setDecommissioned(agent *custosv1alpha1.Agent, now time.Time) {
	lc := ensureLifecycle(agent)
	lc.Phase = custosv1alpha1.AgentPhaseDecommissioned
	if lc.DecommissionedAt == nil {
		lc.DecommissionedAt = ptr.To(metav1.NewTime(now))
	}
	meta.RemoveStatusCondition(&agent.Status.Conditions, custosv1alpha1.StalledCondition)
	meta.RemoveStatusCondition(&agent.Status.Conditions, custosv1alpha1.ReconcilingCondition)
	const msg = "Decommissioned: every lease revoked and every object the agent had removed"
	for _, step := range agentSteps {
		t := step.condition
		setCondition(agent, t, metav1.ConditionFalse, custosv1alpha1.DecommissionedReason, msg)
	}
	// The final state the spec asked for was reached.
	setCondition(agent, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.DecommissionedReason, msg)
}

func ensureLifecycle(agent *custosv1alpha1.Agent) *custosv1alpha1.LifecycleStatus {
	if agent.Status.Lifecycle == nil {
		agent.Status.Lifecycle = &custosv1alpha1.LifecycleStatus{}
	}
	return agent.Status.Lifecycle
}
