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
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/evaluate"
)

// +kubebuilder:rbac:groups=custos.dev,resources=agentreports,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=custos.dev,resources=agentreports/status,verbs=update;patch

// DefaultReportMonths is how many months of an agent's AgentReports are
// kept, the running one included.
const DefaultReportMonths = 13

// AgentReportReconciler keeps each Agent's periodic review: it makes the
// AgentReport of the running month (the evaluator, internal/evaluate's
// Runner, counts the audit trail into it), scores each report and
// recommends (evaluate.Assess) against the Agent's spec and the Toolsets
// in force now, records an owner's sign-off (an AgentAttestation naming
// the report) on the trail (agent.reviewed) and the report, and deletes
// reports older than Months, its Agent there or not.
type AgentReportReconciler struct {
	Client client.Client
	// APIReader reads a report afresh while a sign-off is recorded.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Audit     audit.Recorder
	Clock     clock.PassiveClock
	// Months of reports kept (DefaultReportMonths when zero).
	Months int
}

// reportAgentIndex indexes AgentReports by the name of their Agent.
const reportAgentIndex = "custos.dev/reported-agent"

// SetupWithManager registers the reconciler, keyed by Agent name, and its
// watches of reports and attestations.
func (r *AgentReportReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &custosv1alpha1.AgentReport{}, reportAgentIndex, func(o client.Object) []string {
		return []string{o.(*custosv1alpha1.AgentReport).Spec.Agent}
	}); err != nil {
		return err
	}
	byAgent := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: o.(*custosv1alpha1.AgentReport).Spec.Agent}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("agentreport").
		For(&custosv1alpha1.Agent{}).
		Watches(&custosv1alpha1.AgentReport{}, byAgent).
		Watches(&custosv1alpha1.AgentAttestation{}, handler.EnqueueRequestsFromMapFunc(agentOfAttestation)).
		Complete(r)
}

func (r *AgentReportReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// Reconcile makes, assesses, signs off and expires the reports of the
// Agent of one name.
func (r *AgentReportReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	now := r.now()
	var list custosv1alpha1.AgentReportList
	if err := r.Client.List(ctx, &list, client.InNamespace(req.Namespace), client.MatchingFields{reportAgentIndex: req.Name}); err != nil {
		return ctrl.Result{}, err
	}
	months := r.Months
	if months <= 0 {
		months = DefaultReportMonths
	}
	oldest := evaluate.Period(time.Date(now.UTC().Year(), now.UTC().Month()-time.Month(months-1), 1, 0, 0, 0, 0, time.UTC))
	kept := list.Items[:0]
	for i := range list.Items {
		rep := &list.Items[i]
		if rep.Spec.Period < oldest {
			if err := r.Client.Delete(ctx, rep); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
			continue
		}
		kept = append(kept, *rep)
	}
	agent := &custosv1alpha1.Agent{}
	if err := r.Client.Get(ctx, req.NamespacedName, agent); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// The reports of an Agent that is gone are records: kept until
		// they are old enough.
		if len(kept) > 0 {
			return ctrl.Result{RequeueAfter: 24 * time.Hour}, nil
		}
		return ctrl.Result{}, nil
	}
	period := evaluate.Period(now)
	mine := slices.DeleteFunc(kept, func(rep custosv1alpha1.AgentReport) bool { return rep.Spec.AgentUID != string(agent.UID) })
	if agent.DeletionTimestamp.IsZero() && agent.Spec.Lifecycle.State != custosv1alpha1.LifecycleDecommissioned &&
		!slices.ContainsFunc(mine, func(rep custosv1alpha1.AgentReport) bool { return rep.Spec.Period == period }) {
		rep := evaluate.NewReport(agent, period)
		if err := r.Client.Create(ctx, rep); err != nil && !apierrors.IsAlreadyExists(err) {
			return ctrl.Result{}, fmt.Errorf("making the report %s: %w", rep.Name, err)
		}
		// Its watch brings it back here.
		return ctrl.Result{}, nil
	}
	granted, err := r.granted(ctx, agent)
	if err != nil {
		return ctrl.Result{}, err
	}
	for i := range mine {
		if requeue, err := r.assess(ctx, agent, &mine[i], granted, now); err != nil || requeue {
			return ctrl.Result{Requeue: requeue}, err
		}
	}
	if requeue, err := r.signOffs(ctx, agent, mine); err != nil || requeue {
		return ctrl.Result{Requeue: requeue}, err
	}
	// Each hour (the Toolsets in force may change), and as the month turns.
	_, next, _ := evaluate.PeriodBounds(period)
	return ctrl.Result{RequeueAfter: min(time.Hour, next.Sub(now)+time.Second)}, nil
}

// granted are the agent's Toolsets in force and the tools of each it may
// call; one that cannot be found is left out.
func (r *AgentReportReconciler) granted(ctx context.Context, agent *custosv1alpha1.Agent) ([]evaluate.GrantedToolset, error) {
	var out []evaluate.GrantedToolset
	for _, ref := range agent.GrantedToolsetRefs() {
		key := ref.Key(agent.Namespace)
		ts := &custosv1alpha1.Toolset{}
		if err := r.Client.Get(ctx, key, ts); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		g := evaluate.GrantedToolset{Ref: ref, Key: key}
		for _, t := range agent.ToolsInForce(ref, ts) {
			g.Tools = append(g.Tools, t.Name)
		}
		out = append(out, g)
	}
	return out, nil
}

