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
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/approval"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/breaker"
)

// AgentFreezeReconciler records each AgentFreeze Active (agent.frozen on
// the trail) and lifts it when a person who may do so made an
// AgentUnfreeze of it: who may is asked of the API server again
// (breaker.MayLift), whatever admission said. The Agent reconciler holds
// the agent Frozen while a freeze is not Lifted.
type AgentFreezeReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	Access   approval.Access
	Audit    audit.Recorder
	Clock    clock.PassiveClock
}

// +kubebuilder:rbac:groups=custos.dev,resources=agentfreezes,verbs=patch
// +kubebuilder:rbac:groups=custos.dev,resources=agentfreezes/status,verbs=update;patch
// +kubebuilder:rbac:groups=custos.dev,resources=agentunfreezes,verbs=get;list;watch

// unfreezeFreezeIndex indexes AgentUnfreezes by the freeze they lift.
const unfreezeFreezeIndex = "custos.dev/lifted-freeze"

// SetupWithManager registers the reconciler and its watch of unfreezes.
func (r *AgentFreezeReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &custosv1alpha1.AgentUnfreeze{}, unfreezeFreezeIndex, func(o client.Object) []string {
		return []string{o.(*custosv1alpha1.AgentUnfreeze).Spec.Freeze}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("agentfreeze").
		For(&custosv1alpha1.AgentFreeze{}).
		Watches(&custosv1alpha1.AgentUnfreeze{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			u := o.(*custosv1alpha1.AgentUnfreeze)
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: u.Namespace, Name: u.Spec.Freeze}}}
		})).
		Complete(r)
}

// Reconcile records one freeze and lifts it once a person may.
func (r *AgentFreezeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	f := &custosv1alpha1.AgentFreeze{}
	if err := r.Client.Get(ctx, req.NamespacedName, f); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !f.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if f.Status.Phase == custosv1alpha1.FreezeLifted {
		return ctrl.Result{}, r.ownByAgent(ctx, f)
	}
	if f.Status.Phase == "" {
		f.Status.Phase = custosv1alpha1.FreezeActive
		if err := r.Client.Status().Update(ctx, f); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, err
		}
		auditByController(ctx, r.Audit, audit.Event{Action: audit.ActionAgentFrozen, Subject: subjectOf(f, "AgentFreeze"),
			Decision: audit.DecisionDeny, Policy: "breaker." + strings.ToLower(string(f.Spec.Trigger)),
			Reason:  fmt.Sprintf("Agent %s/%s frozen by AgentFreeze %s (%s, by %s): %s", f.Namespace, f.Spec.Agent, f.Name, f.Spec.Trigger, f.Spec.FrozenBy.Username, f.Spec.Reason),
			Details: freezeDetails(f)})
		r.event(ctx, f, corev1.EventTypeWarning, "Frozen", "Frozen by AgentFreeze %s (%s): %s", f.Name, f.Spec.Trigger, clipMessage(f.Spec.Reason, eventNoteLimit))
	}

	var list custosv1alpha1.AgentUnfreezeList
	if err := r.Client.List(ctx, &list, client.InNamespace(f.Namespace), client.MatchingFields{unfreezeFreezeIndex: f.Name}); err != nil {
		return ctrl.Result{}, err
	}
	slices.SortFunc(list.Items, func(a, b custosv1alpha1.AgentUnfreeze) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	for i := range list.Items {
		u := &list.Items[i]
		if u.CreationTimestamp.Before(&f.CreationTimestamp) {
			// Made for an earlier freeze of the same name.
			continue
		}
		no, err := breaker.MayLift(ctx, r.Access, u.Spec.UnfrozenBy, f.Namespace, f.Spec.Agent)
		if err != nil {
			return ctrl.Result{}, err
		}
		if no != nil {
			r.event(ctx, f, corev1.EventTypeWarning, "UnfreezeNotCounted", "AgentUnfreeze %s by %s: %s", u.Name, u.Spec.UnfrozenBy.Username, clipMessage(no.Message, eventNoteLimit))
			continue
		}
		now := metav1.NewTime(r.now())
		f.Status.Phase, f.Status.Unfreeze, f.Status.LiftedAt = custosv1alpha1.FreezeLifted, u.Name, &now
		f.Status.LiftedBy, f.Status.Verdict, f.Status.Reason = u.Spec.UnfrozenBy.DeepCopy(), u.Spec.Verdict, u.Spec.Reason
		if err := r.Client.Status().Update(ctx, f); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, err
		}
		details := freezeDetails(f)
		details["unfreeze"], details["unfrozenBy"], details["verdict"] = u.Name, u.Spec.UnfrozenBy.Username, string(u.Spec.Verdict)
		auditByController(ctx, r.Audit, audit.Event{Action: audit.ActionAgentUnfrozen, Subject: subjectOf(f, "AgentFreeze"),
			Decision: audit.DecisionAllow, Policy: "breaker.unfreeze",
			Reason:  fmt.Sprintf("AgentFreeze %s of Agent %s/%s lifted by %s (%s): %s", f.Name, f.Namespace, f.Spec.Agent, u.Spec.UnfrozenBy.Username, u.Spec.Verdict, u.Spec.Reason),
			Details: details})
		r.event(ctx, f, corev1.EventTypeNormal, "Unfrozen", "AgentFreeze %s lifted by %s (%s): %s", f.Name, u.Spec.UnfrozenBy.Username, u.Spec.Verdict, clipMessage(u.Spec.Reason, eventNoteLimit))
		return ctrl.Result{}, r.ownByAgent(ctx, f)
	}
	return ctrl.Result{}, nil
}

