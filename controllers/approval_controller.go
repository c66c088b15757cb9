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
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
)

// ApprovalRequestReconciler counts the ApprovalDecisions people make on
// each ApprovalRequest (approval.Tally: who may decide is asked of the
// API server again, whatever admission said) and writes its phase:
// Approved at quorum, Denied on any counted deny, Expired at its
// expiresAt. custos-gateway marks a call's request Consumed, the Agent
// reconciler an Agent change's. Decided requests are deleted, with their
// decisions, DecidedRetention after they were decided (an Agent change's
// denied or expired request not while its Agent is at that generation);
// the audit trail keeps every step.
type ApprovalRequestReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	Access   approval.Access
	Audit    audit.Recorder
	Clock    clock.PassiveClock
	// DecidedRetention is DefaultDecidedRetention when 0.
	DecidedRetention time.Duration
}

// DefaultDecidedRetention is how long a decided ApprovalRequest is kept
// (a denied one refuses its call's retries for as long).
const DefaultDecidedRetention = 24 * time.Hour

// +kubebuilder:rbac:groups=custos.dev,resources=approvalrequests,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=custos.dev,resources=approvalrequests/status,verbs=update;patch
// +kubebuilder:rbac:groups=custos.dev,resources=approvaldecisions,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=custos.dev,resources=approvalpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// approvalDecisionRequestIndex indexes ApprovalDecisions by the request
// they decide.
const approvalDecisionRequestIndex = "custos.dev/approval-request"

// SetupWithManager registers the reconciler and its watch of decisions.
func (r *ApprovalRequestReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &custosv1alpha1.ApprovalDecision{}, approvalDecisionRequestIndex, func(o client.Object) []string {
		return []string{o.(*custosv1alpha1.ApprovalDecision).Spec.Request}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("approvalrequest").
		For(&custosv1alpha1.ApprovalRequest{}).
		Watches(&custosv1alpha1.ApprovalDecision{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			d := o.(*custosv1alpha1.ApprovalDecision)
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: d.Namespace, Name: d.Spec.Request}}}
		})).
		Complete(r)
}

func (r *ApprovalRequestReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// Reconcile tallies one request.
func (r *ApprovalRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ar := &custosv1alpha1.ApprovalRequest{}
	if err := r.Client.Get(ctx, req.NamespacedName, ar); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ar.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	now := r.now()
	if ar.Status.Phase.Terminal() {
		return r.forget(ctx, ar, now)
	}
	var decisions custosv1alpha1.ApprovalDecisionList
	if err := r.Client.List(ctx, &decisions, client.InNamespace(ar.Namespace), client.MatchingFields{approvalDecisionRequestIndex: ar.Name}); err != nil {
		return ctrl.Result{}, err
	}
	st, err := approval.Tally(ctx, r.Access, ar, decisions.Items, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	setApprovalCondition(&st, ar.Generation, now)
	if !equality.Semantic.DeepEqual(st, ar.Status) {
		before := ar.DeepCopy()
		ar.Status = st
		// Guarded by resourceVersion: a request the gateway consumed
		// meanwhile is read again, never overwritten.
		if err := r.Client.Status().Update(ctx, ar); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, err
		}
		r.report(ctx, before, ar)
	}
	if ar.Status.Phase.Terminal() {
		return r.forget(ctx, ar, now)
	}
	// Expiry is not an event: come back at expiresAt.
	return ctrl.Result{RequeueAfter: max(ar.Spec.ExpiresAt.Sub(now), 0) + time.Second}, nil
}

// forget deletes a decided request, and its decisions, once it has been
// decided for DecidedRetention.
func (r *ApprovalRequestReconciler) forget(ctx context.Context, ar *custosv1alpha1.ApprovalRequest, now time.Time) (ctrl.Result, error) {
	keep := r.DecidedRetention
	if keep == 0 {
		keep = DefaultDecidedRetention
	}
	since := ar.CreationTimestamp.Time
	if ar.Status.DecidedAt != nil {
		since = ar.Status.DecidedAt.Time
	}
	if ar.Status.ConsumedAt != nil {
		since = ar.Status.ConsumedAt.Time
	}
	if left := since.Add(keep).Sub(now); left > 0 {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	if held, err := r.stillHeld(ctx, ar); err != nil || held {
		return ctrl.Result{RequeueAfter: keep}, err
	}
	var decisions custosv1alpha1.ApprovalDecisionList
	if err := r.Client.List(ctx, &decisions, client.InNamespace(ar.Namespace), client.MatchingFields{approvalDecisionRequestIndex: ar.Name}); err != nil {
		return ctrl.Result{}, err
	}
	for i := range decisions.Items {
		if err := r.Client.Delete(ctx, &decisions.Items[i]); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, ar, client.Preconditions{ResourceVersion: &ar.ResourceVersion}))
}

// stillHeld says whether ar is an Agent change's request that was not put
// in force (denied, expired) while its Agent is still at that generation:
// forgotten, the Agent would ask for the same change again.
func (r *ApprovalRequestReconciler) stillHeld(ctx context.Context, ar *custosv1alpha1.ApprovalRequest) (bool, error) {
	if ar.Spec.Change == nil || ar.Status.Phase == custosv1alpha1.ApprovalConsumed {
		return false, nil
	}
	agent := &custosv1alpha1.Agent{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ar.Namespace, Name: ar.Spec.Agent.Name}, agent); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return string(agent.UID) == ar.Spec.Agent.UID && agent.Generation == ar.Spec.Change.Generation, nil
}

