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
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/boundary"
)

// maxBoundaryNamespaces is the most namespaces status.namespaces can list
// (its MaxItems).
const maxBoundaryNamespaces = 1024

// DataBoundaryReconciler reports what a DataBoundary covers: the namespaces
// its selector selects and the Agents in them. It also tells when a
// namespace is covered by two boundaries, which leaves the namespace's
// Agents without a boundary to follow, and reports the RBAC in its
// namespaces that grants what admission cannot see or stop. It owns the
// conditions Ready, Reconciling, Stalled and TenantRBACContained of
// DataBoundaries.
type DataBoundaryReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder

	// Audit receives a record when a boundary's RBAC report changes.
	Audit audit.Recorder

	// ManagerServiceAccount is the ServiceAccount the manager runs as: the
	// RBAC report leaves its grants out (they are the point). Empty leaves
	// out no ServiceAccount for it.
	ManagerServiceAccount types.NamespacedName

	// imagePolicies reads the key material of spec.images, shared with the
	// Agent reconciler.
	imagePolicies *imagePolicies
}

// +kubebuilder:rbac:groups=custos.dev,resources=databoundaries,verbs=get;list;watch
// +kubebuilder:rbac:groups=custos.dev,resources=databoundaries/status,verbs=patch
// +kubebuilder:rbac:groups=custos.dev,resources=agents,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings;clusterroles;clusterrolebindings,verbs=get;list;watch

