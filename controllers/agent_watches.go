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
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// toolsetRefIndex indexes Agents by the "namespace/name" of each Toolset they
// reference, so a Toolset change re-queues exactly its Agents.
const toolsetRefIndex = "custos.dev/toolset-ref"

// SetupWithManager registers the reconciler, its index and its watches.
func (r *AgentReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &custosv1alpha1.Agent{}, toolsetRefIndex, func(o client.Object) []string {
		a := o.(*custosv1alpha1.Agent)
		keys := make([]string, 0, len(a.Spec.ToolsetRefs))
		for _, ref := range a.Spec.ToolsetRefs {
			keys = append(keys, ref.Key(a.Namespace).String())
		}
		return keys
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &custosv1alpha1.AgentAttestation{}, attestationAgentIndex, indexAttestations); err != nil {
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
		// Gateway-only leases have no owner reference (they are kept in
		// another namespace): their labels name their agent.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.agentOfGatewayLease), builder.OnlyMetadata).
		// Any other NetworkPolicy may select an agent's pods (NetworkIsolated).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.agentsBesidePolicy)).
		Watches(&custosv1alpha1.Toolset{}, handler.EnqueueRequestsFromMapFunc(r.agentsForToolset)).
		// An owner's attestation renews the agent's review.
		Watches(&custosv1alpha1.AgentAttestation{}, handler.EnqueueRequestsFromMapFunc(agentOfAttestation)).
		// A freeze, and its lifting, move the agent at once.
		Watches(&custosv1alpha1.AgentFreeze{}, handler.EnqueueRequestsFromMapFunc(agentOfFreeze)).
		// A change request decided lets the change in (or keeps it out);
		// a policy that holds changes, or no longer does, decides whether
		// one waits.
		Watches(&custosv1alpha1.ApprovalRequest{}, handler.EnqueueRequestsFromMapFunc(agentOfChangeRequest)).
		Watches(&custosv1alpha1.ApprovalPolicy{}, handler.EnqueueRequestsFromMapFunc(r.agentsBesidePolicyOfChanges)).
		Watches(&custosv1alpha1.DataBoundary{}, handler.EnqueueRequestsFromMapFunc(r.agentsForBoundary),
			builder.WithPredicates(boundaryChangedForAgents)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.agentsInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{}))
	// An object that held an agent child's name (NameConflict) going away
	// lets the agent converge without anyone touching it.
	for _, k := range kindsWhere(func(k agentKind) bool { return k.named }) {
		gvk, err := apiutil.GVKForObject(k.newObj(), mgr.GetScheme())
		if err != nil {
			return err
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		b = b.WatchesRawSource(source.Kind(r.ChildNames, m,
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

func (r *AgentReconciler) agentsForToolset(ctx context.Context, o client.Object) []reconcile.Request {
	var agents custosv1alpha1.AgentList
	// Only the keys are read: the cached objects are not copied.
	if err := r.Client.List(ctx, &agents, client.MatchingFields{toolsetRefIndex: client.ObjectKeyFromObject(o).String()}, client.UnsafeDisableDeepCopy); err != nil {
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

// agentOfGatewayLease maps a gateway-only lease Secret, in the namespace
// where Custos keeps them for custos-gateway, to its Agent.
func (r *AgentReconciler) agentOfGatewayLease(_ context.Context, obj client.Object) []reconcile.Request {
	l := obj.GetLabels()
	if r.Leases.GatewayNamespace == "" || obj.GetNamespace() != r.Leases.GatewayNamespace ||
		l[custosv1alpha1.ManagedByLabel] != custosv1alpha1.ManagedByValue ||
		l[custosv1alpha1.AgentNamespaceLabel] == "" || l[custosv1alpha1.AgentLabel] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{
		Namespace: l[custosv1alpha1.AgentNamespaceLabel], Name: l[custosv1alpha1.AgentLabel],
	}}}
}