// setApprovalCondition keeps Ready: True once decided.
func setApprovalCondition(st *custosv1alpha1.ApprovalRequestStatus, generation int64, now time.Time) {
	c := metav1.Condition{Type: custosv1alpha1.ReadyCondition, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now)}
	switch st.Phase {
	case custosv1alpha1.ApprovalPending:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, string(st.Phase), fmt.Sprintf("waiting for approvals: %d so far", st.Approvals)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, string(st.Phase), fmt.Sprintf("%s with %d approval(s)", st.Phase, st.Approvals)
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

// report records, once written, each decision newly counted (or not) and
// the request's new phase, as Events and on the audit trail.
func (r *ApprovalRequestReconciler) report(ctx context.Context, before, ar *custosv1alpha1.ApprovalRequest) {
	subject := subjectOf(ar, "ApprovalRequest")
	details := func(extra map[string]string) map[string]string {
		d := map[string]string{
			"approvalRequest": ar.Name, "tool": ar.Spec.Tool, "toolset": ar.Spec.Toolset.Namespace + "/" + ar.Spec.Toolset.Name,
			"person": ar.Spec.Person, "callDigest": ar.Spec.CallDigest, "quorum": strconv.Itoa(int(ar.Spec.Quorum)),
			"approvals": strconv.Itoa(int(ar.Status.Approvals)), "phase": string(ar.Status.Phase),
		}
		if c := ar.Spec.Change; c != nil {
			// An Agent change: no tool, no person.
			delete(d, "tool")
			delete(d, "toolset")
			delete(d, "person")
			d["agent"], d["generation"], d["change"] = ar.Spec.Agent.Name, strconv.FormatInt(c.Generation, 10), c.Describe()
		}
		for k, v := range extra {
			d[k] = v
		}
		return d
	}
	for _, v := range ar.Status.Decisions[len(before.Status.Decisions):] {
		e := audit.Event{Action: audit.ActionApprovalDecided, Subject: subject, Policy: "approval",
			Details: details(map[string]string{"decision": string(v.Decision), "approver": v.Approver.Username, "approvalDecision": v.Name})}
		if v.Counted {
			e.Decision, e.Reason = audit.DecisionAllow, fmt.Sprintf("%s's %s on %s counted", v.Approver.Username, v.Decision, ar.Name)
			r.Recorder.Eventf(ar, nil, corev1.EventTypeNormal, "Decided", "Tally", "%s: %s", v.Approver.Username, v.Decision)
		} else {
			e.Decision, e.Reason = audit.DecisionDeny, fmt.Sprintf("%s's %s on %s not counted: %s", v.Approver.Username, v.Decision, ar.Name, v.Reason)
			r.Recorder.Eventf(ar, nil, corev1.EventTypeWarning, "DecisionNotCounted", "Tally", "%s: %s", v.Approver.Username, clipMessage(v.Reason, eventNoteLimit))
		}
		auditByController(ctx, r.Audit, e)
	}
	if before.Status.Phase == ar.Status.Phase || ar.Status.Phase == custosv1alpha1.ApprovalPending {
		return
	}
	eventType, decision := corev1.EventTypeNormal, audit.DecisionAllow
	if ar.Status.Phase != custosv1alpha1.ApprovalApproved {
		eventType, decision = corev1.EventTypeWarning, audit.DecisionDeny
	}
	msg := fmt.Sprintf("%s with %d of %d approval(s)", ar.Status.Phase, ar.Status.Approvals, ar.Spec.Quorum)
	r.Recorder.Eventf(ar, nil, eventType, string(ar.Status.Phase), "Tally", "%s", msg)
	auditByController(ctx, r.Audit, audit.Event{Action: audit.ActionApprovalDecided, Subject: subject, Decision: decision, Policy: "approval",
		Reason: fmt.Sprintf("approval request %s/%s %s", ar.Namespace, ar.Name, msg), Details: details(nil)})
}
