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
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	"github.com/custos-dev/custos/internal/evaluate"
)

// DefaultFindingRetention is how long a closed Finding is kept; the audit
// trail keeps its opening and its reviews for as long as it is kept.
const DefaultFindingRetention = 30 * 24 * time.Hour

// DefaultFindingReviewWithin is how long an open Finding may wait for a
// person before custos_findings_overdue counts it.
const DefaultFindingReviewWithin = 24 * time.Hour

// FindingReconciler counts the FindingReviews people make of a Finding,
// asking the API server again who may (evaluate.MayReview, whatever
// admission said), records each on the trail (finding.reviewed), and
// deletes a closed Finding once its retention has passed. The evaluator
// (internal/evaluate's Runner) opens Findings and adds evidence to them.
type FindingReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	Access   approval.Access
	Audit    audit.Recorder
	Clock    clock.PassiveClock
	// Retention is how long a closed Finding is kept
	// (DefaultFindingRetention when zero).
	Retention time.Duration
}

// +kubebuilder:rbac:groups=custos.dev,resources=findings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=custos.dev,resources=findings/status,verbs=update;patch
// +kubebuilder:rbac:groups=custos.dev,resources=findingreviews,verbs=get;list;watch;patch

// reviewFindingIndex indexes FindingReviews by the Finding they review.
const reviewFindingIndex = "custos.dev/reviewed-finding"

// SetupWithManager registers the reconciler and its watch of reviews.
func (r *FindingReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &custosv1alpha1.FindingReview{}, reviewFindingIndex, func(o client.Object) []string {
		return []string{o.(*custosv1alpha1.FindingReview).Spec.Finding}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("finding").
		For(&custosv1alpha1.Finding{}).
		Watches(&custosv1alpha1.FindingReview{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			rv := o.(*custosv1alpha1.FindingReview)
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: rv.Namespace, Name: rv.Spec.Finding}}}
		})).
		Complete(r)
}

// Reconcile counts one Finding's new reviews and expires it when closed
// long enough.
func (r *FindingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	f := &custosv1alpha1.Finding{}
	if err := r.Client.Get(ctx, req.NamespacedName, f); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !f.DeletionTimestamp.IsZero() || f.Status.Phase == "" {
		// The evaluator writes a new Finding's status just after creating
		// it; that update brings it back here.
		return ctrl.Result{}, nil
	}
	if !f.Status.Phase.Closed() {
		var list custosv1alpha1.FindingReviewList
		if err := r.Client.List(ctx, &list, client.InNamespace(f.Namespace), client.MatchingFields{reviewFindingIndex: f.Name}); err != nil {
			return ctrl.Result{}, err
		}
		slices.SortFunc(list.Items, func(a, b custosv1alpha1.FindingReview) int {
			return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
		})
		for i := range list.Items {
			done, err := r.count(ctx, f, &list.Items[i])
			if err != nil || done {
				return ctrl.Result{Requeue: done}, err
			}
		}
		return ctrl.Result{}, nil
	}
	return r.expire(ctx, f)
}

// count counts review rv of f when it is new and its author may; done
// says f was written (the next reviews are counted on the next pass, from
// the Finding as written).
func (r *FindingReconciler) count(ctx context.Context, f *custosv1alpha1.Finding, rv *custosv1alpha1.FindingReview) (done bool, err error) {
	if slices.ContainsFunc(f.Status.Reviews, func(c custosv1alpha1.FindingReviewRecord) bool { return c.Review == rv.Name }) ||
		rv.Annotations[NotCountedAnnotation] != "" {
		return false, nil
	}
	if f.Status.OpenedAt != nil && rv.CreationTimestamp.Before(f.Status.OpenedAt) {
		// Made before the Finding was opened (again): on other evidence.
		return false, nil
	}
	no := evaluate.MayFollow(f.Status.Phase, rv.Spec.Verdict)
	if no == nil {
		if no, err = evaluate.MayReview(ctx, r.Access, rv.Spec.Reviewer, f.Namespace, f.Spec.Agent, rv.Spec.Verdict); err != nil {
			return false, err
		}
	}
	if no != nil {
		r.event(ctx, f, corev1.EventTypeWarning, "ReviewNotCounted", "FindingReview %s by %s of Finding %s: %s", rv.Name, rv.Spec.Reviewer.Username, f.Name, clipMessage(no.Message, eventNoteLimit))
		// Said once: marked, and gone with the Finding.
		return false, r.own(ctx, f, rv, no.Rule)
	}
	now := metav1.NewTime(r.now())
	from := f.Status.Phase
	f.Status.Phase = rv.Spec.Verdict
	f.Status.Reviews = append(f.Status.Reviews, custosv1alpha1.FindingReviewRecord{
		Review: rv.Name, Verdict: rv.Spec.Verdict, Reviewer: *rv.Spec.Reviewer.DeepCopy(), Reason: rv.Spec.Reason, At: now})
	if n := len(f.Status.Reviews); n > 16 {
		f.Status.Reviews = f.Status.Reviews[n-16:]
	}
	if f.Status.Phase.Closed() {
		f.Status.ClosedAt = &now
	}
	if err := r.Client.Status().Update(ctx, f); err != nil {
		if apierrors.IsConflict(err) {
			return true, nil
		}
		return false, err
	}
	details := findingDetails(f)
	details["review"], details["reviewer"], details["verdict"], details["from"] = rv.Name, rv.Spec.Reviewer.Username, string(rv.Spec.Verdict), string(from)
	decision := audit.DecisionInfo
	if rv.Spec.Verdict == custosv1alpha1.FindingConfirmed {
		decision = audit.DecisionDeny
	}
	auditByController(ctx, r.Audit, audit.Event{Action: audit.ActionFindingReviewed, Subject: subjectOf(f, "Finding"),
		Decision: decision, Policy: "evaluate." + f.Spec.Rubric,
		Reason:  fmt.Sprintf("Finding %s (%s) on Agent %s/%s %s by %s: %s", f.Name, f.Spec.Rubric, f.Namespace, f.Spec.Agent, rv.Spec.Verdict, rv.Spec.Reviewer.Username, rv.Spec.Reason),
		Details: details})
	r.event(ctx, f, corev1.EventTypeNormal, "Finding"+string(rv.Spec.Verdict), "Finding %s (%s) %s by %s: %s", f.Name, f.Spec.Rubric, rv.Spec.Verdict, rv.Spec.Reviewer.Username, clipMessage(rv.Spec.Reason, eventNoteLimit))
	return true, r.own(ctx, f, rv, "")
}

