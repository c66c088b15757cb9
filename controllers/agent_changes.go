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
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
)

// +kubebuilder:rbac:groups=custos.dev,resources=approvalrequests,verbs=create

// reconcileChanges decides what of the agent's Toolsets and cloud roles is
// in force (status.granted, which custos-gateway, custos-sts and the later
// steps read): what the spec no longer asks for goes at once; what it adds
// goes in at once unless an ApprovalPolicy holds the agent's changes
// (agentChanges) and it is a Toolset with Write tools or a cloud role.
// Such a generation waits for an ApprovalRequest of its own, which this
// step makes, and consumes once approved; meanwhile the generation in
// force keeps running (ChangesApproved False, ApprovalRequired).
func (r *AgentReconciler) reconcileChanges(ctx context.Context, s *agentScope) stepResult {
	agent := s.agent
	toolsets := map[types.NamespacedName]*custosv1alpha1.Toolset{}
	for _, g := range s.inputs.Toolsets {
		toolsets[g.Key] = g.Toolset
	}
	grant, change := approval.Grant(agent, toolsets)
	if change == nil {
		agent.Status.Granted = &grant
		s.observe(custosv1alpha1.ChangesApprovedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"Every Toolset and cloud role of generation %d is in force%s", agent.Generation, notYet(agent, grant))
		return stepResult{}
	}
	var policies custosv1alpha1.ApprovalPolicyList
	if err := r.Client.List(ctx, &policies, client.InNamespace(agent.Namespace)); err != nil {
		return failed(err)
	}
	req := approval.RequireChange(policies.Items, agent)
	if req == nil {
		grant = approval.Apply(agent, grant, change, "")
		agent.Status.Granted = &grant
		s.observe(custosv1alpha1.ChangesApprovedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"Every Toolset and cloud role of generation %d is in force (no ApprovalPolicy holds this agent's changes)%s", agent.Generation, notYet(agent, grant))
		return stepResult{}
	}
	// Until the change is approved, the grant is what needs no approval.
	agent.Status.Granted = &grant
	what := change.Describe()
	inForce := "the Toolsets, Write tools and cloud roles in force stay as they are (status.granted)"
	if grant.Generation == 0 {
		inForce = "only what needs no approval is in force"
	}
	ar := &custosv1alpha1.ApprovalRequest{}
	name := approval.ChangeRequestName(agent.Name, change.Generation, change.Digest())
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: agent.Namespace, Name: name}, ar)
	switch {
	case apierrors.IsNotFound(err):
		ar = approval.ChangeRequest(change, req, s.now)
		if err := r.Client.Create(ctx, ar); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Made meanwhile (a pass on a stale cache): read it next time.
				return stepResult{requeueAt: s.now.Add(time.Second)}
			}
			return failed(err)
		}
		r.event(ctx, agent, corev1.EventTypeNormal, "ApprovalRequested",
			"Generation %d adds %s: ApprovalRequest %s waits for %d approval(s)", agent.Generation, what, ar.Name, ar.Spec.Quorum)
		auditByController(ctx, r.Audit, audit.Event{Action: audit.ActionApprovalRequested, Subject: subjectOf(agent, "Agent"),
			Decision: audit.DecisionDeny, Policy: "approval",
			Reason:  fmt.Sprintf("generation %d of Agent %s/%s adds %s: held for approval (%s)", agent.Generation, agent.Namespace, agent.Name, what, ar.Name),
			Details: changeDetails(ar, what)})
	case err != nil:
		return failed(err)
	case !approval.IsChangeOf(ar, change):
		s.observe(custosv1alpha1.ChangesApprovedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"ApprovalRequest %s/%s exists and is not the request for generation %d of this agent; %s: remove it", agent.Namespace, name, agent.Generation, inForce)
		return stepResult{}
	}

	phase := ar.Status.Phase
	if phase == custosv1alpha1.ApprovalApproved && !s.now.Before(ar.Spec.ExpiresAt.Time) {
		// Approved, but not put in force before it expired (the manager
		// was away): as custos-gateway does with a call, expiry means deny.
		phase = custosv1alpha1.ApprovalExpired
	}
	switch phase {
	case custosv1alpha1.ApprovalApproved:
		consumed := ar.DeepCopy()
		now := metav1.NewTime(s.now)
		consumed.Status.Phase, consumed.Status.ConsumedAt = custosv1alpha1.ApprovalConsumed, &now
		// Guarded by resourceVersion: a veto counted meanwhile wins.
		if err := r.Client.Status().Update(ctx, consumed); err != nil {
			if apierrors.IsConflict(err) {
				return stepResult{requeueAt: s.now.Add(time.Second)}
			}
			return failed(err)
		}
		auditByController(ctx, r.Audit, audit.Event{Action: audit.ActionApprovalConsumed, Subject: subjectOf(agent, "Agent"),
			Decision: audit.DecisionAllow, Policy: "approval",
			Reason:  fmt.Sprintf("generation %d of Agent %s/%s is in force, approved by %s: %s", agent.Generation, agent.Namespace, agent.Name, ar.Name, what),
			Details: changeDetails(consumed, what)})
		r.event(ctx, agent, corev1.EventTypeNormal, "ChangeApproved", "Generation %d is in force, approved by %s: %s", agent.Generation, ar.Name, what)
		fallthrough
	case custosv1alpha1.ApprovalConsumed:
		// Consumed by this step alone: a pass whose status write was lost
		// finds its own request consumed.
		grant = approval.Apply(agent, grant, change, ar.Name)
		agent.Status.Granted = &grant
		s.observe(custosv1alpha1.ChangesApprovedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"Every Toolset and cloud role of generation %d is in force, approved by ApprovalRequest %s", agent.Generation, ar.Name)
	case custosv1alpha1.ApprovalDenied:
		s.observe(custosv1alpha1.ChangesApprovedCondition, metav1.ConditionFalse, custosv1alpha1.ApprovalDeniedReason,
			"Generation %d adds %s, which ApprovalRequest %s denied: %s; change the spec to ask again", agent.Generation, what, ar.Name, inForce)
	case custosv1alpha1.ApprovalExpired:
		s.observe(custosv1alpha1.ChangesApprovedCondition, metav1.ConditionFalse, custosv1alpha1.ApprovalExpiredReason,
			"Generation %d adds %s; ApprovalRequest %s expired before it was approved and put in force, which means deny: %s; change the spec to ask again", agent.Generation, what, ar.Name, inForce)
	default:
		s.observe(custosv1alpha1.ChangesApprovedCondition, metav1.ConditionFalse, custosv1alpha1.ApprovalRequiredReason,
			"Generation %d adds %s: %s until ApprovalRequest %s is approved (%d of %d, kubectl custos approve %s -n %s)",
			agent.Generation, what, inForce, ar.Name, ar.Status.Approvals, ar.Spec.Quorum, ar.Name, agent.Namespace)
		// Expiry is not an event the agent sees: look again then.
		return stepResult{requeueAt: ar.Spec.ExpiresAt.Add(time.Second)}
	}
	return stepResult{}
}