func (r *AgentFreezeReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// ownByAgent makes a lifted freeze its Agent's, so that it goes with the
// Agent (while it holds it is nobody's: it holds the name through the
// Agent's deletion). A freeze whose Agent is gone stays until deleted.
func (r *AgentFreezeReconciler) ownByAgent(ctx context.Context, f *custosv1alpha1.AgentFreeze) error {
	agent := &custosv1alpha1.Agent{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Spec.Agent}, agent); err != nil {
		return client.IgnoreNotFound(err)
	}
	if slices.ContainsFunc(f.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == agent.UID }) {
		return nil
	}
	patch := client.MergeFromWithOptions(f.DeepCopy(), client.MergeFromWithOptimisticLock{})
	f.OwnerReferences = append(f.OwnerReferences, metav1.OwnerReference{
		APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent", Name: agent.Name, UID: agent.UID})
	return client.IgnoreNotFound(r.Client.Patch(ctx, f, patch))
}

// event is recorded on the freeze's Agent, where people look, when it
// exists.
func (r *AgentFreezeReconciler) event(ctx context.Context, f *custosv1alpha1.AgentFreeze, eventType, reason, msg string, args ...any) {
	agent := &custosv1alpha1.Agent{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Spec.Agent}, agent); err != nil {
		return
	}
	r.Recorder.Eventf(agent, f, eventType, reason, "Breaker", msg, args...)
}

// freezeDetails are a freeze's audit details: enough, with the records
// its evidence cites, to say why it tripped.
func freezeDetails(f *custosv1alpha1.AgentFreeze) map[string]string {
	d := map[string]string{"freeze": f.Name, "trigger": string(f.Spec.Trigger), "frozenBy": f.Spec.FrozenBy.Username}
	if f.Spec.Signal != "" {
		d["signal"] = f.Spec.Signal
	}
	for k, v := range map[string]*int64{"observed": f.Spec.Observed, "baseline": f.Spec.Baseline, "limit": f.Spec.Limit} {
		if v != nil {
			d[k] = strconv.FormatInt(*v, 10)
		}
	}
	if e := f.Spec.Evidence; e != nil {
		if e.AuditLogID != "" {
			d["evidence.auditLogID"] = e.AuditLogID
		}
		if len(e.Sequences) > 0 {
			seqs := make([]string, len(e.Sequences))
			for i, n := range e.Sequences {
				seqs[i] = strconv.FormatInt(n, 10)
			}
			d["evidence.sequences"] = strings.Join(seqs, ",")
		}
		if len(e.TraceIDs) > 0 {
			d["evidence.traceIDs"] = strings.Join(e.TraceIDs, ",")
		}
	}
	return d
}