// NotCountedAnnotation, on a FindingReview, says why the manager did not
// count it (the rule that refused it).
const NotCountedAnnotation = "custos.dev/not-counted"

// own makes review rv its Finding's, so that it goes with it, and marks it
// not counted, with the rule, when notCounted is set.
func (r *FindingReconciler) own(ctx context.Context, f *custosv1alpha1.Finding, rv *custosv1alpha1.FindingReview, notCounted string) error {
	owned := slices.ContainsFunc(rv.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == f.UID })
	if owned && notCounted == "" {
		return nil
	}
	patch := client.MergeFrom(rv.DeepCopy())
	if !owned {
		rv.OwnerReferences = append(rv.OwnerReferences, metav1.OwnerReference{
			APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Finding", Name: f.Name, UID: f.UID})
	}
	if notCounted != "" {
		if rv.Annotations == nil {
			rv.Annotations = map[string]string{}
		}
		rv.Annotations[NotCountedAnnotation] = notCounted
	}
	if err := r.Client.Patch(ctx, rv, patch); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// expire deletes closed Finding f once its retention has passed, and
// comes back then otherwise.
func (r *FindingReconciler) expire(ctx context.Context, f *custosv1alpha1.Finding) (ctrl.Result, error) {
	retention := r.Retention
	if retention <= 0 {
		retention = DefaultFindingRetention
	}
	closed := f.CreationTimestamp.Time
	if f.Status.ClosedAt != nil {
		closed = f.Status.ClosedAt.Time
	}
	if left := closed.Add(retention).Sub(r.now()); left > 0 {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	uid, rv := f.UID, f.ResourceVersion
	if err := r.Client.Delete(ctx, f, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil && !apierrors.IsNotFound(err) {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

func (r *FindingReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// event is recorded on the Finding's Agent, where people look, when it
// exists, and on the Finding.
func (r *FindingReconciler) event(ctx context.Context, f *custosv1alpha1.Finding, eventType, reason, msg string, args ...any) {
	r.Recorder.Eventf(f, nil, eventType, reason, "Review", msg, args...)
	agent := &custosv1alpha1.Agent{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Spec.Agent}, agent); err != nil {
		return
	}
	r.Recorder.Eventf(agent, f, eventType, reason, "Review", msg, args...)
}

// findingDetails are a Finding's audit details.
func findingDetails(f *custosv1alpha1.Finding) map[string]string {
	d := map[string]string{"finding": f.Name, "rubric": f.Spec.Rubric, "window": f.Spec.WindowStart.UTC().Format(time.DateOnly),
		"severity": string(f.Status.Severity), "score": strconv.Itoa(int(f.Status.Score)), "hits": strconv.Itoa(int(f.Status.Hits))}
	return d
}

// findingsDesc and findingsOverdueDesc are custos_findings and
// custos_findings_overdue.
var (
	findingsDesc = prometheus.NewDesc("custos_findings",
		"Findings by namespace, finding severity (High, Medium, Low) and phase (Open, Acknowledged, Confirmed, Dismissed).", []string{"namespace", "finding_severity", "phase"}, nil)
	findingsOverdueDesc = prometheus.NewDesc("custos_findings_overdue",
		"Findings still open (Open or Acknowledged) longer than the manager's --finding-review-within since they were opened, by namespace and finding severity.",
		[]string{"namespace", "finding_severity"}, nil)
)

// findingCollector counts the Findings in the manager's cache when
// Prometheus scrapes. Registered once per process, like agentsCollector.
type findingCollector struct {
	state atomic.Pointer[findingCollectorState]
}

type findingCollectorState struct {
	reader client.Reader
	within time.Duration
	clock  clock.PassiveClock
}

var (
	findingsCollector        findingCollector
	registerFindingCollector sync.Once
)

func (c *findingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- findingsDesc
	ch <- findingsOverdueDesc
}

func (c *findingCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.state.Load()
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list custosv1alpha1.FindingList
	if err := st.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(findingsDesc, err)
		return
	}
	type key struct{ namespace, severity, phase string }
	counts, overdue := map[key]int{}, map[key]int{}
	now := st.clock.Now()
	for i := range list.Items {
		f := &list.Items[i]
		if f.Status.Phase == "" {
			continue
		}
		k := key{f.Namespace, string(f.Status.Severity), string(f.Status.Phase)}
		counts[k]++
		if !f.Status.Phase.Closed() && f.Status.OpenedAt != nil && now.Sub(f.Status.OpenedAt.Time) > st.within {
			overdue[key{namespace: f.Namespace, severity: k.severity}]++
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(findingsDesc, prometheus.GaugeValue, float64(n), k.namespace, k.severity, k.phase)
	}
	for k, n := range overdue {
		ch <- prometheus.MustNewConstMetric(findingsOverdueDesc, prometheus.GaugeValue, float64(n), k.namespace, k.severity)
	}
}
