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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/boundary"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/netpol"
	"github.com/custos-dev/custos/internal/workload"
)

// toolsetRefIndex indexes Agents by the "namespace/name" of each Toolset they
// reference, so a Toolset change re-queues exactly its Agents.
const toolsetRefIndex = "custos.dev/toolset-ref"

// waitRequeue is how soon a step waiting on another object looks again, in
// case no watch event tells it first.
const waitRequeue = 30 * time.Second

// teardownRequeue is how soon a decommission step checks that what it
// deleted is gone.
const teardownRequeue = 2 * time.Second

// AgentReconciler turns an Agent into its identity, network policy and
// workload, runs its lifecycle, and decommissions it completely.
type AgentReconciler struct {
	Client client.Client
	// APIReader reads around the cache where a stale read would be unsafe:
	// deciding that an object is gone.
	APIReader client.Reader
	// Names holds the metadata of every ServiceAccount, NetworkPolicy and
	// Deployment, Custos's or not, to tell whether a child's name is free
	// without asking the API server (see nameTaken).
	Names    cache.Cache
	Recorder recorder.EventRecorder
	Options

	// written holds, by Agent UID, the status this reconciler last wrote.
	written sync.Map

	// imagePolicies reads the DataBoundaries' image policies.
	imagePolicies *imagePolicies
	// imageChecks holds, by Agent UID, the last imageCheck that ended in a
	// decision (verified or refused).
	imageChecks sync.Map
	// prioritized holds the Agents (NamespacedName) queued ahead by
	// rolloutMovedOn and not reconciled since.
	prioritized sync.Map
}

// +kubebuilder:rbac:groups=custos.dev,resources=agents,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=custos.dev,resources=agents/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=custos.dev,resources=agents/finalizers,verbs=update
// +kubebuilder:rbac:groups=custos.dev,resources=agents/image,verbs=verify
// +kubebuilder:rbac:groups=custos.dev,resources=agents/identity,verbs=use
// +kubebuilder:rbac:groups=custos.dev,resources=toolsets;databoundaries,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=list;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler, its index and its watches.
func (r *AgentReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &custosv1alpha1.Agent{}, toolsetRefIndex, func(o client.Object) []string {
		a := o.(*custosv1alpha1.Agent)
		keys := make([]string, 0, len(a.Spec.ToolsetRefs))
		for _, ref := range a.Spec.ToolsetRefs {
			keys = append(keys, toolsetKey(a, ref))
		}
		return keys
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("agent").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency}).
		// Status patches are the reconciler's own doing and would only
		// queue the agent again.
		For(&custosv1alpha1.Agent{}, builder.WithPredicates(agentChanged)).
		Owns(&corev1.ServiceAccount{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&appsv1.Deployment{}).
		Watches(&appsv1.Deployment{}, handler.TypedFuncs[client.Object, reconcile.Request]{UpdateFunc: r.rolloutMovedOn}).
		// Lease Secrets by their metadata only: the material is never
		// cached; a Secret deleted by hand is reissued.
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		// Any other NetworkPolicy may select an agent's pods (NetworkIsolated).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.agentsBesidePolicy)).
		Watches(&custosv1alpha1.Toolset{}, handler.EnqueueRequestsFromMapFunc(r.agentsForToolset)).
		Watches(&custosv1alpha1.DataBoundary{}, handler.EnqueueRequestsFromMapFunc(r.agentsForBoundary),
			builder.WithPredicates(boundaryChangedForAgents)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.agentsInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{}))
	// An object that held an agent child's name (NameConflict) going away
	// lets the agent converge without anyone touching it.
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &networkingv1.NetworkPolicy{}, &appsv1.Deployment{}} {
		gvk, err := apiutil.GVKForObject(obj, mgr.GetScheme())
		if err != nil {
			return err
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		b = b.WatchesRawSource(source.Kind(r.Names, m,
			handler.TypedEnqueueRequestsFromMapFunc(agentOfChildName),
			predicate.TypedFuncs[*metav1.PartialObjectMetadata]{
				CreateFunc:  func(event.TypedCreateEvent[*metav1.PartialObjectMetadata]) bool { return false },
				UpdateFunc:  func(event.TypedUpdateEvent[*metav1.PartialObjectMetadata]) bool { return false },
				GenericFunc: func(event.TypedGenericEvent[*metav1.PartialObjectMetadata]) bool { return false },
			}))
	}
	return b.Complete(r)
}

// rolloutPriority is the queue priority of an Agent whose Deployment's
// rollout moved on; everything else is queued at the default priority, 0.
const rolloutPriority = 10

// rolloutMovedOn queues an Agent whose Deployment's status changed ahead of
// Agents that have not been reconciled yet. Such an agent has done all its
// writes but its status: under a burst (a GitOps sync of a thousand Agents)
// its Ready then follows its rollout, instead of waiting behind the first
// pass of every Agent created after it. The queue keeps the higher of two
// priorities, so Owns' own event for the same update changes nothing; the
// priority lasts one pass: Reconcile puts the requeues of a pass queued
// this way back at 0 (other passes keep theirs, such as the low priority of
// a resync).
func (r *AgentReconciler) rolloutMovedOn(_ context.Context, e event.TypedUpdateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	oldD, okOld := e.ObjectOld.(*appsv1.Deployment)
	newD, okNew := e.ObjectNew.(*appsv1.Deployment)
	if !okOld || !okNew || equality.Semantic.DeepEqual(oldD.Status, newD.Status) {
		return
	}
	owner := metav1.GetControllerOf(newD)
	if owner == nil || owner.Kind != "Agent" {
		return
	}
	if gv, err := schema.ParseGroupVersion(owner.APIVersion); err != nil || gv.Group != custosv1alpha1.GroupVersion.Group {
		return
	}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: newD.Namespace, Name: owner.Name}}
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		r.prioritized.Store(req.NamespacedName, struct{}{})
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(rolloutPriority)}, req)
		return
	}
	q.Add(req)
}