// notYet says which of the agent's Toolsets are not in force because they
// do not exist (or are out of the boundary's reach) yet; "" when none.
func notYet(agent *custosv1alpha1.Agent, grant custosv1alpha1.AgentGrant) string {
	var missing []string
	for _, ref := range agent.Spec.ToolsetRefs {
		key := ref.Key(agent.Namespace)
		if !slices.ContainsFunc(grant.ToolsetRefs, func(r custosv1alpha1.ToolsetReference) bool { return r.Key(agent.Namespace) == key }) {
			missing = append(missing, key.String())
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "; not yet " + strings.Join(missing, ", ") + ", which do not exist or are out of reach: each goes in force (or is held for approval) once it is there"
}

// changeDetails are an Agent change's audit details.
func changeDetails(ar *custosv1alpha1.ApprovalRequest, what string) map[string]string {
	return map[string]string{
		"approvalRequest": ar.Name, "generation": strconv.FormatInt(ar.Spec.Change.Generation, 10),
		"inForce": strconv.FormatInt(ar.Spec.Change.InForce, 10), "change": what, "callDigest": ar.Spec.CallDigest,
		"policies": strings.Join(ar.Spec.Policies, ","), "quorum": strconv.Itoa(int(ar.Spec.Quorum)),
	}
}

// granted says whether the Toolset key is in force for agent.
func granted(agent *custosv1alpha1.Agent, key types.NamespacedName) bool {
	for _, ref := range agent.GrantedToolsetRefs() {
		if ref.Key(agent.Namespace) == key {
			return true
		}
	}
	return false
}

// roleInForce says whether the cloud role credential c is issued from is
// in force (a credential of no cloud needs none).
func roleInForce(agent *custosv1alpha1.Agent, c custosv1alpha1.CredentialSpec) bool {
	id := agent.GrantedIdentity()
	switch {
	case c.AWSSTS != nil:
		return id != nil && id.AWS != nil
	case c.AzureToken != nil:
		return id != nil && id.Azure != nil
	}
	return true
}

// agentOfChangeRequest maps the ApprovalRequest of an Agent change to its
// Agent; a tool call's request maps to none.
func agentOfChangeRequest(_ context.Context, o client.Object) []reconcile.Request {
	ar := o.(*custosv1alpha1.ApprovalRequest)
	if ar.Spec.Change == nil {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: ar.Namespace, Name: ar.Spec.Agent.Name}}}
}

// agentsBesidePolicyOfChanges maps an ApprovalPolicy to the Agents of its
// namespace.
func (r *AgentReconciler) agentsBesidePolicyOfChanges(ctx context.Context, o client.Object) []reconcile.Request {
	var agents custosv1alpha1.AgentList
	if err := r.Client.List(ctx, &agents, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the Agents beside an ApprovalPolicy", "namespace", o.GetNamespace())
		return nil
	}
	return requests(agents.Items)
}
