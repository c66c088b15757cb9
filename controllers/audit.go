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
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// ControllerActor is who the reconcilers' and the sweeper's audit records
// are by.
var ControllerActor = audit.Actor{Kind: audit.ActorController, Name: "custos-controller-manager"}

// subjectOf is the audit subject of an object Custos governs or made: for
// an agent's child, the subject is still the agent (by its labels).
func subjectOf(obj client.Object, kind string) audit.Subject {
	l := obj.GetLabels()
	if kind != "Agent" && l[custosv1alpha1.AgentLabel] != "" {
		return audit.Subject{
			Kind: "Agent", Namespace: obj.GetNamespace(), Name: l[custosv1alpha1.AgentLabel],
			UID: l[custosv1alpha1.AgentUIDLabel], Tenant: l[custosv1alpha1.TenantLabel],
		}
	}
	return audit.Subject{
		Kind: kind, Namespace: obj.GetNamespace(), Name: obj.GetName(),
		UID: string(obj.GetUID()), Tenant: l[custosv1alpha1.TenantLabel],
	}
}

// auditByController writes e as a record by the controller, with the
// reconcile's ID as trace ID so that a record leads to the logs of the
// reconcile that made it.
func auditByController(ctx context.Context, rec audit.Recorder, e audit.Event) {
	e.Actor = ControllerActor
	e.TraceID = string(controller.ReconcileIDFromContext(ctx))
	rec.Record(ctx, e)
}

// auditTransitions records what changed about an agent's governance
// between before and after, once the change is written: its onboarding,
// identity binding, boundary violations, suspension, expiry, resumption and
// the end of its decommission (auditDecommissioning records the start).
func (r *AgentReconciler) auditTransitions(ctx context.Context, before, agent *custosv1alpha1.Agent) {
	subject := subjectOf(agent, "Agent")
	readyMsg := conditionMessage(agent, custosv1alpha1.ReadyCondition)

	if c := findCondition(agent, custosv1alpha1.IdentityBoundCondition); c != nil && c.Status == metav1.ConditionTrue {
		if old := findCondition(before, custosv1alpha1.IdentityBoundCondition); old == nil || old.Status != metav1.ConditionTrue || old.Message != c.Message {
			details := map[string]string{}
			if id := agent.Status.Identity; id != nil {
				details["serviceAccount"] = id.ServiceAccount
				details["spiffeID"] = id.SPIFFEID
			}
			auditByController(ctx, r.Audit, audit.Event{
				Subject:  subject,
				Action:   audit.ActionIdentityBound,
				Decision: audit.DecisionAllow,
				Reason:   c.Message,
				Details:  details,
			})
		}
	}
	if c := findCondition(agent, custosv1alpha1.BoundaryCompliantCondition); c != nil && isStalledReason(c.Reason) {
		if old := findCondition(before, custosv1alpha1.BoundaryCompliantCondition); old == nil || old.Reason != c.Reason || old.Message != c.Message {
			auditByController(ctx, r.Audit, audit.Event{
				Subject:  subject,
				Action:   audit.ActionBoundaryViolation,
				Decision: audit.DecisionDeny,
				Reason:   c.Message,
				Policy:   "DataBoundary",
				Details:  map[string]string{"condition": c.Type, "reason": c.Reason},
			})
		}
	}

	if rv := agent.Status.Review; rv != nil && rv.Attestation != "" && (before.Status.Review == nil || before.Status.Review.Attestation != rv.Attestation) {
		auditByController(ctx, r.Audit, audit.Event{
			Subject:  subject,
			Action:   audit.ActionAgentAttested,
			Decision: audit.DecisionAllow,
			Policy:   "spec.review",
			Reason:   fmt.Sprintf("%s attested agent %s/%s (AgentAttestation %s); next review due at %s", rv.AttestedBy, agent.Namespace, agent.Name, rv.Attestation, rv.DueAt.UTC().Format(time.RFC3339)),
			Details:  map[string]string{"attester": rv.AttestedBy, "attestation": rv.Attestation, "dueAt": rv.DueAt.UTC().Format(time.RFC3339)},
		})
	}
	beforePhase, phase := phaseOf(before), phaseOf(agent)
	if beforePhase == phase {
		return
	}
	details := map[string]string{"from": string(beforePhase), "to": string(phase)}
	switch phase {
	case custosv1alpha1.AgentPhaseActive:
		action := audit.ActionAgentOnboarded
		if beforePhase == custosv1alpha1.AgentPhaseSuspended || beforePhase == custosv1alpha1.AgentPhaseFrozen {
			action = audit.ActionAgentResumed
		}
		details["image"] = agent.Spec.Image
		auditByController(ctx, r.Audit, audit.Event{
			Subject:  subject,
			Action:   action,
			Decision: audit.DecisionAllow,
			Reason:   readyMsg,
			Details:  details,
		})
	case custosv1alpha1.AgentPhaseSuspended:
		action, policy, reason := audit.ActionAgentSuspended, "spec.lifecycle.state", custosv1alpha1.SuspendedBySpecReason
		// Why, in the order the reconciler asks (reconcileSteps).
		now := r.Clock.Now()
		switch lc, rv := agent.Spec.Lifecycle, agent.Status.Review; {
		case lc.State == custosv1alpha1.LifecycleSuspended:
		case lc.ExpiresAt != nil && !now.Before(lc.ExpiresAt.Time):
			action, policy, reason = audit.ActionAgentExpired, "spec.lifecycle.expiresAt", custosv1alpha1.ExpiredReason
			details["expiresAt"] = lc.ExpiresAt.UTC().Format(time.RFC3339)
		case agent.Spec.Review != nil && rv != nil && rv.DueAt != nil && !now.Before(rv.DueAt.Time):
			policy, reason = "spec.review", custosv1alpha1.ReviewOverdueReason
			details["dueAt"] = rv.DueAt.UTC().Format(time.RFC3339)
		default:
			policy, reason = "DataBoundary spec.images", custosv1alpha1.ImageNotVerifiedReason
		}
		auditByController(ctx, r.Audit, audit.Event{
			Subject:  subject,
			Action:   action,
			Decision: audit.DecisionInfo,
			Reason:   suspendedMessage(agent, reason),
			Policy:   policy,
			Details:  details,
		})
	case custosv1alpha1.AgentPhaseDecommissioned:
		auditByController(ctx, r.Audit, audit.Event{
			Subject:  subject,
			Action:   audit.ActionAgentDecommissioned,
			Decision: audit.DecisionInfo,
			Reason:   readyMsg,
			Details:  details,
		})
	}
}

// auditDecommissioning records that an agent's decommission starts, and
// why: its owner set state Decommissioned, or deleted it.
func (r *AgentReconciler) auditDecommissioning(ctx context.Context, agent *custosv1alpha1.Agent) {
	trigger, reason := "spec.lifecycle.state", "Decommissioning: spec.lifecycle.state is Decommissioned"
	if !agent.DeletionTimestamp.IsZero() {
		trigger, reason = "deletion", "Decommissioning: the Agent was deleted"
	}
	auditByController(ctx, r.Audit, audit.Event{
		Subject:  subjectOf(agent, "Agent"),
		Action:   audit.ActionAgentDecommissioning,
		Decision: audit.DecisionInfo,
		Reason:   reason,
		Policy:   trigger,
		Details:  map[string]string{"from": string(phaseOf(agent)), "trigger": trigger},
	})
}