// SetupWithManager registers the reconciler and its watches with mgr.
func (r *DataBoundaryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("databoundary").
		For(&custosv1alpha1.DataBoundary{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Another boundary appearing, changing its selector or going away
		// can start or end a conflict. There are few boundaries (one per
		// tenant), so every one is looked at again.
		Watches(&custosv1alpha1.DataBoundary{}, handler.EnqueueRequestsFromMapFunc(r.allBoundaries),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A namespace appearing, going or being relabelled can move in or out
		// of any boundary.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.allBoundaries),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		// Only creations and deletions change the count of Agents; an Agent
		// never moves to another namespace.
		Watches(&custosv1alpha1.Agent{}, handler.TypedFuncs[client.Object, reconcile.Request]{
			CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.countAgentsSoon(ctx, e.Object, q)
			},
			DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.countAgentsSoon(ctx, e.Object, q)
			},
		}).
		// The RBAC report: Roles and RoleBindings concern the boundaries
		// covering their namespace; ClusterRoles (bound in any namespace)
		// and ClusterRoleBindings (which apply in every one) concern all.
		Watches(&rbacv1.RoleBinding{}, handler.EnqueueRequestsFromMapFunc(r.boundariesCovering),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(&rbacv1.Role{}, handler.EnqueueRequestsFromMapFunc(r.boundariesCovering),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(&rbacv1.ClusterRoleBinding{}, handler.EnqueueRequestsFromMapFunc(r.allBoundaries),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Watches(&rbacv1.ClusterRole{}, handler.EnqueueRequestsFromMapFunc(r.allBoundaries),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Complete(r)
}

// agentCountDelay is how long an Agent's creation or deletion waits before
// its boundaries count their Agents again. Every other creation or
// deletion meanwhile joins the same count: a GitOps sync of a thousand
// Agents costs each boundary a status write every agentCountDelay, not a
// thousand. (The priority queue counts an add with a delay as a retry, so
// these show in workqueue_retries_total{controller="databoundary"}.)
const agentCountDelay = 2 * time.Second

func (r *DataBoundaryReconciler) countAgentsSoon(ctx context.Context, agent client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	for _, req := range r.boundariesOfAgent(ctx, agent) {
		q.AddAfter(req, agentCountDelay)
	}
}

// allBoundaries maps any event to every DataBoundary.
func (r *DataBoundaryReconciler) allBoundaries(ctx context.Context, _ client.Object) []reconcile.Request {
	var list custosv1alpha1.DataBoundaryList
	if err := r.Client.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing DataBoundaries")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// boundariesOfAgent maps an Agent to the boundaries covering its namespace,
// or to every boundary when the namespace cannot be read: counting too often
// is harmless, missing a count is not.
func (r *DataBoundaryReconciler) boundariesOfAgent(ctx context.Context, o client.Object) []reconcile.Request {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: o.GetNamespace()}, ns); err != nil {
		return r.allBoundaries(ctx, o)
	}
	var list custosv1alpha1.DataBoundaryList
	if err := r.Client.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing DataBoundaries", "agent", klog.KObj(o))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(&list.Items[i].Spec.NamespaceSelector)
		if err != nil || !sel.Matches(labels.Set(ns.Labels)) {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// boundaryCoverage is what a DataBoundary covers now.
type boundaryCoverage struct {
	// namespaces it selects, sorted.
	namespaces []string
	// agents in those namespaces.
	agents int
	// conflicts maps each covered namespace that another boundary covers
	// too to the names of those boundaries, sorted.
	conflicts map[string][]string
}

// Reconcile computes what the DataBoundary covers and patches its status.
// An invalid selector is a terminal error; a conflict with another boundary
// is not, but needs no retry either: the watch on DataBoundaries re-queues
// this one when the other changes or goes.
func (r *DataBoundaryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	db := &custosv1alpha1.DataBoundary{}
	if err := r.Client.Get(ctx, req.NamespacedName, db); err != nil {
		if apierrors.IsNotFound(err) {
			r.imagePolicies.forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !db.DeletionTimestamp.IsZero() {
		// Custos holds no finalizer on DataBoundaries and owns nothing for
		// them; the boundaries it conflicted with are re-queued by the watch.
		return ctrl.Result{}, nil
	}

	before := db.DeepCopy()
	var rbacFindings []boundary.RBACFinding
	defer func() {
		if err := finishStatus(ctx, r.Client, r.Recorder, "DataBoundary", before, db, before.Status.Conditions, db.Status.Conditions); err != nil {
			retErr = err
			return
		}
		r.reportRBAC(ctx, before.Status.Conditions, db, len(rbacFindings))
	}()

	sel, err := metav1.LabelSelectorAsSelector(&db.Spec.NamespaceSelector)
	if err != nil {
		specErr := fmt.Errorf("spec.namespaceSelector: %w", err)
		setBoundaryInvalid(db, specErr)
		return ctrl.Result{}, reconcile.TerminalError(specErr)
	}
	cov, err := r.coverage(ctx, db, sel)
	if err != nil {
		setBoundaryProgressing(db, err)
		return ctrl.Result{}, err
	}
	// The key material lives in Secrets and ConfigMaps Custos does not
	// watch: it is read again every PolicyTTL, and a change re-queues the
	// boundary's agents through this status.
	_, hash, imgErr := r.imagePolicies.resolve(ctx, db, true)
	var pe *imagePolicyError
	if imgErr != nil && !errors.Is(imgErr, errNoTrustedSigners) && !errors.As(imgErr, &pe) {
		setBoundaryProgressing(db, imgErr)
		return ctrl.Result{}, imgErr
	}
	rbac, err := r.gatherRBAC(ctx, cov.namespaces)
	if err != nil {
		setBoundaryProgressing(db, err)
		return ctrl.Result{}, err
	}
	rbacFindings = boundary.UnsafeRBAC(rbac)
	db.Status.ImagePolicyHash = hash
	setBoundaryStatus(db, cov, imgErr)
	setRBACCondition(db, rbacFindings)
	return ctrl.Result{RequeueAfter: r.imagePolicies.ttl}, nil
}

// coverage reads the namespaces sel selects, counts their Agents and finds
// the other boundaries that cover any of them.
func (r *DataBoundaryReconciler) coverage(ctx context.Context, db *custosv1alpha1.DataBoundary, sel labels.Selector) (boundaryCoverage, error) {
	cov := boundaryCoverage{conflicts: map[string][]string{}}

	covered, err := coveredAgents(ctx, r.Client, sel)
	if err != nil {
		return cov, fmt.Errorf("DataBoundary %s: %w", klog.KObj(db), err)
	}
	for _, c := range covered {
		cov.namespaces = append(cov.namespaces, c.namespace.Name)
		cov.agents += len(c.agents)
	}
	slices.Sort(cov.namespaces)

	var others custosv1alpha1.DataBoundaryList
	if err := r.Client.List(ctx, &others); err != nil {
		return cov, fmt.Errorf("listing DataBoundaries: %w", err)
	}
	for i := range others.Items {
		other := &others.Items[i]
		if other.Name == db.Name || !other.DeletionTimestamp.IsZero() {
			continue
		}
		otherSel, err := metav1.LabelSelectorAsSelector(&other.Spec.NamespaceSelector)
		if err != nil {
			// An invalid boundary covers nothing; it reports that itself.
			continue
		}
		for _, c := range covered {
			if otherSel.Matches(labels.Set(c.namespace.Labels)) {
				cov.conflicts[c.namespace.Name] = append(cov.conflicts[c.namespace.Name], other.Name)
			}
		}
	}
	for _, names := range cov.conflicts {
		slices.Sort(names)
	}
	return cov, nil
}

// coveredNamespace is a namespace a DataBoundary's selector covers and the
// Agents in it.
type coveredNamespace struct {
	namespace *corev1.Namespace
	agents    []custosv1alpha1.Agent
}

// coveredAgents lists the namespaces sel selects and the Agents in each,
// from the cache without copying them: callers read names, labels and
// counts, and neither keep nor change what they get.
func coveredAgents(ctx context.Context, c client.Reader, sel labels.Selector) ([]coveredNamespace, error) {
	var namespaces corev1.NamespaceList
	if err := c.List(ctx, &namespaces, client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing the namespaces it covers: %w", err)
	}
	covered := make([]coveredNamespace, 0, len(namespaces.Items))
	for i := range namespaces.Items {
		ns := &namespaces.Items[i]
		var agents custosv1alpha1.AgentList
		if err := c.List(ctx, &agents, client.InNamespace(ns.Name), client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing the Agents of namespace %s: %w", ns.Name, err)
		}
		covered = append(covered, coveredNamespace{namespace: ns, agents: agents.Items})
	}
	return covered, nil
}

// setBoundaryStatus computes the status of db from what it covers: Ready,
// or Stalled on a conflict. Both are final for this generation.
func setBoundaryStatus(db *custosv1alpha1.DataBoundary, cov boundaryCoverage, imgErr error) {
	db.Status.Namespaces = cov.namespaces
	if len(db.Status.Namespaces) > maxBoundaryNamespaces {
		db.Status.Namespaces = db.Status.Namespaces[:maxBoundaryNamespaces]
	}
	db.Status.Agents = int32(cov.agents)

	var pe *imagePolicyError
	switch msg := boundaryConflictMessage(cov.conflicts); {
	case msg != "":
		setBoundaryCondition(db, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.BoundaryConflictReason, msg)
		setBoundaryCondition(db, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryConflictReason, msg)
	case errors.As(imgErr, &pe):
		msg := "The image policy cannot be used, so none of its agents' images verify: " + imgErr.Error()
		setBoundaryCondition(db, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.InvalidImagePolicyReason, msg)
		setBoundaryCondition(db, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.InvalidImagePolicyReason, msg)
	default:
		meta.RemoveStatusCondition(&db.Status.Conditions, custosv1alpha1.StalledCondition)
		msg := boundaryCoverageMessage(cov)
		if imgErr != nil {
			msg += "; it " + imgErr.Error()
		}
		if p := db.Spec.Images; p != nil && len(p.Keyless) > 0 && !p.RequireTransparencyLog {
			msg += "; warning: keyless signatures without requireTransparencyLog verify only while their signing certificate is valid (ten minutes for Fulcio's), so re-verification refuses them afterwards"
		}
		setBoundaryCondition(db, custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, msg)
	}
	meta.RemoveStatusCondition(&db.Status.Conditions, custosv1alpha1.ReconcilingCondition)
	db.Status.ObservedGeneration = db.Generation
}

// setBoundaryInvalid: a spec that cannot be acted on stalls the boundary
// until it is edited. It covers nothing meanwhile, so its status lists
// nothing, and no RBAC applies in its namespaces.
func setBoundaryInvalid(db *custosv1alpha1.DataBoundary, specErr error) {
	db.Status.Namespaces = nil
	db.Status.Agents = 0
	setRBACCondition(db, nil)
	msg := specErr.Error()
	setBoundaryCondition(db, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.InvalidSpecReason, msg)
	setBoundaryCondition(db, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.InvalidSpecReason, msg)
	meta.RemoveStatusCondition(&db.Status.Conditions, custosv1alpha1.ReconcilingCondition)
	db.Status.ObservedGeneration = db.Generation
}

// setBoundaryProgressing: a transient error leaves the last known coverage
// and Ready as they were, and says that the work is not done.
// observedGeneration stays behind.
func setBoundaryProgressing(db *custosv1alpha1.DataBoundary, err error) {
	setBoundaryCondition(db, custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, custosv1alpha1.ProgressingReason,
		"Retrying: "+err.Error())
}

func setBoundaryCondition(db *custosv1alpha1.DataBoundary, conditionType string, status metav1.ConditionStatus, reason, msg string) {
	setStatusCondition(&db.Status.Conditions, db.Generation, conditionType, status, reason, msg)
}

func boundaryCoverageMessage(cov boundaryCoverage) string {
	n := len(cov.namespaces)
	msg := fmt.Sprintf("Covers %s with %s", countOf(n, "namespace"), countOf(cov.agents, "Agent"))
	if n > maxBoundaryNamespaces {
		msg += fmt.Sprintf("; status.namespaces lists the first %d", maxBoundaryNamespaces)
	}
	return msg
}

// boundaryConflictMessage names each namespace covered by other boundaries
// too, and those boundaries; empty when there is no conflict.
func boundaryConflictMessage(conflicts map[string][]string) string {
	if len(conflicts) == 0 {
		return ""
	}
	const maxListed = 10
	namespaces := slices.Sorted(maps.Keys(conflicts))
	parts := make([]string, 0, min(len(namespaces), maxListed))
	for _, ns := range namespaces[:min(len(namespaces), maxListed)] {
		others := conflicts[ns]
		kind := "DataBoundary"
		if len(others) > 1 {
			kind = "DataBoundaries"
		}
		parts = append(parts, fmt.Sprintf("namespace %s is also covered by %s %s", ns, kind, quoteAll(others)))
	}
	msg := strings.Join(parts, "; ")
	if len(namespaces) > maxListed {
		msg += fmt.Sprintf("; and %d more namespaces", len(namespaces)-maxListed)
	}
	return msg + ". A namespace must be covered by exactly one DataBoundary: change the namespaceSelector of one of them"
}

func quoteAll(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(quoted, ", ")
}

// countOf writes n things in English: "1 namespace", "2 namespaces".
func countOf(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