// agentOfChildName maps an object named like an agent's child to the Agent
// of that name in its namespace, whether or not it exists.
func agentOfChildName(_ context.Context, m *metav1.PartialObjectMetadata) []reconcile.Request {
	name, ok := strings.CutPrefix(m.Name, childPrefix)
	if !ok || name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: m.Namespace, Name: name}}}
}

// boundaryChangedForAgents passes a DataBoundary's creation, deletion and
// the updates its Agents act on: its spec (generation), its deletion, and
// its image policy's hash, which changes when the key material read from
// Secrets and ConfigMaps does. The rest of its status (the namespaces and
// Agents it covers, which change with every Agent created) concerns no
// agent: re-queueing every agent of the tenant on each of those would cost
// a burst of N creates N times N reconciles.
var boundaryChangedForAgents = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	oldB, okOld := e.ObjectOld.(*custosv1alpha1.DataBoundary)
	newB, okNew := e.ObjectNew.(*custosv1alpha1.DataBoundary)
	if !okOld || !okNew {
		return true
	}
	return oldB.Generation != newB.Generation ||
		oldB.Status.ImagePolicyHash != newB.Status.ImagePolicyHash ||
		!oldB.DeletionTimestamp.Equal(newB.DeletionTimestamp)
}}

// agentChanged passes an Agent's creation, deletion and every update except
// one that changed only its status: the spec (generation), labels,
// annotations, finalizers or deletion timestamp.
var agentChanged = predicate.Or[client.Object](
	predicate.GenerationChangedPredicate{},
	predicate.LabelChangedPredicate{},
	predicate.AnnotationChangedPredicate{},
	predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !slices.Equal(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers()) ||
			!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
	}},
)

func toolsetKey(a *custosv1alpha1.Agent, ref custosv1alpha1.ToolsetReference) string {
	ns := ref.Namespace
	if ns == "" {
		ns = a.Namespace
	}
	return ns + "/" + ref.Name
}

func (r *AgentReconciler) agentsForToolset(ctx context.Context, o client.Object) []reconcile.Request {
	var agents custosv1alpha1.AgentList
	// Only the keys are read: the cached objects are not copied.
	if err := r.Client.List(ctx, &agents, client.MatchingFields{toolsetRefIndex: o.GetNamespace() + "/" + o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the Agents of a Toolset", "toolset", klog.KObj(o))
		return nil
	}
	return requests(agents.Items)
}

// agentsForBoundary maps a DataBoundary to the Agents it can place or
// unplace: those of its tenant, and those in the namespaces it covers,
// whatever their tenant: a boundary of another tenant that also covers their
// namespace is a conflict they must stop on, and its going away ends the
// conflict. (On an update it is called with the old object too, so a
// selector that stops covering a namespace re-queues its Agents.)
func (r *AgentReconciler) agentsForBoundary(ctx context.Context, o client.Object) []reconcile.Request {
	b := o.(*custosv1alpha1.DataBoundary)
	log := ctrl.LoggerFrom(ctx).WithValues("dataBoundary", klog.KObj(o))
	// Only the keys are read: the cached objects are not copied.
	var agents custosv1alpha1.AgentList
	if err := r.Client.List(ctx, &agents, client.MatchingLabels{custosv1alpha1.TenantLabel: b.Spec.Tenant}, client.UnsafeDisableDeepCopy); err != nil {
		log.Error(err, "Listing the Agents of a DataBoundary")
		return nil
	}
	reqs := requests(agents.Items)
	sel, err := metav1.LabelSelectorAsSelector(&b.Spec.NamespaceSelector)
	if err != nil {
		// It covers nothing; it reports that itself.
		return reqs
	}
	covered, err := coveredAgents(ctx, r.Client, sel)
	if err != nil {
		log.Error(err, "Listing the Agents a DataBoundary covers")
		return reqs
	}
	for _, c := range covered {
		for i := range c.agents {
			if c.agents[i].Labels[custosv1alpha1.TenantLabel] != b.Spec.Tenant {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&c.agents[i])})
			}
		}
	}
	return reqs
}

// agentsBesidePolicy maps a NetworkPolicy that is no agent's own to the
// Agents of its namespace: it may select their pods.
func (r *AgentReconciler) agentsBesidePolicy(ctx context.Context, o client.Object) []reconcile.Request {
	if owner := metav1.GetControllerOf(o); owner != nil && owner.Kind == "Agent" {
		return nil
	}
	var agents custosv1alpha1.AgentList
	if err := r.Client.List(ctx, &agents, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the Agents beside a NetworkPolicy", "networkPolicy", klog.KObj(o))
		return nil
	}
	return requests(agents.Items)
}

func (r *AgentReconciler) agentsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var agents custosv1alpha1.AgentList
	if err := r.Client.List(ctx, &agents, client.InNamespace(o.GetName()), client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the Agents of a namespace", "namespace", o.GetName())
		return nil
	}
	return requests(agents.Items)
}

func requests(agents []custosv1alpha1.Agent) []reconcile.Request {
	reqs := make([]reconcile.Request, 0, len(agents))
	for i := range agents {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&agents[i])})
	}
	return reqs
}