// assess writes rep's score and recommendation when they changed.
func (r *AgentReportReconciler) assess(ctx context.Context, agent *custosv1alpha1.Agent, rep *custosv1alpha1.AgentReport, granted []evaluate.GrantedToolset, now time.Time) (bool, error) {
	from, to, err := evaluate.PeriodBounds(rep.Spec.Period)
	if err != nil {
		return false, nil
	}
	a := evaluate.Assess(&rep.Status, agent, granted, rep.Spec.Period, !now.Before(to))
	st := rep.Status.DeepCopy()
	st.From, st.To = &metav1.Time{Time: from}, &metav1.Time{Time: to}
	st.SuccessPercent, st.Score, st.Formula = a.SuccessPercent, a.Score, a.Formula
	st.Recommendation, st.Reason, st.Patch = a.Recommendation, a.Reason, a.Patch
	if equality.Semantic.DeepEqual(st, &rep.Status) {
		return false, nil
	}
	rep.Status = *st
	if err := r.Client.Status().Update(ctx, rep); err != nil {
		if apierrors.IsConflict(err) {
			return true, nil
		}
		return false, err
	}
	return false, nil
}

// signOffs records each attestation naming one of the agent's reports
// that the report does not list yet, in two steps: the report says it is
// recording it (signingOff), then the trail has it (agent.reviewed,
// written and flushed), then the report lists it, each step on the report
// as the API server has it. A manager stopped between the two records it
// again on its next start (the same attestation UID), rather than never;
// a conflicting write before the trail has it records nothing. What was signed is what admission read
// of the report (the attestation's reportSeen). Admission took only who
// may update the Agent and holds the verb review on it.
func (r *AgentReportReconciler) signOffs(ctx context.Context, agent *custosv1alpha1.Agent, reports []custosv1alpha1.AgentReport) (bool, error) {
	var list custosv1alpha1.AgentAttestationList
	if err := r.Client.List(ctx, &list, client.InNamespace(agent.Namespace), client.MatchingFields{attestationAgentIndex: agent.Name}); err != nil {
		return false, err
	}
	slices.SortFunc(list.Items, func(a, b custosv1alpha1.AgentAttestation) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	for i := range list.Items {
		at := &list.Items[i]
		if at.Spec.Report == "" || at.Spec.AgentUID != string(agent.UID) {
			continue
		}
		k := slices.IndexFunc(reports, func(rep custosv1alpha1.AgentReport) bool { return rep.Name == at.Spec.Report })
		if k < 0 {
			continue
		}
		listed := func(rep *custosv1alpha1.AgentReport) bool {
			return slices.ContainsFunc(rep.Status.SignOffs, func(so custosv1alpha1.ReportSignOff) bool { return so.AttestationUID == string(at.UID) })
		}
		if listed(&reports[k]) {
			continue
		}
		// The cache may be a write behind (the marker set, the list not
		// yet): the API server says whether it is still to be recorded.
		rep := &reports[k]
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(rep), rep); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if listed(rep) {
			continue
		}
		if rep.Status.SigningOff != string(at.UID) {
			rep.Status.SigningOff = string(at.UID)
			if err := r.Client.Status().Update(ctx, rep); err != nil {
				if apierrors.IsConflict(err) {
					return true, nil
				}
				return false, err
			}
		}
		so := custosv1alpha1.ReportSignOff{Attestation: at.Name, AttestationUID: string(at.UID), By: *at.Spec.Attester.DeepCopy(),
			At: at.CreationTimestamp, Comment: at.Spec.Comment}
		if seen := at.Spec.ReportSeen; seen != nil {
			so.Signed = *seen.DeepCopy()
		}
		details := map[string]string{
			"report": rep.Name, "period": rep.Spec.Period, "attestation": at.Name, "attester": at.Spec.Attester.Username,
			"calls": strconv.FormatInt(so.Signed.Calls, 10), "recommendation": string(so.Signed.Recommendation), "reason": so.Signed.Reason,
			"formula": rep.Status.Formula,
		}
		if so.Signed.Score != nil {
			details["score"] = strconv.Itoa(int(*so.Signed.Score))
		}
		if rep.Status.Patch != "" {
			details["patch"] = clipMessage(rep.Status.Patch, 4096)
		}
		auditByController(ctx, r.Audit, audit.Event{Action: audit.ActionAgentReviewed, Subject: subjectOf(agent, "Agent"),
			Decision: audit.DecisionInfo, Policy: "review",
			Reason: clipMessage(fmt.Sprintf("%s signed off the %s report of Agent %s/%s (%s): %s", at.Spec.Attester.Username, rep.Spec.Period,
				agent.Namespace, agent.Name, cmp.Or(string(so.Signed.Recommendation), "no recommendation"), at.Spec.Comment), 1024),
			Details: details})
		if fl, ok := r.Audit.(interface{ Flush(context.Context) error }); ok {
			if err := fl.Flush(ctx); err != nil {
				return false, fmt.Errorf("report %s: writing its sign-off to the audit trail: %w", rep.Name, err)
			}
		}
		// On the trail: listed, whatever else was written to the report
		// meanwhile.
		for attempt := 0; ; attempt++ {
			rep.Status.SignOffs = append(rep.Status.SignOffs, so)
			if n := len(rep.Status.SignOffs); n > 16 {
				rep.Status.SignOffs = rep.Status.SignOffs[n-16:]
			}
			rep.Status.SigningOff = ""
			err := r.Client.Status().Update(ctx, rep)
			if err == nil {
				break
			}
			if !apierrors.IsConflict(err) || attempt >= 5 {
				return false, err
			}
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(rep), rep); err != nil {
				return false, err
			}
			if listed(rep) {
				break
			}
		}
		r.Recorder.Eventf(agent, rep, corev1.EventTypeNormal, "ReportSignedOff", "SignOff", "%s signed off AgentReport %s (%s): %s",
			at.Spec.Attester.Username, rep.Name, cmp.Or(string(so.Signed.Recommendation), "no recommendation"), clipMessage(at.Spec.Comment, eventNoteLimit))
	}
	return false, nil
}