// Reconcile follows the house shape: get, defer the status patch, deletion,
// finalizer, then the ordered steps.
func (r *AgentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	agent := &custosv1alpha1.Agent{}
	if err := r.Client.Get(ctx, req.NamespacedName, agent); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// The status this reconciler last wrote is newer than a cache that
	// has not caught up with it yet: starting from it, an Agent's
	// transitions are told (Events, audit) once, nothing is written twice,
	// and the lease ledger is not read stale (which would issue a lease
	// again).
	if written, ok := r.written.Load(agent.UID); ok {
		agent.Status = *written.(*custosv1alpha1.AgentStatus).DeepCopy()
	}
	before := agent.DeepCopy()
	defer func() {
		// A pass queued ahead of others (rolloutMovedOn) does not put its
		// requeues ahead too.
		if _, ok := r.prioritized.LoadAndDelete(req.NamespacedName); ok {
			result.Priority = ptr.To(0)
		}
		if retErr == nil || errors.Is(retErr, reconcile.TerminalError(nil)) {
			// observedGeneration says the controller acted on this
			// generation: set only when the run got to the end of its work.
			agent.Status.ObservedGeneration = agent.Generation
		}
		err := patchStatus(ctx, r.Client, before, agent)
		switch {
		case apierrors.IsNotFound(err):
			// Released by this very run: its last transitions are told
			// although its status is gone with it.
			r.written.Delete(agent.UID)
			r.imageChecks.Delete(agent.UID)
		case err != nil:
			// Unwritten, the transitions are seen again on the retry.
			r.written.Delete(agent.UID)
			retErr = errors.Join(retErr, err)
			return
		default:
			r.written.Store(agent.UID, agent.Status.DeepCopy())
		}
		r.recordTransitions(ctx, before, agent)
		r.auditTransitions(ctx, before, agent)
	}()

	deleting := !agent.DeletionTimestamp.IsZero()
	if deleting && !controllerutil.ContainsFinalizer(agent, custosv1alpha1.DecommissionFinalizer) {
		return ctrl.Result{}, nil
	}
	if deleting || agent.Spec.Lifecycle.State == custosv1alpha1.LifecycleDecommissioned {
		// The decision goes on the record before the first deletion.
		if p := phaseOf(before); p != custosv1alpha1.AgentPhaseDecommissioning && p != custosv1alpha1.AgentPhaseDecommissioned {
			r.auditDecommissioning(ctx, agent)
		}
		if deleting {
			return r.reconcileDelete(ctx, agent)
		}
		return r.reconcileDecommissioned(ctx, agent)
	}
	if !controllerutil.ContainsFinalizer(agent, custosv1alpha1.DecommissionFinalizer) {
		patch := client.MergeFrom(agent.DeepCopy())
		controllerutil.AddFinalizer(agent, custosv1alpha1.DecommissionFinalizer)
		if err := r.Client.Patch(ctx, agent, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	return r.reconcileNormal(ctx, agent)
}

// agentScope is what the steps of one reconciliation learn and share.
type agentScope struct {
	agent     *custosv1alpha1.Agent
	namespace *corev1.Namespace
	boundary  *custosv1alpha1.DataBoundary
	// compliant: a boundary was found and the agent and its Toolsets lie
	// inside it.
	compliant bool
	toolsets  []*custosv1alpha1.Toolset
	missing   []string
	// suspendReason is why the agent must not run although compliant:
	// SuspendedBySpec or Expired; empty when it may run.
	suspendReason string
	identityBound bool
	// imageRecheck is when the image is next resolved and verified again;
	// zero when not scheduled.
	imageRecheck time.Time
	// renewAt is when the next lease is due for renewal; zero when none.
	renewAt time.Time
	// stopping: the agent may not run, but pods still run as it.
	stopping bool
}

// active reports whether the agent may run and reach its tools.
func (s *agentScope) active() bool {
	return s.compliant && s.suspendReason == ""
}

func (r *AgentReconciler) reconcileNormal(ctx context.Context, agent *custosv1alpha1.Agent) (ctrl.Result, error) {
	s := &agentScope{agent: agent}
	now := r.Clock.Now()
	var requeueAfter time.Duration

	switch {
	case agent.Spec.Lifecycle.State == custosv1alpha1.LifecycleSuspended:
		s.suspendReason = custosv1alpha1.SuspendedBySpecReason
	case agent.Spec.Lifecycle.ExpiresAt != nil && !now.Before(agent.Spec.Lifecycle.ExpiresAt.Time):
		s.suspendReason = custosv1alpha1.ExpiredReason
	case agent.Spec.Lifecycle.ExpiresAt != nil:
		// Suspend at the moment of expiry, not at the next resync.
		requeueAfter = agent.Spec.Lifecycle.ExpiresAt.Sub(now)
	}

	var errs []error
	for _, step := range []func(context.Context, *agentScope) error{
		r.reconcileBoundary,
		r.reconcileIdentity,
		r.reconcileImage,
		r.reconcileNetwork,
		r.reconcileCredentials,
		r.reconcileWorkload,
	} {
		if err := step(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	// A step that failed transiently is retried with backoff; the others'
	// conditions still describe what they saw.
	err := errors.Join(errs...)
	summarize(agent, s.suspendReason, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	if isTrue(agent, custosv1alpha1.StalledCondition) {
		// Stalled waits for a person, but what runs meanwhile is still
		// looked after: its image is checked again on schedule (a signature
		// can be added, or a key rotated out, without a change Custos sees)
		// and its leases are renewed.
		if next := earliest(s.imageRecheck, s.renewAt); !next.IsZero() {
			return ctrl.Result{RequeueAfter: max(next.Sub(now), time.Second)}, nil
		}
		return ctrl.Result{}, reconcile.TerminalError(errors.New(conditionMessage(agent, custosv1alpha1.ReadyCondition)))
	}
	if isTrue(agent, custosv1alpha1.ReconcilingCondition) && (requeueAfter == 0 || requeueAfter > waitRequeue) {
		requeueAfter = waitRequeue
	}
	if s.stopping {
		// Pods are not watched: look again soon.
		requeueAfter = teardownRequeue
	}
	if next := earliest(s.renewAt, s.imageRecheck); !next.IsZero() {
		if until := max(next.Sub(now), time.Second); requeueAfter == 0 || until < requeueAfter {
			requeueAfter = until
		}
	}
	return ctrl.Result{RequeueAfter: requeueAfter}, nil
}

// earliest is the earliest of times that are set; zero when none is.
func earliest(times ...time.Time) time.Time {
	var first time.Time
	for _, t := range times {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// reconcileBoundary finds the tenant's DataBoundary and checks the agent and
// its Toolsets against it (BoundaryCompliant).
func (r *AgentReconciler) reconcileBoundary(ctx context.Context, s *agentScope) error {
	agent := s.agent
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: agent.Namespace}, ns); err != nil {
		return err
	}
	s.namespace = ns

	var boundaries custosv1alpha1.DataBoundaryList
	if err := r.Client.List(ctx, &boundaries); err != nil {
		return err
	}
	b, err := boundary.Select(boundaries.Items, ns)
	var notFound *boundary.NotFoundError
	var conflict *boundary.ConflictError
	switch {
	case errors.As(err, &notFound):
		setCondition(agent, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryNotFoundReason,
			"%s; the agent stays deny-all and does not run until one does", err)
		return nil
	case errors.As(err, &conflict):
		setCondition(agent, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryConflictReason, "%s", err)
		return nil
	case err != nil:
		return err
	}
	s.boundary = b

	violations := boundary.CheckAgent(b, ns, agent)
	for i, ref := range agent.Spec.ToolsetRefs {
		ts := &custosv1alpha1.Toolset{}
		key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
		if key.Namespace == "" {
			key.Namespace = agent.Namespace
		}
		if err := r.Client.Get(ctx, key, ts); apierrors.IsNotFound(err) {
			s.missing = append(s.missing, key.String())
			continue
		} else if err != nil {
			return err
		}
		var endpointNS *corev1.Namespace
		if in := ts.Spec.Endpoint.InCluster; in != nil {
			endpointNS = &corev1.Namespace{}
			if err := r.Client.Get(ctx, types.NamespacedName{Name: in.Namespace}, endpointNS); apierrors.IsNotFound(err) {
				endpointNS = nil
			} else if err != nil {
				return err
			}
		}
		for _, v := range boundary.CheckToolset(b, ts, endpointNS) {
			v.Field = field.NewPath("spec", "toolsetRefs").Index(i).String() + " (Toolset " + key.String() + "): " + v.Field
			violations = append(violations, v)
		}
		s.toolsets = append(s.toolsets, ts)
	}
	if len(violations) > 0 {
		setCondition(agent, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryViolationReason,
			"Outside DataBoundary %q: %s", b.Name, violations.ToAggregate().Error())
		return nil
	}
	s.compliant = true
	setCondition(agent, custosv1alpha1.BoundaryCompliantCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
		"Within DataBoundary %q (regions %s)", b.Name, strings.Join(b.Spec.Regions, ", "))
	return nil
}

// reconcileIdentity applies the agent's own ServiceAccount with its cloud
// bindings (IdentityBound) and records its SPIFFE ID.
func (r *AgentReconciler) reconcileIdentity(ctx context.Context, s *agentScope) error {
	agent := s.agent
	name := identity.ServiceAccountName(agent.Name)
	if conflict, err := r.nameTaken(ctx, &corev1.ServiceAccount{}, agent, name); err != nil {
		return err
	} else if conflict {
		setCondition(agent, custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"ServiceAccount %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return nil
	}
	bindings, notAmbient := identityInForce(s)
	sa := identity.ServiceAccount(name, agent.Namespace, bindings).
		WithLabels(childLabels(agent)).
		WithOwnerReferences(ownerReference(agent))
	current := &corev1.ServiceAccount{}
	if err := applyChild(ctx, r.Client, current, agent.Namespace, name, sa); errors.Is(err, errNameTaken) {
		setCondition(agent, custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"ServiceAccount %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return nil
	} else if err != nil {
		setCondition(agent, custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Applying ServiceAccount %s: %v", name, err)
		return err
	}
	if err := r.removeForeignCloudAnnotations(ctx, agent, current, bindings); err != nil {
		setCondition(agent, custosv1alpha1.IdentityBoundCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Removing cloud annotations Custos did not set from ServiceAccount %s: %v", name, err)
		return err
	}
	s.identityBound = true
	agent.Status.Identity = &custosv1alpha1.IdentityStatus{
		ServiceAccount: name,
		SPIFFEID:       identity.SPIFFEID(r.TrustDomain, agent.Namespace, name),
		Mode:           identity.Mode(bindings),
	}
	msg := fmt.Sprintf("ServiceAccount %s bound to %s", name, identity.Describe(bindings))
	if notAmbient != "" {
		msg += "; spec.identity.mode Ambient is not in force: " + notAmbient
	}
	setCondition(agent, custosv1alpha1.IdentityBoundCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason, "%s", msg)
	return nil
}

// identityInForce is the agent's identity bindings in the mode in force:
// Ambient only when the spec asks for it and the agent lies within a
// DataBoundary that allows it (the rule admission applies, through
// boundary.CheckAgent, so a boundary narrowed since takes ambient identity
// away); Leased otherwise. notAmbient says why an Ambient spec is not in
// force; empty when it is, or was not asked for.
func identityInForce(s *agentScope) (bindings *custosv1alpha1.IdentityBindings, notAmbient string) {
	spec := s.agent.Spec.Identity
	if identity.Mode(spec) != custosv1alpha1.IdentityModeAmbient {
		return spec, ""
	}
	switch {
	case s.boundary == nil:
		notAmbient = "no single DataBoundary places the agent"
	case !boundary.AmbientIdentityAllowed(s.boundary):
		notAmbient = fmt.Sprintf("DataBoundary %q does not allow ambient cloud identity (spec.cloudRoles.ambientIdentity)", s.boundary.Name)
	case !s.compliant:
		notAmbient = fmt.Sprintf("the agent is outside DataBoundary %q", s.boundary.Name)
	default:
		return spec, ""
	}
	leased := spec.DeepCopy()
	leased.Mode = custosv1alpha1.IdentityModeLeased
	return leased, notAmbient
}

// foreignAnnotationsRemovedReason is the reason of the Warning Event that
// tells of cloud annotations removed from an agent's ServiceAccount.
const foreignAnnotationsRemovedReason = "ForeignAnnotationsRemoved"

// removeForeignCloudAnnotations removes from the agent's ServiceAccount sa
// every cloud workload-identity annotation Custos did not set for bindings
// (the agent's, in the mode in force): each would have a platform webhook
// or metadata server hand the agent's pods a cloud token Custos did not
// bind. Server-side apply re-asserts only Custos's own fields, so they are
// patched away, and the removal is told in a Warning Event and an audit
// record naming the keys and who set them, never the values.
func (r *AgentReconciler) removeForeignCloudAnnotations(ctx context.Context, agent *custosv1alpha1.Agent, sa *corev1.ServiceAccount,
	bindings *custosv1alpha1.IdentityBindings) error {
	keys := identity.ForeignCloudAnnotations(sa.Annotations, identity.Annotations(bindings))
	if len(keys) == 0 {
		return nil
	}
	removals := make(map[string]any, len(keys))
	for _, k := range keys {
		removals[k] = nil
	}
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{
		// Only from what was read: the Event and the record tell what was
		// removed, not what a stale read still showed.
		"resourceVersion": sa.ResourceVersion,
		"annotations":     removals,
	}})
	if err != nil {
		return err
	}
	managers := annotationManagers(sa, keys)
	err = r.Client.Patch(ctx, sa, client.RawPatch(types.MergePatchType, data), client.FieldOwner(FieldOwner))
	if apierrors.IsConflict(err) {
		// Read from a cache behind the ServiceAccount: the change it has
		// not seen yet queues the agent again (Owns), and the removal is
		// decided, and recorded, on what is there then.
		return nil
	}
	if err != nil {
		return err
	}
	listed := strings.Join(keys, ", ")
	r.event(ctx, agent, corev1.EventTypeWarning, foreignAnnotationsRemovedReason,
		"Removed cloud annotation(s) %s from ServiceAccount %s: only Custos sets the cloud identity of an agent (identity mode %s)",
		listed, sa.Name, identity.Mode(bindings))
	details := map[string]string{"serviceAccount": sa.Name, "annotationKeys": listed}
	if len(managers) > 0 {
		details["fieldManagers"] = strings.Join(managers, ", ")
	}
	record(ctx, r.Audit, subjectOf(agent, "Agent"), audit.ActionIdentityForeignRemoved, audit.DecisionDeny,
		fmt.Sprintf("Removed cloud annotation(s) %s that Custos did not set from ServiceAccount %s", listed, sa.Name),
		"spec.identity", details)
	return nil
}

// annotationManagers lists, sorted, the field managers of obj that set any
// of the annotations keys: who made the change, for the record.
func annotationManagers(obj client.Object, keys []string) []string {
	var managers []string
	for _, f := range obj.GetManagedFields() {
		if f.FieldsV1 == nil || f.Manager == FieldOwner {
			continue
		}
		var fields struct {
			Metadata struct {
				Annotations map[string]json.RawMessage `json:"f:annotations"`
			} `json:"f:metadata"`
		}
		if json.Unmarshal(f.FieldsV1.Raw, &fields) != nil {
			continue
		}
		for _, k := range keys {
			if _, ok := fields.Metadata.Annotations["f:"+k]; ok {
				managers = append(managers, f.Manager)
				break
			}
		}
	}
	slices.Sort(managers)
	return slices.Compact(managers)
}

// reconcileNetwork applies the agent's NetworkPolicy (NetworkIsolated):
// deny-all unless the agent is active, then DNS and its Toolsets only.
func (r *AgentReconciler) reconcileNetwork(ctx context.Context, s *agentScope) error {
	agent := s.agent
	name := childName(agent)
	if conflict, err := r.nameTaken(ctx, &networkingv1.NetworkPolicy{}, agent, name); err != nil {
		return err
	} else if conflict {
		setCondition(agent, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"NetworkPolicy %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return nil
	}
	var egress *netpol.Egress
	if s.active() {
		egress = &netpol.Egress{}
		for _, ts := range s.toolsets {
			switch ep := ts.Spec.Endpoint; {
			case ep.InCluster != nil:
				egress.InCluster = append(egress.InCluster, netpol.InClusterPeer{
					Namespace: ep.InCluster.Namespace, PodSelector: ep.InCluster.PodSelector, Port: ep.InCluster.Port,
				})
			case ep.External != nil:
				egress.External = append(egress.External, netpol.ExternalPeer{CIDRs: ep.External.CIDRs, Port: ep.External.Port})
			}
		}
	}
	// The policy selects every pod labelled as the agent's, whatever else
	// it carries: a pod that could wear the agent's label without the rest
	// must not escape it.
	np := netpol.Render(name, agent.Namespace, map[string]string{custosv1alpha1.AgentLabel: agent.Name}, r.DNS, egress).
		WithLabels(childLabels(agent)).
		WithOwnerReferences(ownerReference(agent)).
		WithFinalizers(custosv1alpha1.NetworkPolicyFinalizer)
	if err := applyChild(ctx, r.Client, &networkingv1.NetworkPolicy{}, agent.Namespace, name, np); errors.Is(err, errNameTaken) {
		setCondition(agent, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"NetworkPolicy %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return nil
	} else if err != nil {
		setCondition(agent, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Applying NetworkPolicy %s: %v", name, err)
		return err
	}
	widened, err := r.widenedBy(ctx, agent)
	if err != nil {
		return err
	}
	switch {
	case len(widened) > 0:
		setCondition(agent, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.NetworkPolicyWidenedReason,
			"NetworkPolicy %s also select(s) the agent's pods and allow(s) traffic; NetworkPolicies add up, so its network is wider than %s: narrow or remove them",
			strings.Join(widened, ", "), name)
	case len(s.missing) > 0:
		setCondition(agent, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionFalse, custosv1alpha1.DependencyNotFoundReason,
			"Toolset %s not found; its endpoint stays closed until it exists", strings.Join(s.missing, ", "))
	case egress == nil:
		setCondition(agent, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"NetworkPolicy %s denies all traffic while the agent is not active", name)
	default:
		setCondition(agent, custosv1alpha1.NetworkIsolatedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason,
			"NetworkPolicy %s denies all traffic except DNS and %d Toolset endpoint(s)", name, len(egress.InCluster)+len(egress.External))
	}
	return nil
}

// widenedBy names the NetworkPolicies other than the agent's own that
// select its pods (as the Deployment labels them) and allow some traffic:
// NetworkPolicies add up, so each widens what the agent's own allows. The
// API server narrows tenants' policies at admission so that none selects an
// agent (config/crd/policies/agent-networkpolicies.yaml); this finds those
// stored before, or written by a cluster admin.
func (r *AgentReconciler) widenedBy(ctx context.Context, agent *custosv1alpha1.Agent) ([]string, error) {
	var policies networkingv1.NetworkPolicyList
	if err := r.Client.List(ctx, &policies, client.InNamespace(agent.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	pod := labels.Set(childLabels(agent))
	for k, v := range identity.PodLabels(agent.Spec.Identity) {
		pod[k] = v
	}
	var widened []string
	for i := range policies.Items {
		np := &policies.Items[i]
		if np.Name == childName(agent) || (len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			continue // the API server refuses such a selector; it selects nothing
		}
		if sel.Matches(pod) {
			widened = append(widened, np.Name)
		}
	}
	slices.Sort(widened)
	return widened, nil
}

// reconcileWorkload runs the agent's Deployment while it is active and
// stops it otherwise (WorkloadAvailable). A suspended agent is reported
// Suspended only once no pod runs as its ServiceAccount.
func (r *AgentReconciler) reconcileWorkload(ctx context.Context, s *agentScope) error {
	if err := r.reconcileDeployment(ctx, s); err != nil {
		return err
	}
	if s.active() {
		return nil
	}
	return r.stopPodsAsAgent(ctx, s)
}

// stopPodsAsAgent deletes every pod that runs as the ServiceAccount of an
// agent that may not run, labelled or not (the Deployment's own, scaled to
// zero, go too), and says so while any is left.
func (r *AgentReconciler) stopPodsAsAgent(ctx context.Context, s *agentScope) error {
	agent := s.agent
	sa := identity.ServiceAccountName(agent.Name)
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(agent.Namespace), client.MatchingFields{"spec.serviceAccountName": sa}); err != nil {
		return err
	}
	if len(pods.Items) == 0 {
		return nil
	}
	names := make([]string, 0, len(pods.Items))
	for i := range pods.Items {
		p := &pods.Items[i]
		names = append(names, p.Name)
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		uid := p.UID
		obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return err
		}
		if p.Labels[custosv1alpha1.AgentUIDLabel] != string(agent.UID) {
			// Not the Deployment's: somebody else ran it as the agent.
			r.event(ctx, agent, corev1.EventTypeWarning, custosv1alpha1.StoppingReason,
				"Deleted pod %s: it ran as ServiceAccount %s while the agent may not run", p.Name, sa)
			record(ctx, r.Audit, subjectOf(agent, "Agent"), teardownAction("Pod"), audit.DecisionDeny,
				fmt.Sprintf("Deleted pod %s/%s: it ran as the agent's ServiceAccount %s while the agent may not run", p.Namespace, p.Name, sa),
				"spec.lifecycle", map[string]string{"kind": "Pod", "name": p.Name})
		}
	}
	slices.Sort(names)
	s.stopping = true
	setCondition(agent, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.StoppingReason,
		"Stopping: %d pod(s) still run as ServiceAccount %s (%s); the agent is reported suspended once none does",
		len(names), sa, clipMessage(strings.Join(names, ", "), 512))
	return nil
}

// reconcileDeployment applies the agent's Deployment once its identity is
// bound and its boundary known (WorkloadAvailable), and mirrors its
// availability.
func (r *AgentReconciler) reconcileDeployment(ctx context.Context, s *agentScope) error {
	agent := s.agent
	name := childName(agent)
	if !s.identityBound {
		setCondition(agent, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.IdentityNotBoundReason,
			"Waiting for the agent's ServiceAccount; no pod runs without its own identity")
		return nil
	}
	if s.boundary == nil {
		// Without a boundary there are no regions to pin the pods to. An
		// existing Deployment is scaled to zero; none is created.
		if err := r.scaleToZero(ctx, agent, name); err != nil {
			return err
		}
		setCondition(agent, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.BoundaryNotFoundReason,
			"Not running: no single DataBoundary places the agent")
		return nil
	}
	if conflict, err := r.nameTaken(ctx, &appsv1.Deployment{}, agent, name); err != nil {
		return err
	} else if conflict {
		setCondition(agent, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"Deployment %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return nil
	}
	image := workload.VerifiedImage(agent)
	if image == "" {
		// Nothing runs that was not verified. A Deployment of a digest that
		// stopped verifying is left as it is unless the agent is suspended:
		// its pods run on, and the pod guard admits no new one. One that
		// runs a tag (made before images were verified) is stopped: a
		// restarting container would pull whatever the tag is now.
		if !s.active() || !r.runsPinnedImage(ctx, agent, name) {
			if err := r.scaleToZero(ctx, agent, name); err != nil {
				return err
			}
		}
		setCondition(agent, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ImageNotVerifiedReason,
			"No pod runs until spec.image verifies (%s)", conditionMessage(agent, custosv1alpha1.ImageVerifiedCondition))
		return nil
	}

	replicas := ptr.Deref(agent.Spec.Runtime.Replicas, 1)
	if !s.active() {
		replicas = 0
	}
	podLabels := childLabels(agent)
	for k, v := range identity.PodLabels(agent.Spec.Identity) {
		podLabels[k] = v
	}
	deploy := workload.Deployment(workload.Params{
		Name:           name,
		Namespace:      agent.Namespace,
		ServiceAccount: identity.ServiceAccountName(agent.Name),
		Selector:       selectorLabels(agent),
		PodLabels:      podLabels,
		Image:          image,
		Runtime:        agent.Spec.Runtime,
		Replicas:       replicas,
		Regions:        s.boundary.Spec.Regions,
		ConfigHash:     workload.ConfigHash(agent.Spec.Identity, agent.Spec.Credentials),
		Leases:         leaseMounts(agent),
	}).WithLabels(childLabels(agent)).WithOwnerReferences(ownerReference(agent))
	desired, err := json.Marshal(deploy)
	if err != nil {
		return err
	}
	d := &appsv1.Deployment{}
	if err := applyChild(ctx, r.Client, d, agent.Namespace, name, deploy); errors.Is(err, errNameTaken) {
		setCondition(agent, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"Deployment %s/%s exists and was not made by Custos for this agent; rename or remove it", agent.Namespace, name)
		return nil
	} else if err != nil {
		setCondition(agent, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Applying Deployment %s: %v", name, err)
		return err
	}
	if err := r.removeForeignSpec(ctx, agent, d, desired); err != nil {
		setCondition(agent, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ProgressingReason,
			"Removing what others added to Deployment %s: %v", name, err)
		return err
	}
	setWorkloadAvailable(agent, d, replicas)
	return nil
}

// foreignSpecWriters names the field managers other than Custos (and the
// controller manager, which writes only status and annotations) that own
// fields of obj's spec.
func foreignSpecWriters(obj client.Object) []string {
	var names []string
	for _, f := range obj.GetManagedFields() {
		if f.Manager == FieldOwner || f.Manager == "kube-controller-manager" || f.Subresource != "" || f.FieldsV1 == nil {
			continue
		}
		if bytes.Contains(f.FieldsV1.Raw, []byte(`"f:spec"`)) && !slices.Contains(names, f.Manager) {
			names = append(names, f.Manager)
		}
	}
	return names
}

// removeForeignSpec makes d's spec exactly what Custos renders (desired, an
// apply configuration as JSON). Server-side apply puts back the fields Custos
// sets but keeps what others added beside them (a command, an env var
// reading another Secret, a projected token): Custos owns the whole pod
// template of an agent. The API server refuses such changes from tenants
// (custos-agent-workload); this removes those made with more rights (a
// cluster admin), and records it. The foreign managers' entries go with
// their fields, so that Custos alone owns the spec afterwards.
func (r *AgentReconciler) removeForeignSpec(ctx context.Context, agent *custosv1alpha1.Agent, d *appsv1.Deployment, desired []byte) error {
	writers := foreignSpecWriters(d)
	if len(writers) == 0 {
		return nil
	}
	want := &appsv1.Deployment{}
	if err := json.Unmarshal(desired, want); err != nil {
		return err
	}
	d.Spec = want.Spec
	kept := d.ManagedFields[:0]
	for _, f := range d.ManagedFields {
		if !slices.Contains(writers, f.Manager) || f.Subresource != "" {
			kept = append(kept, f)
		}
	}
	d.ManagedFields = kept
	if err := r.Client.Update(ctx, d, client.FieldOwner(FieldOwner)); err != nil {
		return err
	}
	r.event(ctx, agent, corev1.EventTypeWarning, "ForeignChangeRemoved",
		"Deployment %s: removed what %s wrote into its spec; Custos owns the agent's whole pod template", d.Name, strings.Join(writers, ", "))
	record(ctx, r.Audit, subjectOf(agent, "Agent"), audit.ActionWorkloadForeignRemoved, audit.DecisionDeny,
		fmt.Sprintf("Deployment %s/%s: removed the spec fields written by %s", d.Namespace, d.Name, strings.Join(writers, ", ")),
		"spec.runtime", map[string]string{"kind": "Deployment", "name": d.Name, "managers": strings.Join(writers, ",")})
	return nil
}

// appliedHashAnnotation on a child records a digest of what Custos last
// applied to it.
const appliedHashAnnotation = "custos.dev/applied-hash"

// applyChild server-side applies a child, unless the cached child already
// carries exactly this configuration and nobody else has written to it
// since: most reconciles of a settled agent then cost no request at all.
// Either way it leaves the child as last seen in current.
// Any other writer (kubectl edit, another controller) makes Custos apply
// again, which puts its fields back.
func applyChild[AC interface {
	runtime.ApplyConfiguration
	WithAnnotations(map[string]string) AC
}](ctx context.Context, c client.Client, current client.Object, namespace, name string, ac AC) error {
	data, err := json.Marshal(ac)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:12])
	err = c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, current)
	if err == nil && current.GetAnnotations()[appliedHashAnnotation] == hash && onlyCustosWrote(current) {
		return nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	ac.WithAnnotations(map[string]string{appliedHashAnnotation: hash})
	if err := c.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		if isAdoptionRefused(err) {
			return errNameTaken
		}
		return err
	}
	return fromApplied(ac, current)
}

// isAdoptionRefused: the API server refused the write because it would
// have made an existing object, not made for this Agent, the Agent's
// (config/crd/policies/agent-ownership.yaml). The caches did not know of
// the object yet; Custos takes over nothing.
func isAdoptionRefused(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "custos-agent-ownership")
}

// errNameTaken: the object an apply was to create exists, and is not
// Custos's for this agent.
var errNameTaken = errors.New("the name is taken by an object Custos did not make for this agent")

// fromApplied reads the server's answer, which Apply left in ac, into
// current: the caller reads the child as it is now, not as the cache, which
// has not seen the write yet, has it.
func fromApplied(ac runtime.ApplyConfiguration, current client.Object) error {
	data, err := json.Marshal(ac)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, current)
}

// onlyCustosWrote: no field manager but Custos has written obj outside its
// status. The controller manager is let be: the deployment controller
// annotates every Deployment it rolls out.
func onlyCustosWrote(obj client.Object) bool {
	for _, f := range obj.GetManagedFields() {
		if f.Manager != FieldOwner && f.Subresource != "status" && f.Manager != "kube-controller-manager" {
			return false
		}
	}
	return true
}

// runsPinnedImage: the agent's Deployment, if any, runs its images by
// digest only.
func (r *AgentReconciler) runsPinnedImage(ctx context.Context, agent *custosv1alpha1.Agent, name string) bool {
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: name}, d); err != nil {
		return true // none (or unreadable: scaleToZero would fail alike)
	}
	for _, c := range append(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers...) {
		if !strings.Contains(c.Image, "@sha256:") {
			return false
		}
	}
	return true
}

// scaleToZero stops an existing Deployment of the agent without deleting it.
func (r *AgentReconciler) scaleToZero(ctx context.Context, agent *custosv1alpha1.Agent, name string) error {
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: agent.Namespace, Name: name}, d); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !ownedBy(d, agent) || ptr.Deref(d.Spec.Replicas, 1) == 0 {
		return nil
	}
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = ptr.To[int32](0)
	return r.Client.Patch(ctx, d, patch)
}

// nameTaken reports whether an object named name exists in the agent's
// namespace that Custos did not make for this agent. Custos's own objects are
// in the manager's cache; anyone else's metadata is in r.Names. Both are
// caches, which is safe because the API server reserves the agent- names in
// tenant namespaces for Custos (config/crd/policies): nobody else can create
// one in the moments before the cache would see it.
func (r *AgentReconciler) nameTaken(ctx context.Context, obj client.Object, agent *custosv1alpha1.Agent, name string) (bool, error) {
	key := types.NamespacedName{Namespace: agent.Namespace, Name: name}
	err := r.Client.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		gvk, gvkErr := apiutil.GVKForObject(obj, r.Client.Scheme())
		if gvkErr != nil {
			return false, gvkErr
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		err = r.Names.Get(ctx, key, m)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		obj = m
	}
	if err != nil {
		return false, err
	}
	if madeForAgent(obj, agent) {
		return false, nil
	}
	// Taken, as the caches see it: confirmed live, since a stalled agent
	// waits for the watch event of the object going away, which either
	// cache may deliver before the other has caught up.
	gvk, err := apiutil.GVKForObject(obj, r.Client.Scheme())
	if err != nil {
		return false, err
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	if err := r.APIReader.Get(ctx, key, m); apierrors.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return !madeForAgent(m, agent), nil
}

// madeForAgent: Custos made obj for this very Agent: obj is controlled by
// the Agent's UID and labelled with it. Labels alone prove nothing (anyone
// who can write the object can copy them), and a child left by an earlier
// Agent of the same name is not taken over either: its name stays taken
// until the sweeper (or the garbage collector) removes it.
func madeForAgent(obj client.Object, agent *custosv1alpha1.Agent) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == agent.UID && ref.Kind == "Agent" &&
		obj.GetLabels()[custosv1alpha1.AgentUIDLabel] == string(agent.UID)
}

// ownedBy: obj carries this very agent's UID.
func ownedBy(obj client.Object, agent *custosv1alpha1.Agent) bool {
	return obj.GetLabels()[custosv1alpha1.AgentUIDLabel] == string(agent.UID)
}

// childPrefix starts the name of everything Custos makes for an agent.
const childPrefix = identity.ChildPrefix

// childName names an agent's Deployment and NetworkPolicy.
func childName(agent *custosv1alpha1.Agent) string {
	return childPrefix + agent.Name
}

// childLabels are the labels of everything Custos makes for an agent.
func childLabels(agent *custosv1alpha1.Agent) map[string]string {
	return map[string]string{
		custosv1alpha1.AgentLabel:     agent.Name,
		custosv1alpha1.AgentUIDLabel:  string(agent.UID),
		custosv1alpha1.TenantLabel:    agent.Labels[custosv1alpha1.TenantLabel],
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
}

// selectorLabels select an agent's pods. They never change over the agent's
// life: a Deployment's selector is immutable.
func selectorLabels(agent *custosv1alpha1.Agent) map[string]string {
	return map[string]string{
		custosv1alpha1.AgentLabel:     agent.Name,
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
}

func ownerReference(agent *custosv1alpha1.Agent) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(custosv1alpha1.GroupVersion.String()).
		WithKind("Agent").
		WithName(agent.Name).
		WithUID(agent.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// event logs and records an Event on the agent.
func (r *AgentReconciler) event(ctx context.Context, agent *custosv1alpha1.Agent, eventType, reason, format string, args ...any) {
	recordEvent(ctx, r.Recorder, agent, eventType, reason, fmt.Sprintf(format, args...))
}

// recordTransitions records the Events a person watching the agent wants,
// and no more: a Warning when it stalls (or stalls for a new reason), a
// Normal event when it becomes Ready, and one for each change of lifecycle
// phase except the first (Pending) and one the Ready event already tells
// (onboarding, say, or the end of a decommission). Every step's condition is in the status;
// an Event per step would only multiply the API server's work by the
// number of agents.
func (r *AgentReconciler) recordTransitions(ctx context.Context, before, agent *custosv1alpha1.Agent) {
	readyRecorded := recordReadyAndStalled(ctx, r.Recorder, agent, before.Status.Conditions, agent.Status.Conditions)
	beforePhase, phase := phaseOf(before), phaseOf(agent)
	if beforePhase == phase || beforePhase == "" || readyRecorded {
		return
	}
	r.event(ctx, agent, corev1.EventTypeNormal, "Phase"+string(phase), "Agent is %s: %s", phase, conditionMessage(agent, custosv1alpha1.ReadyCondition))
}

func phaseOf(a *custosv1alpha1.Agent) custosv1alpha1.AgentPhase {
	if a.Status.Lifecycle == nil {
		return ""
	}
	return a.Status.Lifecycle.Phase
}
